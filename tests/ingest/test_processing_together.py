"""A batch of one source's messages written together (``transactions_apply``): one corridor transaction for the
batch, each message still its own provenance — its own submission, its facts pointing to it, its own outcome and
application ACK — and a message the corridor refuses parked alone, the others written as if it had not been
there. PostgreSQL: SQLite's processing claims one message at a time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from ehr.models import Resource, Submission
from healthplatform.ingest.models import ApplicationAck, InboxMessage
from healthplatform.ingest.processing import inbox_process
from mpi.identifiers import make_resident_id
from tests.fhirapi.client import register_feed
from tests.ingest.test_processing import received
from tests.ingest.v2samples import msh, pid, pv1

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's processing claims one message at a time: nothing is written together")


def admission(control: str, n: int, *, visit: str | None = None, enhanced: bool = False) -> str:
    """ADT^A01 of patient ``n`` (MRN M-n, its own resident id) admitted on visit ``visit`` (V-n)."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=400 * n)
    return (
        msh("ADT^A01^ADT_A01", control, accept="AL" if enhanced else "", application="AL" if enhanced else "")
        + "EVN|A01|20261203101500+0800\r"
        + pid(f"M-{n}", name=f"钱^{'甲乙丙丁戊己庚辛'[n % 8]}", birth=born.strftime("%Y%m%d"), resident=resident(n))
        + pv1(visit or f"V-{n}")
    )


def resident(n: int) -> str:
    return make_resident_id("440106", dt.date(1950, 1, 1) + dt.timedelta(days=400 * n), 3)


def test_one_sources_messages_are_written_together_each_its_own_provenance():
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    rows = [received(feed.source, admission(f"T-{n}", n)) for n in range(1, 6)]
    assert inbox_process() == 5
    submissions = set()
    for n, row in enumerate(rows, start=1):
        row.refresh_from_db()
        assert row.status == "processed", row.error
        encounter = Resource.objects.get(resource_type="Encounter", identity__local_id=f"M-{n}")
        patient = Resource.objects.get(resource_type="Patient", identity=encounter.identity)
        # Each fact points to its own message's submission, which the message's row names.
        assert encounter.submission_id == patient.submission_id == row.submission_id
        assert row.submission.request_line == f"HL7 ADT^A01^ADT_A01 {row.control_id}"
        assert {p["type"] for p in row.produced} == {"Patient", "Encounter"}
        assert {p["pk"] for p in row.produced} == {encounter.pk, patient.pk}
        submissions.add(row.submission_id)
    assert len(submissions) == 5
    # Written in one transaction: the five submissions were made by one insert, at one instant.
    assert Submission.objects.filter(pk__in=submissions).values("received_at").distinct().count() == 1


def test_a_message_the_corridor_refuses_is_parked_alone_and_the_others_are_written():
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, admission("T-0", 1))
    assert inbox_process() == 1
    good_before = received(feed.source, admission("T-1", 2, enhanced=True))
    # Patient 3 claims patient 1's visit: the corridor refuses it (a fact cannot move to another patient).
    bad = received(feed.source, admission("T-2", 3, visit="V-1", enhanced=True))
    good_after = received(feed.source, admission("T-3", 4, enhanced=True))
    assert inbox_process() == 3
    for row in (good_before, bad, good_after):
        row.refresh_from_db()
    assert bad.status == "parked" and "cannot move a fact to another patient" in bad.error
    assert bad.submission_id is None and not bad.produced
    for row in (good_before, good_after):
        assert row.status == "processed", row.error
        assert Resource.objects.filter(submission_id=row.submission_id, resource_type="Encounter").count() == 1
    assert sorted(e.body["identifier"][0]["value"] for e in Resource.objects.filter(resource_type="Encounter")) == [
        "V-1",
        "V-2",
        "V-4",
    ]
    assert Resource.objects.get(resource_type="Encounter", identifier_value="V-1").identity.local_id == "M-1"
    # Nothing of the refused attempt remains: no submission without facts, the parked one's identity not written.
    assert not Submission.objects.filter(kind="hl7v2").exclude(inbox_messages__isnull=False).exists()
    acks = {a.message_id: a.code for a in ApplicationAck.objects.all()}
    assert acks == {good_before.pk: "AA", bad.pk: "AE", good_after.pk: "AA"}
    assert InboxMessage.objects.filter(status="received").count() == 0
