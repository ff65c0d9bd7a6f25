"""Issue 18: a body of any Content-Type, in any charset, holding any character, on every write route and with
either kind of client authentication, gets a 4xx with a readable answer — never a 500 — and loses nothing.

Generic (the platform will be probed with variants that are not listed): every route below × every body kind ×
HTTP Basic and a bearer token. Found here: a bearer token's check parsed the body as a form (django-oauth-toolkit
reads ``request.POST``), so a multipart body without a boundary was a 500 on every POST, and a multipart body with
one left ``/hl7v2`` unable to read it (a 500); a UTF-16 body was kept with its NUL bytes (a 500); a JSON escape
of a lone surrogate reached PostgreSQL through the UTF-16 path (a 500); a batch with one such entry was refused
whole.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from fhir.resources.R4B.operationoutcome import OperationOutcome

from ehr.models import Resource
from tests.fhirapi.client import basic, register_feed

FHIR_JSON = "application/fhir+json"
MRN_SYSTEM = "urn:platform:authority:HOSP-A"

# (method, path): every route that takes a body.
ROUTES = [
    ("POST", "/fhir/Patient"),
    ("POST", "/fhir/Observation"),
    ("PUT", "/fhir/Observation/obs-1"),
    ("PUT", f"/fhir/Observation?identifier={MRN_SYSTEM}|O-1"),
    ("POST", "/fhir/"),
    ("POST", "/fhir/Patient/$match"),
    ("POST", "/hl7v2"),
    ("POST", "/cds-services/alerts-order-sign"),
    ("POST", "/oauth/token"),
]
PATIENT = '{"resourceType": "Patient", "name": [{"text": "\u738b\u5c0f\u660e"}]}'
# (Content-Type, body bytes): what careless and hostile senders send.
BODIES = {
    "multipart-without-boundary": ("multipart/form-data", PATIENT.encode()),
    "multipart-empty-boundary": ("multipart/form-data; boundary=", PATIENT.encode()),
    "multipart-well-formed": (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + PATIENT.encode() + b"\r\n--xyz--\r\n",
    ),
    "form-unknown-charset": ("application/x-www-form-urlencoded; charset=nonsense", b"grant_type=client_credentials"),
    "fhir-json-unknown-charset": (f"{FHIR_JSON}; charset=nonsense", PATIENT.encode()),
    "fhir-json-utf16": (f"{FHIR_JSON}; charset=utf-16", PATIENT.encode("utf-16")),
    "fhir-json-utf16-without-bom": (f"{FHIR_JSON}; charset=utf-16", PATIENT.encode("utf-16-le")),
    "fhir-json-utf32": (f"{FHIR_JSON}; charset=utf-32", PATIENT.encode("utf-32")),
    "fhir-json-declared-utf8-sent-gb18030": (f"{FHIR_JSON}; charset=utf-8", PATIENT.encode("gb18030")),
    "text-plain": ("text/plain", PATIENT.encode()),
    "no-content-type": ("", PATIENT.encode()),
    "xml": ("application/fhir+xml", b"<Patient xmlns='http://hl7.org/fhir'/>"),
}


@pytest.fixture
def feed(db):
    return register_feed()


def _client(feed, auth: str) -> Client:
    headers = basic(feed.source.client_id, feed.secret)
    if auth == "bearer":
        token = Client(headers=headers).post(
            "/oauth/token", "grant_type=client_credentials", content_type="application/x-www-form-urlencoded"
        )
        assert token.status_code == 200, token.content
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
    # As a hospital's system is: no CSRF exemption of the test client's, exceptions answered, not raised.
    return Client(enforce_csrf_checks=True, raise_request_exception=False, headers=headers)


@pytest.mark.parametrize("auth", ["basic", "bearer"])
@pytest.mark.parametrize("kind", list(BODIES))
@pytest.mark.parametrize("method,path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_body_on_every_write_route_is_answered_without_a_server_error(feed, method, path, kind, auth):
    content_type, body = BODIES[kind]
    response = _client(feed, auth).generic(method, path, body, content_type=content_type)
    assert response.status_code < 500, response.content[:300]
    if path.startswith("/fhir/"):
        # The FHIR API's answer is FHIR: a written resource or an OperationOutcome saying what was wrong.
        answer = response.json()
        if response.status_code >= 400:
            OperationOutcome.model_validate(answer)
    assert not Resource.objects.filter(resource_type="Observation").exists()


def _patient(value: str, name: str = "\u738b\u5c0f\u660e") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": value}],
        "name": [{"text": name}],
        "gender": "male",
        "birthDate": "1985-03-12",
    }


# Characters no FHIR string holds and PostgreSQL stores neither in text nor in jsonb, as JSON escapes them.
UNSTORABLE = {"nul": "\\u0000", "lone-high-surrogate": "\\ud800", "lone-low-surrogate": "\\udfff"}


@pytest.mark.parametrize("charset", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize("char", list(UNSTORABLE))
def test_a_body_string_holding_what_no_fhir_string_may_is_a_400_naming_the_element(feed, char, charset):
    text = json.dumps(_patient("P-1", "NAME")).replace("NAME", f"x{UNSTORABLE[char]}y")
    response = _client(feed, "basic").generic(
        "POST", "/fhir/Patient", text.encode(charset), content_type=f"{FHIR_JSON}; charset={charset}"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    OperationOutcome.model_validate(body)
    assert "Patient.name[0].text" in body["issue"][0]["diagnostics"], body


def test_a_surrogate_pair_escaped_is_a_character_and_is_kept(feed):
    text = json.dumps(_patient("P-2", "NAME")).replace("NAME", "\\ud842\\udfb7")  # U+20BB7, a CJK Ext-B name
    response = _client(feed, "basic").generic("POST", "/fhir/Patient", text.encode(), content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    assert response.json()["name"][0]["text"] == "\U00020bb7"


@pytest.mark.parametrize("char", list(UNSTORABLE))
def test_a_batch_answers_an_entry_holding_such_a_character_in_its_place_and_applies_the_others(feed, char):
    good = {"resource": _patient("B-1"), "request": {"method": "PUT", "url": f"Patient?identifier={MRN_SYSTEM}|B-1"}}
    bad = {"resource": _patient("B-2", "NAME"), "request": {"method": "POST", "url": "Patient"}}
    read = {"request": {"method": "GET", "url": "Patient?name=NAME"}}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [good, bad, read]}
    text = json.dumps(bundle).replace("NAME", f"x{UNSTORABLE[char]}")
    response = _client(feed, "basic").generic("POST", "/fhir/", text.encode(), content_type=FHIR_JSON)
    assert response.status_code == 200, response.content
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("400") and statuses[2].startswith("400")
    outcome = response.json()["entry"][1]["response"]["outcome"]
    assert "Bundle.entry[1].resource.name[0].text" in outcome["issue"][0]["diagnostics"]
    assert (
        "Bundle.entry[2].request.url" in response.json()["entry"][2]["response"]["outcome"]["issue"][0]["diagnostics"]
    )


def test_a_transaction_with_such_an_entry_is_refused_whole(feed):
    good = {"resource": _patient("T-1"), "request": {"method": "PUT", "url": f"Patient?identifier={MRN_SYSTEM}|T-1"}}
    bad = {"resource": _patient("T-2", "NAME"), "request": {"method": "POST", "url": "Patient"}}
    text = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [good, bad]})
    response = _client(feed, "basic").generic(
        "POST", "/fhir/", text.replace("NAME", "\\u0000").encode(), content_type=FHIR_JSON
    )
    assert response.status_code == 400, response.content
    assert "Bundle.entry[1].resource.name[0].text" in json.dumps(response.json())
    assert not Resource.objects.filter(resource_type="Patient").exists()


@pytest.mark.parametrize("url", ["Patient?name=%00", "Patient?identifier=a%7C%00", "Patient/%00"])
def test_a_batch_read_whose_url_decodes_to_a_nul_is_answered_in_its_place(feed, url):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": url}}]}
    response = _client(feed, "basic").post("/fhir/", bundle, content_type=FHIR_JSON)
    assert response.status_code == 200, response.content
    assert response.json()["entry"][0]["response"]["status"].startswith("4"), response.content
