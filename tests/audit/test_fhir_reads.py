"""Every FHIR read that sends a resident's data out is one access event per resident whose data went out, and
only theirs: every type and interaction the API serves (tests/fhirapi/test_endpoints.ENDPOINTS) read from two
institutions, the operations ($everything, $match, PIXm), documents (ITI-67, ITI-68), _include/_revinclude and
Bundle GET entries; nothing for an empty search, a count, a refusal, a 404, a write or HEAD."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import unquote

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from healthplatform.audit.models import AccessEvent
from healthplatform.fhirapi.access_log import MAX_PERSONS, persons_named
from tests.audit.conftest import fhir_get, resident_add
from tests.fhirapi.client import FHIR_JSON, issues, searchset
from tests.fhirapi.samples import sample
from tests.fhirapi.tenants import post
from tests.fhirapi.test_endpoints import ENDPOINTS, UNKNOWN_ID, Endpoint, other_type_scope
from tests.ingest.test_scopes import bearer_client

pytestmark = pytest.mark.django_db

# The types whose instances are nobody's record: the directory, and the audit itself.
NOBODYS = frozenset({"Organization", "Practitioner", "Location", "AuditEvent"})
# interaction -> (the event's action, how its ``what`` says it)
INTERACTIONS = {
    "read": ("read", "read"),
    "vread": ("vread", "vread"),
    "history": ("history-instance", "history"),
    "search": ("search-type", "search"),
}


def _url(endpoint: Endpoint, interaction: str, world, instance: str) -> str:
    path = f"{endpoint.resource_type}/{instance}"
    if interaction == "read":
        return path
    endpoint.served(interaction)  # skips, naming the reason, what the type does not serve
    if interaction == "vread":
        version = fhir_get(endpoint.reader(world), path).json()["meta"]["versionId"]
        return f"{path}/_history/{version}"
    if interaction == "history":
        return f"{path}/_history"
    return endpoint.search(world, instance)


def _readers(endpoint: Endpoint, region):
    """Who reads: hospital A's and hospital B's feeds (two institutions); the audit, staff only."""
    if endpoint.resource_type == "AuditEvent":
        return [(endpoint.reader(region.world), None)]
    if endpoint.resource_type == "DetectedIssue":
        # An alert is the ordering institution's (hospital A's here); B's refusal: tests/alerts/test_detectedissue.py.
        return [(region.a.client, region.a)]
    return [(region.a.client, region.a), (region.b.client, region.b)]


@pytest.mark.parametrize(
    ("endpoint", "interaction"),
    [pytest.param(e, i, id=f"{e.name}-{i}") for e in ENDPOINTS for i in INTERACTIONS],
)
def test_a_read_records_one_event_for_the_resident_whose_data_went_out_and_no_other(
    region, events, endpoint, interaction
):
    instance = endpoint.instance(region.world)
    url = _url(endpoint, interaction, region.world, instance)
    expected = [] if endpoint.resource_type in NOBODYS else [region.wang.pk]
    action, label = INTERACTIONS[interaction]
    events.new()  # what making the instance read
    for client, tenant in _readers(endpoint, region):
        assert fhir_get(client, url).status_code == 200, url
        recorded = events.new()
        assert [e.person_id for e in recorded] == expected, url  # 赵敏 (hospital B's other resident) never
        for event in recorded:
            assert event.door == AccessEvent.Door.FHIR
            assert (event.actor, event.source_id) == (tenant.source.client_id, tenant.source.pk)
            assert event.institution_id == tenant.source.institution_id
            assert (event.action, event.what) == (action, f"{endpoint.resource_type} {label}")
            assert unquote(event.query) == f"GET /fhir/{url}"  # as sent (the test client escapes "|")
            assert event.client_address == "127.0.0.1"
            assert not event.break_glass and not event.reason


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=e.name) for e in ENDPOINTS])
def test_a_read_that_is_refused_or_finds_nothing_records_nothing(region, events, endpoint):
    instance = endpoint.instance(region.world)
    events.new()
    reader = endpoint.reader(region.world)
    urls = [f"{endpoint.resource_type}/{UNKNOWN_ID}", f"{endpoint.resource_type}/{UNKNOWN_ID}/_history"]
    for url in urls:
        assert fhir_get(reader, url).status_code == 404, url
    refused = [f"{endpoint.resource_type}/{instance}"]
    if callable(endpoint.search):
        refused.append(endpoint.search(region.world, instance))
    wrong_scope = bearer_client(region.a.feed, other_type_scope(endpoint))
    for url in refused:
        assert fhir_get(Client(), url).status_code == 401, url
        assert fhir_get(wrong_scope, url).status_code == 403, url
    assert events.new() == []


def test_an_empty_search_and_a_count_record_nothing(region, events):
    a = region.a
    for url in (
        f"Observation?patient={a.patient_id}&code=0000-0",
        f"Observation?patient={a.patient_id}&_summary=count",
        f"Observation?patient={a.patient_id}&_count=0",
        "Patient?identifier=urn:platform:authority:HOSP-A|nobody",
        f"Patient?identifier={a.identifiers['Patient'][0]}|{a.identifiers['Patient'][1]}&_summary=count",
        f"DocumentReference?patient={a.patient_id}&status=entered-in-error",
        f"Patient/{uuid.uuid4()}/$everything",
    ):
        assert fhir_get(a.client, url).status_code in (200, 404), url
    assert events.new() == []


def test_writes_and_head_requests_record_nothing(region, events):
    body = sample("Observation", f"Patient/{region.a.patient_id}", 77, hospital=region.a.hospital)
    assert post(region.a.client, "Observation", body).status_code == 201  # the answer carries the resource
    assert region.a.client.head(f"/fhir/Observation/{region.a.ids['Observation']}").status_code == 200
    assert events.new() == []


def test_a_search_over_two_residents_records_each_of_them_once(region, events):
    body = searchset(fhir_get(region.a.client, "Observation?code=718-7"))
    assert len(body["entry"]) == 3  # 王小明's from hospitals A and B, 赵敏's
    recorded = events.new()
    assert sorted(e.person_id for e in recorded) == sorted([region.wang.pk, region.zhao.person.pk])
    assert {e.what for e in recorded} == {"Observation search"}


def test_everything_records_its_resident_by_source_or_golden_id(region, events):
    for patient_id in (region.a.patient_id, region.wang.uuid):
        page = searchset(fhir_get(region.b.client, f"Patient/{patient_id}/$everything?_count=5"))
        [event] = events.new()
        assert (event.person_id, event.what, event.action) == (region.wang.pk, "Patient/$everything", "operation")
        assert event.institution_id == region.b.source.institution_id
        # The next page carries facts only: still 王小明's record, still recorded.
        next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
        assert region.b.client.get(next_url, HTTP_ACCEPT=FHIR_JSON).status_code == 200
        assert [e.person_id for e in events.new()] == [region.wang.pk]


def test_match_and_pix_record_the_residents_they_answer(region, events):
    match = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"text": "王小明"}],
                    "gender": "male",
                    "birthDate": "1985-03-12",
                },
            }
        ],
    }
    answer = searchset(region.a.client.post("/fhir/Patient/$match", match, content_type=FHIR_JSON))
    answered = sorted(entry["resource"]["id"] for entry in answer["entry"])
    recorded = events.new()
    assert str(region.wang.uuid) in answered
    assert sorted(str(e.person.uuid) for e in recorded) == answered
    assert {(e.what, e.action, e.query) for e in recorded} == {
        ("Patient/$match", "operation", "POST /fhir/Patient/$match")
    }

    system, value = region.a.identifiers["Patient"]
    response = fhir_get(region.b.client, f"Patient/$ihe-pix?sourceIdentifier={system}|{value}")
    assert response.status_code == 200
    [event] = events.new()
    assert (event.person_id, event.what) == (region.wang.pk, "Patient/$ihe-pix")


def test_document_content_retrieved_as_bytes_records_its_resident(region, events):
    response = region.b.client.get(f"/fhir/Binary/{region.a.document_id}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    [event] = events.new()
    assert (event.person_id, event.what, event.source_id) == (region.wang.pk, "Binary read", region.b.source.pk)


def test_included_resources_of_another_resident_are_recorded_too(region, events):
    # 赵敏's Observation made in the Encounter hospital B recorded for 王小明 (a feed's mistake, but data is data).
    wang_encounter = region.b.ids["Encounter"]
    body = sample("Observation", f"Patient/{region.zhao.patient_id}", 90, hospital=region.b.hospital)
    body["encounter"] = {"reference": f"Encounter/{wang_encounter}"}
    response = post(region.b.client, "Observation", body)
    assert response.status_code == 201, response.content
    both = sorted([region.wang.pk, region.zhao.person.pk])

    included = searchset(
        fhir_get(region.a.client, f"Observation?patient={region.zhao.patient_id}&_include=Observation:encounter")
    )
    assert {e["search"]["mode"] for e in included["entry"]} == {"match", "include"}
    assert sorted(e.person_id for e in events.new()) == both

    revincluded = searchset(
        fhir_get(region.a.client, f"Encounter?_id={wang_encounter}&_revinclude=Observation:encounter")
    )
    assert {e["search"]["mode"] for e in revincluded["entry"]} == {"match", "include"}
    assert sorted(e.person_id for e in events.new()) == both


def test_bundle_get_entries_are_recorded_each_as_the_read_it_names_and_the_bundle_not_again(region, events):
    org = region.a.source.institution.code
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Observation?patient={region.a.patient_id}"}},
            {"request": {"method": "GET", "url": f"Observation/{region.zhao.observation_id}"}},
            {"request": {"method": "GET", "url": f"Organization/{org}"}},
            {"request": {"method": "GET", "url": f"Observation/{UNKNOWN_ID}"}},
        ],
    }
    answer = region.a.client.post("/fhir/", batch, content_type=FHIR_JSON)
    assert answer.status_code == 200, answer.content
    recorded = events.new()
    assert [(e.person_id, e.what, e.action) for e in recorded] == [
        (region.wang.pk, "Observation search", "search-type"),
        (region.zhao.person.pk, "Observation read", "read"),
    ]
    assert recorded[1].query == f"GET /fhir/Observation/{region.zhao.observation_id}"

    body = sample("Observation", f"Patient/{region.a.patient_id}", 91, hospital=region.a.hospital)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": body, "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": f"Patient/{region.zhao.patient_id}"}},
        ],
    }
    assert region.a.client.post("/fhir/", transaction, content_type=FHIR_JSON).status_code == 200
    assert [(e.person_id, e.what) for e in events.new()] == [(region.zhao.person.pk, "Patient read")]


def test_a_staff_read_is_recorded_as_the_staff_member_of_no_institution(region, events, staff):
    assert fhir_get(staff, f"Observation/{region.a.ids['Observation']}").status_code == 200
    [event] = events.new()
    assert (event.actor, event.institution_id, event.source_id) == ("auditor", None, None)


# --- what a read costs --------------------------------------------------------------------------------------


def _measured(client, url: str) -> tuple[int, int]:
    """The queries one GET costs, and how many of them write the audit."""
    with CaptureQueriesContext(connection) as ctx:
        response = fhir_get(client, url)
    assert response.status_code == 200, response.content
    inserts = [q for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert all("audit_accessevent" in q["sql"] for q in inserts)
    return len(ctx.captured_queries), len(inserts)


def test_the_audit_adds_the_same_queries_for_2_residents_read_as_for_10(region, events):
    url = "Observation?code=718-7&_count=100"
    empty = "Observation?code=0000-0&_count=100"
    _measured(region.a.client, url)  # the credential check is cached from here on, as in steady use
    nothing, no_insert = _measured(region.a.client, empty)
    two, one_insert = _measured(region.a.client, url)
    for n in range(8):
        resident_add(region.a, 10 + n, name=f"欧阳{'一二三四五六七八'[n]}峰", birth_date=f"19{50 + n}-0{n + 1}-1{n}")
    ten, also_one_insert = _measured(region.a.client, url)
    assert len({e.person_id for e in events.new()[-10:]}) == 10
    assert (no_insert, one_insert, also_one_insert) == (0, 1, 1)
    assert two == ten
    # Added to a read with nobody's data: the persons (one query) and the insert (one), and inside a
    # transaction (the test's, a transaction Bundle's) the savepoint around the insert and its release.
    assert two - nothing <= 4


# --- an audit that cannot be written ------------------------------------------------------------------------


def test_a_read_the_audit_cannot_record_is_not_answered(region, audit_unwritable, caplog):
    url = f"Observation/{region.a.ids['Observation']}"
    with caplog.at_level(logging.INFO):
        response = fhir_get(region.a.client, url)
    [issue] = issues(response, 500)
    assert "not answered" in issue["diagnostics"]
    assert region.a.ids["Observation"] not in response.content.decode() and "718-7" not in response.content.decode()
    assert any("the audit could not record a read" in r.getMessage() for r in caplog.records)
    # A Bundle's GET entry likewise: the entry fails; in a transaction, the transaction fails.
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": url}}]}
    answer = region.a.client.post("/fhir/", batch, content_type=FHIR_JSON).json()
    assert answer["entry"][0]["response"]["status"].startswith("500") and "resource" not in answer["entry"][0]


def test_a_write_does_not_need_the_audit(region, audit_unwritable):
    body = sample("Observation", f"Patient/{region.a.patient_id}", 78, hospital=region.a.hospital)
    assert post(region.a.client, "Observation", body).status_code == 201


# --- the access log -----------------------------------------------------------------------------------------


def test_the_access_log_names_the_residents_read_by_golden_id_and_nothing_else_of_them(region, caplog):
    with caplog.at_level(logging.INFO, logger="healthplatform.access"):
        fhir_get(region.a.client, "Observation?code=718-7")
        fhir_get(region.a.client, "Organization?name=nothing-here")
    first, second = [r for r in caplog.records if r.name == "healthplatform.access"]
    golden = sorted([str(region.wang.uuid), str(region.zhao.person.uuid)])
    assert first.getMessage().endswith(f"resources=3 persons=2 read={','.join(golden)}")
    assert sorted(first.persons_read) == golden and first.persons == 2
    assert second.getMessage().endswith("persons=0 read=-")
    mrn = region.a.identifiers["Patient"][1]
    for text in (first.getMessage(), second.getMessage()):
        assert "王小明" not in text and "赵敏" not in text and mrn not in text and region.a.patient_id not in text


def test_the_access_log_names_the_first_residents_and_counts_the_rest():
    persons = [uuid.UUID(int=n) for n in range(MAX_PERSONS + 5)]
    named = persons_named(persons)
    assert named.split(",")[:MAX_PERSONS] == [str(p) for p in persons[:MAX_PERSONS]]
    assert named.endswith(",+5") and named.count(",") == MAX_PERSONS
    assert persons_named(persons[:3]) == ",".join(str(p) for p in persons[:3])
    assert persons_named([]) == "-"
