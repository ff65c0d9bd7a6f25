"""Processing the inbox: an ADT or ORU message that was acknowledged becomes, through the write corridor, the
same kind of rows a FHIR feed writes — a registered Patient, its Encounter, its Observations — each pointing
back to the message; applied again, it writes nothing twice; what cannot be mapped or is refused is parked."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from ehr.models import Resource
from healthplatform.ingest.inbox import inbox_store
from healthplatform.ingest.intake import arrival_of, intake_read
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from mpi.identifiers import make_resident_id
from mpi.models import Identity
from tests.fhirapi.client import register_feed

MSH = "MSH|^~\\&|HIS-A|HOSP-A|HIP|REGION|20261203101500||{type}|{control}|P|2.5.1\r"
PID = "PID|1||M-7^^^HOSP-A^MR||赵^敏||19750505|F|||||||||||{resident}\r"
RESIDENT = make_resident_id("440106", dt.date(1975, 5, 5), 2)  # synthetic, with a valid check digit


def received(source, text: str) -> InboxMessage:
    intake = intake_read(text.encode(), default_charset="UTF-8")
    assert not intake.rejected, intake.faults
    stored = inbox_store([arrival_of(intake, door="mllp", peer="test", source_id=source.pk)])[0]
    return InboxMessage.objects.get(pk=stored.inbox_id)


def adt(control: str, trigger: str = "A01") -> str:
    return (
        MSH.format(type=f"ADT^{trigger}^ADT_A01", control=control)
        + f"EVN|{trigger}|20261203101500\r"
        + PID.format(resident=RESIDENT)
        + "PV1|1|I|W3^12^1||||||||||||||||V-55|||||||||||||||||||||||||20261203100000+0800\r"
    )


def oru(control: str, value: str = "6.4", status: str = "F") -> str:
    return (
        MSH.format(type="ORU^R01^ORU_R01", control=control)
        + PID.format(resident=RESIDENT)
        + "OBR|1|P-1|F-1|24323-8^综合代谢^LN|||20261203070000+0800\r"
        + f"OBX|1|NM|2345-7^葡萄糖^LN||{value}|mmol/L|3.9-6.1|H|||{status}|||20261203075500+0800\r"
        + "OBX|2|NM|2160-0^肌酐^LN||80|umol/L|57-111|N|||F|||20261203075500+0800\r"
    )


def test_an_adt_a01_registers_the_patient_in_the_mpi_and_writes_its_encounter(db):
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    row = received(feed.source, adt("C-1"))
    assert inbox_process() == 1
    row.refresh_from_db()
    assert row.status == "processed", row.error
    identity = Identity.objects.get(assigning_authority="HOSP-A", local_id="M-7")
    assert identity.person.resident_id == RESIDENT
    encounter = Resource.objects.get(resource_type="Encounter", identity=identity)
    assert encounter.body["class"]["code"] == "IMP" and encounter.status == "in-progress"
    # Provenance: the fact points back to the message that carried it.
    # Provenance: the fact's submission names the inbox row, which holds the message as it arrived.
    assert encounter.submission.kind == "hl7v2" and encounter.submission.request_line.startswith("HL7 ADT^A01")
    assert encounter.submission.inbox_messages.get() == row and "V-55" in row.text


def test_an_oru_writes_one_observation_per_obx_and_a_correction_is_a_new_version_not_a_second_fact(db):
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, oru("R-1"))
    received(feed.source, oru("R-2", value="5.9", status="C"))
    assert inbox_process() == 2
    assert set(InboxMessage.objects.values_list("status", flat=True)) == {"processed"}
    glucose = Resource.objects.filter(resource_type="Observation", body__code__coding__0__code="2345-7")
    assert glucose.count() == 1
    fact = glucose.get()
    assert fact.version_id == 2 and fact.body["valueQuantity"]["value"] == 5.9 and fact.body["status"] == "corrected"
    assert Resource.objects.filter(resource_type="Observation").count() == 2


def test_a_message_applied_again_after_a_lost_worker_writes_nothing_twice(db):
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    row = received(feed.source, oru("R-1"))
    inbox_process()
    before = Resource.objects.count()
    InboxMessage.objects.filter(pk=row.pk).update(status="received")  # as if the worker died before its commit
    inbox_process()
    assert Resource.objects.count() == before


def test_a_message_without_what_its_type_maps_and_one_the_corridor_refuses_are_parked_and_the_rest_flows(db):
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    vxu = received(feed.source, MSH.format(type="VXU^V04^VXU_V04", control="V-1") + PID.format(resident=RESIDENT))
    no_mrn = received(feed.source, MSH.format(type="ADT^A08^ADT_A01", control="A-8") + "PID|1||\r")
    good = received(feed.source, adt("C-9"))
    assert inbox_process() == 3
    for row in (vxu, no_mrn, good):
        row.refresh_from_db()
    assert vxu.status == "parked" and "RXA" in vxu.error
    assert no_mrn.status == "parked" and "PID" in no_mrn.error
    assert good.status == "processed"


def test_the_management_command_drains_the_inbox(db):
    from django.core.management import call_command

    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, adt("C-1"))
    received(feed.source, oru("R-1"))
    call_command("inbox_process")
    assert set(InboxMessage.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.django_db(transaction=True)
def test_three_workers_in_parallel_apply_one_patients_updates_in_the_order_received():
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("concurrent workers need PostgreSQL (SQLite serialises all writers)")
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    patients, updates = 1, 24
    for n in range(updates):
        for p in range(patients):
            text = (
                MSH.format(type="ADT^A08^ADT_A01", control=f"U-{p}-{n}")
                + f"EVN|A08|20261203101500\rPID|1||P-{p}^^^HOSP-A^MR||患者{p}^第{n}次||19750505|F\r"
            )
            received(feed.source, text)
    errors = []

    def worker():
        try:
            inbox_process(limit=1000)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert set(InboxMessage.objects.values_list("status", flat=True)) == {"processed"}
    for p in range(patients):
        patient = Resource.objects.get(resource_type="Patient", identity__local_id=f"P-{p}")
        # The last update received is the one that stands: no earlier A08 overtook a later one.
        assert patient.body["name"][0]["text"] == f"患者{p}第{updates - 1}次"
        assert patient.version_id == updates


def test_a_message_lost_max_attempts_times_is_parked_and_its_patients_next_message_flows(db):
    from healthplatform.ingest.processing import MAX_ATTEMPTS

    feed = register_feed(name="HIS-A", facility="HOSP-A")
    poison = received(feed.source, adt("C-1"))
    # As if MAX_ATTEMPTS workers had died on it, each attempt counted before it started.
    InboxMessage.objects.filter(pk=poison.pk).update(attempts=MAX_ATTEMPTS)
    after = received(feed.source, oru("R-1"))
    assert inbox_process() == 2
    poison.refresh_from_db()
    after.refresh_from_db()
    assert poison.status == "parked" and f"lost {MAX_ATTEMPTS} times" in poison.error
    assert after.status == "processed"
    assert not Resource.objects.filter(resource_type="Encounter").exists()  # the poison was not tried again
