"""The error queue's operations: a parked message replayed once its cause is fixed goes through the same
processing and writes nothing twice; a skip needs a reason; the retention never prunes what waits or is
parked; the monitor's numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from ehr.models import Resource, ResourceVersion, Submission
from healthplatform.ingest.models import InboxAction, InboxMessage
from healthplatform.ingest.operations import (
    InboxOperationRefused,
    inbox_monitor,
    inbox_prune,
    inbox_replay,
    inbox_skip,
    message_resources,
    message_segments,
)
from healthplatform.ingest.processing import inbox_process
from registry.models import UnmappedCode
from tests.fhirapi.client import register_feed
from tests.ingest.test_processing import adt, oru, received


@pytest.fixture
def feed(db):
    return register_feed(name="HIS-A", facility="HOSP-A")


def parked_adt(feed, control: str = "C-1") -> InboxMessage:
    """An ADT^A01 parked for a real cause: the feed was registered for results only (its scopes refuse the
    Patient and Encounter writes)."""
    feed.source.fhir_scopes = "system/Observation.write"
    feed.source.save(update_fields=["fhir_scopes"])
    row = received(feed.source, adt(control))
    inbox_process()
    row.refresh_from_db()
    assert row.status == "parked" and row.error, row.status
    return row


def test_a_parked_message_replayed_after_its_cause_is_fixed_is_processed_and_leaves_the_queue(feed):
    row = parked_adt(feed)
    assert not Resource.objects.exists()
    feed.source.fhir_scopes = ""  # the registry fixed: every scope
    feed.source.save(update_fields=["fhir_scopes"])

    replay = inbox_replay(message=row, actor="admin:ops")
    assert (replay.status, replay.replay_of_id, replay.patient_key) == ("received", row.pk, row.patient_key)
    assert bytes(replay.raw) == bytes(row.raw) and replay.uuid != row.uuid
    assert inbox_process() == 1
    replay.refresh_from_db()
    row.refresh_from_db()
    assert replay.status == "processed", replay.error
    assert row.status == "replayed" and row.error  # its error is kept: why it had parked
    assert {r.resource_type for r in Resource.objects.all()} == {"Patient", "Encounter"}
    assert {p.resource_type for p in message_resources(replay)} == {"Patient", "Encounter"}
    action = InboxAction.objects.get()
    assert (action.actor, action.action, action.message_uuid, action.replay_uuid) == (
        "admin:ops",
        "replay",
        row.uuid,
        replay.uuid,
    )
    # A replayed row is not replayed again (its replay is the one to act on).
    with pytest.raises(InboxOperationRefused):
        inbox_replay(message=row, actor="admin:ops")


def test_a_processed_message_replayed_writes_no_duplicate_fact(feed):
    row = received(feed.source, oru("R-1"))
    inbox_process()
    row.refresh_from_db()
    assert row.status == "processed"
    before = (Resource.objects.count(), sorted(Resource.objects.values_list("fhir_id", flat=True)))
    versions = ResourceVersion.objects.count()
    replay = inbox_replay(message=row, actor="admin:ops")
    inbox_process()
    replay.refresh_from_db()
    row.refresh_from_db()
    assert replay.status == "processed" and row.status == "processed"
    assert (Resource.objects.count(), sorted(Resource.objects.values_list("fhir_id", flat=True))) == before
    assert Resource.objects.filter(resource_type="Observation").count() == 2
    assert ResourceVersion.objects.count() == versions, "an identical update should be no new version"


def test_replay_keeps_the_patients_order_behind_a_waiting_message(feed):
    first = received(feed.source, oru("R-1"))
    inbox_process()
    first.refresh_from_db()
    waiting = received(feed.source, oru("R-2", value="5.9", status="C"))
    replay = inbox_replay(message=first, actor="admin:ops")
    assert replay.pk > waiting.pk and replay.patient_key == waiting.patient_key


def test_a_waiting_or_rejected_message_is_not_replayed(feed):
    row = received(feed.source, adt("C-1"))
    with pytest.raises(InboxOperationRefused, match="received"):
        inbox_replay(message=row, actor="admin:ops")
    InboxMessage.objects.filter(pk=row.pk).update(status="rejected")
    with pytest.raises(InboxOperationRefused, match="rejected"):
        inbox_replay(message=row, actor="admin:ops")
    assert InboxMessage.objects.count() == 1 and not InboxAction.objects.exists()


def test_a_skip_needs_a_reason_and_only_a_waiting_or_parked_message_is_skipped(feed):
    row = parked_adt(feed)
    with pytest.raises(InboxOperationRefused, match="reason"):
        inbox_skip(message=row, actor="admin:ops", reason="  ")
    row.refresh_from_db()
    assert row.status == "parked"
    inbox_skip(message=row, actor="admin:ops", reason="test message sent by the vendor")
    row.refresh_from_db()
    assert row.status == "skipped" and row.processed_at is not None and row.error
    assert InboxAction.objects.get().reason == "test message sent by the vendor"
    with pytest.raises(InboxOperationRefused, match="skipped"):
        inbox_skip(message=row, actor="admin:ops", reason="again")
    # A skipped message is not taken by processing.
    assert inbox_process() == 0


def _age(row: InboxMessage, days: int) -> None:
    InboxMessage.objects.filter(pk=row.pk).update(received_at=timezone.now() - dt.timedelta(days=days))


def test_prune_deletes_old_final_rows_and_keeps_parked_waiting_and_recent_ones(feed):
    processed = received(feed.source, oru("R-1"))
    inbox_process()
    processed.refresh_from_db()
    submission_id = processed.submission_id
    assert submission_id is not None
    parked = parked_adt(feed, "C-2")
    feed.source.fhir_scopes = ""
    feed.source.save(update_fields=["fhir_scopes"])
    waiting = received(feed.source, adt("C-3"))
    recent = received(feed.source, oru("R-4"))
    recent_status = InboxMessage.objects.filter(pk=recent.pk)
    recent_status.update(status="processed")
    for row in (processed, parked, waiting):
        _age(row, 100)

    pruned = inbox_prune(older_than=dt.timedelta(days=90))
    assert (pruned.deleted, pruned.kept_parked, pruned.kept_waiting) == (1, 1, 1)
    assert set(InboxMessage.objects.values_list("pk", flat=True)) == {parked.pk, waiting.pk, recent.pk}
    # The facts keep their provenance row; only the message's bytes went.
    assert Submission.objects.filter(pk=submission_id).exists()
    assert Resource.objects.filter(submission_id=submission_id).count() == 4  # the Patient, two OBX, the OBR report


def test_prune_keeps_a_replayed_row_while_its_replay_is_kept_and_takes_both_once_both_are_old(feed):
    original = parked_adt(feed)
    feed.source.fhir_scopes = ""
    feed.source.save(update_fields=["fhir_scopes"])
    replay = inbox_replay(message=original, actor="admin:ops")
    inbox_process()
    _age(original, 100)
    assert inbox_prune(older_than=dt.timedelta(days=90)).deleted == 0  # its replay is recent: kept with it
    assert InboxMessage.objects.filter(pk=original.pk).exists()
    _age(replay, 95)
    assert inbox_prune(older_than=dt.timedelta(days=90), batch_size=1).deleted == 2
    assert not InboxMessage.objects.exists()
    assert InboxAction.objects.filter(message_uuid=original.uuid).exists()  # the action record outlives the rows


def test_the_prune_command_uses_the_retention_setting_and_says_what_it_kept(feed, settings, capsys):
    parked = parked_adt(feed)
    done = received(feed.source, oru("R-1"))
    InboxMessage.objects.filter(pk=done.pk).update(status="processed")
    _age(parked, 40)
    _age(done, 40)
    settings.HL7_INBOX_RETENTION_DAYS = 60
    call_command("inbox_prune")
    assert InboxMessage.objects.count() == 2
    call_command("inbox_prune", "--days", "30")
    out = capsys.readouterr().out
    assert set(InboxMessage.objects.values_list("pk", flat=True)) == {parked.pk}
    assert "1 deleted" in out and "1 parked" in out


def test_the_monitor_counts_per_sender_type_and_status_with_the_unmapped_rate_and_the_oldest_waiting(feed):
    other = register_feed(name="LIS-B", facility="HOSP-B")
    received(feed.source, oru("R-1"))
    received(feed.source, oru("R-2"))
    inbox_process()
    parked_adt(feed, "C-9")
    waiting = received(other.source, oru("R-1"))
    _age(waiting, 2)
    UnmappedCode.objects.create(source_system=feed.source, system="urn:local", code="X1", count=3)
    UnmappedCode.objects.create(source_system=feed.source, system="urn:local", code="X2", count=1)

    monitor = inbox_monitor()
    lines = {line.name: line for line in monitor.senders}
    assert lines["HIS-A"].counts == {"processed": 2, "parked": 1}
    assert lines["LIS-B"].counts == {"received": 1}
    assert (lines["HIS-A"].unmapped_codes, lines["HIS-A"].unmapped_occurrences) == (2, 4)
    assert lines["HIS-A"].unmapped_rate == 2.0 and lines["LIS-B"].unmapped_rate is None
    assert dict(monitor.types) == {"ADT^A01^ADT_A01": {"parked": 1}, "ORU^R01^ORU_R01": {"processed": 2, "received": 1}}
    assert (monitor.waiting, monitor.parked) == (1, 1)
    assert dt.timedelta(days=2) <= monitor.oldest_waiting_age < dt.timedelta(days=2, minutes=5)
    # A window counts what was received in it; the waiting head is whatever its age.
    recent = inbox_monitor(since=timezone.now() - dt.timedelta(days=1))
    assert {line.name: line.counts for line in recent.senders} == {"HIS-A": {"processed": 2, "parked": 1}}
    assert recent.waiting == 1


def test_the_monitor_is_a_fixed_number_of_queries(feed, django_assert_max_num_queries):
    for n in range(5):
        received(feed.source, oru(f"R-{n}"))
    with django_assert_max_num_queries(6):
        inbox_monitor()


def test_the_segments_are_read_by_the_intakes_tokenizer(feed):
    row = received(feed.source, oru("R-1"))
    fields = message_segments(row)
    assert [f.segment for f in fields if f.number == 1 and f.segment != "MSH"] == ["PID", "OBR", "OBX", "OBX"]
    assert any(f.segment == "MSH" and f.number == 10 and f.value == "R-1" for f in fields)
    assert any(f.segment == "OBX" and f.number == 3 and f.value.startswith("2345-7^") for f in fields)
    assert ResourceVersion.objects.count() == 0 and message_resources(row) == []
