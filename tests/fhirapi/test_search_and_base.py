"""The FHIR base without its trailing slash, ``POST [type]/_search`` and ``Bundle.total``, as a standard FHIR client
uses them (issue 19; R4 http.html, search.html)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from fhir.resources.R4B.operationoutcome import OperationOutcome

from healthplatform.audit.models import AccessEvent
from tests.fhirapi.client import CONTENT_TYPE, FHIR_JSON, expressions, issues, searchset
from tests.fhirapi.test_endpoints import _search, each_endpoint, fhir_get, found_ids, self_link
from tests.ingest.test_scopes import bearer_client

pytestmark = pytest.mark.django_db


def _batch_of_one_read(patient_id: str) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Patient/{patient_id}"}}],
    }


@pytest.mark.parametrize("base", ["/fhir", "/fhir/"])
def test_a_bundle_posted_to_the_base_with_or_without_the_slash_is_answered(world, base):
    # A 301 here is re-sent by clients as a GET: the Bundle is lost (R4 http.html#transaction: POST [base]).
    response = world.a.client.post(
        base, _batch_of_one_read(world.a.patient_id), content_type=CONTENT_TYPE, HTTP_ACCEPT=FHIR_JSON
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["type"] == "batch-response"
    assert body["entry"][0]["response"]["status"].startswith("200")


def _fhir_route_examples() -> list[str]:
    """A path of every route under /fhir/ (its regex with each group replaced by a plausible value)."""
    resolver = next(p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "fhir/")
    paths = []
    for pattern in resolver.url_patterns:
        assert isinstance(pattern, URLPattern)
        text = str(pattern.pattern).lstrip("^").rstrip("$").replace("\\$", "$").replace("\\", "")
        for group, value in (
            ("(?P<id>[A-Za-z0-9-.]{1,64})", "x1"),
            ("(?P<vid>[0-9]{1,9})", "1"),
            ("[sS]*", "Nothing/here"),
        ):
            text = text.replace(group, value)
        if "(?P<type>" in text:
            text = text.split("(?P<type>", 1)[0] + "Observation" + text.split(")", 1)[1]
        paths.append(f"/fhir/{text}")
    return paths


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_fhir_route_answers_a_write_with_a_redirect(world, method):
    # Django's APPEND_SLASH answers a path that resolves only with a slash added with a 301, which a client
    # follows as a GET: the body is lost. No FHIR path may be answered so, with or without a trailing slash.
    send = getattr(world.a.client, method)
    for path in ["/fhir", *_fhir_route_examples()]:
        for variant in {path, path.rstrip("/"), path.rstrip("/") + "/"}:
            response = send(variant, {}, content_type=CONTENT_TYPE, HTTP_ACCEPT=FHIR_JSON)
            assert not 300 <= response.status_code < 400, (method, variant, response.status_code)
            if ".well-known/" not in variant:  # SMART's discovery document is not FHIR (test_discovery.py)
                assert response["Content-Type"].startswith(FHIR_JSON), (method, variant)


def test_a_bad_request_refused_before_routing_at_the_bare_base_is_an_operation_outcome(client):
    # healthplatform.views.bad_request answers FHIR for /fhir as it does for /fhir/...
    response = client.post("/fhir", {}, content_type=CONTENT_TYPE, HTTP_HOST="cl")
    assert response.status_code == 400
    assert response["Content-Type"].startswith(FHIR_JSON)
    OperationOutcome.model_validate(response.json())


# --- POST [type]/_search (R4 http.html#search, search.html#Introduction: a server SHALL support it) -----------

FORM = "application/x-www-form-urlencoded"


def _search_by_post(client, query: str, *, in_url: str = "", **headers):
    """``query`` ("Type?a=1&b=2") as ``POST Type/_search``: the parameters in a form body, ``in_url`` in the URL."""
    resource_type, _, parameters = query.partition("?")
    url = f"/fhir/{resource_type}/_search" + (f"?{in_url}" if in_url else "")
    return client.post(url, parameters, content_type=FORM, HTTP_ACCEPT=FHIR_JSON, **headers)


@each_endpoint
def test_a_search_posted_to_search_finds_what_the_get_finds(world, endpoint):
    instance, query = _search(endpoint, world)
    reader = endpoint.reader(world)
    got = searchset(fhir_get(reader, query))
    posted = searchset(_search_by_post(reader, query))
    assert instance in found_ids(posted, endpoint.resource_type)
    assert found_ids(posted, endpoint.resource_type) == found_ids(got, endpoint.resource_type)
    # The self link is the search as a GET (R4 search.html#conformance: a client can follow it).
    self_url = next(link["url"] for link in posted["link"] if link["relation"] == "self")
    assert "/_search" not in self_url
    assert set(parse_qsl(urlsplit(query).query)) <= set(self_link(posted))


@each_endpoint
def test_a_posted_search_combines_the_url_parameters_with_the_bodys(world, endpoint):
    instance, query = _search(endpoint, world)
    resource_type, _, parameters = query.partition("?")
    first, *rest = parameters.split("&")
    response = _search_by_post(endpoint.reader(world), f"{resource_type}?{'&'.join(rest)}", in_url=first)
    assert instance in found_ids(searchset(response), endpoint.resource_type)


@each_endpoint
def test_a_posted_search_refuses_an_unknown_parameter_in_the_body_naming_it(world, endpoint):
    _, query = _search(endpoint, world)
    assert expressions(_search_by_post(endpoint.reader(world), f"{query}&colour=red"), 400) == ["colour"]


@each_endpoint
def test_a_posted_search_is_audited_as_the_get_is(world, endpoint):
    _, query = _search(endpoint, world)
    reader = endpoint.reader(world)
    before = AccessEvent.objects.count()
    searchset(fhir_get(reader, query))
    by_get = AccessEvent.objects.count() - before
    searchset(_search_by_post(reader, query))
    assert AccessEvent.objects.count() - before == 2 * by_get


@each_endpoint
def test_a_posted_search_needs_only_the_types_read_scope(world, endpoint):
    endpoint.served("sources_read")
    _, query = _search(endpoint, world)
    reading = bearer_client(world.a.feed, f"system/{endpoint.resource_type}.read")
    assert found_ids(searchset(_search_by_post(reading, query)), endpoint.resource_type)
    writing = bearer_client(world.a.feed, f"system/{endpoint.resource_type}.write")
    assert issues(_search_by_post(writing, query), 403)[0]["code"] == "forbidden"


@each_endpoint
def test_a_resource_posted_to_search_is_415_and_not_created(world, endpoint):
    # _search is a search, never a create: a FHIR JSON body there is refused, whatever it holds.
    _, query = _search(endpoint, world)
    resource_type = query.partition("?")[0]
    client = endpoint.reader(world)
    before = AccessEvent.objects.count()
    response = client.post(f"/fhir/{resource_type}/_search", {"resourceType": resource_type}, content_type=CONTENT_TYPE)
    assert issues(response, 415)[0]["code"] in ("not-supported", "invalid")
    assert AccessEvent.objects.count() == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_search_is_only_posted(world, method):
    response = getattr(world.a.client, method)(f"/fhir/Observation/_search?patient={world.a.patient_id}")
    assert issues(response, 405)[0]["code"] == "not-supported"


def test_the_access_log_names_a_posted_search_as_received_without_its_parameters(world, caplog):
    caplog.set_level("INFO", logger="healthplatform.access")
    query = f"Observation?patient={world.a.patient_id}"
    searchset(_search_by_post(world.a.client, query))
    line = [r for r in caplog.records if r.name == "healthplatform.access"][-1]
    assert (line.method, line.path) == ("POST", "/fhir/Observation/_search")
    assert world.a.patient_id not in line.getMessage()
