"""A batch answers every entry in its place, whatever goes wrong with one (issue 18, attack).

Found: a GET entry whose URL carries more search parameters than Django reads (DATA_UPLOAD_MAX_NUMBER_FIELDS)
raised ``TooManyFieldsSent`` out of the batch — the whole request a 500, while the entries before it stayed
written: a Bundle half-applied, and the client told nothing had happened."""

from __future__ import annotations

import pytest
from django.conf import settings

from ehr.models import Resource
from healthplatform.access import Caller
from healthplatform.ingest.apply import batch_apply
from healthplatform.ingest.entries import Entry, Received
from tests.fhirapi.client import FHIR_JSON, register_feed

SYSTEM = "urn:platform:authority:HOSP-A"


def _patient(mrn: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"text": "王小明"}],
        "gender": "male",
        "birthDate": "1985-03-12",
    }


def _post(mrn: str) -> dict:
    return {"resource": _patient(mrn), "request": {"method": "POST", "url": "Patient"}}


@pytest.fixture
def feed(db):
    return register_feed()


def test_a_get_entry_with_more_parameters_than_django_reads_is_a_400_in_its_place(feed):
    many = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [_post("B-1"), {"request": {"method": "GET", "url": f"Patient?{many}"}}, _post("B-2")],
    }
    response = feed.client.post("/fhir/", bundle, content_type=FHIR_JSON)
    assert response.status_code == 200, response.content
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("400") and statuses[2].startswith("201")
    assert response.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def test_an_entry_failing_unexpectedly_is_a_500_in_its_place_and_the_entries_around_it_are_written(feed):
    def reader(entry):  # a door's reader that fails as no input should make it
        raise RuntimeError("unexpected")

    entries = [
        Entry("POST", "Patient", resource=_patient("C-1")),
        Entry("GET", "Patient"),
        Entry("POST", "Patient", resource=_patient("C-2")),
    ]
    results = batch_apply(
        caller=Caller(feed.source, "test"), entries=entries, received=Received("POST /fhir/", "{}"), read=reader
    )

    assert [r.written is not None for r in results] == [True, False, True]
    assert results[1].error.status == 500 and results[1].error.issues[0].code == "exception"
    assert Resource.objects.filter(resource_type="Patient").count() == 2
