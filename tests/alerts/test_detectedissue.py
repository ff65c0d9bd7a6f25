"""The alerts raised on the orders a feed sends, read through the FHIR API as R4 DetectedIssue: by patient (source
or golden Patient id, across a merge), by code, paged; readable by the ordering institution and staff only;
overrides as mitigations, withdrawn alerts cancelled."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.test import Client
from fhir.resources.R4B.detectedissue import DetectedIssue

from healthplatform.alerts.cdshooks.cards import OVERRIDE_REASON_SYSTEM, card_uuid
from healthplatform.alerts.models import Alert
from healthplatform.fhirapi.views.detectedissue import ALERT_FACT_TYPES
from mpi import selectors as mpi
from mpi.models import Person
from mpi.services import person_merge
from registry.codes import ALLERGEN_CLASS_SYSTEM
from tests.alerts.scenario import Resident, allergy, atc, lab, lab_order, prescription, region
from tests.fhirapi.client import FHIR_JSON, issues, searchset
from tests.ingest.test_scopes import bearer_client

pytestmark = pytest.mark.django_db
POTASSIUM = "2823-3"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def get(client: Client, url: str):
    return client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON)


def found(client: Client, url: str) -> list[dict]:
    """The DetectedIssues of a search, each a valid R4 DetectedIssue."""
    body = searchset(get(client, url))
    resources = [e["resource"] for e in body.get("entry", [])]
    for resource in resources:
        DetectedIssue.model_validate(resource)
    return resources


def source_patient_id(clinic, resident) -> str:
    return str(mpi.identity_by_local_id(clinic.facility, f"{clinic.facility}-{resident.key}").uuid)


@pytest.fixture
def clinics():
    return region()


@pytest.fixture
def raised(clinics, django_capture_on_commit_callbacks):
    """Hospital B orders a potassium test hospital A did two days ago, and amoxicillin against A's recorded
    penicillin allergy: two alerts raised for B."""
    a, b, _ = clinics
    resident = Resident("di1")
    (obs_id,) = a.send(resident, lab(POTASSIUM, 4.2, "mmol/L", days_ago=2, low=3.5, high=5.3, display="钾"))
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    rx = prescription(atc("J01CA04"), days_ago=0, name="阿莫西林")
    rx["identifier"] = [{"system": "urn:hosp-b:rx", "value": "RX-1"}]
    with django_capture_on_commit_callbacks(execute=True):
        order_id, rx_id = b.send(resident, lab_order(POTASSIUM), rx)
    assert Alert.objects.count() == 2
    return {"resident": resident, "observation": obs_id, "order": order_id, "rx": rx_id, "rx_body": rx}


def test_the_ordering_institution_finds_its_alerts_by_the_patient_as_valid_r4_detected_issues(clinics, raised):
    a, b, _ = clinics
    resident = raised["resident"]
    golden = str(Person.objects.get(pk=resident.person_id(b)).uuid)
    for patient in (source_patient_id(b, resident), golden, f"Patient/{source_patient_id(a, resident)}"):
        issues_found = found(b.feed.client, f"DetectedIssue?patient={patient}")
        assert len(issues_found) == 2, patient
    test_issue, allergy_issue = found(b.feed.client, f"DetectedIssue?patient={golden}")  # newest first
    alert = Alert.objects.get(kind="duplicate-test")
    assert test_issue["id"] == str(alert.uuid)
    assert test_issue["identifier"] == [{"system": "urn:platform:alert", "value": alert.key}]
    assert (test_issue["status"], test_issue["severity"]) == ("final", "moderate")
    assert [c["code"] for c in test_issue["code"]["coding"]] == ["duplicate-test"]  # no ActCode for it
    assert test_issue["patient"] == {"reference": f"Patient/{golden}"}
    assert test_issue["implicated"] == [
        {"reference": f"ServiceRequest/{raised['order']}"},
        {"reference": f"Observation/{raised['observation']}"},
    ]
    (evidence,) = test_issue["evidence"]
    assert evidence["detail"][0]["reference"] == f"Observation/{raised['observation']}"
    assert "4.2 mmol/L" in evidence["detail"][0]["display"] and a.institution.name in evidence["detail"][0]["display"]
    assert alert.summary in test_issue["detail"]
    assert "mitigation" not in test_issue
    assert allergy_issue["code"]["coding"][0] == {"system": ACT_CODE, "code": "ALGY", "display": "Allergy Alert"}
    assert allergy_issue["severity"] == "high"
    read = get(b.feed.client, f"DetectedIssue/{alert.uuid}")
    assert read.status_code == 200 and read.json() == test_issue


def test_another_institution_sees_none_of_them_and_staff_sees_all(clinics, raised, admin_client_zh):
    a, b, c = clinics
    patient = source_patient_id(a, raised["resident"])
    alert = Alert.objects.get(kind="duplicate-test")
    for other in (a, c):
        assert found(other.feed.client, f"DetectedIssue?patient={patient}") == []
        assert found(other.feed.client, "DetectedIssue") == []
        assert issues(get(other.feed.client, f"DetectedIssue/{alert.uuid}"), 404)[0]["code"] == "not-found"
    assert len(found(admin_client_zh, f"DetectedIssue?patient={patient}")) == 2
    assert len(found(b.feed.client, "DetectedIssue")) == 2


def test_search_by_code_id_and_pages(clinics, raised):
    _, b, _ = clinics
    patient = source_patient_id(b, raised["resident"])
    (allergy_issue,) = found(b.feed.client, f"DetectedIssue?patient={patient}&code={ACT_CODE}|ALGY")
    assert allergy_issue["code"]["coding"][0]["code"] == "ALGY"
    assert found(b.feed.client, f"DetectedIssue?patient={patient}&code=DUPTHPY") == []
    (by_kind,) = found(b.feed.client, "DetectedIssue?code=urn:platform:alerts:kind|duplicate-test")
    assert found(b.feed.client, f"DetectedIssue?_id={by_kind['id']}")[0]["id"] == by_kind["id"]
    first = searchset(get(b.feed.client, f"DetectedIssue?patient={patient}&_count=1"))
    (next_url,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = searchset(b.feed.client.get(next_url, HTTP_ACCEPT=FHIR_JSON))
    assert [e["resource"]["id"] for e in first["entry"] + second["entry"]] == [by_kind["id"], allergy_issue["id"]]
    assert not [link for link in second["link"] if link["relation"] == "next"]
    assert issues(get(b.feed.client, "DetectedIssue?colour=red"), 400)[0]["expression"] == ["colour"]
    assert issues(get(b.feed.client, "DetectedIssue?_cursor=abc"), 400)


def test_an_override_recorded_through_cds_hooks_feedback_is_a_mitigation(clinics, raised):
    _, b, _ = clinics
    allergy_alert = Alert.objects.get(kind="drug-allergy")
    feedback = {
        "feedback": [
            {
                "card": card_uuid(allergy_alert.key),
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": OVERRIDE_REASON_SYSTEM, "code": "skin-test-negative"},
                    "userComment": "皮试阴性",
                },
                "outcomeTimestamp": "2026-03-01T08:30:00Z",
            }
        ]
    }
    response = b.feed.client.post(
        "/cds-services/alerts-order-sign/feedback", json.dumps(feedback), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    allergy_alert.refresh_from_db()
    assert allergy_alert.status == Alert.Status.OVERRIDDEN
    issue = get(b.feed.client, f"DetectedIssue/{allergy_alert.uuid}").json()
    DetectedIssue.model_validate(issue)
    assert issue["status"] == "final"
    (mitigation,) = issue["mitigation"]
    assert mitigation["action"]["coding"] == [
        {"system": ACT_CODE, "code": "2", "display": "Assessed Patient"},
        {"system": OVERRIDE_REASON_SYSTEM, "code": "skin-test-negative", "display": "皮试阴性"},
    ]
    assert "皮试阴性" in mitigation["action"]["text"]
    assert mitigation["author"] == {"display": b.source.client_id}


def test_an_alert_withdrawn_when_its_order_stops_is_cancelled(clinics, raised, django_capture_on_commit_callbacks):
    _, b, _ = clinics
    with django_capture_on_commit_callbacks(execute=True):
        b.send(raised["resident"], {**raised["rx_body"], "status": "stopped"}, method="PUT")
    alert = Alert.objects.get(kind="drug-allergy")
    assert alert.status == Alert.Status.WITHDRAWN
    issue = get(b.feed.client, f"DetectedIssue/{alert.uuid}").json()
    DetectedIssue.model_validate(issue)
    assert issue["status"] == "cancelled"


def test_after_a_merge_the_survivors_patient_finds_the_merged_persons_alerts(clinics, raised):
    _, b, c = clinics
    resident = raised["resident"]
    other = Resident("di3", name="王芳", birth=dt.date(1971, 8, 9), sequence=4)
    c.send(other)
    survivor = Person.objects.get(pk=other.person_id(c))
    duplicate = Person.objects.get(pk=resident.person_id(b))
    person_merge(survivor=survivor, duplicate=duplicate, actor="reviewer", reason="same resident")
    assert len(found(b.feed.client, f"DetectedIssue?patient={survivor.uuid}")) == 2
    assert len(found(b.feed.client, f"DetectedIssue?patient={duplicate.uuid}")) == 2  # followed to the survivor


def test_a_token_needs_a_scope_granting_detected_issue_and_nothing_is_written(clinics, raised):
    _, b, _ = clinics
    alert = Alert.objects.first()
    narrow = bearer_client(b.feed, "system/Observation.read")
    assert "system/DetectedIssue.read" in issues(get(narrow, f"DetectedIssue/{alert.uuid}"), 403)[0]["diagnostics"]
    # Reading one also needs the types of the facts it tells of (tests/attack/test_alerts_tenancy.py).
    facts = " ".join(f"system/{t}.read" for t in ALERT_FACT_TYPES)
    reader = bearer_client(b.feed, f"system/DetectedIssue.read {facts}")
    assert get(reader, f"DetectedIssue/{alert.uuid}").status_code == 200
    body = {"resourceType": "DetectedIssue", "status": "final", "id": str(uuid.uuid4())}
    assert issues(b.feed.client.post("/fhir/DetectedIssue", body, content_type=FHIR_JSON), 405)
    put = b.feed.client.put(f"/fhir/DetectedIssue/{alert.uuid}", body, content_type=FHIR_JSON)
    assert issues(put, 405)
    statement = get(b.feed.client, "metadata").json()
    (served,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "DetectedIssue"]
    assert {p["name"] for p in served["searchParam"]} == {"patient", "code", "_id"}
