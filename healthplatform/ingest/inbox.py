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

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from ehr.bulk import rows_insert_returning_ids
from healthplatform.ingest.models import InboxMessage
from mpi.models import uuid7

log = logging.getLogger("healthplatform.ingest.inbox")

# The inbox row's columns as ``_store`` writes them (every column but the primary key).
_COLUMNS = [
    "uuid",
    "door",
    "source_id",
    "peer",
    "sending_application",
    "sending_facility",
    "control_id",
    "message_type",
    "version",
    "charset",
    "raw",
    "text",
    "sha256",
    "received_at",
    "status",
    "ack_code",
    "error",
    "resends",
    "control_id_reused",
    "patient_key",
    "attempts",
    "claimed_pid",
    "processed_at",
    "replay_of_id",
    "submission_id",
    "produced",
]

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


# MSH-10 as the row keeps it. The duplicate key must be the stored value: with the whole MSH-10, a resend of a
# message whose control id is longer than the column was not found, its insert broke the unique constraint
# and its batch failed every time (never acknowledged again).
_CONTROL_ID_MAX = InboxMessage._meta.get_field("control_id").max_length


def _key(arrival: Arrival) -> tuple[int, str] | None:
    # A message without a registered sender or an MSH-10 cannot be a resend: every one is stored.
    if arrival.source_id is None or not arrival.control_id:
        return None
    return arrival.source_id, arrival.control_id[:_CONTROL_ID_MAX]


def inbox_store(arrivals: list[Arrival]) -> list[Stored]:
    """Stores a batch of arrivals in one transaction and says, for each in order, where it is (``Stored``):
    new rows for new messages, the earlier row for a resend (its ``resends`` counted), a flag for a control id
    reused with other content — also between arrivals of the same batch."""
    try:
        return _store(arrivals)
    except IntegrityError:
        # Another listener process committed one of these messages between our read and our insert: read again.
        return _store(arrivals)


def _earlier(keys: set[tuple[int, str]]) -> list[tuple[int, str, str, int]]:
    """(source, MSH-10, sha256, row id) of the stored messages (replays aside) with these senders' control ids."""
    if not keys:
        return []
    if connection.vendor == "postgresql":
        # Joined from the pairs, so that each is one probe of the (source_id, control_id) index whatever the
        # planner's statistics say: on an inbox analysed while empty, the ORM's filter was planned as a scan of
        # every row of the sender (8.5 ms a batch at 20,000 rows, most of a commit's time: bench/mllp_accept.py).
        sources, control_ids = zip(*sorted(keys), strict=True)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT m.source_id, m.control_id, m.sha256, m.id"
                " FROM unnest(%s::bigint[], %s::text[]) AS k (source_id, control_id)"
                " JOIN ingest_inboxmessage m ON m.source_id = k.source_id AND m.control_id = k.control_id"
                " WHERE m.replay_of_id IS NULL",
                [list(sources), list(control_ids)],
            )
            return cursor.fetchall()
    rows = InboxMessage.objects.filter(
        source_id__in={s for s, _ in keys}, control_id__in={c for _, c in keys}, replay_of__isnull=True
    ).values_list("source_id", "control_id", "sha256", "id")
    return [row for row in rows if (row[0], row[1]) in keys]


@transaction.atomic
def _store(arrivals: list[Arrival]) -> list[Stored]:
    keys = {k for k in map(_key, arrivals) if k is not None}
    known: dict[tuple[int, str], dict[str, int]] = {}  # (source, MSH-10) -> sha256 -> row id
    for source_id, control_id, sha256, pk in _earlier(keys):
        known.setdefault((source_id, control_id), {})[sha256] = pk
    now = timezone.now()
    rows: list[tuple] = []  # the new rows' values, in the order of _COLUMNS
    # Per arrival, in order: the index of its new row in ``rows`` or the id of the earlier row it resends, and
    # whether it is a resend / reuses a control id.
    plan: list[tuple[int, bool, bool]] = []
    pending: dict[tuple[int, str, str], int] = {}  # this batch's new rows by (source, MSH-10, sha256) -> index
    pending_keys: set[tuple[int, str]] = set()
    for arrival in arrivals:
        key = _key(arrival)
        if key is not None:
            earlier = known.get(key, {}).get(arrival.sha256)
            if earlier is not None:
                plan.append((earlier, True, False))
                continue
            twin = pending.get((*key, arrival.sha256))
            if twin is not None:
                plan.append((-1 - twin, True, False))  # negative: an index into this batch's rows
                continue
        reused = key is not None and (bool(known.get(key)) or key in pending_keys)
        if key is not None:
            pending[(*key, arrival.sha256)] = len(rows)
            pending_keys.add(key)
        plan.append((-1 - len(rows), False, reused))
        rows.append(
            (
                uuid7(),
                arrival.door,
                arrival.source_id,
                arrival.peer[:64],
                arrival.sending_application[:180],
                arrival.sending_facility[:180],
                arrival.control_id[:_CONTROL_ID_MAX],
                arrival.message_type[:40],
                arrival.version[:20],
                arrival.charset[:20],
                arrival.raw,
                arrival.text,
                arrival.sha256,
                now,
                arrival.status,
                arrival.ack_code,
                arrival.error,
                0,
                reused,
                arrival.patient_key[:250],
                0,
                None,
                None,
                None,
                None,
                None,
            )
        )
    # COPY on PostgreSQL, no model instances: a multi-row INSERT's statement is parsed anew for every batch
    # size, and building 16 instances cost more than storing them (bench/mllp_accept.py).
    ids = rows_insert_returning_ids(InboxMessage, _COLUMNS, rows)
    plan = [(ids[-1 - target] if target < 0 else target, resend, reused) for target, resend, reused in plan]
    out = [Stored(row, resend, reused) for row, resend, reused in plan]
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
        except Exception as error:
            # The database is down or refused the batch (or the driver a value): no ACK for any of it. The next
            # batch gets a fresh connection. Any error, not only DatabaseError: an uncaught one ended this
            # thread, and with it every later acknowledgement. The error's text can hold a row's values: only
            # its class is logged.
            log.error("inbox commit failed for %d messages: %s", len(batch), type(error).__name__)
            connection.close()
            for _arrival, future in batch:
                future.set_exception(error)
            return
        self.commits += 1
        self.stored += len(batch)
        for (_arrival, future), stored in zip(batch, results, strict=True):
            future.set_result(stored)
