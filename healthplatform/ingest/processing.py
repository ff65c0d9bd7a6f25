"""Processing the HL7 v2 inbox: each received message mapped to FHIR resources (``v2tofhir``) and written through
the write corridor as its source system, exactly as a FHIR feed's transaction Bundle is written (the same
authorisation, MPI registration, code translation, archive rows and provenance: the facts point to a
submission, which the inbox row names).

Claiming (PostgreSQL), in two phases. One: a worker claims a batch — one source system's oldest received
messages, each its patient's oldest (``patient_key``) with no older message still waiting, ``FOR UPDATE SKIP
LOCKED``, not claimed by a live worker — counts each one's attempt and commits, so several workers run
different patients in parallel while one patient's messages are applied in the order received (an A08 never
overtakes its A01). Two: the batch is parsed and mapped (reads only), then locked again and written in one
transaction: the batch's messages together, one corridor transaction with a submission each
(``transactions_apply``: what a message costs is mostly what a transaction costs), or — when that is refused,
for a merge or a document — each on its own in a savepoint; the new statuses go in the same transaction, one
commit for the batch. A worker killed half way leaves its messages received, with their attempt counted; its
backend gone, the next worker takes them and applies them again — idempotently, since every resource is
written by a conditional update on its identifiers. A message lost ``MAX_ATTEMPTS`` times is parked (it would
otherwise kill every worker in turn); one the corridor refuses, or that cannot be mapped, is parked with its
error; the rest keep flowing.

What each message type writes: ``v2events``. An ADT^A40's MPI merge runs in the same transaction, after the
corridor has written the surviving Patient.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
from dataclasses import dataclass

import psycopg
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from healthplatform.access import Caller
from healthplatform.errors import PlatformError
from healthplatform.ingest.apply import bundle_apply, transactions_apply
from healthplatform.ingest.entries import DOCUMENT_TYPES, Received
from healthplatform.ingest.hl7v2 import faults
from healthplatform.ingest.hl7v2.ack import ENHANCED, ack_build, ack_plan
from healthplatform.ingest.hl7v2.message import Message, message_parse
from healthplatform.ingest.models import ApplicationAck, InboxMessage
from healthplatform.ingest.v2events import Mapped, Merge, NotMapped, Sender, message_mapped
from healthplatform.ingest.v2tofhir import authority_system
from mpi import selectors as mpi_selectors
from mpi.services.manual import MPIError, identity_link, person_merge
from registry import selectors as registry
from registry.models import CodeSystem, SourceSystem

log = logging.getLogger("healthplatform.ingest.processing")

# What a source's maps need (its local code systems, the coding-system names, its practitioners' numbers): read
# once per source and process, for at most this long — a concept map, code system or practitioner registered
# meanwhile is taken within it.
SENDER_TTL = 60.0
_senders: dict[tuple[int, str], tuple[float, Sender]] = {}


def _sender(source: SourceSystem) -> Sender:
    now = time.monotonic()
    key = (source.pk, source.client_id)  # a source re-created under a reused id is another source
    cached = _senders.get(key)
    if cached is not None and now - cached[0] < SENDER_TTL:
        return cached[1]
    own = list(CodeSystem.objects.filter(source_system=source).values_list("url", "hl7_v2_name").order_by("pk"))
    standard = CodeSystem.objects.filter(source_system__isnull=True).exclude(hl7_v2_name="")
    # A HIS's order names the laboratory's codes (the LIS's list, same institution): the system is right,
    # though only the list's own feed's writes are translated by the corridor.
    siblings = CodeSystem.objects.filter(source_system__institution_id=source.institution_id).exclude(hl7_v2_name="")
    systems = {name.upper(): url for url, name in standard.values_list("url", "hl7_v2_name")}
    systems |= {name.upper(): url for url, name in siblings.values_list("url", "hl7_v2_name")}
    systems |= {name.upper(): url for url, name in own if name}  # the sender's own names win
    local = own[0][0] if own else authority_system(source.sending_facility) + ":codes"
    # The directory's answers for practitioners' numbers (XCN-1), kept as long as the rest: a practitioner
    # registered meanwhile is referred to by the directory within SENDER_TTL (a logical reference until then).
    known: dict[str, bool] = {}

    def known_practitioner(number: str) -> bool:
        if number not in known:
            known[number] = registry.practitioner_id_by_licence(number) is not None
        return known[number]

    sender = Sender(
        facility=source.sending_facility, local_system=local, systems=systems, known_practitioner=known_practitioner
    )
    _senders[key] = (now, sender)
    return sender


def _produced(written) -> dict:
    """One written entry as the inbox row keeps it (the error queue shows it)."""
    if written.document is not None:
        document = written.document
        return {
            "type": written.entry.resource_type,
            "id": str(document.uuid),
            "version": document.version_id,
            "outcome": written.outcome,
        }
    produced = {"type": written.entry.resource_type, "outcome": written.outcome}
    if written.resource is not None:  # none for a DELETE of nothing
        resource = written.resource
        produced |= {"id": resource.fhir_id, "version": resource.version_id, "pk": resource.pk}
    return produced


_MRG_1 = {"code": faults.UNKNOWN_KEY_IDENTIFIER, "location": faults.ErrorLocation("MRG", 1, 1)}


def _merge(merge: Merge, *, caller: Caller, survivor_bundle: dict, control_id: str) -> None:
    """ADT^A40: the prior identity (MRG-1) merged into the patient's in the MPI — only the sender's own MRNs."""
    authority = mpi_selectors.authority_of_system(merge.authority_system)
    if authority not in caller.authorities:
        raise NotMapped("MRG-1 names an MRN of another assigning authority than the sender's", **_MRG_1)
    prior = mpi_selectors.identity_by_local_id(authority, merge.local_id)
    if prior is None:
        raise NotMapped("MRG-1 names no patient this sender registered", **_MRG_1)
    mrn = survivor_bundle["entry"][0]["resource"]["identifier"][0]
    survivor = mpi_selectors.identity_by_local_id(mpi_selectors.authority_of_system(mrn["system"]), mrn["value"])
    if survivor is None or survivor.pk == prior.pk:
        raise NotMapped("MRG-1 names the surviving patient itself")
    if survivor.person_id != prior.person_id:
        reason = f"HL7 ADT^A40 {control_id}"[:200]
        # An A40 says two of the *sender's* records are one patient (HL7 v2.5.1 §3.3.40: MRG-1 merged into
        # PID-3 within the sender's identifier domain); it says nothing of other institutions' records. Merging
        # the prior identity's whole person moved every other institution's identity linked to it too: hospital
        # B, holding two residents that hospital A also knows, made A's two patients one person. When the prior
        # person holds identities the sender does not own, only the sender's identity is moved (a link, which the
        # MPI's review can undo); a person of the sender's identities alone is merged, as before.
        foreign = any(not caller.owns_identity(i) for i in prior.person.identities.all())
        try:
            if foreign:
                identity_link(identity=prior, person=survivor.person, actor=caller.actor, reason=reason)
            else:
                person_merge(survivor=survivor.person, duplicate=prior.person, actor=caller.actor, reason=reason)
        except MPIError as error:
            raise NotMapped(f"the MPI refused the merge: {error}") from None


# The corridor's refusals may quote conditional criteria, ``Patient?identifier=<system>|<MRN>`` or an allergy's
# ``identifier=<system>|<MRN>|<allergen>``: the stored error is shown to operators, logged and sent back in AE
# ACKs, so the value of any criteria is left out (the system and the FHIR path say where to look).
_CRITERIA_VALUE = re.compile(r"(\bidentifier=[^|\s]*\|)(?:(?!:\s)\S)+")


def _redacted(text: str) -> str:
    return _CRITERIA_VALUE.sub(r"\1…", text)


# Messages one transaction processes (one source's, written together): a commit, a claim, a status save and
# the corridor's statements shared by a batch, not paid per message — a v2 message writes three or four
# resources where a FHIR Bundle writes dozens. 32 against 16: a third more messages a second, 64 no more
# (bench/hl7v2_process.py, in-process, alternated).
CLAIM_BATCH = 32
# Attempts after which a message is parked rather than tried again: each attempt is counted before the
# processing starts (and survives a worker killed by it), so a message that kills every worker stops.
MAX_ATTEMPTS = 5

# Empty claims in a row a drain waits through (0.05 s, 0.10 s, … longer each: 2.75 s in all) while messages are
# still waiting, claimed by other workers, before it ends.
DRAIN_PATIENCE = 10

# PostgreSQL, phase one of a claim, committed on its own: the oldest waiting messages of one source system
# (the source of the oldest claimable message: its messages are written together, ``transactions_apply``),
# each its patient's oldest waiting one, not locked by a worker and not claimed by a live one (``claimed_pid``:
# the backend of the claimer; a killed worker's backend is gone from pg_stat_activity), their attempt counted.
# Without a source (none claimable has one), the oldest of any.
_CLAIMABLE = """
    m.status = 'received'
    AND (m.claimed_pid IS NULL OR m.claimed_pid = pg_backend_pid()
         OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.claimed_pid))
    AND NOT EXISTS (
        SELECT 1 FROM ingest_inboxmessage e
        WHERE e.patient_key = m.patient_key AND e.status = 'received' AND e.id < m.id AND m.patient_key <> '')
"""
_CLAIM_SQL = f"""
WITH first AS (
    SELECT m.source_id FROM ingest_inboxmessage m WHERE {_CLAIMABLE} AND m.source_id IS NOT NULL
    ORDER BY m.id LIMIT 1),
picked AS (
    SELECT m.id FROM ingest_inboxmessage m WHERE {_CLAIMABLE} AND m.source_id = (SELECT source_id FROM first)
    ORDER BY m.id LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE ingest_inboxmessage u SET attempts = u.attempts + 1, claimed_pid = pg_backend_pid()
FROM picked WHERE u.id = picked.id RETURNING u.id
"""  # noqa: S608 - only this module's text is formatted in
_CLAIM_ANY_SQL = f"""
WITH picked AS (
    SELECT m.id FROM ingest_inboxmessage m WHERE {_CLAIMABLE} ORDER BY m.id LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE ingest_inboxmessage u SET attempts = u.attempts + 1, claimed_pid = pg_backend_pid()
FROM picked WHERE u.id = picked.id RETURNING u.id
"""  # noqa: S608 - only this module's text is formatted in


def _claim_ids(size: int) -> list[int]:
    """Phase one (PostgreSQL): up to ``size`` messages claimed and their attempt counted, in a transaction of its
    own (committed: a worker killed in phase two has its attempt counted). Two messages of one patient are
    never in one batch: only the oldest waiting of each is claimable."""
    # A durable commit, unlike the processing's (_commit_relaxed): a message that crashes the database server
    # itself must still have its attempts counted, or it would crash it again for ever.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [size])
        ids = [pk for (pk,) in cursor.fetchall()]
        if not ids:
            cursor.execute(_CLAIM_ANY_SQL, [size])
            ids = [pk for (pk,) in cursor.fetchall()]
        return ids


def _claimed(ids: list[int] | None) -> list[InboxMessage]:
    """Phase two begins: the claimed messages read, with their source system and its institution (the caller),
    outside the processing's transaction — they are this backend's claim; ``_locked`` takes them for it.
    SQLite, one writer at a time: the oldest waiting message is the claim, its attempt counted with its outcome."""
    waiting = (
        InboxMessage.objects.defer("text")
        .select_related("source__institution")
        .filter(status=InboxMessage.Status.RECEIVED)
        .order_by("pk")
    )
    if ids is None:
        row = waiting.first()
        if row is None:
            return []
        row.attempts += 1
        return [row]
    return list(waiting.filter(pk__in=ids))


def _locked(prepared: list[_Prepared]) -> list[_Prepared]:
    """Inside the processing's transaction (PostgreSQL): those still waiting, locked — a claim that expired with
    its backend may have been finished by another worker meanwhile."""
    if connection.vendor != "postgresql" or not prepared:
        return prepared
    ids = [p.row.pk for p in prepared]
    sql = (
        "SELECT id FROM ingest_inboxmessage WHERE status = 'received' AND id IN ("  # noqa: S608 - placeholders only
        + ", ".join(["%s"] * len(ids))
        + ") FOR UPDATE SKIP LOCKED"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        kept = {pk for (pk,) in cursor.fetchall()}
    return [p for p in prepared if p.row.pk in kept]


def _application_ack(row: InboxMessage, message, fault: faults.Fault | None) -> None:
    """Enhanced mode (MSH-15/16): the application acknowledgement the message asked for, once its outcome is known —
    AA when processed, AE with an ERR saying what failed when parked (HL7 v2.5.1 ch. 2.9.3) — kept in the
    same transaction as the outcome, for the sender to pick up."""
    plan = ack_plan(message.header())
    accepted = row.status == InboxMessage.Status.PROCESSED
    if plan.mode != ENHANCED or not plan.application_ack_due(accepted=accepted):
        return
    if not accepted and fault is None:
        fault = faults.Fault(faults.APPLICATION_INTERNAL_ERROR, row.error[:500] or "not processed")
    built = ack_build(message, code="AA" if accepted else "AE", faults=[fault] if fault else [])
    ApplicationAck.objects.create(message=row, source_id=row.source_id, code=built.code, text=built.text)


def inbox_process_batch(size: int = CLAIM_BATCH) -> list[InboxMessage]:
    """Claims and processes up to ``size`` waiting messages of different patients: each parsed and mapped (reads
    only, before the transaction), then all written in one transaction — together (``transactions_apply``), or,
    when that is refused, each in a savepoint of its own: processed, or parked with its error. None when
    nothing is waiting."""
    ids = None
    if connection.vendor == "postgresql":
        ids = _claim_ids(size)
        if not ids:
            return []
    prepared = [_prepared(row) for row in _claimed(ids)]
    with transaction.atomic():
        _commit_relaxed()
        prepared = _locked(prepared)
        _written(prepared)
        rows = [p.row for p in prepared]
        _outcomes_save(rows)
        for p in prepared:
            if p.message is not None:
                _application_ack(p.row, p.message, p.fault)
    for row in rows:
        log.info("inbox %d %s %s: %s", row.pk, row.message_type, row.control_id[:40], row.status)
    return rows


def inbox_process_one() -> InboxMessage | None:
    """Claims and processes the next message (None when none is waiting)."""
    rows = inbox_process_batch(1)
    return rows[0] if rows else None


# The refusals that are a race between workers, not a fault of the message or of the database.
_RACES = (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure)

# The columns an outcome sets, with their types (the casts of the VALUES rows below).
_OUTCOME_COLUMNS = {
    "status": "varchar",
    "error": "text",
    "attempts": "smallint",
    "processed_at": "timestamptz",
    "submission_id": "bigint",
    "produced": "jsonb",
}
_OUTCOME_FIELDS = [column.removesuffix("_id") for column in _OUTCOME_COLUMNS]

# PostgreSQL: the outcomes of a batch in one UPDATE from a VALUES list. Django's bulk_update builds a CASE per
# field and row in Python, which cost more than the statement itself (45 ms a batch of 16, bench/hl7v2_process.py
# --profile).
_OUTCOMES_SQL = (
    "UPDATE ingest_inboxmessage AS m SET "  # noqa: S608 - this module's column names only
    + ", ".join(f"{column} = v.{column}" for column in _OUTCOME_COLUMNS)
    + " FROM (VALUES {rows}) AS v(id, "
    + ", ".join(_OUTCOME_COLUMNS)
    + ") WHERE m.id = v.id"
)
_OUTCOME_ROW = "(%s::bigint, " + ", ".join(f"%s::{kind}" for kind in _OUTCOME_COLUMNS.values()) + ")"


def _outcomes_save(rows: list[InboxMessage]) -> None:
    """The batch's outcomes, one statement (a save per message was a tenth of the processing)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        InboxMessage.objects.bulk_update(rows, _OUTCOME_FIELDS)
        return
    params: list = []
    for row in rows:
        produced = None if row.produced is None else json.dumps(row.produced, ensure_ascii=False)
        params += [row.pk, *(getattr(row, column) for column in _OUTCOME_COLUMNS if column != "produced"), produced]
    sql = _OUTCOMES_SQL.format(rows=", ".join([_OUTCOME_ROW] * len(rows)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _commit_relaxed() -> None:
    """PostgreSQL: the processing's commit does not wait for its WAL to reach the disk (``synchronous_commit``
    off for this transaction only). What the platform acknowledged is the inbox row, committed durably by the
    listener before its ACK; the processing is derived from it. A server crash may undo the last fraction of a
    second of processing — the rows it touched are then still received and are processed again, idempotently —
    but never lose a message and never corrupt anything (PostgreSQL: "Asynchronous Commit"). The flush was a
    tenth of the processing's time on this machine (bench/hl7v2_process.py --profile)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


@dataclass
class _Prepared:
    """A claimed message parsed and mapped, waiting to be written (or already settled: parked, an ACK)."""

    row: InboxMessage
    message: Message | None = None
    mapped: Mapped | None = None
    fault: faults.Fault | None = None

    @property
    def writable_together(self) -> bool:
        """Written in one transaction with others of its source: archive writes only — not a merge (the MPI's
        own transaction, after its Patient) and not a document (the document store's)."""
        if self.mapped is None or self.mapped.merge is not None or self.row.status != InboxMessage.Status.RECEIVED:
            return False
        return not any(e["resource"]["resourceType"] in DOCUMENT_TYPES for e in self.mapped.bundle["entry"])


def _parked(p: _Prepared, error: Exception) -> None:
    """The message parked with what was wrong: the corridor's refusal or the mapping's (its ERR), redacted, or —
    a defect of ours — where it happened."""
    row = p.row
    row.status = InboxMessage.Status.PARKED
    if isinstance(error, PlatformError):
        row.error = _redacted("; ".join(i.message for i in error.issues))[:2000]
    elif isinstance(error, (NotMapped, SourceSystem.DoesNotExist)):
        row.error = _redacted(str(error))[:2000]
        p.fault = error.fault() if isinstance(error, NotMapped) else None
    else:
        where = traceback.extract_tb(error.__traceback__)[-3:]
        row.error = f"{type(error).__name__} at " + " < ".join(f"{f.name}:{f.lineno}" for f in reversed(where))


def _prepared(row: InboxMessage) -> _Prepared:
    """Parsed and mapped (reads of the registry only, no transaction): ready to write, or parked saying why."""
    p = _Prepared(row)
    try:
        if row.attempts > MAX_ATTEMPTS:
            raise NotMapped(
                f"processing was lost {row.attempts - 1} times (a worker died each time); parked so that the rest "
                "of this patient's messages flow: replay it once the cause is known"
            )
        if row.source is None:
            raise SourceSystem.DoesNotExist
        p.message = message_parse(bytes(row.raw), sender_default_charset=row.charset or None)
        if p.message.header().message_code == "ACK":
            row.status = InboxMessage.Status.PROCESSED
        else:
            p.mapped = message_mapped(p.message, sender=_sender(row.source))
    except (OperationalError, InterfaceError):
        raise  # not the message's fault: see _written
    except Exception as error:
        _parked(p, error)
    return p


def _received(row: InboxMessage) -> Received:
    return Received(request_line=f"HL7 {row.message_type} {row.control_id}"[:300], body="", kind="hl7v2")


def _written(prepared: list[_Prepared]) -> None:
    """Writes the batch's mapped messages (in the processing's transaction): those of one source together, in
    one corridor transaction; if it is refused, or for a merge or a document, each on its own."""
    together: dict[int, list[_Prepared]] = {}
    for p in prepared:
        if p.writable_together:
            together.setdefault(p.row.source_id, []).append(p)
    for group in together.values():
        if len(group) > 1:
            _written_together(group)
    for p in prepared:
        if p.mapped is not None and p.row.status == InboxMessage.Status.RECEIVED:
            _written_alone(p)
    now = timezone.now()
    for p in prepared:
        p.row.processed_at = now


def _caller(row: InboxMessage) -> Caller:
    return Caller(row.source, row.source.client_id)


def _written_together(group: list[_Prepared]) -> None:
    """One source's messages in one corridor transaction, each with its own submission; refused (any of them),
    nothing is written and each is then written alone, which says whose the refusal was."""
    bundles = [(p.mapped.bundle, _received(p.row)) for p in group]
    try:
        results = transactions_apply(caller=_caller(group[0].row), bundles=bundles)
    except (OperationalError, InterfaceError):
        raise  # not the messages' fault: see below
    except Exception:
        return
    for p, (_bundle, received), written in zip(group, bundles, results, strict=True):
        p.row.submission = received.submission
        p.row.produced = [_produced(w) for w in written]
        p.row.status = InboxMessage.Status.PROCESSED


def _written_alone(p: _Prepared) -> None:
    """One message through the corridor as its source system: processed, or parked with the refusal."""
    row, merge = p.row, p.mapped.merge
    caller, received = _caller(row), _received(row)
    try:
        # The corridor's transaction (a savepoint) holds the writes and the merge: both land, or neither.
        _kind, results = bundle_apply(
            caller=caller,
            bundle=p.mapped.bundle,
            received=received,
            then=None
            if merge is None
            else lambda: _merge(merge, caller=caller, survivor_bundle=p.mapped.bundle, control_id=row.control_id),
        )
    except (OperationalError, InterfaceError):
        # Not the message's fault: a deadlock between two workers' batches (their MPI locks), a lock timeout, a
        # lost connection. The batch is given up, its messages stay received (their attempt counted) and are
        # taken again: parking them would blame a good message.
        raise
    except Exception as error:
        _parked(p, error)
        return
    row.submission = received.submission
    row.produced = [_produced(r.written) for r in results if r.written is not None]
    row.status = InboxMessage.Status.PROCESSED


def inbox_process(*, limit: int = 1000) -> int:
    """Processes up to ``limit`` waiting messages, a batch at a time; how many were taken."""
    done, failures, idle = 0, 0, 0
    while done < limit:
        try:
            taken = len(inbox_process_batch(min(CLAIM_BATCH, limit - done)))
        except OperationalError as error:
            # A deadlock with another worker's batch (or a lock timeout): that batch is taken again, by this
            # worker or another; three in a row is no longer a race. Anything else (a lost connection) ends this
            # drain: its messages stay received for the next one.
            if not isinstance(error.__cause__, _RACES):
                raise
            failures += 1
            log.warning("inbox batch given up (%s), to be taken again", type(error.__cause__ or error).__name__)
            if failures >= 3:
                raise
            time.sleep(0.05 * failures)
            continue
        failures = 0
        if not taken:
            # Nothing claimable is not nothing waiting: every waiting patient's oldest message may be in another
            # worker's batch for a moment (a claim takes one source's, and each patient's oldest only). Ending
            # then left one of two workers idle for most of a 100,000-message backlog (bench/hl7v2_process.py:
            # 29,570 against 70,430); so a drain waits a little while messages wait, and ends when none does.
            if idle < DRAIN_PATIENCE and InboxMessage.objects.filter(status=InboxMessage.Status.RECEIVED).exists():
                idle += 1
                time.sleep(0.05 * idle)
                continue
            break
        idle = 0
        done += taken
    return done
