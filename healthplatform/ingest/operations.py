"""The error queue's operations (issue 17, "Error queue and feed monitor"): what an operator does to the HL7 v2
inbox — replay a message through the same pipeline, skip a poison one with a reason — what the retention
prunes, and the reads the admin's pages show (the feed monitor, a message's segments, what it produced).

A replay is a new inbox row with the same bytes and patient key, naming the row it replays (``replay_of``):
processing takes it like any other received message, in its patient's order, through the same corridor, so
a message that failed for a cause since fixed (a scope, a registry entry, a code map) now goes through, and a
message applied twice writes nothing twice (every resource is a conditional update on its identifiers).
The original stays as it was, with its error; a parked original becomes ``replayed`` so that it leaves the
queue. Each action is one row of ``InboxAction`` (who, what, which row's uuid, the reason) and one log line,
neither with patient data.

Retention (``inbox_prune``): rows whose outcome is final (processed, skipped, replayed, rejected) are deleted
after the period; received and parked rows never are (the command says how many parked ones it kept). The
archive's provenance row (``ehr.Submission``) that a processed message names is not deleted with it: the facts
keep their provenance, only the message's bytes go. A row with a replay still kept is kept too (the replay
names it): chains go newest first.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Sum
from django.utils import timezone

from ehr.models import Resource
from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.models import InboxAction, InboxMessage
from registry.models import SourceSystem, UnmappedCode

log = logging.getLogger("healthplatform.ingest.operations")

Status = InboxMessage.Status
# Rows whose outcome is final: the retention deletes them after its period.
PRUNABLE = (Status.PROCESSED, Status.SKIPPED, Status.REPLAYED, Status.REJECTED)
# The columns a replay copies: the message as it arrived and what its MSH said.
_REPLAYED_COLUMNS = (
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
    "patient_key",
)


class InboxOperationRefused(Exception):
    """An operator action the row's state does not allow; the message says why (no patient data)."""


def _locked(message: InboxMessage) -> InboxMessage:
    # The row as it is now, locked: a worker that claimed it holds it until its commit, and is waited for.
    return InboxMessage.objects.select_for_update().get(pk=message.pk)


def inbox_replay(*, message: InboxMessage, actor: str) -> InboxMessage:
    """Queues ``message`` (parked, processed or skipped) for processing again, as a new received row naming
    it; a parked original becomes ``replayed``. Returns the new row. The drain is queued once committed."""
    with transaction.atomic():
        row = _locked(message)
        if not row.is_replayable():
            raise InboxOperationRefused(
                f"inbox message {row.uuid} is {row.status}: only parked, processed or skipped messages are replayed"
            )
        replay = InboxMessage.objects.create(
            **{name: getattr(row, name) for name in _REPLAYED_COLUMNS},
            status=Status.RECEIVED,
            replay_of=row,
        )
        if row.status == Status.PARKED:
            row.status = Status.REPLAYED
            row.save(update_fields=["status"])
        InboxAction.objects.create(
            actor=actor[:150], action=InboxAction.Action.REPLAY, message_uuid=row.uuid, replay_uuid=replay.uuid
        )
        transaction.on_commit(_drain_queue)
    log.info("inbox replay by %s: %s -> %s", actor, row.uuid, replay.uuid)
    return replay


def _drain_queue() -> None:
    from healthplatform.tasks import inbox_drain

    inbox_drain.delay()


def inbox_skip(*, message: InboxMessage, actor: str, reason: str) -> InboxMessage:
    """Marks ``message`` (received or parked) as never to be processed, for ``reason`` (required: the next
    operator must know why). Its error, if any, is kept; the reason is in its action record."""
    reason = (reason or "").strip()
    if not reason:
        raise InboxOperationRefused("a skip needs a reason")
    with transaction.atomic():
        row = _locked(message)
        if not row.is_skippable():
            raise InboxOperationRefused(
                f"inbox message {row.uuid} is {row.status}: only received or parked messages are skipped"
            )
        row.status = Status.SKIPPED
        row.processed_at = timezone.now()
        row.save(update_fields=["status", "processed_at"])
        InboxAction.objects.create(
            actor=actor[:150], action=InboxAction.Action.SKIP, message_uuid=row.uuid, reason=reason[:2000]
        )
    log.info("inbox skip by %s: %s", actor, row.uuid)
    return row


@dataclass(frozen=True)
class Pruned:
    """What a prune did: rows deleted, and the rows older than the period it kept (parked: an operator must
    decide; waiting: processing has not reached them)."""

    deleted: int
    kept_parked: int
    kept_waiting: int


def inbox_prune(*, older_than: dt.timedelta, batch_size: int = 1000) -> Pruned:
    """Deletes the rows received more than ``older_than`` ago whose outcome is final (``PRUNABLE``), in
    transactions of ``batch_size`` rows; never a received or parked row, nor one a kept row replays."""
    cutoff = timezone.now() - older_than
    has_replay = Exists(InboxMessage.objects.filter(replay_of=OuterRef("pk")))
    prunable = InboxMessage.objects.filter(status__in=PRUNABLE, received_at__lt=cutoff).exclude(has_replay)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(prunable.order_by("-pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            # Only the keys are loaded for the deletion: the rows' bytes can be megabytes each. The replay check
            # is made again in the delete, against a replay made since the ids were read.
            count, _ = prunable.filter(pk__in=ids).only("pk").delete()
        deleted += count
        if count == 0:
            break
    old = InboxMessage.objects.filter(received_at__lt=cutoff)
    kept = old.aggregate(
        parked=Count("pk", filter=Q(status=Status.PARKED)), waiting=Count("pk", filter=Q(status=Status.RECEIVED))
    )
    log.info(
        "inbox prune before %s: %d deleted, %d parked and %d waiting kept",
        cutoff.isoformat(),
        deleted,
        kept["parked"],
        kept["waiting"],
    )
    return Pruned(deleted=deleted, kept_parked=kept["parked"], kept_waiting=kept["waiting"])


# --- reads ------------------------------------------------------------------------------------------------


@dataclass
class SenderLine:
    """One sender's line on the monitor: its counts by status in the window, and its unmapped local codes."""

    source_id: int | None
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    unmapped_codes: int = 0  # distinct local codes no map translates (all time)
    unmapped_occurrences: int = 0  # how many times they were received (all time, every door)
    unmapped_last_seen: dt.datetime | None = None
    processed_retained: int = 0  # processed messages the inbox holds (all retained)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def unmapped_rate(self) -> float | None:
        """Unmapped local codes received per processed message (see ``Monitor``: an approximation)."""
        if not self.processed_retained:
            return None
        return self.unmapped_occurrences / self.processed_retained


@dataclass
class Monitor:
    """The feed monitor: counts per sender, message type and status over a window (received in it), each
    sender's unmapped local codes, and what waits. ``since`` None: everything retained.

    The unmapped-code rate is the registry's counter (occurrences since first seen, over every door: FHIR
    writes too) over the processed messages the inbox still holds: the counter keeps no per-message or
    per-day figure, so this is a trend to watch per sender, not an exact share of codes."""

    since: dt.datetime | None
    statuses: list[tuple[str, str]]
    senders: list[SenderLine]
    types: list[tuple[str, dict[str, int]]]
    totals: dict[str, int]
    waiting: int
    oldest_waiting_at: dt.datetime | None
    parked: int
    oldest_parked_at: dt.datetime | None
    now: dt.datetime

    def cells(self, counts: dict[str, int]) -> list[int]:
        """``counts`` in the order of ``statuses`` (0 where none), for a table's row."""
        return [counts.get(value, 0) for value, _label in self.statuses]

    @property
    def sender_rows(self) -> list[tuple[SenderLine, list[int]]]:
        return [(line, self.cells(line.counts)) for line in self.senders]

    @property
    def type_rows(self) -> list[tuple[str, list[int]]]:
        return [(message_type, self.cells(counts)) for message_type, counts in self.types]

    @property
    def total_row(self) -> list[int]:
        return self.cells(self.totals)

    @property
    def oldest_waiting_age(self) -> dt.timedelta | None:
        return self.now - self.oldest_waiting_at if self.oldest_waiting_at else None

    @property
    def oldest_parked_age(self) -> dt.timedelta | None:
        return self.now - self.oldest_parked_at if self.oldest_parked_at else None


def inbox_monitor(*, since: dt.datetime | None = None) -> Monitor:
    """The feed monitor's numbers (``Monitor``) in a fixed handful of aggregate queries: one GROUP BY over the
    window's rows (the received_at index), one over the processed rows retained per sender (for the rate), the
    waiting and parked heads (the status index) and the unmapped-code counter."""
    now = timezone.now()
    rows = InboxMessage.objects.all()
    if since is not None:
        rows = rows.filter(received_at__gte=since)
    grouped = rows.values_list("source_id", "message_type", "status").annotate(n=Count("pk")).order_by()
    senders: dict[int | None, SenderLine] = {}
    types: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for source_id, message_type, status, n in grouped:
        line = senders.setdefault(source_id, SenderLine(source_id, ""))
        line.counts[status] = line.counts.get(status, 0) + n
        by_type = types.setdefault(message_type, {})
        by_type[status] = by_type.get(status, 0) + n
        totals[status] = totals.get(status, 0) + n
    processed = (
        InboxMessage.objects.filter(status=Status.PROCESSED, source__isnull=False)
        .values_list("source_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for source_id, n in processed:
        senders.setdefault(source_id, SenderLine(source_id, "")).processed_retained = n
    unmapped = (
        UnmappedCode.objects.values_list("source_system_id")
        .annotate(codes=Count("pk"), occurrences=Sum("count"), last=Max("last_seen"))
        .order_by()
    )
    unmapped_by_source = {source_id: (codes, occurrences, last) for source_id, codes, occurrences, last in unmapped}
    # The unmapped codes of the senders with inbox traffic (an HL7 v2 monitor; FHIR-only feeds are not listed).
    for source_id, line in senders.items():
        if source_id in unmapped_by_source:
            line.unmapped_codes, line.unmapped_occurrences, line.unmapped_last_seen = unmapped_by_source[source_id]
    names = dict(SourceSystem.objects.filter(pk__in=[k for k in senders if k]).values_list("pk", "name"))
    for source_id, line in senders.items():
        line.name = names.get(source_id, "") if source_id else ""
    heads = {}
    for status in (Status.RECEIVED, Status.PARKED):
        heads[status] = InboxMessage.objects.filter(status=status).aggregate(n=Count("pk"), oldest=Min("received_at"))
    return Monitor(
        since=since,
        statuses=list(Status.choices),
        senders=sorted(senders.values(), key=lambda s: (s.source_id is None, s.name)),
        types=sorted(types.items()),
        totals=totals,
        waiting=heads[Status.RECEIVED]["n"],
        oldest_waiting_at=heads[Status.RECEIVED]["oldest"],
        parked=heads[Status.PARKED]["n"],
        oldest_parked_at=heads[Status.PARKED]["oldest"],
        now=now,
    )


@dataclass(frozen=True)
class SegmentField:
    """One non-empty field of a segment, as sent (escape sequences as the sender wrote them)."""

    segment: str
    sequence: int  # the segment's position in the message, 1-based
    number: int  # the field's number, the standard's (MSH-1 is the field separator)
    value: str


def message_segments(message: InboxMessage) -> list[SegmentField]:
    """The fields of ``message``'s segments, tokenised by the intake's own tokenizer."""
    parsed = message_parse(bytes(message.raw), sender_default_charset=message.charset or None)
    out = []
    for index, segment in enumerate(parsed.segments, start=1):
        for number in range(1, len(segment) + 1):
            value = segment.raw_field(number)
            if value:
                out.append(SegmentField(segment.name, index, number, value))
    return out


@dataclass(frozen=True)
class Produced:
    """One resource version the message's processing wrote (``current``: it is still the resource's current
    version)."""

    resource_pk: int | None  # None for a document (the document store's, not the archive's)
    resource_type: str
    fhir_id: str
    version_id: int
    current: bool


def message_resources(message: InboxMessage) -> list[Produced]:
    """The resources ``message``'s processing wrote, as the corridor answered (``InboxMessage.produced``), each
    marked whether that version is still the resource's current one (one indexed statement)."""
    produced = [p for p in message.produced or [] if p.get("id")]
    pks = [p["pk"] for p in produced if p.get("pk")]
    versions = dict(Resource.objects.filter(pk__in=pks).values_list("pk", "version_id")) if pks else {}
    return [
        Produced(
            p.get("pk"),
            p["type"],
            p["id"],
            p.get("version") or 0,
            p.get("pk") is None or versions.get(p["pk"]) == p.get("version"),
        )
        for p in produced
    ]


def message_actions(message: InboxMessage) -> list[InboxAction]:
    """The operator actions on ``message``, newest first."""
    return list(InboxAction.objects.filter(message_uuid=message.uuid))
