"""The HL7 v2 intake's durable inbox: store, then acknowledge, with the commits of every connection grouped.

MLLP is one message in flight per connection: a sender waits for the ACK of a message before it sends the next
(docs/hl7v2-intake-research.md §1.3). An AA or CA tells the sender it may forget the message, so the message's
row must be committed before its ACK is written. One commit per message would cap the intake at this machine's
~4,200 single-row commits/s, shared by every connection; so the listener hands each arrival to one committer
thread (``GroupCommit``), which commits together whatever arrived while the previous commit was running
(classic group commit: no timer, so a lone message waits for nobody) and resolves each arrival's future only
after the commit that holds its row has returned.

Resends are normal HL7 v2 traffic (a lost ACK): the same sender, MSH-10 and bytes are acknowledged again and
stored once (``resends`` counts them); the same sender and MSH-10 with other bytes is stored and flagged
(``control_id_reused``). A replay from the admin is a new row naming the one it replays.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from dataclasses import dataclass

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from healthplatform.ingest.models import InboxMessage

log = logging.getLogger("healthplatform.ingest.inbox")

# The most arrivals one commit holds: bounds a commit's time (and a batch lost to a failing commit) at load.
MAX_BATCH = 1000


@dataclass
class Arrival:
    """A message as a door received it, with what the tokenizer read from its MSH before the commit."""

    door: str
    raw: bytes
    sha256: str
    source_id: int | None = None
    peer: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    control_id: str = ""
    message_type: str = ""
    version: str = ""
    charset: str = ""
    text: str = ""
    patient_key: str = ""
    status: str = InboxMessage.Status.RECEIVED
    ack_code: str = ""
    error: str = ""


@dataclass(frozen=True)
class Stored:
    """Where an arrival is now: its inbox row, and whether it was a resend of a message already stored (then the
    row is the earlier message's) or reused an earlier message's control id with other content."""

    inbox_id: int
    resend: bool = False
    control_id_reused: bool = False


def _key(arrival: Arrival) -> tuple[int, str] | None:
    # A message without a registered sender or an MSH-10 cannot be a resend: every one is stored.
    if arrival.source_id is None or not arrival.control_id:
        return None
    return arrival.source_id, arrival.control_id


def inbox_store(arrivals: list[Arrival]) -> list[Stored]:
    """Stores a batch of arrivals in one transaction and says, for each in order, where it is (``Stored``):
    new rows for new messages, the earlier row for a resend (its ``resends`` counted), a flag for a control id
    reused with other content — also between arrivals of the same batch."""
    try:
        return _store(arrivals)
    except IntegrityError:
        # Another listener process committed one of these messages between our read and our insert: read again.
        return _store(arrivals)


@transaction.atomic
def _store(arrivals: list[Arrival]) -> list[Stored]:
    keys = {k for k in map(_key, arrivals) if k is not None}
    known: dict[tuple[int, str], dict[str, int]] = {}  # (source, MSH-10) -> sha256 -> row id
    if keys:
        wanted = Q()
        for source_id, control_id in keys:
            wanted |= Q(source_id=source_id, control_id=control_id)
        rows = InboxMessage.objects.filter(wanted, replay_of__isnull=True).values_list(
            "source_id", "control_id", "sha256", "id"
        )
        for source_id, control_id, sha256, pk in rows:
            known.setdefault((source_id, control_id), {})[sha256] = pk
    now = timezone.now()
    new: list[InboxMessage] = []
    # Per arrival, in order: its row (new, or the earlier one it resends), and whether it is a resend / reuse.
    plan: list[tuple[InboxMessage | int, bool, bool]] = []
    pending: dict[tuple[int, str, str], InboxMessage] = {}  # this batch's new rows by (source, MSH-10, sha256)
    for arrival in arrivals:
        key = _key(arrival)
        if key is not None:
            earlier = known.get(key, {}).get(arrival.sha256) or pending.get((*key, arrival.sha256))
            if earlier is not None:
                plan.append((earlier, True, False))
                continue
        reused = key is not None and (bool(known.get(key)) or any(p[:2] == key for p in pending))
        row = InboxMessage(
            door=arrival.door,
            source_id=arrival.source_id,
            peer=arrival.peer[:64],
            sending_application=arrival.sending_application[:180],
            sending_facility=arrival.sending_facility[:180],
            control_id=arrival.control_id[:199],
            message_type=arrival.message_type[:40],
            version=arrival.version[:20],
            charset=arrival.charset[:20],
            raw=arrival.raw,
            text=arrival.text,
            sha256=arrival.sha256,
            received_at=now,
            status=arrival.status,
            ack_code=arrival.ack_code,
            error=arrival.error,
            patient_key=arrival.patient_key[:250],
            control_id_reused=reused,
        )
        new.append(row)
        if key is not None:
            pending[(*key, arrival.sha256)] = row
        plan.append((row, False, reused))
    InboxMessage.objects.bulk_create(new)
    out = [Stored(row if isinstance(row, int) else row.pk, resend, reused) for row, resend, reused in plan]
    resends: dict[int, int] = {}
    for stored in out:
        if stored.resend:
            resends[stored.inbox_id] = resends.get(stored.inbox_id, 0) + 1
    for pk, count in resends.items():
        InboxMessage.objects.filter(pk=pk).update(resends=F("resends") + count)
    return out


class GroupCommit:
    """One committer thread for a listener process: ``submit`` an arrival from any thread (or ``store`` it from
    the event loop) and get its ``Stored`` once the commit holding its row has returned — or the commit's
    error, in which case nothing of that batch is stored and no ACK may be sent (the sender resends)."""

    def __init__(self, *, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbox-group-commit", daemon=True)
        self._stopping = threading.Event()
        self.commits = 0  # for the monitor and the benchmark: messages / commits is the batching achieved
        self.stored = 0
        self._thread.start()

    def submit(self, arrival: Arrival) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if self._stopping.is_set():
            future.set_exception(RuntimeError("the inbox is closing"))
            return future
        self._queue.put((arrival, future))
        return future

    async def store(self, arrival: Arrival) -> Stored:
        import asyncio

        return await asyncio.wrap_future(self.submit(arrival))

    def close(self, timeout: float = 10.0) -> None:
        """Commits what was submitted, then stops the thread."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = []
            stop = item is None
            if item is not None:
                batch.append(item)
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    continue
                batch.append(item)
            if batch:
                self._commit(batch)
            if stop:
                connection.close()  # this thread's own connection
                return

    def _commit(self, batch) -> None:
        try:
            results = inbox_store([arrival for arrival, _future in batch])
        except DatabaseError as error:
            # The database is down or refused the batch: no ACK for any of it. The next batch gets a fresh
            # connection. The error's text can hold a row's values: only its class is logged.
            log.error("inbox commit failed for %d messages: %s", len(batch), type(error).__name__)
            connection.close()
            for _arrival, future in batch:
                future.set_exception(error)
            return
        self.commits += 1
        self.stored += len(batch)
        for (_arrival, future), stored in zip(batch, results, strict=True):
            future.set_result(stored)
