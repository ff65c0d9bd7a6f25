"""Attacks on the alerts of two hospitals (issue 16): an alert raised on hospital B's order is B's — another
institution neither reads it through the record's alerts (CDS Hooks ``patient-view``, the viewer's panel) nor
silences it with its own override, and an order deleted takes its alerts with it. Each test failed on the code
before its fix (branch attack16)."""

from __future__ import annotations

import json
import re

import pytest

from healthplatform.alerts.cdshooks.cards import OVERRIDE_REASON_SYSTEM, card_uuid
from healthplatform.alerts.models import Alert
from healthplatform.alerts.services import alert_override
from healthplatform.audit.models import AccessEvent
from healthplatform.viewer.clinicians import clinician_caller
from registry.codes import ALLERGEN_CLASS_SYSTEM
from tests.alerts.scenario import Clinic, Resident, allergy, atc, lab, lab_order, prescription, region
from tests.viewer.scenario import clinician

pytestmark = pytest.mark.django_db
POTASSIUM = "2823-3"


@pytest.fixture
def clinics():
    return region()


@pytest.fixture
def raised(clinics, django_capture_on_commit_callbacks):
    """B orders a potassium test A did two days ago and amoxicillin against A's penicillin allergy: two alerts
    raised for B. The resident is known at A, B and C."""
    a, b, c = clinics
    resident = Resident("atk1")
    a.send(resident, lab(POTASSIUM, 4.2, "mmol/L", days_ago=2, low=3.5, high=5.3, display="钾"))
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    c.send(resident)
    order = lab_order(POTASSIUM)
    order["identifier"] = [{"system": "urn:hosp-b:lab", "value": "LAB-1"}]
    rx = prescription(atc("J01CA04"), days_ago=0, name="阿莫西林")
    rx["identifier"] = [{"system": "urn:hosp-b:rx", "value": "RX-1"}]
    with django_capture_on_commit_callbacks(execute=True):
        order_id, rx_id = b.send(resident, order, rx)
    assert set(Alert.objects.values_list("institution_id", "status")) == {(b.institution.pk, "active")}
    return {"resident": resident, "orders": {"ServiceRequest": (order_id, order), "MedicationRequest": (rx_id, rx)}}


def _feedback_override(clinic: Clinic, alert: Alert) -> None:
    body = {
        "feedback": [
            {
                "card": card_uuid(alert.key),
                "outcome": "overridden",
                "overrideReason": {"reason": {"system": OVERRIDE_REASON_SYSTEM, "code": "aware"}},
                "outcomeTimestamp": "2026-03-01T08:30:00Z",
            }
        ]
    }
    response = clinic.feed.client.post(
        "/cds-services/alerts-order-sign/feedback", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content


def _viewer_override(clinic: Clinic, alert: Alert) -> None:
    user = clinician(f"dr-{clinic.facility.lower()}", clinic.institution)
    alert_override(caller=clinician_caller(user), key=alert.key, reason="已知悉", reason_code="aware", user=user)


OVERRIDES = {"cds-hooks feedback": _feedback_override, "viewer override": _viewer_override}


@pytest.mark.parametrize("route", OVERRIDES)
@pytest.mark.parametrize("other", ["A", "C"])
@pytest.mark.parametrize("kind", ["ServiceRequest", "MedicationRequest"])
def test_another_institutions_override_does_not_withdraw_the_ordering_institutions_alert(
    clinics, raised, django_capture_on_commit_callbacks, route, other, kind
):
    """An alert's card uuid is its stable id, which another hospital can learn or compute. Its override is
    recorded (it counts for that hospital) but must not silence B's alert when B's order is evaluated again (a
    corrected order: the platform, which evaluates feeds' orders, counted every institution's override)."""
    a, b, c = clinics
    order_id, body = raised["orders"][kind]
    alert = Alert.objects.get(order=f"{kind}/{order_id}")
    OVERRIDES[route]({"A": a, "C": c}[other], alert)
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACTIVE
    with django_capture_on_commit_callbacks(execute=True):
        b.send(raised["resident"], {**body, "note": [{"text": "已与患者确认"}]}, method="PUT")
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACTIVE


def test_the_ordering_institutions_own_override_still_holds_on_re_evaluation(
    clinics, raised, django_capture_on_commit_callbacks
):
    _, b, _ = clinics
    order_id, body = raised["orders"]["MedicationRequest"]
    alert = Alert.objects.get(order=f"MedicationRequest/{order_id}")
    _feedback_override(b, alert)
    with django_capture_on_commit_callbacks(execute=True):
        b.send(raised["resident"], {**body, "note": [{"text": "皮试阴性"}]}, method="PUT")
    alert.refresh_from_db()
    assert alert.status != Alert.Status.ACTIVE


# --- who reads an alert raised on an order ---------------------------------------------------------------------


def _patient_view(clinic: Clinic, resident: Resident, client) -> set[str]:
    body = {
        "hook": "patient-view",
        "hookInstance": "5d1d4a3c-6d1f-4b7e-9a33-0e6f3c2b9b10",
        "context": {"userId": "Practitioner/x", "patientId": f"{clinic.facility}-{resident.key}"},
    }
    response = client.post("/cds-services/alerts-patient-view", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return {card["uuid"] for card in response.json()["cards"]}


def _viewer_page(clinic: Clinic, resident: Resident, client) -> str:
    from mpi.models import Person

    client.force_login(clinician(f"dr-{clinic.facility.lower()}", clinic.institution))
    person = Person.objects.get(pk=resident.person_id(clinic))
    response = client.get(f"/viewer/patient/{person.uuid}/")
    assert response.status_code == 200
    return response.content.decode()


def _as_b_sees_them(b: Clinic, person_id: int, alerts: list[Alert]) -> set[str]:
    """The keys under which B's record shows these stored alerts: each one's own, or that of the record's own
    finding naming the same facts (a written order is an active medication of the record: shown once)."""
    from healthplatform.alerts.evaluate import record_alerts

    findings = record_alerts(caller=b.caller, person_id=person_id).findings
    by_facts = {
        (f.kind, frozenset({e.reference for e in f.evidence} | ({f.order} if f.order else set()))): f.key
        for f in findings
    }
    keys = set()
    for alert in alerts:
        facts = (alert.kind, frozenset({e["reference"] for e in alert.evidence} | {alert.order}))
        keys.add(alert.key if alert.key in {f.key for f in findings} else by_facts[facts])
    return keys


@pytest.mark.parametrize("door", ["cds-hooks patient-view", "viewer patient page"])
@pytest.mark.parametrize("other", ["A", "C"])
def test_an_alert_raised_on_bs_order_is_not_read_by_another_institution(clinics, raised, client, door, other):
    """The alerts' read rule (alerts.selectors: an alert is its ordering institution's; DetectedIssue answers
    another institution 404) holds for the record's alerts too: patient-view answered A and C every stored alert
    of B's orders (B's order, its summary and evidence, and the card uuid B's override is keyed by)."""
    a, b, c = clinics
    clinic = {"A": a, "C": c}[other]
    alerts = list(Alert.objects.all())
    if door == "cds-hooks patient-view":
        shown = _patient_view(clinic, raised["resident"], clinic.feed.client)
        assert not shown & {card_uuid(x.key) for x in alerts}
        seen_by_b = _as_b_sees_them(b, raised["resident"].person_id(b), alerts)
        assert {card_uuid(k) for k in seen_by_b} <= _patient_view(b, raised["resident"], b.feed.client)
    else:
        page = _viewer_page(clinic, raised["resident"], client)
        assert not [x for x in alerts if x.key in page]
        own = _viewer_page(b, raised["resident"], client)
        assert all(k in own for k in _as_b_sees_them(b, raised["resident"].person_id(b), alerts))


# --- an order deleted ----------------------------------------------------------------------------------------


def _delete(b: Clinic, kind: str, order_id: str, body: dict, route: str):
    identifier = body["identifier"][0]
    url = {
        "instance": f"{kind}/{order_id}",
        "conditional": f"{kind}?identifier={identifier['system']}|{identifier['value']}",
    }
    if route == "transaction entry":
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": url["conditional"]}}],
        }
        return b.feed.client.post("/fhir/", bundle, content_type="application/fhir+json")
    return b.feed.client.delete(f"/fhir/{url[route]}")


@pytest.mark.parametrize("route", ["instance", "transaction entry"])
@pytest.mark.parametrize("kind", ["ServiceRequest", "MedicationRequest"])
def test_an_order_deleted_withdraws_its_alerts(clinics, raised, django_capture_on_commit_callbacks, route, kind):
    """A deleted order (sent in error) is no order: its alert was left active, on the ordering institution's
    page and patient-view for 30 days and as a DetectedIssue for good. Only creates and updates were evaluated."""
    _, b, _ = clinics
    order_id, body = raised["orders"][kind]
    with django_capture_on_commit_callbacks(execute=True):
        response = _delete(b, kind, order_id, body, route)
    assert response.status_code in (200, 204), response.content
    alert = Alert.objects.get(order=f"{kind}/{order_id}")
    assert alert.status == Alert.Status.WITHDRAWN
    other = Alert.objects.exclude(pk=alert.pk).get()
    assert other.status == Alert.Status.ACTIVE  # the other order's alert stays


def test_a_detected_issue_search_names_each_resident_once_in_the_audit_and_the_access_log(clinics, raised, caplog):
    """One event per resident whose data went out, and the access log names each once: Alert's default ordering
    (-raised_at) made the audit's DISTINCT over the alerts' persons one row per alert."""
    _, b, _ = clinics
    with caplog.at_level("INFO", logger="healthplatform.access"):
        response = b.feed.client.get("/fhir/DetectedIssue", HTTP_ACCEPT="application/fhir+json")
    assert len(response.json()["entry"]) == 2
    person = raised["resident"].person_id(b)
    assert AccessEvent.objects.filter(person_id=person, what="DetectedIssue search").count() == 1
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fhir ")]
    assert " persons=1 " in line, line


# The potassium result the alert rests on (4.2), not a timestamp's seconds (…:54.2…).
POTASSIUM_VALUE = re.compile(r"(?<![\d:.])4\.2(?!\d)")


@pytest.mark.parametrize(
    "scope",
    [
        "system/DetectedIssue.read",
        "system/DetectedIssue.read system/MedicationRequest.read system/ServiceRequest.read",
        "system/DetectedIssue.read system/AllergyIntolerance.read system/Observation.read",
    ],
)
@pytest.mark.parametrize("route", ["search", "read", "Bundle GET entry"])
def test_a_token_granted_detected_issue_alone_is_not_sent_the_facts_alerts_tell_of(clinics, raised, scope, route):
    """Scopes limit what is returned: a DetectedIssue carries the results and allergies it rests on (their values,
    dates, institutions) and the order. CDS Hooks already answered 403 to a token that cannot read them."""
    from tests.fhirapi.client import FHIR_JSON
    from tests.ingest.test_scopes import bearer_client

    _, b, _ = clinics
    alert = Alert.objects.get(kind="duplicate-test")
    client = bearer_client(b.feed, scope)
    url = {"search": "DetectedIssue", "read": f"DetectedIssue/{alert.uuid}", "Bundle GET entry": ""}[route]
    if route == "Bundle GET entry":
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": f"DetectedIssue/{alert.uuid}"}}],
        }
        response = client.post("/fhir/", bundle, content_type=FHIR_JSON)
        assert response.status_code == 200, response.content
        assert not POTASSIUM_VALUE.search(response.content.decode())
        assert response.json()["entry"][0]["response"]["status"].startswith("403")
    else:
        response = client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON)
        assert response.status_code == 403, response.content
        assert not POTASSIUM_VALUE.search(response.content.decode())
    reader = bearer_client(b.feed, "system/*.read")
    assert reader.get(f"/fhir/DetectedIssue/{alert.uuid}", HTTP_ACCEPT=FHIR_JSON).status_code == 200


@pytest.mark.parametrize("door", ["cds-hooks patient-view", "viewer patient page"])
def test_after_a_merge_the_survivors_record_still_shows_the_alerts_raised_for_the_merged_person(
    clinics, raised, client, door
):
    """A merge moves the identities (and so the facts) to the survivor; the alerts stay with the person they
    were raised for. DetectedIssue follows the merge (persons_of_patient); the record's alerts did not, so B's
    critical drug-allergy alert vanished from B's page and patient-view the moment the MPI merged two records."""
    import datetime as dt

    from mpi.models import Person
    from mpi.services import person_merge

    _, b, c = clinics
    other = Resident("atk-merge", name="王芳", birth=dt.date(1971, 8, 9), sequence=4)
    c.send(other)
    survivor = Person.objects.get(pk=other.person_id(c))
    duplicate = Person.objects.get(pk=raised["resident"].person_id(b))
    person_merge(survivor=survivor, duplicate=duplicate, actor="reviewer", reason="same resident")
    alerts = list(Alert.objects.filter(status=Alert.Status.ACTIVE))
    assert len(alerts) == 2 and {a.person_id for a in alerts} == {duplicate.pk}
    seen_by_b = _as_b_sees_them(b, survivor.pk, alerts)
    assert {x.key for x in alerts} & seen_by_b, "a stored alert the record does not say itself is shown"
    if door == "cds-hooks patient-view":
        shown = _patient_view(b, raised["resident"], b.feed.client)
        assert {card_uuid(k) for k in seen_by_b} <= shown
    else:
        page = _viewer_page(b, raised["resident"], client)
        assert all(k in page for k in seen_by_b)


@pytest.mark.parametrize("scope", ["system/Observation.write", "system/Observation.read", "system/Patient.read"])
@pytest.mark.parametrize("service", ["alerts-patient-view", "alerts-order-select", "alerts-order-sign"])
def test_feedback_needs_the_scopes_that_get_the_cards(clinics, raised, scope, service):
    """An override silences the alert for the whole institution (its clinicians' pages too) and marks the
    ordering institution's alert overridden. A hook call needs the scopes of the facts the cards rest on; its
    feedback took any token of the institution: the laboratory feed's write-only token overrode B's
    drug-allergy alert."""
    from tests.ingest.test_scopes import bearer_client

    _, b, _ = clinics
    alert = Alert.objects.get(kind="drug-allergy")
    body = {
        "feedback": [
            {
                "card": card_uuid(alert.key),
                "outcome": "overridden",
                "overrideReason": {"reason": {"system": OVERRIDE_REASON_SYSTEM, "code": "aware"}},
                "outcomeTimestamp": "2026-03-01T08:30:00Z",
            }
        ]
    }
    narrow = bearer_client(b.feed, scope)
    response = narrow.post(f"/cds-services/{service}/feedback", json.dumps(body), content_type="application/json")
    assert response.status_code == 403, response.content
    assert "AllergyIntolerance" in response.json()["error"]
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACTIVE
    reader = bearer_client(b.feed, "system/*.read")
    ok = reader.post(f"/cds-services/{service}/feedback", json.dumps(body), content_type="application/json")
    assert ok.status_code == 200, ok.content
