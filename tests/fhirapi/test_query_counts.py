"""Query counts of the FHIR API's list answers are performance contracts: a search with _include and
_revinclude, $everything and a DocumentReference search cost the same number of queries for one match as
for ten (no query per match, per included resource or per document)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.fhirapi.client import FHIR_JSON, register_feed, searchset
from tests.fhirapi.samples import patient_body, sample
from tests.fhirapi.tenants import document_body, post

GLUCOSE = {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}


@pytest.fixture
def hospital(db, documents_folder):
    """A hospital's feed with one Patient (a person of their own) and one Encounter of theirs."""
    feed = register_feed(facility="HOSP-Q", name="HIS-Q")
    body = patient_body("Q-1", system="urn:platform:authority:HOSP-Q", name="赵敏", birthDate="1970-01-02")
    response = post(feed.client, "Patient", {**body, "gender": "female"})
    assert response.status_code == 201, response.content
    feed.patient_id = response.json()["id"]
    response = post(feed.client, "Encounter", sample("Encounter", f"Patient/{feed.patient_id}", hospital="hosp-q"))
    assert response.status_code == 201, response.content
    feed.encounter_id = response.json()["id"]
    feed.added = 0
    return feed


def add_observations(hospital, n: int) -> None:
    """n more glucose Observations of the encounter, each the result of a DiagnosticReport of its own."""
    for _ in range(n):
        hospital.added += 1
        observation = sample("Observation", f"Patient/{hospital.patient_id}", hospital.added, hospital="hosp-q")
        observation["code"] = GLUCOSE
        observation["encounter"] = {"reference": f"Encounter/{hospital.encounter_id}"}
        response = post(hospital.client, "Observation", observation)
        assert response.status_code == 201, response.content
        report = sample("DiagnosticReport", f"Patient/{hospital.patient_id}", hospital.added, hospital="hosp-q")
        report["result"] = [{"reference": f"Observation/{response.json()['id']}"}]
        assert post(hospital.client, "DiagnosticReport", report).status_code == 201


def add_documents(hospital, n: int) -> None:
    for _ in range(n):
        hospital.added += 1
        body = document_body(f"Patient/{hospital.patient_id}", hospital="hosp-q", value=f"DOC-{hospital.added}")
        assert post(hospital.client, "DocumentReference", body).status_code == 201


def measured(client, url: str) -> tuple[int, dict]:
    """How many queries one GET costs, and its searchset."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON)
    return len(ctx.captured_queries), searchset(response)


def entries(body: dict, mode: str | None = None) -> list[dict]:
    return [e for e in body.get("entry", []) if mode is None or e["search"]["mode"] == mode]


def queries_at_1_and_10(hospital, url: str, add) -> tuple[tuple[int, dict], tuple[int, dict]]:
    """The queries and searchset of ``url`` once ``add(hospital, n)`` made 1 match, and again at 10."""
    add(hospital, 1)
    measured(hospital.client, url)  # the credential check is cached from here on, as in steady use
    one = measured(hospital.client, url)
    add(hospital, 9)
    return one, measured(hospital.client, url)


def test_a_search_with_include_and_revinclude_costs_the_same_queries_for_1_and_10_matches(hospital):
    url = (
        f"Observation?patient={hospital.patient_id}&code=2345-7"
        "&_include=Observation:encounter&_revinclude=DiagnosticReport:result"
    )
    (one, at_one), (ten, at_ten) = queries_at_1_and_10(hospital, url, add_observations)
    # Each match brings its report; the Encounter is included once.
    assert (len(entries(at_one, "match")), len(entries(at_one, "include"))) == (1, 2)
    assert (len(entries(at_ten, "match")), len(entries(at_ten, "include"))) == (10, 11)
    assert ten == one


def test_everything_costs_the_same_queries_for_1_and_10_facts(hospital):
    url = f"Patient/{hospital.patient_id}/$everything"
    (one, at_one), (ten, at_ten) = queries_at_1_and_10(hospital, url, add_observations)
    # The golden Patient, the source Patient, the Encounter, and each Observation with its report.
    assert (len(entries(at_one)), len(entries(at_ten))) == (5, 23)
    assert ten == one


def test_a_document_search_costs_the_same_queries_for_1_and_10_documents(hospital):
    url = f"DocumentReference?patient={hospital.patient_id}"
    (one, at_one), (ten, at_ten) = queries_at_1_and_10(hospital, url, add_documents)
    assert (len(entries(at_one)), len(entries(at_ten))) == (1, 10)
    assert ten == one
