"""How a client finds the token endpoint by itself (issue 19): SMART's ``.well-known/smart-configuration`` (SMART
App Launch 2.x, conformance.html and backend-services.html) and the CapabilityStatement's ``rest.security``
(the oauth-uris extension), both through HTTP, anonymously, with absolute URLs of the request's own origin."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client

from tests.fhirapi.client import basic

DISCOVERY = ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _token_url_of_capability_statement(client: Client, **headers) -> str:
    response = client.get("/fhir/metadata", headers=headers)
    assert response.status_code == 200, response.content
    security = response.json()["rest"][0]["security"]
    codes = {(c["system"], c["code"]) for service in security["service"] for c in service["coding"]}
    assert (SECURITY_SERVICE, "SMART-on-FHIR") in codes
    (oauth,) = [e for e in security["extension"] if e["url"] == OAUTH_URIS]
    return {e["url"]: e["valueUri"] for e in oauth["extension"]}["token"]


@pytest.mark.parametrize("path", DISCOVERY)
def test_smart_configuration_is_served_anonymously_as_json_at_the_root_and_under_the_fhir_base(client, db, path):
    response = client.get(path)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    assert body["token_endpoint"] == "http://testserver/oauth/token"
    assert body["grant_types_supported"] == ["client_credentials"]
    # What /oauth/token accepts (RFC 6749 §2.3.1) and nothing else: no private_key_jwt, no authorization code.
    assert sorted(body["token_endpoint_auth_methods_supported"]) == ["client_secret_basic", "client_secret_post"]
    assert body["scopes_supported"] == sorted(settings.FHIR_SCOPES)
    assert sorted(body["capabilities"]) == ["client-confidential-symmetric", "permission-v1"]
    assert "authorization_endpoint" not in body


@pytest.mark.parametrize("path", DISCOVERY)
def test_smart_configuration_is_only_read(client, db, path):
    response = client.post(path, "{}", content_type="application/json")
    assert response.status_code == 405
    assert "GET" in response["Allow"]


@pytest.mark.parametrize("path", DISCOVERY)
def test_the_discovered_token_endpoint_and_auth_methods_issue_a_token(feed, path):
    body = Client().get(path).json()
    token_path = body["token_endpoint"].removeprefix("http://testserver")
    form = {"grant_type": "client_credentials", "scope": body["scopes_supported"][0]}
    by_basic = Client().post(
        token_path,
        urlencode(form),
        content_type="application/x-www-form-urlencoded",
        headers=basic(feed.source.client_id, feed.secret),
    )
    by_post = Client().post(
        token_path,
        urlencode({**form, "client_id": feed.source.client_id, "client_secret": feed.secret}),
        content_type="application/x-www-form-urlencoded",
    )
    assert by_basic.status_code == 200, by_basic.content
    assert by_post.status_code == 200, by_post.content


def test_capability_statement_names_the_same_token_endpoint_as_smart_configuration(client, db):
    token = _token_url_of_capability_statement(client)
    assert token == client.get(DISCOVERY[0]).json()["token_endpoint"] == "http://testserver/oauth/token"


@pytest.mark.parametrize("path", [*DISCOVERY, "/fhir/metadata"])
def test_discovery_behind_the_tls_proxy_gives_https_urls_of_the_host_asked(client, db, settings, path):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["fhir.region.example"]
    headers = {"host": "fhir.region.example", "x-forwarded-proto": "https"}
    if path == "/fhir/metadata":
        token = _token_url_of_capability_statement(client, **headers)
    else:
        token = client.get(path, headers=headers).json()["token_endpoint"]
    assert token == "https://fhir.region.example/oauth/token"
