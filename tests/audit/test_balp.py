"""Access events as FHIR R4 AuditEvents (IHE BALP PatientRead / PatientQuery), validated with fhir.resources, and
``GET /fhir/AuditEvent?patient=…`` for the platform's staff only."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from healthplatform.access import Caller
from healthplatform.audit import balp
from healthplatform.audit.selectors import access_event_get, person_accesses
from healthplatform.audit.services import reads_record
from mpi.models import Person
from mpi.services import person_merge
from tests.audit.conftest import fhir_get
from tests.fhirapi.client import issues, searchset
from tests.ingest.test_scopes import bearer_client
from tests.registry.factories import PractitionerFactory

pytestmark = pytest.mark.django_db
BASE = "http://testserver/fhir/"


def _as_audit_event(event) -> dict:
    body = balp.audit_event(access_event_get(event.pk), base_url=BASE)
    AuditEvent.model_validate(body)
    return body


def _codes(codings) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in codings}


def _agent(body: dict, system: str, code: str) -> dict:
    [agent] = [a for a in body["agent"] if (system, code) in _codes(a["type"]["coding"])]
    return agent


def test_a_fhir_read_is_a_balp_patient_read(region, events):
    observation = region.a.ids["Observation"]
    fhir_get(region.b.client, f"Observation/{observation}")
    [event] = events.new()
    body = _as_audit_event(event)
    assert body["meta"]["profile"] == [balp.PATIENT_READ]
    assert (body["type"]["code"], body["action"], body["outcome"]) == ("rest", "R", "0")
    assert _codes(body["subtype"]) == {(balp.RESTFUL_INTERACTION, "read")}
    patient, data = body["entity"]
    assert patient["what"] == {"reference": f"Patient/{region.wang.uuid}"}
    assert (patient["type"]["code"], patient["role"]["code"]) == ("1", "1")  # Person, Patient
    assert data["what"] == {"reference": f"Observation/{observation}"} and data["role"]["code"] == "4"
    client = _agent(body, balp.DCM, "110153")
    assert client["who"]["identifier"] == {"system": balp.SOURCE_SYSTEM_ID, "value": region.b.source.client_id}
    assert client["requestor"] is True and client["network"] == {"address": "127.0.0.1", "type": "2"}
    server = _agent(body, balp.DCM, "110152")
    assert server["network"] == {"address": BASE, "type": "5"} and server["requestor"] is False
    organization = _agent(body, balp.ROLE_CLASS, "PROV")
    assert organization["who"]["reference"] == f"Organization/{region.b.source.institution.code}"
    assert body["recorded"].startswith(str(event.at.date()))
    assert "王小明" not in str(body)


def test_a_fhir_search_or_operation_is_a_balp_patient_query_with_the_request(region, events):
    fhir_get(region.a.client, f"Observation?patient={region.a.patient_id}&code=718-7")
    fhir_get(region.a.client, f"Patient/{region.a.patient_id}/$everything")
    search, everything = events.new()
    for event, subtype in ((search, "search-type"), (everything, "operation")):
        body = _as_audit_event(event)
        assert body["meta"]["profile"] == [balp.PATIENT_QUERY]
        assert (body["action"], _codes(body["subtype"])) == ("E", {(balp.RESTFUL_INTERACTION, subtype)})
        query = body["entity"][1]
        assert query["role"]["code"] == "24" and "what" not in query
        assert base64.b64decode(query["query"]).decode() == event.query == query["description"]
    assert search.query.startswith(f"GET /fhir/Observation?patient={region.a.patient_id}")


def test_a_break_glass_read_in_the_viewer_carries_its_stated_purpose(region):
    practitioner = PractitionerFactory(institution=region.a.source.institution)
    clinician = Caller(None, "dr-li", practitioner=practitioner)
    reads_record(
        caller=clinician,
        person_ids=[region.zhao.person.pk],
        door="viewer",
        what="viewer patient page",
        reason="emergency",
        reason_text="unconscious on arrival",
        break_glass=True,
        client_address="10.0.0.8",
    )
    event = person_accesses(region.zhao.person.pk)[0]
    body = _as_audit_event(event)
    assert "meta" not in body  # not a RESTful read: no BALP profile claimed
    assert (body["type"]["system"], body["type"]["code"], body["action"]) == (balp.DCM, "110110", "R")
    [purpose] = body["purposeOfEvent"]
    assert _codes(purpose["coding"]) == {(balp.ACT_REASON, "ETREAT"), (balp.ACT_REASON, "BTG")}
    assert purpose["text"] == "unconscious on arrival"
    user = _agent(body, balp.PARTICIPATION, "IRCP")
    assert user["requestor"] is True and user["who"]["identifier"]["value"] == "dr-li"
    assert user["purposeOfUse"] == [purpose]
    browser = _agent(body, balp.DCM, "110153")
    assert browser["requestor"] is False and browser["network"]["address"] == "10.0.0.8"
    organization = _agent(body, balp.ROLE_CLASS, "PROV")
    assert organization["who"]["reference"] == f"Organization/{region.a.source.institution.code}"
    assert body["entity"][1]["what"] == {"display": "viewer patient page"}


# --- GET /fhir/AuditEvent -----------------------------------------------------------------------------------


def test_staff_search_the_reads_of_a_resident_by_golden_or_source_id_newest_first(region, events, staff):
    fhir_get(region.a.client, f"Observation/{region.a.ids['Observation']}")
    fhir_get(region.b.client, f"Condition/{region.b.ids['Condition']}")
    fhir_get(region.b.client, f"Observation/{region.zhao.observation_id}")  # 赵敏's: not in 王小明's audit
    first, second, _ = events.new()
    for patient in (str(region.wang.uuid), region.b.patient_id, f"Patient/{region.a.patient_id}"):
        body = searchset(fhir_get(staff, f"AuditEvent?patient={patient}"))
        assert [e["resource"]["id"] for e in body["entry"]] == [str(second.pk), str(first.pk)]
        for entry in body["entry"]:
            AuditEvent.model_validate(entry["resource"])
            assert entry["fullUrl"] == f"{BASE}AuditEvent/{entry['resource']['id']}"
    assert events.new() == []  # reading the audit is not a read of the record


def test_the_audit_search_pages_by_key(region, events, staff):
    for _ in range(3):
        fhir_get(region.a.client, f"Observation/{region.a.ids['Observation']}")
    recorded = [e.pk for e in events.new()]
    seen, url = [], f"/fhir/AuditEvent?patient={region.wang.uuid}&_count=2"
    while url:
        body = searchset(staff.get(url, HTTP_ACCEPT="application/fhir+json"))
        seen += [int(e["resource"]["id"]) for e in body.get("entry", [])]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    assert seen == sorted(recorded, reverse=True)


def test_a_source_system_may_not_read_the_audit_whatever_its_scopes(region, events, staff):
    fhir_get(region.a.client, f"Observation/{region.a.ids['Observation']}")
    [event] = events.new()
    for client in (region.a.client, bearer_client(region.a.feed, "system/*.read")):
        for url in (f"AuditEvent?patient={region.wang.uuid}", f"AuditEvent/{event.pk}"):
            [issue] = issues(fhir_get(client, url), 403)
            assert issue["code"] == "forbidden" and "staff only" in issue["diagnostics"]


def test_the_audit_search_needs_a_patient_and_an_unknown_one_has_no_reads(region, staff):
    assert issues(fhir_get(staff, "AuditEvent"), 400)[0]["code"] == "required"
    assert issues(fhir_get(staff, "AuditEvent?patient=x&_cursor=abc"), 400)
    assert "entry" not in searchset(fhir_get(staff, "AuditEvent?patient=no-such-patient"))
    assert issues(fhir_get(staff, "AuditEvent/123456789"), 404)[0]["code"] == "not-found"


def test_the_capability_statement_serves_audit_events_with_the_balp_profiles(client, db):
    statement = client.get("/fhir/metadata").json()
    [served] = [r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert {i["code"] for i in served["interaction"]} == {"read", "search-type"}
    assert served["searchParam"] == [{"name": "patient", "type": "reference"}]
    assert set(served["supportedProfile"]) == {balp.PATIENT_READ, balp.PATIENT_QUERY}


def test_after_a_merge_the_survivor_has_the_reads_of_the_merged_record(region, events, staff):
    fhir_get(region.a.client, f"Observation/{region.zhao.observation_id}")
    fhir_get(region.a.client, f"Observation/{region.a.ids['Observation']}")
    zhao_read, wang_read = events.new()
    person_merge(survivor=region.wang, duplicate=Person.objects.get(pk=region.zhao.person.pk), actor="t", reason="test")
    assert [e.pk for e in person_accesses(region.wang.pk)] == [wang_read.pk, zhao_read.pk]
    body = searchset(fhir_get(staff, f"AuditEvent?patient={region.wang.uuid}"))
    assert [e["resource"]["id"] for e in body["entry"]] == [str(wang_read.pk), str(zhao_read.pk)]
    # The event still names the resident whose record was read then.
    assert body["entry"][1]["resource"]["entity"][0]["what"]["reference"] == f"Patient/{region.zhao.person.uuid}"
