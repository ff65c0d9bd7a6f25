"""Query counts of the viewer's pages are performance contracts: fixed and small, whatever the number of facts
and institutions (the speed bar's resident has 2,000 facts from 5 institutions)."""

from __future__ import annotations

import pytest

from tests.viewer.scenario import BIRTH, WANG_CARD, WANG_ID, ZHANG_BIRTH, Hospital, glucose

# Session, user, practitioner (3); the person with identities, identifiers and merged persons for the access check (4);
# what the clinician's institution's feeds are (1); the record read of that person (4: their identities again, unlinked
# ones not read as theirs; the source Patients, the documents, the facts); the source institutions and the local code
# systems (2, each read at most once a minute per process); the audit row and who has viewed (2); the alerts (5: the
# person's recent facts, stored alerts, overrides, submissions; and, at most every 30-60 s per process, the rules' and
# the drug terminology's snapshots, 12 more). Measured: 28 on a cold process, 19 warm. Each includes the audit's write
# of the read: its INSERT and, inside the test's transaction, the savepoint pair the audit writes in
# (healthplatform.audit.services.reads_record).
PATIENT_PAGE_QUERIES = 30
FACT_PAGE_QUERIES = 15  # the local code systems are read on it (each test starts with a cold process memory)
DOCUMENT_PAGE_QUERIES = 13
SEARCH_QUERIES = 13


def test_the_patient_page_costs_the_same_queries_for_a_larger_record(doctor, region, django_assert_max_num_queries):
    with django_assert_max_num_queries(PATIENT_PAGE_QUERIES) as small:
        assert doctor.get(f"/viewer/patient/{region.wang}/").status_code == 200
    for n, facility in enumerate(("HOSP-D", "HOSP-E", "HOSP-F")):
        hospital = Hospital(facility, facility.lower())
        patient = hospital.register(f"{facility}-1", "王小明", BIRTH, "male", WANG_ID)
        for i in range(15):
            hospital.post(
                glucose(100 * n + i, 5.0 + i / 10, f"2024-0{1 + i % 9}-1{i % 9}", hospital=facility, patient_id=patient)
            )

    with django_assert_max_num_queries(PATIENT_PAGE_QUERIES) as large:
        page = doctor.get(f"/viewer/patient/{region.wang}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "59 of 59 facts shown" in page.content.decode()
    assert len(large.captured_queries) <= len(small.captured_queries)


def test_the_fact_page_costs_a_fixed_number_of_queries(doctor, region, django_assert_max_num_queries):
    with django_assert_max_num_queries(FACT_PAGE_QUERIES):
        assert (
            doctor.get(f"/viewer/patient/{region.wang}/fact/Observation/{region.facts.glucose[0]}/").status_code == 200
        )


@pytest.mark.parametrize("kind", ["pdf", "cda", "text"])
def test_a_document_page_and_its_content_cost_a_fixed_number_of_queries(
    doctor, region, django_assert_max_num_queries, kind
):
    document = getattr(region.documents, kind)
    with django_assert_max_num_queries(DOCUMENT_PAGE_QUERIES):
        assert doctor.get(f"/viewer/patient/{region.wang}/document/{document}/").status_code == 200
    with django_assert_max_num_queries(DOCUMENT_PAGE_QUERIES):
        assert doctor.get(f"/viewer/patient/{region.wang}/document/{document}/content").status_code == 200


@pytest.mark.parametrize("by", ["health_card", "name"])
def test_the_search_costs_a_fixed_number_of_queries(doctor, region, django_assert_max_num_queries, by):
    data = (
        {"by": by, "number": WANG_CARD}
        if by == "health_card"
        else {"by": by, "name": "张伟", "birth_date": ZHANG_BIRTH}
    )
    with django_assert_max_num_queries(SEARCH_QUERIES):
        assert doctor.post("/viewer/search/", data).status_code == 200
