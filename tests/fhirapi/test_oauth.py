"""OAuth2 client credentials for source systems through HTTP: the token endpoint, bearer tokens, scopes."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client, RequestFactory
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model
from rest_framework.request import Request

from healthplatform.fhirapi.authentication import SourceSystemClient
from healthplatform.fhirapi.permissions import HasFHIRScope, scope_allows
from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.selectors import identifier_systems
from mpi.services import identity_register
from registry.models import Institution, SourceSystem
from registry.services import source_system_rotate_secret
from tests.fhirapi.client import FHIR_JSON, basic, issues, register_feed
from tests.fhirapi.client import ids as patient_ids

AccessToken = get_access_token_model()
Application = get_application_model()

ROOT = Path(__file__).resolve().parents[2]
FORM = "application/x-www-form-urlencoded"
HOSPITAL_A = "1.2.156.999.1"
RESIDENT_SYSTEM = identifier_systems()["resident_id"]
RESIDENT_ID = make_resident_id("440106", dt.date(1985, 3, 12), 123)


@pytest.fixture
def region(db):
    """One resident known at one hospital."""
    identity = identity_register(
        assigning_authority=HOSPITAL_A,
        local_id="A-1001",
        demographics=Demographics(name="王小明", sex="male", birth_date="1985-03-12", resident_id=RESIDENT_ID),
    )
    return SimpleNamespace(person=identity.person)


@pytest.fixture
def feed(db):
    """A registered source system (a laboratory's LIS) and its secret."""
    return register_feed(kind=SourceSystem.Kind.LIS, name="LIS")


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def request_token(*, headers: dict | None = None, **form):
    form.setdefault("grant_type", "client_credentials")
    return Client().post("/oauth/token", urlencode(form), content_type=FORM, headers=headers or {})


def token_for(feed, scope: str | None = None) -> str:
    form = {"scope": scope} if scope else {}
    response = request_token(headers=basic(feed.source.client_id, feed.secret), **form)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def search_patient(client: Client):
    return client.get("/fhir/Patient", {"identifier": f"{RESIDENT_SYSTEM}|{RESIDENT_ID}"})


def oauth_error(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Cache-Control"] == "no-store"  # RFC 6749 §5.1 and §5.2
    return response.json()["error"]


# --- the token endpoint (RFC 6749 §4.4) -------------------------------------------------------


def test_token_by_basic_credentials_carries_the_default_scopes_and_expires_in_an_hour(feed):
    response = request_token(headers=basic(feed.source.client_id, feed.secret))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {"system/*.read", "system/*.write"}
    assert "refresh_token" not in body  # RFC 6749 §4.4.3: none for client credentials


def test_token_by_form_credentials_grants_exactly_the_scopes_asked_for(feed):
    response = request_token(
        client_id=feed.source.client_id, client_secret=feed.secret, scope="system/Patient.read system/Observation.*"
    )
    assert response.status_code == 200, response.content
    assert set(response.json()["scope"].split()) == {"system/Patient.read", "system/Observation.*"}


def test_the_oauth_application_is_keyed_by_client_id_and_keeps_no_copy_of_the_secret(feed):
    token_for(feed)
    token_for(feed)
    application = Application.objects.get(client_id=feed.source.client_id)
    assert not check_password(feed.secret, application.client_secret)
    assert feed.secret not in application.client_secret
    assert AccessToken.objects.filter(application=application).count() == 2
    # Only a digest of each token is stored (RFC 9700 token storage).
    assert set(AccessToken.objects.values_list("token", flat=True)) == {""}


def _token_seconds_setting(tmp_path, value: str) -> subprocess.CompletedProcess:
    """``OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]`` of a fresh process started with FHIR_TOKEN_SECONDS."""
    env = {**os.environ, "PLATFORM_DATA_DIR": str(tmp_path), "FHIR_TOKEN_SECONDS": value}
    code = "from django.conf import settings; print(settings.OAUTH2_PROVIDER['ACCESS_TOKEN_EXPIRE_SECONDS'])"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_token_lifetime_comes_from_fhir_token_seconds(tmp_path):
    assert _token_seconds_setting(tmp_path, "300").stdout.split()[-1] == "300"
    refused = _token_seconds_setting(tmp_path, "5")
    assert refused.returncode != 0
    assert "FHIR_TOKEN_SECONDS" in refused.stderr


def test_a_wrong_secret_gets_no_token(feed):
    response = request_token(headers=basic(feed.source.client_id, feed.secret + "x"))
    assert oauth_error(response, 401) == "invalid_client"
    response = request_token(client_id=feed.source.client_id, client_secret="not-the-secret")
    assert oauth_error(response, 401) == "invalid_client"


def test_an_unknown_client_gets_no_token_and_no_application_is_made(db):
    response = request_token(headers=basic("ss-0000000000000000", "whatever"))
    assert oauth_error(response, 401) == "invalid_client"
    assert not Application.objects.exists()


def test_an_inactive_source_system_gets_no_token(feed):
    SourceSystem.objects.filter(pk=feed.source.pk).update(active=False)
    assert oauth_error(request_token(headers=basic(feed.source.client_id, feed.secret)), 401) == "invalid_client"


def test_a_source_system_of_an_inactive_institution_gets_no_token(feed):
    Institution.objects.filter(pk=feed.source.institution_id).update(active=False)
    assert oauth_error(request_token(headers=basic(feed.source.client_id, feed.secret)), 401) == "invalid_client"


def test_credentials_sent_two_ways_at_once_are_refused(feed):
    # RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
    response = request_token(
        headers=basic(feed.source.client_id, feed.secret), client_id=feed.source.client_id, client_secret=feed.secret
    )
    assert oauth_error(response, 401) == "invalid_client"


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token", "implicit"])
def test_grant_types_other_than_client_credentials_are_unsupported(feed, grant_type):
    response = request_token(headers=basic(feed.source.client_id, feed.secret), grant_type=grant_type)
    assert oauth_error(response, 400) == "unsupported_grant_type"


@pytest.mark.parametrize("scope", ["system/Patient.delete", "patient/*.read", "system/Unicorn.read", "read"])
def test_an_unknown_scope_is_invalid_scope(feed, scope):
    response = request_token(headers=basic(feed.source.client_id, feed.secret), scope=f"system/Patient.read {scope}")
    assert oauth_error(response, 400) == "invalid_scope"


def test_the_token_endpoint_takes_post_only(feed):
    assert Client().get("/oauth/token").status_code == 405


# --- bearer tokens on the FHIR API (RFC 6750) -------------------------------------------------


def test_a_bearer_token_reads_patient_search(region, feed):
    client = Client(headers=bearer(token_for(feed)))
    assert patient_ids(search_patient(client)) == [str(region.person.uuid)]


def test_a_patient_read_scope_allows_read_search_match_and_pix(region, feed):
    client = Client(headers=bearer(token_for(feed, "system/Patient.read")))
    assert client.get(f"/fhir/Patient/{region.person.uuid}").status_code == 200
    assert search_patient(client).status_code == 200
    assert client.get("/fhir/Patient/$ihe-pix", {"sourceIdentifier": f"urn:oid:{HOSPITAL_A}|A-1001"}).status_code == 200
    # $match is POSTed but changes nothing (affectsState false): a read.
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", "name": [{"text": "王小明"}]}},
        ],
    }
    response = client.post("/fhir/Patient/$match", body, content_type=FHIR_JSON)
    assert response.status_code == 200, response.content


def test_a_token_without_a_patient_scope_is_403_naming_the_scope_needed(region, feed):
    client = Client(headers=bearer(token_for(feed, "system/Observation.read")))
    found = issues(search_patient(client), 403)
    assert found[0]["code"] == "forbidden"
    assert "system/Patient.read" in found[0]["diagnostics"]
    assert issues(client.get(f"/fhir/Patient/{region.person.uuid}"), 403)[0]["code"] == "forbidden"


def test_a_write_only_token_cannot_read(region, feed):
    client = Client(headers=bearer(token_for(feed, "system/*.write")))
    assert issues(search_patient(client), 403)[0]["code"] == "forbidden"


def test_an_expired_token_is_401_with_a_bearer_invalid_token_challenge(region, feed):
    token = token_for(feed)
    AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    response = search_patient(Client(headers=bearer(token)))
    assert issues(response, 401)[0]["code"] == "login"
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="fhir"')
    assert 'error="invalid_token"' in challenge


@pytest.mark.parametrize("token", ["not-a-token", "x" * 40])
def test_an_unknown_token_is_401_invalid_token(region, token):
    response = search_patient(Client(headers=bearer(token)))
    assert issues(response, 401)[0]["code"] == "login"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_revoked_token_is_401(region, feed):
    client = Client(headers=bearer(token_for(feed)))
    assert search_patient(client).status_code == 200
    AccessToken.objects.get().revoke()
    assert issues(search_patient(client), 401)[0]["code"] == "login"


def test_deactivating_the_source_system_stops_its_token_at_once(region, feed):
    client = Client(headers=bearer(token_for(feed)))
    assert search_patient(client).status_code == 200
    SourceSystem.objects.filter(pk=feed.source.pk).update(active=False)
    response = search_patient(client)
    assert issues(response, 401)[0]["code"] == "login"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_deactivating_the_institution_stops_its_tokens_at_once(region, feed):
    client = Client(headers=bearer(token_for(feed)))
    assert search_patient(client).status_code == 200
    Institution.objects.filter(pk=feed.source.institution_id).update(active=False)
    assert search_patient(client).status_code == 401


def test_rotating_the_secret_stops_tokens_obtained_with_the_old_one(region, feed):
    old = Client(headers=bearer(token_for(feed)))
    new_secret = source_system_rotate_secret(source_system=SourceSystem.objects.get(pk=feed.source.pk))
    assert search_patient(old).status_code == 401
    new = Client(headers=bearer(token_for(SimpleNamespace(source=feed.source, secret=new_secret))))
    assert search_patient(new).status_code == 200


def test_a_token_in_the_query_string_is_not_accepted(region, feed):
    # RFC 9700 §4.3.2 / RFC 6750 §5.3: access tokens do not travel in URLs.
    response = Client().get(
        "/fhir/Patient", {"identifier": f"{RESIDENT_SYSTEM}|{RESIDENT_ID}", "access_token": token_for(feed)}
    )
    assert response.status_code == 401


def test_without_credentials_the_401_challenges_with_bearer_and_no_error(region):
    response = search_patient(Client())
    assert issues(response, 401)[0]["code"] == "login"
    assert response["WWW-Authenticate"] == 'Bearer realm="fhir"'


def test_staff_session_and_http_basic_still_work(region, feed, django_user_model):
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("clerk", is_staff=True))
    assert patient_ids(search_patient(staff)) == [str(region.person.uuid)]
    legacy = Client(headers=basic(feed.source.client_id, feed.secret))
    assert patient_ids(search_patient(legacy)) == [str(region.person.uuid)]


def test_the_access_log_names_the_client_id_of_a_bearer_request_and_not_the_token(region, feed, caplog):
    token = token_for(feed)
    with caplog.at_level(logging.INFO, logger="healthplatform.access"):
        search_patient(Client(headers=bearer(token)))
    lines = [r.getMessage() for r in caplog.records if r.name == "healthplatform.access"]
    assert len(lines) == 1
    assert f"client={feed.source.client_id} method=GET path=/fhir/Patient status=200" in lines[0]
    assert token not in lines[0] and RESIDENT_ID not in lines[0]


def test_issuing_a_token_is_logged_without_the_token_or_the_secret(feed, caplog):
    with caplog.at_level(logging.INFO, logger="healthplatform.fhirapi.oauth"):
        token = token_for(feed)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"oauth token issued client={feed.source.client_id}" in text
    assert token not in text and feed.secret not in text


def test_openapi_describes_the_client_credentials_flow(admin_client_zh):
    response = admin_client_zh.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    scheme = response.json()["components"]["securitySchemes"]["sourceSystemOAuth2"]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token"
    assert {"system/*.read", "system/*.write", "system/*.*", "system/Patient.read"} <= set(flow["scopes"])


# --- scope_allows and HasFHIRScope ---------------------------------------------------------------


def _request(method: str = "get", path: str = "/fhir/Patient", *, user=None, auth=None) -> Request:
    request = Request(getattr(RequestFactory(), method)(path))
    request.user = user
    request.auth = auth
    return request


def _bearer_request(scope: str, *, method: str = "get", path: str = "/fhir/Patient", feed) -> Request:
    return _request(method, path, user=SourceSystemClient(feed.source), auth=AccessToken(scope=scope))


@pytest.mark.parametrize(
    ("scope", "resource_type", "action", "allowed"),
    [
        ("system/Patient.read", "Patient", "read", True),
        ("system/Patient.read", "Patient", "write", False),
        ("system/Patient.read", "Observation", "read", False),
        ("system/Patient.write", "Patient", "write", True),
        ("system/Patient.*", "Patient", "write", True),
        ("system/*.read", "Observation", "read", True),
        ("system/*.read", "Observation", "write", False),
        ("system/*.*", "DocumentReference", "write", True),
        ("system/Observation.read system/Patient.write", "Patient", "write", True),
        ("", "Patient", "read", False),
    ],
)
def test_scope_allows_a_bearer_request_what_its_scopes_grant(feed, scope, resource_type, action, allowed):
    assert scope_allows(_bearer_request(scope, feed=feed), resource_type, action) is allowed


def test_scope_allows_staff_and_basic_everything_and_anonymous_nothing(feed, django_user_model):
    staff = django_user_model(username="clerk", is_staff=True)
    assert scope_allows(_request(user=staff), "Observation", "write")
    assert scope_allows(_request(user=SourceSystemClient(feed.source), auth=feed.source), "Patient", "write")
    from django.contrib.auth.models import AnonymousUser

    assert not scope_allows(_request(user=AnonymousUser()), "Patient", "read")


def test_scope_allows_rejects_an_unknown_action(feed):
    with pytest.raises(ValueError, match="action"):
        scope_allows(_bearer_request("system/*.*", feed=feed), "Patient", "delete")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/fhir/Observation", True),
        ("head", "/fhir/Observation", True),
        ("post", "/fhir/Observation/_search", True),
        ("post", "/fhir/Observation/$validate", True),
        ("post", "/fhir/Observation", False),
        ("put", "/fhir/Observation/1", False),
        ("delete", "/fhir/Observation/1", False),
    ],
)
def test_has_fhir_scope_maps_methods_and_state_free_operations_to_read(feed, method, path, allowed):
    view = SimpleNamespace(fhir_resource_type="Observation", kwargs={})
    request = _bearer_request("system/Observation.read", method=method, path=path, feed=feed)
    assert HasFHIRScope().has_permission(request, view) is allowed


def test_has_fhir_scope_asks_a_callable_resource_type_and_lets_none_through(feed):
    def resource_type(request, **kwargs):
        return kwargs.get("type")

    request = _bearer_request("system/Observation.read", feed=feed)
    assert HasFHIRScope().has_permission(request, SimpleNamespace(fhir_resource_type=resource_type, kwargs={}))
    permission = HasFHIRScope()
    view = SimpleNamespace(fhir_resource_type=resource_type, kwargs={"type": "Patient"})
    assert not permission.has_permission(request, view)
    assert "system/Patient.read" in permission.message
    assert HasFHIRScope().has_permission(request, SimpleNamespace(kwargs={}))  # no type at all: /metadata


# Failed client authentications (healthplatform.fhirapi.throttle): tests/fhirapi/test_auth_throttle.py.


# --- the source system's allow-list (SourceSystem.fhir_scopes) -------------------------------------------


def allow(feed, scopes: str) -> None:
    feed.source.fhir_scopes = scopes
    feed.source.full_clean()
    feed.source.save()


def test_a_token_is_limited_to_what_the_registry_allows_the_source_system(feed):
    allow(feed, "system/Observation.* system/Patient.read")

    asked_for_more = request_token(headers=basic(feed.source.client_id, feed.secret), scope="system/*.write")
    assert oauth_error(asked_for_more, 400) == "invalid_scope"
    assert (
        oauth_error(request_token(headers=basic(feed.source.client_id, feed.secret), scope="system/Patient.write"), 400)
        == "invalid_scope"
    )
    narrower = request_token(headers=basic(feed.source.client_id, feed.secret), scope="system/Observation.write")
    assert narrower.status_code == 200, narrower.content
    # Asking for nothing gives what is allowed, not the platform's defaults.
    default = request_token(headers=basic(feed.source.client_id, feed.secret))
    assert set(default.json()["scope"].split()) == {"system/Observation.*", "system/Patient.read"}


def test_the_allow_list_holds_at_once_for_issued_tokens_and_for_http_basic(region, feed):
    token = token_for(feed)  # system/*.read and system/*.write
    bearer_client = Client(headers=bearer(token))
    assert search_patient(bearer_client).status_code == 200
    assert search_patient(feed.client).status_code == 200

    allow(feed, "system/Observation.read")

    assert issues(search_patient(bearer_client), 403)[0]["code"] == "forbidden"
    assert issues(search_patient(feed.client), 403)[0]["code"] == "forbidden"


def test_an_unknown_scope_in_the_allow_list_is_refused_naming_it(feed):
    from django.core.exceptions import ValidationError

    feed.source.fhir_scopes = "system/Observation.read system/Nothing.read"
    with pytest.raises(ValidationError, match=r"system/Nothing\.read"):
        feed.source.full_clean()


@pytest.mark.parametrize(
    ("scope", "allowed", "within"),
    [
        ("system/Observation.read", {"system/Observation.*"}, True),
        ("system/Observation.*", {"system/Observation.read"}, False),
        ("system/Observation.*", {"system/Observation.read", "system/Observation.write"}, True),
        ("system/*.read", {"system/Observation.read"}, False),
        ("system/Patient.read", {"system/*.read"}, True),
        ("system/*.*", {"system/*.read", "system/*.write"}, True),
    ],
)
def test_scope_within_compares_what_scopes_grant(scope, allowed, within):
    from healthplatform.fhirapi.oauth import scope_within

    assert scope_within(scope, frozenset(allowed)) is within
