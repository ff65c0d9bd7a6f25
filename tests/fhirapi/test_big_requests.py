"""Big requests: a Bundle or a resource larger than the platform takes is refused up front with 413 naming what
is too large; a batch's request is kept once, however many entries it has."""

from __future__ import annotations

import json

import pytest
from django.db.models import Sum
from django.db.models.functions import Length

from ehr.models import Resource, Submission
from tests.fhirapi.client import FHIR_JSON
from tests.fhirapi.client import issues as outcome
from tests.fhirapi.samples import sample


def _bundle(kind: str, resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources],
    }


def _observations(hosp, count: int) -> list[dict]:
    return [sample("Observation", f"Patient/{hosp.patient_id}", n=n) for n in range(count)]


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_a_bundle_is_kept_once_whatever_its_number_of_entries(hosp, kind):
    before = Submission.objects.count()
    body = json.dumps(_bundle(kind, _observations(hosp, 40)))
    response = hosp.client.post("/fhir/", body, content_type=FHIR_JSON)
    assert response.status_code == 200, response.content
    assert Submission.objects.count() == before + 1
    kept = Submission.objects.order_by("-pk").first()
    assert kept.body == body
    assert Resource.objects.filter(resource_type="Observation", submission=kept).count() == 40
    stored = Submission.objects.aggregate(total=Sum(Length("body")))["total"]
    assert stored < 2 * len(body)


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_a_bundle_with_more_entries_than_its_type_takes_is_413_and_writes_nothing(hosp, settings, kind):
    settings.FHIR_BATCH_MAX_ENTRIES, settings.FHIR_TRANSACTION_MAX_ENTRIES = 3, 5
    limit = 3 if kind == "batch" else 5
    refused = hosp.client.post("/fhir/", _bundle(kind, _observations(hosp, limit + 1)), content_type=FHIR_JSON)
    issue = outcome(refused, 413)[0]
    assert issue["code"] == "too-costly" and issue["expression"] == ["Bundle.entry"]
    assert f"at most {limit} entries per {kind}" in issue["diagnostics"]
    assert not Resource.objects.filter(resource_type="Observation").exists()
    taken = hosp.client.post("/fhir/", _bundle(kind, _observations(hosp, limit)), content_type=FHIR_JSON)
    assert taken.status_code == 200, taken.content


def test_a_resource_larger_than_its_type_takes_is_413_naming_it_before_its_body_is_parsed(hosp, settings):
    settings.FHIR_MAX_RESOURCE_BYTES = 4096
    body = sample("Observation", f"Patient/{hosp.patient_id}")
    body["note"] = [{"text": "x" * 5000}]
    issue = outcome(hosp.client.post("/fhir/Observation", body, content_type=FHIR_JSON), 413)[0]
    assert issue["code"] == "too-costly" and issue["expression"] == ["Observation"]
    # Not parsed: a body that is not even JSON is refused for its size, not its syntax.
    garbage = b"{" + b"x" * 5000
    assert outcome(hosp.client.post("/fhir/Observation", garbage, content_type=FHIR_JSON), 413)[0]["code"] == (
        "too-costly"
    )
    put = hosp.client.put("/fhir/Observation?identifier=urn:hosp-a:observation|Obs-1", body, content_type=FHIR_JSON)
    assert outcome(put, 413)[0]["expression"] == ["Observation"]
    del body["note"]
    assert hosp.client.post("/fhir/Observation", body, content_type=FHIR_JSON).status_code == 201


def test_a_resource_type_may_be_given_a_limit_of_its_own(hosp, settings):
    settings.FHIR_MAX_RESOURCE_BYTES = 4096
    settings.FHIR_MAX_RESOURCE_BYTES_BY_TYPE = {**settings.FHIR_MAX_RESOURCE_BYTES_BY_TYPE, "Observation": 65536}
    body = sample("Observation", f"Patient/{hosp.patient_id}")
    body["note"] = [{"text": "x" * 5000}]
    assert hosp.client.post("/fhir/Observation", body, content_type=FHIR_JSON).status_code == 201


def test_an_entry_larger_than_its_type_takes_is_413_in_its_place_in_a_batch_and_refuses_a_transaction(hosp, settings):
    settings.FHIR_MAX_RESOURCE_BYTES = 4096
    resources = _observations(hosp, 3)
    resources[1]["note"] = [{"text": "x" * 5000}]
    answer = hosp.client.post("/fhir/", _bundle("batch", resources), content_type=FHIR_JSON)
    assert answer.status_code == 200, answer.content
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses == ["201 Created", "413", "201 Created"]
    issue = answer.json()["entry"][1]["response"]["outcome"]["issue"][0]
    assert issue["code"] == "too-costly" and issue["expression"] == ["Bundle.entry[1].resource"]
    for r in resources:
        r["identifier"][0]["value"] += "-t"
    refused = hosp.client.post("/fhir/", _bundle("transaction", resources), content_type=FHIR_JSON)
    assert outcome(refused, 413)[0]["expression"] == ["Bundle.entry[1].resource"]
    assert Resource.objects.filter(resource_type="Observation").count() == 2


def test_a_batch_past_its_time_budget_answers_every_entry_left_as_not_processed(hosp, settings):
    settings.FHIR_BUNDLE_TIME_BUDGET_SECONDS = -1  # spent before the first entry: no timing in a test
    answer = hosp.client.post("/fhir/", _bundle("batch", _observations(hosp, 3)), content_type=FHIR_JSON)
    assert answer.status_code == 200, answer.content
    entries = answer.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["503"] * 3
    for i, e in enumerate(entries):
        issue = e["response"]["outcome"]["issue"][0]
        assert issue["code"] == "timeout" and issue["expression"] == [f"Bundle.entry[{i}]"]
    assert not Resource.objects.filter(resource_type="Observation").exists()


def test_a_transaction_past_its_time_budget_is_503_and_writes_nothing(hosp, settings):
    settings.FHIR_BUNDLE_TIME_BUDGET_SECONDS = -1
    refused = hosp.client.post("/fhir/", _bundle("transaction", _observations(hosp, 3)), content_type=FHIR_JSON)
    assert outcome(refused, 503)[0]["code"] == "timeout"
    assert not Resource.objects.filter(resource_type="Observation").exists()
