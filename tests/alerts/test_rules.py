"""The three rules on a scenario region (tests/alerts/scenario.py): each fires when it should and stays silent
when it should, at both edges of its window, over every record of a merged person."""

from __future__ import annotations

import datetime as dt

import pytest

from healthplatform.access import Caller
from healthplatform.alerts.evaluate import order_alerts, order_fact, record_alerts
from healthplatform.alerts.models import AlertPolicy, Recognition, RetestWindow
from healthplatform.alerts.services import alert_override
from mpi.models import Person
from mpi.services import person_merge, person_unmerge
from registry.codes import ALLERGEN_CLASS_SYSTEM, DRUG_DICTIONARY_SYSTEM
from tests.alerts.scenario import (
    NOW,
    Resident,
    allergy,
    atc,
    drug_order,
    imaging,
    lab,
    prescription,
    region,
    service_order,
)

pytestmark = pytest.mark.django_db
POTASSIUM = "2823-3"


@pytest.fixture
def clinics():
    return region()


def _order(clinic, person_id, body, *, now=NOW):
    caller = clinic.caller
    fact = order_fact(caller, body, reference=f"{clinic.institution.code}:{body['resourceType']}/{body['id']}", now=now)
    return order_alerts(caller=caller, person_id=person_id, orders=[fact], now=now)


def _kinds(findings):
    return sorted((f.kind, f.severity) for f in findings)


# --- duplicate test ------------------------------------------------------------------------------------------


def test_a_test_done_days_ago_at_a_recognised_hospital_warns_the_next_order_and_names_the_result(clinics):
    a, b, _ = clinics
    resident = Resident("r1")
    (obs_id,) = a.send(resident, lab(POTASSIUM, 4.1, "mmol/L", days_ago=3, low=3.5, high=5.3, display="钾"))
    b.send(resident)
    findings = _order(b, resident.person_id(b), service_order(POTASSIUM))
    assert _kinds(findings) == [("duplicate-test", "warning")]
    earlier = findings[0].evidence[0]
    assert earlier.reference == f"Observation/{obs_id}"
    assert (earlier.value, earlier.unit, earlier.reference_range) == ("4.1", "mmol/L", "3.5–5.3")
    assert earlier.institution_name == a.institution.name
    assert earlier.when == NOW - dt.timedelta(days=3)
    assert earlier.submission  # the request that carried it
    assert a.institution.name in findings[0].summary and len(findings[0].summary) < 140


@pytest.mark.parametrize(("days_ago", "fires"), [(7 - 1 / 1440, True), (7, False), (30, False)])
def test_the_duplicate_test_window_holds_up_to_its_last_minute_and_not_beyond(clinics, days_ago, fires):
    a, b, _ = clinics
    resident = Resident("r2")
    a.send(resident, lab(POTASSIUM, 4.0, "mmol/L", days_ago=days_ago))
    b.send(resident)
    assert bool(_order(b, resident.person_id(b), service_order(POTASSIUM))) is fires


def test_each_test_has_its_own_window(clinics):
    a, b, _ = clinics
    resident = Resident("r3")
    # CRP 2 days, HbA1c 60 days, CT chest 30 days (the seeded defaults).
    a.send(
        resident,
        lab("1988-5", 12, "mg/L", days_ago=3),
        lab("4548-4", 7.1, "%", days_ago=50),
        imaging("24627-2", days_ago=10),
    )
    b.send(resident)
    person = resident.person_id(b)
    assert _order(b, person, service_order("1988-5")) == []
    assert _kinds(_order(b, person, service_order("4548-4"))) == [("duplicate-test", "warning")]
    (ct,) = _order(b, person, service_order("24627-2"))
    assert ct.evidence[0].resource_type == "DiagnosticReport" and ct.evidence[0].value == "未见明显异常"
    RetestWindow.objects.filter(code="1988-5").update(window_days=5)
    RetestWindow.objects.first().save()  # a change saved in this process is seen at once
    assert _kinds(_order(b, person, service_order("1988-5"))) == [("duplicate-test", "warning")]


def test_a_community_clinics_result_is_not_recognised_unless_the_administrator_says_so(clinics):
    _, b, c = clinics
    resident = Resident("r4")
    c.send(resident, lab(POTASSIUM, 4.4, "mmol/L", days_ago=2))
    b.send(resident)
    person = resident.person_id(b)
    assert _order(b, person, service_order(POTASSIUM)) == []
    # The clinic's own result counts for its own order.
    assert _kinds(_order(c, person, service_order(POTASSIUM))) == [("duplicate-test", "warning")]
    Recognition.objects.create(institution=c.institution, recognised=True, note="通过室间质评")
    assert _kinds(_order(b, person, service_order(POTASSIUM))) == [("duplicate-test", "warning")]
    # A test-specific rule outranks the institution's rule for every test.
    window = RetestWindow.objects.get(code=POTASSIUM)
    Recognition.objects.create(institution=c.institution, test=window, recognised=False)
    assert _order(b, person, service_order(POTASSIUM)) == []


def test_a_cancelled_or_registered_test_is_no_result(clinics):
    a, b, _ = clinics
    resident = Resident("r5")
    a.send(resident, lab(POTASSIUM, 4.0, "mmol/L", days_ago=1, status="cancelled"))
    b.send(resident)
    assert _order(b, resident.person_id(b), service_order(POTASSIUM)) == []


def test_the_patient_page_lists_the_tests_still_inside_their_window(clinics):
    a, b, c = clinics
    resident = Resident("r6")
    a.send(resident, lab(POTASSIUM, 4.0, "mmol/L", days_ago=2), lab("2345-7", 98, "mg/dL", days_ago=40))
    c.send(resident, lab("1988-5", 3, "mg/L", days_ago=1))  # community: not recognised for B's clinician
    alerts = record_alerts(caller=b.caller, person_id=resident.person_id(a), now=NOW)
    assert [f.evidence[0].display for f in alerts.recent_tests] == [POTASSIUM]
    assert alerts.recent_tests[0].severity == "info"


# --- drug–allergy --------------------------------------------------------------------------------------------


def test_a_penicillin_allergy_at_one_hospital_is_critical_against_amoxicillin_at_another(clinics):
    a, b, _ = clinics
    resident = Resident("r7")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), text="青霉素过敏"))
    b.send(resident)
    person = resident.person_id(b)
    (finding,) = _order(b, person, drug_order(atc("J01CA04"), name="阿莫西林胶囊"))
    assert (finding.kind, finding.severity) == ("drug-allergy", "critical")
    assert finding.evidence[0].institution_name == a.institution.name
    # By the dictionary product too, and on the record once B has prescribed it.
    assert _kinds(_order(b, person, drug_order((DRUG_DICTIONARY_SYSTEM, "D0001")))) == [("drug-allergy", "critical")]
    b.send(resident, prescription(atc("J01CA04"), days_ago=1, name="阿莫西林胶囊"))
    assert ("drug-allergy", "critical") in _kinds(record_alerts(caller=b.caller, person_id=person, now=NOW).findings)


def test_an_allergy_to_an_ingredient_matches_by_ingredient_and_by_its_level_4_class(clinics):
    a, b, _ = clinics
    resident = Resident("r8")
    a.send(resident, allergy(atc("J01CA04")))
    b.send(resident)
    person = resident.person_id(b)
    assert _kinds(_order(b, person, drug_order(atc("J01CA04")))) == [("drug-allergy", "critical")]
    assert _order(b, person, drug_order(atc("J01FA10"))) == []  # azithromycin: another class
    a.send(resident, allergy(atc("C10AA")))  # a level-4 class
    assert _kinds(_order(b, person, drug_order(atc("C10AA01")))) == [("drug-allergy", "critical")]


def test_penicillins_warn_against_cephalosporins_as_a_cross_reactivity_not_as_critical(clinics):
    a, b, _ = clinics
    resident = Resident("r9")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    b.send(resident)
    (finding,) = _order(b, resident.person_id(b), drug_order(atc("J01DC02"), name="头孢呋辛"))
    assert (finding.kind, finding.severity) == ("drug-allergy", "warning")
    assert "J01C→J01DC" in finding.rule


@pytest.mark.parametrize(
    ("verification", "clinical"),
    [("refuted", "active"), ("entered-in-error", "active"), ("confirmed", "resolved"), ("confirmed", "inactive")],
)
def test_a_refuted_or_resolved_allergy_does_not_alert(clinics, verification, clinical):
    a, b, _ = clinics
    resident = Resident("r10")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), verification=verification, clinical=clinical))
    b.send(resident)
    assert _order(b, resident.person_id(b), drug_order(atc("J01CA04"))) == []


def test_a_free_text_allergy_is_shown_as_an_uncoded_warning_never_dropped(clinics):
    a, b, _ = clinics
    resident = Resident("r11")
    a.send(resident, allergy(None, text="对某种中药过敏"), allergy(None, text="花生", category="food"))
    b.send(resident)
    person = resident.person_id(b)
    (finding,) = _order(b, person, drug_order(atc("C08CA01")))
    assert (finding.kind, finding.severity, finding.rule) == ("drug-allergy", "warning", "allergy:uncoded")
    assert "对某种中药过敏" in finding.summary
    page = record_alerts(caller=b.caller, person_id=person, now=NOW)
    assert [f.rule for f in page.findings] == ["allergy:uncoded"]  # the food allergy is not a drug alert


def test_a_drug_the_dictionary_does_not_know_is_said_to_be_unchecked(clinics):
    _, b, _ = clinics
    resident = Resident("r12")
    b.send(resident)
    (finding,) = _order(b, resident.person_id(b), drug_order(("urn:hosp-b:formulary", "X1"), name="某药"))
    assert (finding.severity, finding.rule) == ("info", "medication:uncoded")


# --- duplicate medication ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days_ago", "fires"), [(89, True), (91, False)])
def test_the_same_ingredient_active_at_two_institutions_within_the_look_back(clinics, days_ago, fires):
    a, b, _ = clinics
    resident = Resident("r13")
    a.send(resident, prescription(atc("C08CA01"), days_ago=days_ago, name="氨氯地平片"))
    b.send(resident, prescription(atc("C08CA01"), days_ago=1, name="络活喜"))
    page = record_alerts(caller=b.caller, person_id=resident.person_id(b), now=NOW)
    assert (("duplicate-medication", "warning") in _kinds(page.findings)) is fires
    AlertPolicy.objects.update(medication_lookback_days=120)
    AlertPolicy.objects.first().save()
    page = record_alerts(caller=b.caller, person_id=resident.person_id(b), now=NOW)
    assert ("duplicate-medication", "warning") in _kinds(page.findings)


def test_the_same_drug_twice_at_one_institution_or_a_stopped_one_is_not_a_duplicate(clinics):
    a, b, _ = clinics
    resident = Resident("r14")
    a.send(resident, prescription(atc("C08CA01"), days_ago=20), prescription(atc("C08CA01"), days_ago=2))
    b.send(resident, prescription(atc("C08CA01"), days_ago=2, status="stopped"))
    assert record_alerts(caller=b.caller, person_id=resident.person_id(b), now=NOW).findings == []


def test_two_statins_at_two_institutions_are_the_same_level_4_class(clinics):
    a, b, _ = clinics
    resident = Resident("r15")
    a.send(resident, prescription(atc("C10AA05"), days_ago=10, name="阿托伐他汀钙片"))
    b.send(resident)
    person = resident.person_id(b)
    (finding,) = _order(b, person, drug_order(atc("C10AA01"), name="辛伐他汀片"))
    assert (finding.kind, finding.severity, finding.rule) == ("duplicate-medication", "info", "duplicate:C10AA")
    (same,) = _order(b, person, drug_order(atc("C10AA05")))
    assert (same.kind, same.severity, same.rule) == ("duplicate-medication", "warning", "duplicate:C10AA05")


# --- persons, overrides, stable ids --------------------------------------------------------------------------


def test_a_merged_persons_facts_from_both_former_records_alert_and_an_unmerge_takes_them_apart(clinics):
    a, b, _ = clinics
    first = Resident("r16", sequence=16)
    second = Resident("r17", name="李秀云", birth=dt.date(1957, 4, 2), sequence=17)
    a.send(first, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    b.send(second)
    survivor = Person.objects.get(pk=second.person_id(b))
    duplicate = Person.objects.get(pk=first.person_id(a))
    assert survivor.pk != duplicate.pk
    assert _order(b, survivor.pk, drug_order(atc("J01CA04"))) == []
    merge = person_merge(survivor=survivor, duplicate=duplicate, actor="reviewer", reason="same resident")
    assert _kinds(_order(b, survivor.pk, drug_order(atc("J01CA04")))) == [("drug-allergy", "critical")]
    person_unmerge(merge=merge, actor="reviewer", reason="different residents after all")
    assert _order(b, survivor.pk, drug_order(atc("J01CA04"))) == []


def test_an_overridden_alert_does_not_come_back_for_the_same_order_but_does_for_another(clinics):
    a, b, _ = clinics
    resident = Resident("r18")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    b.send(resident)
    person = resident.person_id(b)
    (finding,) = _order(b, person, drug_order(atc("J01CA04"), order_id="o-1"))
    assert _order(b, person, drug_order(atc("J01CA04"), order_id="o-1"))[0].key == finding.key  # stable
    alert_override(caller=b.caller, key=finding.key, order=finding.order, reason="皮试阴性", reason_code="skin-test")
    assert _order(b, person, drug_order(atc("J01CA04"), order_id="o-1")) == []
    assert _kinds(_order(b, person, drug_order(atc("J01CA04"), order_id="o-2"))) == [("drug-allergy", "critical")]


def test_evaluating_a_record_takes_a_fixed_number_of_queries(clinics, django_assert_max_num_queries):
    a, b, c = clinics
    resident = Resident("r19")
    for clinic in (a, b, c):
        clinic.send(
            resident,
            *[lab(POTASSIUM, 4.0 + i / 10, "mmol/L", days_ago=i) for i in range(1, 20)],
            prescription(atc("C08CA01"), days_ago=3),
            allergy((ALLERGEN_CLASS_SYSTEM, "PEN")),
        )
    person = resident.person_id(a)
    caller = Caller(source=None, actor="test", practitioner=None)
    record_alerts(caller=caller, person_id=person, now=NOW)  # the rules' and terminology's snapshots
    with django_assert_max_num_queries(5):
        alerts = record_alerts(caller=caller, person_id=person, now=NOW)
    assert alerts.findings and alerts.recent_tests
