"""Many identical writes at once, each on its own database connection (PostgreSQL: SQLite serialises every
writer): whichever route a write takes, the database lets one through and every other writer gets the answer
the FHIR specification gives it (R4 http.html: a conditional create that finds the winner's resource is 200, an
update on a stale If-Match is 412), never a 500."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from ehr.models import Resource
from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.fhirapi.samples import patient_body, sample

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 20


@pytest.fixture
def feed():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises all writers)")
    feed = register_feed(facility="HOSP-A")
    response = feed.client.post("/fhir/Patient", patient_body("A-1"), content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    feed.patient_id = response.json()["id"]
    return feed


def at_once(send) -> Counter:
    """``send(i)`` from WRITERS threads released together; the statuses answered, counted."""
    statuses, barrier = [], threading.Barrier(WRITERS)

    def run(i):
        try:
            barrier.wait()
            response = send(i)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                print(response.content[:2000])
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(statuses)


def test_identical_conditional_creates_at_once_make_one_resource_and_the_others_find_it(feed):
    body = sample("Observation", f"Patient/{feed.patient_id}")
    statuses = at_once(
        lambda i: feed.client.post(
            "/fhir/Observation",
            body,
            content_type=FHIR_JSON,
            HTTP_IF_NONE_EXIST="identifier=urn:hosp-a:observation|Obs-1",
        )
    )
    assert statuses == {201: 1, 200: WRITERS - 1}
    assert Resource.objects.filter(resource_type="Observation").count() == 1


def test_conditional_creates_on_other_criteria_at_once_make_one_resource(feed):
    def send(i):
        body = sample("Observation", f"Patient/{feed.patient_id}", n=i)
        body["identifier"].append({"system": "urn:other", "value": "x"})
        return feed.client.post(
            "/fhir/Observation", body, content_type=FHIR_JSON, HTTP_IF_NONE_EXIST="identifier=urn:other|x"
        )

    statuses = at_once(send)
    assert statuses == {201: 1, 200: WRITERS - 1}
    assert Resource.objects.filter(resource_type="Observation").count() == 1


def test_updates_on_the_same_if_match_at_once_one_wins_the_others_are_412(feed):
    body = sample("Observation", f"Patient/{feed.patient_id}")
    made = feed.client.post("/fhir/Observation", body, content_type=FHIR_JSON).json()

    def send(i):
        changed = {**body, "id": made["id"], "valueString": f"v{i}"}
        changed.pop("valueQuantity", None)
        return feed.client.put(
            f"/fhir/Observation/{made['id']}", changed, content_type=FHIR_JSON, HTTP_IF_MATCH='W/"1"'
        )

    statuses = at_once(send)
    assert statuses == {200: 1, 412: WRITERS - 1}
    assert Resource.objects.get(fhir_id=made["id"]).version_id == 2


def test_identical_conditional_updates_at_once_make_one_resource(feed):
    body = sample("Procedure", f"Patient/{feed.patient_id}")
    url = "/fhir/Procedure?identifier=urn:hosp-a:procedure|Pro-1"
    statuses = at_once(lambda i: feed.client.put(url, body, content_type=FHIR_JSON))
    assert statuses == {201: 1, 200: WRITERS - 1}
    assert Resource.objects.filter(resource_type="Procedure").count() == 1


def test_identical_transactions_with_conditional_entries_at_once_make_one_of_each(feed):
    def bundle(i):
        observation = sample("Observation", f"Patient/{feed.patient_id}")
        procedure = sample("Procedure", f"Patient/{feed.patient_id}")
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": observation,
                    "request": {
                        "method": "POST",
                        "url": "Observation",
                        "ifNoneExist": "identifier=urn:hosp-a:observation|Obs-1",
                    },
                },
                {
                    "resource": procedure,
                    "request": {"method": "PUT", "url": "Procedure?identifier=urn:hosp-a:procedure|Pro-1"},
                },
            ],
        }

    statuses = at_once(lambda i: feed.client.post("/fhir/", bundle(i), content_type=FHIR_JSON))
    assert statuses == {200: WRITERS}
    assert Resource.objects.filter(resource_type="Observation").count() == 1
    assert Resource.objects.filter(resource_type="Procedure").count() == 1


def test_the_same_new_patient_registered_at_once_is_one_patient(feed):
    statuses = at_once(lambda i: feed.client.post("/fhir/Patient", patient_body("A-2"), content_type=FHIR_JSON))
    assert set(statuses) <= {200, 201} and statuses[201] <= 1
    assert Resource.objects.filter(resource_type="Patient").count() == 2


def test_transactions_changing_the_same_resources_in_opposite_orders_at_once_all_succeed(feed):
    # Each locks its first resource, then waits for its second, which another holds: PostgreSQL breaks the
    # deadlock by failing one of them, a lost race like any other, which is run again and then succeeds.
    made = [
        feed.client.post(
            "/fhir/Observation", sample("Observation", f"Patient/{feed.patient_id}", n=n), content_type=FHIR_JSON
        ).json()
        for n in (1, 2)
    ]

    def bundle(i):
        entries = []
        for resource in made if i % 2 else made[::-1]:
            changed = {**resource, "valueString": f"v{i}"}
            for key in ("meta", "valueQuantity"):
                changed.pop(key, None)
            entries.append({"resource": changed, "request": {"method": "PUT", "url": f"Observation/{resource['id']}"}})
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    statuses = at_once(lambda i: feed.client.post("/fhir/", bundle(i), content_type=FHIR_JSON))
    assert statuses == {200: WRITERS}
