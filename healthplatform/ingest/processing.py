"""Processing the HL7 v2 inbox: each received message mapped to FHIR resources (``v2tofhir``) and written through
the write corridor as its source system, exactly as a FHIR feed's transaction Bundle is written (the same
authorisation, MPI registration, code translation, archive rows and provenance: the facts point to a
submission, which the inbox row names).

Claiming (PostgreSQL), in two phases. One: a worker claims a batch — the oldest received message of each
patient (``patient_key``) that has no older message still waiting, ``FOR UPDATE SKIP LOCKED``, not claimed by
a live worker — counts each one's attempt and commits, so several workers run different patients in parallel
while one patient's messages are applied in the order received (an A08 never overtakes its A01). Two: the
batch is locked again and each message processed in a savepoint of its own; the corridor's writes and the
new statuses are one transaction, one commit for the batch. A worker killed half way leaves its messages
received, with their attempt counted; its backend gone, the next worker takes them and applies them again —
idempotently, since every resource is written by a conditional update on its identifiers. A message lost
``MAX_ATTEMPTS`` times is parked (it would otherwise kill every worker in turn); one the corridor refuses,
or that cannot be mapped, is parked with its error; the rest keep flowing.

What each message type writes: ``v2events``. An ADT^A40's MPI merge runs in the same transaction, after the
corridor has written the surviving Patient.
"""

from __future__ import annotations

import logging
import re
import time
import traceback

import psycopg
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from healthplatform.access import Caller
from healthplatform.errors import PlatformError
from healthplatform.ingest.apply import bundle_apply
from healthplatform.ingest.entries import Received
from healthplatform.ingest.hl7v2 import faults
from healthplatform.ingest.hl7v2.ack import ENHANCED, ack_build, ack_plan
from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.models import ApplicationAck, InboxMessage
from healthplatform.ingest.v2events import Merge, NotMapped, Sender, message_mapped
from healthplatform.ingest.v2tofhir import authority_system
from mpi import selectors as mpi_selectors
from mpi.services.manual import MPIError, identity_link, person_merge
from registry import selectors as registry
from registry.models import CodeSystem, SourceSystem

log = logging.getLogger("healthplatform.ingest.processing")

# What a source's maps need (its local code systems, the coding-system names): read once per source and
# process, for at most this long — a concept map or code system registered meanwhile is taken within it.
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
    sender = Sender(
        facility=source.sending_facility,
        local_system=local,
        systems=systems,
        known_practitioner=lambda number: registry.practitioner_id_by_licence(number) is not None,
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


# Messages one transaction processes (each in a savepoint of its own): a commit, a claim and a status save
# shared by a batch, not paid per message — a v2 message writes ~5 resources where a FHIR Bundle writes dozens.
CLAIM_BATCH = 16
# Attempts after which a message is parked rather than tried again: each attempt is counted before the
# processing starts (and survives a worker killed by it), so a message that kills every worker stops.
MAX_ATTEMPTS = 5

# PostgreSQL, phase one of a claim, committed on its own: the oldest waiting message of each patient with no
# older one waiting, not locked by a worker and not claimed by a live one (``claimed_pid``: the backend of the
# claimer; a killed worker's backend is gone from pg_stat_activity), its attempt counted.
_CLAIM_SQL = """
WITH picked AS (
    SELECT m.id FROM ingest_inboxmessage m
    WHERE m.status = 'received'
      AND (m.claimed_pid IS NULL OR m.claimed_pid = pg_backend_pid()
           OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.claimed_pid))
      AND NOT EXISTS (
          SELECT 1 FROM ingest_inboxmessage e
          WHERE e.patient_key = m.patient_key AND e.status = 'received' AND e.id < m.id AND m.patient_key <> '')
    ORDER BY m.id LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE ingest_inboxmessage u SET attempts = u.attempts + 1, claimed_pid = pg_backend_pid()
FROM picked WHERE u.id = picked.id RETURNING u.id
"""


def _claim_ids(size: int) -> list[int]:
    """Phase one (PostgreSQL): up to ``size`` messages claimed and their attempt counted, in a transaction of its
    own (committed: a worker killed in phase two has its attempt counted). Two messages of one patient are
    never in one batch: only the oldest waiting of each is claimable."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [size])
        return [pk for (pk,) in cursor.fetchall()]


def _claimed(ids: list[int] | None) -> list[InboxMessage]:
    """Phase two: the claimed messages locked in the processing's transaction (those still waiting: a claim
    that expired with its backend may have been finished by another worker meanwhile). SQLite, one writer at a
    time: the oldest waiting message is the claim, its attempt counted in the processing's transaction."""
    waiting = InboxMessage.objects.defer("text").filter(status=InboxMessage.Status.RECEIVED).order_by("pk")
    if ids is None:
        row = waiting.first()
        if row is None:
            return []
        row.attempts += 1
        return [row]
    return list(waiting.select_for_update(skip_locked=True).filter(pk__in=ids))


def _application_ack(row: InboxMessage, message, fault: faults.Fault | None) -> None:
    """Enhanced mode (MSH-15/16): the application acknowledgement, when MSH-16 asks for one for this outcome —
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
    """Claims and processes up to ``size`` waiting messages of different patients in one transaction, each in a
    savepoint of its own: processed, or parked with its error (none when nothing is waiting)."""
    ids = None
    if connection.vendor == "postgresql":
        ids = _claim_ids(size)
        if not ids:
            return []
    with transaction.atomic():
        rows = _claimed(ids)
        sources: dict[int, SourceSystem] = {}
        for row in rows:
            with transaction.atomic():
                _process(row, sources)
        # The outcomes in one statement (a save per message was a tenth of the processing).
        InboxMessage.objects.bulk_update(rows, _OUTCOME_FIELDS)
    for row in rows:
        log.info("inbox %d %s %s: %s", row.pk, row.message_type, row.control_id[:40], row.status)
    return rows


def inbox_process_one() -> InboxMessage | None:
    """Claims and processes the next message (None when none is waiting)."""
    rows = inbox_process_batch(1)
    return rows[0] if rows else None


# The refusals that are a race between workers, not a fault of the message or of the database.
_RACES = (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure)

_OUTCOME_FIELDS = ["status", "error", "attempts", "processed_at", "submission", "produced"]


def _process(row: InboxMessage, sources: dict[int, SourceSystem]) -> None:
    """One claimed message: mapped and written through the corridor as its source system, its outcome set on
    ``row`` (saved with the batch's) and its application ACK kept when one is due."""
    message, fault = None, None
    try:
        if row.attempts > MAX_ATTEMPTS:
            raise NotMapped(
                f"processing was lost {row.attempts - 1} times (a worker died each time); parked so that the rest "
                "of this patient's messages flow: replay it once the cause is known"
            )
        source = sources.get(row.source_id)
        if source is None:
            source = sources[row.source_id] = SourceSystem.objects.select_related("institution").get(pk=row.source_id)
        message = message_parse(bytes(row.raw), sender_default_charset=row.charset or None)
        if message.header().message_code == "ACK":
            row.status = InboxMessage.Status.PROCESSED
        else:
            mapped = message_mapped(message, sender=_sender(source))
            caller = Caller(source, source.client_id)
            received = Received(request_line=f"HL7 {row.message_type} {row.control_id}"[:300], body="", kind="hl7v2")
            with transaction.atomic():
                _kind, results = bundle_apply(caller=caller, bundle=mapped.bundle, received=received)
                if mapped.merge is not None:
                    _merge(mapped.merge, caller=caller, survivor_bundle=mapped.bundle, control_id=row.control_id)
            row.submission = received.submission
            row.produced = [_produced(r.written) for r in results if r.written is not None]
            row.status = InboxMessage.Status.PROCESSED
    except (NotMapped, PlatformError, SourceSystem.DoesNotExist) as error:
        row.status = InboxMessage.Status.PARKED
        if isinstance(error, PlatformError):
            row.error = _redacted("; ".join(i.message for i in error.issues))[:2000]
        else:
            row.error = _redacted(str(error))[:2000]
        fault = error.fault() if isinstance(error, NotMapped) else None
    except (OperationalError, InterfaceError):
        # Not the message's fault: a deadlock between two workers' batches (their MPI locks), a lock timeout, a
        # lost connection. The batch is given up, its messages stay received (their attempt counted) and are
        # taken again: parking them would blame a good message.
        raise
    except Exception as error:  # a defect of ours: parked with where it happened, the rest keeps flowing
        row.status = InboxMessage.Status.PARKED
        where = traceback.extract_tb(error.__traceback__)[-3:]
        row.error = f"{type(error).__name__} at " + " < ".join(f"{f.name}:{f.lineno}" for f in reversed(where))
    row.processed_at = timezone.now()
    if message is not None:
        _application_ack(row, message, fault)


def inbox_process(*, limit: int = 1000) -> int:
    """Processes up to ``limit`` waiting messages, a batch at a time; how many were taken."""
    done, failures = 0, 0
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
            break
        done += taken
    return done
