"""Bad parameters get a 4xx OperationOutcome naming them, never a 500: one regression test per server
error the schemathesis run (test_openapi_schemathesis.py) or its follow-up review found."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from fhir.resources.R4B.operationoutcome import OperationOutcome

from healthplatform.fhirapi.media import may_hold_long_integer
from tests.fhirapi.client import register_feed

FHIR_JSON = "application/fhir+json"
# Unicode digits that str.isdigit() accepts and int() refuses, and a number int() refuses to read.
SUPERSCRIPT_TWO = "²"
FIVE_THOUSAND_DIGITS = "9" * 5000


@pytest.fixture
def feed(db):
    """A hospital feed with one Patient and one Observation about it."""
    client = register_feed().client
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:platform:authority:HOSP-A", "value": "A-1"}],
        "name": [{"text": "王小明"}],
        "gender": "male",
        "birthDate": "1985-03-12",
    }
    response = client.post("/fhir/Patient", patient, content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    patient_id = response.json()["id"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-05-01T10:00:00+08:00",
    }
    response = client.post("/fhir/Observation", observation, content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    yield SimpleNamespace(client=client, patient_id=patient_id, observation_id=response.json()["id"])
    cache.clear()


def refused(response, name: str) -> None:
    """A 400 OperationOutcome that names the parameter."""
    assert response.status_code == 400, response.content
    body = response.json()
    OperationOutcome.model_validate(body)
    assert any(name in issue["diagnostics"] for issue in body["issue"]), body


@pytest.mark.parametrize("value", ["abc", "null", "-1", SUPERSCRIPT_TWO, FIVE_THOUSAND_DIGITS])
def test_everything_refuses_a_count_that_is_not_a_whole_number(feed, value):
    # Was: int("null") -> ValueError -> 500 (found by schemathesis).
    refused(feed.client.get(f"/fhir/Patient/{feed.patient_id}/$everything", {"_count": value}), "_count")


@pytest.mark.parametrize("value", [SUPERSCRIPT_TWO, "9" * 40])
def test_everything_refuses_a_cursor_that_is_not_a_page_link(feed, value):
    # Was: "²".isdigit() is True, int("²") raised -> 500.
    refused(feed.client.get(f"/fhir/Patient/{feed.patient_id}/$everything", {"_cursor": value}), "_cursor")


@pytest.mark.parametrize("value", [SUPERSCRIPT_TWO, FIVE_THOUSAND_DIGITS])
@pytest.mark.parametrize(
    "path,criteria",
    [("Patient", {"family": "王"}), ("Observation", {"code": "718-7"}), ("DocumentReference", {"patient": None})],
)
def test_searches_refuse_a_count_that_int_cannot_read(feed, path, criteria, value):
    # Was: search.count and the archive's _count check let "²" (and 5000 digits) through to int() -> 500.
    criteria = {k: v or feed.patient_id for k, v in criteria.items()}
    refused(feed.client.get(f"/fhir/{path}", {**criteria, "_count": value}), "_count")


def test_history_refuses_such_a_count_and_ignores_such_a_before_version(feed):
    url = f"/fhir/Observation/{feed.observation_id}/_history"
    refused(feed.client.get(url, {"_count": SUPERSCRIPT_TWO}), "_count")
    # _before_version is our own next link's parameter; one we did not make is ignored, as before.
    assert feed.client.get(url, {"_before_version": SUPERSCRIPT_TWO}).status_code == 200


@pytest.mark.parametrize("value", [f'W/"{SUPERSCRIPT_TWO}"', f'W/"{FIVE_THOUSAND_DIGITS}"'])
def test_if_match_that_names_no_version_number_is_refused(feed, value):
    # Was: If-Match: W/"²" -> int("²") -> 500.
    refused(feed.client.delete(f"/fhir/Observation/{feed.observation_id}", HTTP_IF_MATCH=value), "If-Match")


def test_a_path_with_an_encoded_newline_gets_an_outcome_not_an_html_page(feed):
    response = feed.client.get("/fhir/Patient/abc%0Adef")
    assert response.status_code == 404
    assert response["Content-Type"].startswith(FHIR_JSON)
    OperationOutcome.model_validate(response.json())


def test_a_host_header_this_server_does_not_serve_gets_an_outcome_not_an_html_page(feed):
    # Found by schemathesis: Django refuses such a request before any view runs (DisallowedHost).
    response = feed.client.get(f"/fhir/Observation/{feed.observation_id}", HTTP_HOST="cl")
    assert response.status_code == 400
    assert response["Content-Type"].startswith(FHIR_JSON)
    OperationOutcome.model_validate(response.json())
    assert "Host" in response.json()["issue"][0]["diagnostics"]
    # Outside the FHIR API it stays Django's own page.
    assert feed.client.get("/admin/", HTTP_HOST="cl").status_code == 400


def test_malformed_json_is_answered_with_where_the_parser_stopped(feed):
    response = feed.client.post("/fhir/Observation", b'{"resourceType": "Observation",, }', content_type=FHIR_JSON)
    refused(response, "JSON parse error")
    assert "line 1 column" in response.json()["issue"][0]["diagnostics"]


def test_a_body_in_a_declared_charset_other_than_utf8_is_read_in_that_charset(feed):
    # FHIR JSON is UTF-8; a client that says otherwise is still read as it says (the fast parser reads only UTF-8).
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:platform:authority:HOSP-A", "value": "A-2"}],
        # In Latin-1 these bytes are also valid UTF-8 (for "Müller"): read as UTF-8 the name would change.
        "name": [{"family": "MÃ¼ller", "given": ["Anna"]}],
        "gender": "female",
        "birthDate": "1990-01-02",
    }
    text = json.dumps(body, ensure_ascii=False)  # the test client encodes it in the declared charset
    assert text.encode("latin-1") != text.encode("utf-8")
    response = feed.client.post("/fhir/Patient", text, content_type=f"{FHIR_JSON}; charset=latin-1")
    assert response.status_code == 201, response.content
    assert response.json()["name"][0]["family"] == "MÃ¼ller"


def test_an_integer_beyond_64_bits_is_kept_exactly_as_sent(feed):
    # FHIR decimals may have any precision; orjson would read this integer as a rounded float.
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{feed.patient_id}"},
        "valueQuantity": {"value": 123456789012345678901234567890},
    }
    created = feed.client.post("/fhir/Observation", json.dumps(body), content_type=FHIR_JSON)
    assert created.status_code == 201, created.content
    read = feed.client.get(f"/fhir/Observation/{created.json()['id']}")
    assert b'"value":123456789012345678901234567890' in read.content.replace(b" ", b"")


@pytest.mark.parametrize(
    ("text", "long"),
    [
        (b'{"value": 123456789012345678901234567890}', True),
        (b'{"v":[1,\n -1234567890123456789]}', True),
        (b"12345678901234567890", True),
        (b" \n-12345678901234567890", True),
        (b'["x", 12345678901234567890]', True),
        (b'{"system": "urn:oid:2.25.196230784418830479385624663459522336735"}', False),
        (b'{"value": 1.2345678901234567890123}', False),  # a float either way
        (b'{"value": 123456789012345678}', False),  # 18 digits fit in 64 bits
    ],
)
def test_only_a_long_number_where_a_value_starts_takes_the_exact_parser(text, long):
    assert may_hold_long_integer(text) is long


@pytest.mark.parametrize("depth", [150, 1_100, 5_000], ids=["past-the-limit", "past-orjson", "past-python"])
@pytest.mark.parametrize(
    "content_type, long_integer",
    [(FHIR_JSON, False), (FHIR_JSON, True), ("application/json", False), (f"{FHIR_JSON}; charset=latin-1", False)],
    ids=["fhir-json", "fhir-json-exact-path", "plain-json", "declared-charset"],
)
def test_a_body_nested_too_deep_is_a_400_not_a_recursion_error(feed, depth, content_type, long_integer):
    """Issue 18: JSON nested deeper than about 1,000 levels raised RecursionError (a 500). Every parser path —
    orjson, the exact path a 19-digit number takes, plain JSON, a declared charset — answers 400."""
    nested = "[" * depth + "]" * depth
    number = ', "valueInteger": 12345678901234567890' if long_integer else ""
    body = f'{{"resourceType": "Observation", "status": "final", "note": {nested}{number}}}'.encode()
    response = feed.client.post("/fhir/Observation", body, content_type=content_type)
    refused(response, "deeper than 100 levels")
