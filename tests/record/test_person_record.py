"""The read corridor's query count is a performance contract: the first page of a person's record costs the
same fixed number of queries whether the person is known to one hospital or to three (merged in the MPI),
each with its source Patient, a fact and a document."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from healthplatform.access import Caller
from healthplatform.record import person_record
from mpi.models import Identity
from mpi.services import person_merge
from tests.fhirapi.client import register_feed
from tests.fhirapi.samples import patient_body, sample
from tests.fhirapi.tenants import document_body, post

# The identity the Patient id names; the person, its identities, their identifiers and the persons merged into
# it; the source Patients; the documents; the page of facts.
RECORD_QUERIES = 8


def known_at(facility: str, birth_date: str):
    """A hospital's feed that registered the patient and sent one Observation and one document about them."""
    feed = register_feed(facility=facility, name=f"HIS-{facility}")
    hospital = facility.lower()
    body = patient_body(f"{facility}-1", system=f"urn:platform:authority:{facility}", birthDate=birth_date)
    response = post(feed.client, "Patient", body)
    assert response.status_code == 201, response.content
    feed.patient_id = response.json()["id"]
    observation = sample("Observation", f"Patient/{feed.patient_id}", hospital=hospital)
    assert post(feed.client, "Observation", observation).status_code == 201
    document = document_body(f"Patient/{feed.patient_id}", hospital=hospital)
    assert post(feed.client, "DocumentReference", document).status_code == 201
    return feed


def record_queries(feed) -> tuple[int, object]:
    caller = Caller(feed.source, "test")
    with CaptureQueriesContext(connection) as ctx:
        page = person_record(caller=caller, patient_id=feed.patient_id, count=50)
    return len(ctx.captured_queries), page


@pytest.mark.django_db
def test_a_record_of_one_identity_costs_a_fixed_number_of_queries(documents_folder):
    feed = known_at("HOSP-A", "1985-03-12")

    queries, page = record_queries(feed)

    assert (len(page.identities), len(page.source_patients), len(page.documents), len(page.facts)) == (1, 1, 1, 1)
    assert queries == RECORD_QUERIES


@pytest.mark.django_db
def test_a_record_of_three_identities_at_three_hospitals_costs_the_same_queries(documents_folder):
    # Birth dates apart, so that the MPI keeps them apart until the merge says they are one resident.
    feeds = [known_at(f"HOSP-{x}", f"1985-03-1{n}") for n, x in enumerate("ABC", start=2)]
    persons = [Identity.objects.select_related("person").get(uuid=f.patient_id).person for f in feeds]
    assert len({p.pk for p in persons}) == 3
    for duplicate in persons[1:]:
        person_merge(survivor=persons[0], duplicate=duplicate, actor="test", reason="one resident")

    queries, page = record_queries(feeds[1])  # from a merged person's source Patient

    assert page.person_id == persons[0].pk
    assert (len(page.identities), len(page.source_patients), len(page.documents), len(page.facts)) == (3, 3, 3, 3)
    assert queries == RECORD_QUERIES


@pytest.mark.django_db
def test_a_records_facts_carry_their_code_and_decode_their_body_only_when_read(documents_folder):
    feed = known_at("HOSP-A", "1985-03-12")
    _queries, page = record_queries(feed)
    (fact,) = page.facts

    assert fact._body is None, "the body is not decoded by the read"
    code = fact.code
    assert fact._body is None and code["coding"], "the code is read apart"
    assert fact.body["code"] == code and fact.body["resourceType"] == "Observation"
    assert fact.id == fact.pk
