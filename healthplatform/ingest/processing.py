"""Processing the HL7 v2 inbox: each received message mapped to FHIR resources (``v2tofhir``) and written through
the write corridor as its source system, exactly as a FHIR feed's transaction Bundle is written (the same
authorisation, MPI registration, code translation, archive rows and provenance: the message's text is the
submission the facts point back to).

Claiming (PostgreSQL): a worker takes the oldest received message whose patient (``patient_key``) has no older
message still waiting, ``FOR UPDATE SKIP LOCKED`` — so several workers run different patients in parallel
while one patient's messages are applied in the order received (an A08 never overtakes its A01). The claim,
the corridor's writes and the new status are one transaction: a worker killed half way leaves the message
received, and the next worker applies it again — idempotently, since every resource is written by a
conditional update on its identifiers. A message the corridor refuses, or that cannot be mapped, is parked
with its error; the rest keep flowing.

Mapped so far: ADT^A01/A04/A05/A08/A28/A31 (the Patient, and for A01/A04 the Encounter of PV1) and ORU^R01
(the Patient and an Observation per OBX). The other types the listener takes are parked as "not mapped yet".
"""

from __future__ import annotations

import logging
import traceback

from django.db import connection, transaction
from django.utils import timezone

from healthplatform.access import Caller
from healthplatform.errors import PlatformError
from healthplatform.ingest.apply import bundle_apply
from healthplatform.ingest.entries import Received
from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.v2tofhir import authority_system, encounter_of, observation_of, patient_of
from registry.models import CodeSystem, SourceSystem

log = logging.getLogger("healthplatform.ingest.processing")

PATIENT_REGISTERING = {"A01", "A04", "A05", "A08", "A28", "A31"}
ENCOUNTER_STATUS = {"A01": "in-progress", "A04": "in-progress"}


class NotMapped(Exception):
    """A message the processing cannot turn into resources (its text says why, without patient data)."""


def _conditional(resource: dict) -> str:
    identifier = resource["identifier"][0]
    return f"{resource['resourceType']}?identifier={identifier['system']}|{identifier['value']}"


def message_bundle(message, *, source: SourceSystem, local_system: str) -> dict:
    """The transaction Bundle of one tokenised message (see the module's docstring for what is mapped)."""
    header = message.header()
    code, trigger = header.message_code, header.trigger_event
    pid = message.segment("PID")
    if pid is None:
        raise NotMapped("no PID segment")
    patient = patient_of(pid, sending_facility=header.sending_facility.namespace_id or source.sending_facility)
    mrns = [i for i in patient["identifier"] if i["system"].startswith("urn:platform:authority:")]
    if not mrns:
        raise NotMapped("PID-3 holds no identifier of the sender's (an MRN)")
    patient["identifier"].sort(key=lambda i: i not in mrns)  # the MRN first: the conditional update's key
    entries = [
        {
            "fullUrl": "urn:uuid:patient",
            "resource": patient,
            "request": {"method": "PUT", "url": _conditional(patient)},
        }
    ]
    if code == "ADT" and trigger in PATIENT_REGISTERING:
        pv1 = message.segment("PV1")
        if trigger in ENCOUNTER_STATUS and pv1 is not None and pv1.value(19):
            encounter = encounter_of(
                pv1,
                patient_reference="urn:uuid:patient",
                sending_facility=source.sending_facility,
                status=ENCOUNTER_STATUS[trigger],
            )
            entries.append({"resource": encounter, "request": {"method": "PUT", "url": _conditional(encounter)}})
    elif code == "ORU" and trigger == "R01":
        order = ""
        for segment in message.segments:
            if segment.name == "OBR":
                order = str(segment.value(3) or segment.value(2) or "")
            elif segment.name == "OBX":
                observation = observation_of(
                    segment, patient_reference="urn:uuid:patient", local_system=local_system, order_id=order
                )
                method = (
                    {"method": "PUT", "url": _conditional(observation)}
                    if observation.get("identifier")
                    else {"method": "POST", "url": "Observation"}
                )
                entries.append({"resource": observation, "request": method})
    else:
        raise NotMapped(f"{code}^{trigger} is not mapped yet")
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _local_system(source: SourceSystem) -> str:
    registered = CodeSystem.objects.filter(source_system=source).values_list("url", flat=True).first()
    return registered or authority_system(source.sending_facility) + ":codes"


def _claim() -> InboxMessage | None:
    if connection.vendor != "postgresql":  # SQLite has one writer at a time: the oldest is the claim
        return InboxMessage.objects.filter(status=InboxMessage.Status.RECEIVED).order_by("pk").first()
    rows = list(
        InboxMessage.objects.raw(
            "SELECT * FROM ingest_inboxmessage m WHERE m.status = %s AND NOT EXISTS ("
            " SELECT 1 FROM ingest_inboxmessage e WHERE e.patient_key = m.patient_key AND e.status = %s"
            " AND e.id < m.id AND m.patient_key <> '')"
            " ORDER BY m.id LIMIT 1 FOR UPDATE SKIP LOCKED",
            [InboxMessage.Status.RECEIVED, InboxMessage.Status.RECEIVED],
        )
    )
    return rows[0] if rows else None


def inbox_process_one() -> InboxMessage | None:
    """Claims and processes the next message (None when none is waiting): processed, or parked with its error."""
    with transaction.atomic():
        row = _claim()
        if row is None:
            return None
        row.attempts += 1
        try:
            source = SourceSystem.objects.select_related("institution").get(pk=row.source_id)
            message = message_parse(bytes(row.raw), sender_default_charset=row.charset or None)
            if message.header().message_code == "ACK":
                row.status = InboxMessage.Status.PROCESSED
            else:
                bundle = message_bundle(message, source=source, local_system=_local_system(source))
                received = Received(
                    request_line=f"HL7 {row.message_type} {row.control_id}"[:300], body="", kind="hl7v2"
                )
                with transaction.atomic():
                    bundle_apply(caller=Caller(source, source.client_id), bundle=bundle, received=received)
                row.submission = received.submission
                row.status = InboxMessage.Status.PROCESSED
        except (NotMapped, PlatformError, SourceSystem.DoesNotExist) as error:
            row.status = InboxMessage.Status.PARKED
            if isinstance(error, PlatformError):
                row.error = "; ".join(i.message for i in error.issues)[:2000]
            else:
                row.error = str(error)[:2000]
        except Exception as error:  # a defect of ours: parked with where it happened, the rest keeps flowing
            row.status = InboxMessage.Status.PARKED
            where = traceback.extract_tb(error.__traceback__)[-3:]
            row.error = f"{type(error).__name__} at " + " < ".join(f"{f.name}:{f.lineno}" for f in reversed(where))
        row.processed_at = timezone.now()
        row.save(update_fields=["status", "error", "attempts", "processed_at", "submission"])
    log.info("inbox %d %s %s: %s", row.pk, row.message_type, row.control_id[:40], row.status)
    return row


def inbox_process(*, limit: int = 1000) -> int:
    """Processes up to ``limit`` waiting messages; how many were taken."""
    done = 0
    while done < limit and inbox_process_one() is not None:
        done += 1
    return done
