"""The durable inbox: a message's row is committed before its future resolves (the listener acknowledges only
then); the commits of concurrent connections are grouped; a resend is stored once, a reused control id with
other content is stored and flagged, a replay is not a duplicate."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection

from healthplatform.ingest.inbox import Arrival, GroupCommit, inbox_store
from healthplatform.ingest.models import InboxMessage
from tests.fhirapi.client import register_feed


def arrival(source, control_id: str, body: bytes = b"MSH|^~\\&|...", **fields) -> Arrival:
    fields.setdefault("message_type", "ADT^A01^ADT_A01")
    return Arrival(
        door="mllp",
        raw=body,
        sha256=hashlib.sha256(body).hexdigest(),
        source_id=source.pk if source else None,
        control_id=control_id,
        **fields,
    )


@pytest.fixture
def source(db):
    return register_feed(name="HIS-A", facility="HOSP-A").source


def test_resend_with_same_control_id_is_acked_and_stored_once(source):
    first = inbox_store([arrival(source, "C-1")])[0]
    again = inbox_store([arrival(source, "C-1")])[0]
    assert again.resend and again.inbox_id == first.inbox_id and not first.resend
    assert InboxMessage.objects.count() == 1
    assert InboxMessage.objects.get().resends == 1


def test_a_resend_inside_one_batch_is_stored_once_too(source):
    out = inbox_store([arrival(source, "C-1"), arrival(source, "C-1"), arrival(source, "C-2")])
    assert [s.resend for s in out] == [False, True, False]
    assert out[0].inbox_id == out[1].inbox_id != out[2].inbox_id
    assert InboxMessage.objects.count() == 2
    assert InboxMessage.objects.get(pk=out[0].inbox_id).resends == 1


def test_a_control_id_reused_with_other_content_is_stored_and_flagged(source):
    first = inbox_store([arrival(source, "C-1", b"one")])[0]
    other, same_batch = inbox_store([arrival(source, "C-1", b"two"), arrival(source, "C-1", b"three")])
    assert not first.control_id_reused and other.control_id_reused and same_batch.control_id_reused
    assert not other.resend and InboxMessage.objects.count() == 3
    assert list(InboxMessage.objects.order_by("pk").values_list("control_id_reused", flat=True)) == [
        False,
        True,
        True,
    ]


def test_the_same_control_id_from_two_senders_is_two_messages(source):
    other = register_feed(name="LIS-B", facility="HOSP-B").source
    a, b = inbox_store([arrival(source, "C-1"), arrival(other, "C-1")])
    assert a.inbox_id != b.inbox_id and not (a.resend or b.resend or a.control_id_reused or b.control_id_reused)


def test_messages_of_unknown_senders_or_without_control_id_are_each_stored(source):
    rejected = [arrival(None, "C-1", status="rejected", ack_code="AR"), arrival(None, "C-1", status="rejected")]
    out = inbox_store([*rejected, arrival(source, ""), arrival(source, "")])
    assert len({s.inbox_id for s in out}) == 4 and not any(s.resend for s in out)


def test_a_replay_from_the_admin_is_not_a_duplicate(source):
    first = inbox_store([arrival(source, "C-1")])[0]
    original = InboxMessage.objects.get(pk=first.inbox_id)
    replay = InboxMessage.objects.create(
        door=original.door,
        source=source,
        control_id=original.control_id,
        raw=bytes(original.raw),
        sha256=original.sha256,
        replay_of=original,
    )
    assert InboxMessage.objects.filter(control_id="C-1").count() == 2
    # A resend after the replay is still the original's resend.
    assert inbox_store([arrival(source, "C-1")])[0].inbox_id == original.pk != replay.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_connections_are_committed_together_and_each_future_resolves_after_its_commit():
    source = register_feed(name="HIS-A", facility="HOSP-A").source
    committer = GroupCommit()
    seen_committed = []
    try:
        futures = []
        start = threading.Barrier(20)

        def sender(n: int) -> None:
            start.wait()
            try:
                for i in range(25):
                    future = committer.submit(arrival(source, f"C-{n}-{i}", f"body {n} {i}".encode()))
                    stored = future.result(timeout=30)
                    # What the listener relies on: when the future resolves, the row is visible to anyone.
                    seen_committed.append(InboxMessage.objects.filter(pk=stored.inbox_id).exists())
                    futures.append(stored)
            finally:
                connection.close()

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        committer.close()
    assert len(futures) == 500 and all(seen_committed)
    assert InboxMessage.objects.count() == 500
    assert committer.stored == 500 and committer.commits < 500  # some commits held several connections' messages


@pytest.mark.django_db(transaction=True)
def test_a_failing_commit_resolves_every_future_of_its_batch_with_the_error_and_stores_none():
    source = register_feed(name="HIS-A", facility="HOSP-A").source
    committer = GroupCommit()
    try:
        bad = arrival(source, "C-1", message_type="X" * 41)  # cut to the column: stored
        ok = committer.submit(bad).result(timeout=30)
        assert InboxMessage.objects.filter(pk=ok.inbox_id).exists()
        broken = arrival(source, "C-2", b"\x00")
        broken.text = "NUL \x00 cannot be stored in a PostgreSQL text column"
        future = committer.submit(broken)
        error = future.exception(timeout=30)
    finally:
        committer.close()
    if connection.vendor == "postgresql":
        assert error is not None and not InboxMessage.objects.filter(control_id="C-2").exists()
    else:  # SQLite stores a NUL
        assert error is None


def test_the_group_commit_writes_every_column_of_the_inbox_row():
    # inbox._store writes rows as tuples (COPY, no model instances): a column added to the model must be added
    # there too, or COPY would leave it to the database's default, which Django does not set.
    from healthplatform.ingest import inbox

    columns = {f.attname for f in InboxMessage._meta.concrete_fields} - {"id"}
    assert sorted(inbox._COLUMNS) == sorted(columns)
