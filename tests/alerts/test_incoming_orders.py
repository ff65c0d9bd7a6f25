"""An order or prescription a feed writes is checked once it is committed: the alert is raised for the ordering
institution and kept (readable on the patient page); sending it again raises nothing new; an order the record no
longer warns about has its alert withdrawn."""

from __future__ import annotations

import pytest

from healthplatform.alerts.evaluate import record_alerts
from healthplatform.alerts.models import Alert
from registry.codes import ALLERGEN_CLASS_SYSTEM
from tests.alerts.scenario import (
    ALLERGY_VERIFICATION,
    NOW,
    Resident,
    allergy,
    atc,
    lab,
    lab_order,
    prescription,
    region,
)

pytestmark = pytest.mark.django_db

POTASSIUM = "2823-3"


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """The alerts of an order run once its transaction commits: run the callbacks as the commit would."""
    return django_capture_on_commit_callbacks


def test_a_feeds_test_order_that_repeats_a_recent_result_raises_an_alert_for_the_ordering_institution(on_commit):
    a, b, _ = region()
    resident = Resident("o1")
    (obs_id,) = a.send(resident, lab(POTASSIUM, 4.2, "mmol/L", days_ago=2))
    with on_commit(execute=True):
        (order_id,) = b.send(resident, lab_order(POTASSIUM))
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.status) == ("duplicate-test", "warning", "active")
    assert alert.institution == b.institution and alert.order == f"ServiceRequest/{order_id}"
    assert alert.person_id == resident.person_id(b)
    assert alert.evidence[0]["reference"] == f"Observation/{obs_id}"
    assert alert.evidence[0]["institution"]["name"] == a.institution.name
    page = record_alerts(caller=b.caller, person_id=alert.person_id, now=NOW)
    assert alert.key in {f.key for f in page.findings}


def test_a_prescription_against_an_allergy_raises_once_and_is_withdrawn_when_the_order_is_stopped(on_commit):
    a, b, _ = region()
    resident = Resident("o2")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    body = prescription(atc("J01CA04"), days_ago=0, name="阿莫西林")
    body["identifier"] = [{"system": "urn:hosp-b:rx", "value": "RX-1"}]
    with on_commit(execute=True):
        b.send(resident, body)
    with on_commit(execute=True):
        b.send(resident, body)  # the same prescription again (a resend): nothing new
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.status) == ("drug-allergy", "critical", "active")
    with on_commit(execute=True):
        b.send(resident, {**body, "status": "stopped"}, method="PUT")
    alert.refresh_from_db()
    assert alert.status == Alert.Status.WITHDRAWN


def test_a_prescription_the_record_already_warns_about_is_shown_once_on_the_record(on_commit):
    # The feed's order raised its alert (keyed with the order); written, the order is an active medication and
    # the record's own drug–allergy finding names the same two facts: the page shows one alert, not two.
    a, b, _ = region()
    resident = Resident("o3")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), criticality="high"))
    with on_commit(execute=True):
        b.send(resident, prescription(atc("J01CA04"), days_ago=0, name="阿莫西林"))
    (stored,) = Alert.objects.all()

    page = record_alerts(caller=b.caller, person_id=stored.person_id, now=NOW)

    allergy_alerts = [f for f in page.findings if f.kind == "drug-allergy"]
    assert len(allergy_alerts) == 1
    assert {e.reference for e in allergy_alerts[0].evidence} >= {e["reference"] for e in stored.evidence}


def _allergic_with_b_prescribing(on_commit, key: str):
    a, b, _ = region()
    resident = Resident(key)
    body = allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), criticality="high")
    body["identifier"] = [{"system": "urn:hosp-a:allergy", "value": f"AL-{key}"}]
    a.send(resident, body)
    with on_commit(execute=True):
        b.send(resident, prescription(atc("J01CA04"), days_ago=0, name="阿莫西林"))
    (alert,) = Alert.objects.all()
    assert alert.status == Alert.Status.ACTIVE
    return a, b, resident, body, alert


def test_an_allergy_refuted_at_another_institution_withdraws_the_alert_raised_on_the_prescription(on_commit):
    a, _b, resident, body, alert = _allergic_with_b_prescribing(on_commit, "o4")
    refuted = {**body, "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "refuted"}]}}
    with on_commit(execute=True):
        a.send(resident, refuted, method="PUT")
    alert.refresh_from_db()
    assert alert.status == Alert.Status.WITHDRAWN


def test_an_allergy_deleted_withdraws_the_alert_and_a_new_result_leaves_it(on_commit):
    from healthplatform.ingest.apply import bundle_apply_as_source

    a, _b, resident, body, alert = _allergic_with_b_prescribing(on_commit, "o5")
    with on_commit(execute=True):
        a.send(resident, lab(POTASSIUM, 4.2, "mmol/L", days_ago=1))  # a new fact: nothing to re-check
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACTIVE
    identifier = body["identifier"][0]
    url = f"AllergyIntolerance?identifier={identifier['system']}|{identifier['value']}"
    with on_commit(execute=True):
        answer = bundle_apply_as_source(
            source_id=a.source.pk,
            bundle={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": url}}],
            },
        )
    assert answer["status"] == 200, answer
    alert.refresh_from_db()
    assert alert.status == Alert.Status.WITHDRAWN


def test_an_allergy_recorded_after_a_prescription_raises_the_alert_for_the_prescribing_institution(on_commit):
    a, b, _ = region()
    resident = Resident("o6")
    with on_commit(execute=True):
        b.send(resident, prescription(atc("J01CA04"), days_ago=1, name="阿莫西林"))
        b.send(resident, lab_order(POTASSIUM))
    assert not Alert.objects.exists()
    with on_commit(execute=True):
        a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), criticality="high"))
    with on_commit(execute=True):
        a.send(resident, lab(POTASSIUM, 4.0, "mmol/L", days_ago=0))  # the result the order asked for: no alert

    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.institution) == ("drug-allergy", "critical", b.institution)
