"""The alerts of a record read once (the patient page hands its read of the whole record to its alerts panel)
are the alerts of a record read apart: the same findings, evidence and tests inside their window, in the same
order, at the edges of the windows and the look-back period — with none of the facts read again."""

from __future__ import annotations

import datetime as dt
import warnings

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ehr.selectors import facts_since
from healthplatform.alerts.evaluate import record_alerts
from healthplatform.record import person_record
from registry.codes import ALLERGEN_CLASS_SYSTEM
from tests.alerts.scenario import NOW, Resident, allergy, atc, lab, prescription, region

pytestmark = pytest.mark.django_db
POTASSIUM, GLUCOSE = "2823-3", "2345-7"


def shape(found) -> list:
    def one(f):
        return (f.kind, f.severity, f.key, f.summary, [(e.reference, e.when, e.submission) for e in f.evidence])

    return [one(f) for f in found.findings] + [one(f) for f in found.recent_tests]


def test_the_alerts_of_a_record_already_read_are_the_alerts_of_a_record_read_apart():
    a, b, c = region()
    resident = Resident("once", sequence=3)
    a.send(
        resident,
        allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), criticality="high"),
        allergy(None, text="海鲜过敏"),
        lab(POTASSIUM, 4.1, "mmol/L", days_ago=6.9, low=3.5, high=5.3),  # inside the 7-day window
        lab(POTASSIUM, 4.0, "mmol/L", days_ago=7.1),  # just outside
        lab(GLUCOSE, 5.2, "mmol/L", days_ago=29),
        prescription(atc("A10BA02"), days_ago=80),
    )
    b.send(resident, prescription(atc("J01CA04"), days_ago=2), prescription(atc("A10BA02"), days_ago=89))
    c.send(resident, prescription(atc("A10BA02"), days_ago=120), lab(GLUCOSE, 6.0, "mmol/L", days_ago=31))
    caller, person_id = a.caller, resident.person_id(a)

    apart = record_alerts(caller=caller, person_id=person_id, now=NOW)
    record = person_record(caller=caller, patient_id=str(_golden(person_id)), count=10_000)
    with CaptureQueriesContext(connection) as read_once:
        once = record_alerts(caller=caller, person_id=person_id, now=NOW, record=record)

    assert shape(once) == shape(apart)
    assert {f.kind for f in apart.findings} >= {"drug-allergy", "duplicate-medication"}
    assert apart.recent_tests, "the window's tests are listed"
    assert not any("ehr_resource" in q["sql"] for q in read_once.captured_queries)


def test_a_record_cut_short_is_read_again():
    a, _b, _c = region()
    resident = Resident("cut", sequence=5)
    a.send(resident, *[lab(POTASSIUM, 4.0 + n / 10, "mmol/L", days_ago=n) for n in range(1, 4)])
    caller, person_id = a.caller, resident.person_id(a)
    record = person_record(caller=caller, patient_id=str(_golden(person_id)), count=2)
    assert record.next_after is not None

    with CaptureQueriesContext(connection) as reads:
        found = record_alerts(caller=caller, person_id=person_id, now=NOW, record=record)

    assert shape(found) == shape(record_alerts(caller=caller, person_id=person_id, now=NOW))
    assert any("ehr_resource" in q["sql"] for q in reads.captured_queries)


def _golden(person_id: int):
    from mpi.models import Person

    return Person.objects.get(pk=person_id).uuid


def test_a_cutoff_without_a_time_zone_is_read_in_the_current_one_on_either_database():
    # The ORM reads a naive cutoff (or a day) in the current time zone (Asia/Shanghai, with a warning); the raw
    # statement on PostgreSQL passed it as a timestamp that the session's UTC turned into one 8 hours later.
    a, _b, _c = region()
    resident = Resident("naive", sequence=7)
    a.send(resident, lab(POTASSIUM, 4.2, "mmol/L", days_ago=2 - 4 / 24), lab(POTASSIUM, 4.3, "mmol/L", days_ago=2.2))
    person_id = resident.person_id(a)
    cutoff = timezone.localtime(NOW - dt.timedelta(days=2))
    aware = [row.pk for row in facts_since(person_id, {"Observation": cutoff})]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        naive = [row.pk for row in facts_since(person_id, {"Observation": cutoff.replace(tzinfo=None)})]
        day = [row.pk for row in facts_since(person_id, {"Observation": cutoff.date()})]
    midnight = timezone.make_aware(dt.datetime.combine(cutoff.date(), dt.time()))
    assert len(aware) == 1 and naive == aware
    assert day == [row.pk for row in facts_since(person_id, {"Observation": midnight})]
