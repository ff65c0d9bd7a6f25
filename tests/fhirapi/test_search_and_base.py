"""The FHIR base without its trailing slash, ``POST [type]/_search`` and ``Bundle.total``, as a standard FHIR client
uses them (issue 19; R4 http.html, search.html)."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.fhirapi.client import CONTENT_TYPE, FHIR_JSON

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
            assert response["Content-Type"].startswith(FHIR_JSON), (method, variant)


def test_a_bad_request_refused_before_routing_at_the_bare_base_is_an_operation_outcome(client):
    # healthplatform.views.bad_request answers FHIR for /fhir as it does for /fhir/...
    response = client.post("/fhir", {}, content_type=CONTENT_TYPE, HTTP_HOST="cl")
    assert response.status_code == 400
    assert response["Content-Type"].startswith(FHIR_JSON)
    OperationOutcome.model_validate(response.json())
