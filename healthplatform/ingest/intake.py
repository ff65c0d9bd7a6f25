"""What every HL7 v2 door (the MLLP listener, the HTTP endpoint) decides about a message before the inbox commit,
and the acknowledgement it then owes: one set of rules, so a message gets the same answer by either door.

Refused before the commit (AR, or CR in enhanced mode; research notes §2.1): what the tokenizer found wrong with
the message (no readable MSH, no MSH-10, an unsupported version or processing id, an undecodable or wrongly
declared character set, a NUL byte), a message type or trigger event the platform does not map, and a sender (MSH-3 /
MSH-4) that is not the active registered source system the door established. Such a message is still stored,
as rejected, for the monitor. An inbound ACK gets no ACK (ch. 2 §2.9.2).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from healthplatform.ingest.hl7v2 import faults as codes
from healthplatform.ingest.hl7v2.ack import ORIGINAL, AckPlan, ack_build, ack_plan
from healthplatform.ingest.hl7v2.faults import ErrorLocation, Fault
from healthplatform.ingest.hl7v2.message import Message, message_parse
from healthplatform.ingest.inbox import Arrival
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.v2tofhir import mrn_of

# The message types and trigger events the platform maps (issue 17); anything else is refused before the
# commit (AR, ERR-3 200 / 201), so a sender learns at once rather than from a parked message.
SUPPORTED_EVENTS: dict[str, frozenset[str]] = {
    "ADT": frozenset({"A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13", "A28", "A31", "A40", "A60"}),
    "ORU": frozenset({"R01"}),
    "ORM": frozenset({"O01"}),
    "OML": frozenset({"O21"}),
    "RDE": frozenset({"O11"}),
    "MDM": frozenset({"T02"}),
    "VXU": frozenset({"V04"}),
}


@dataclass
class Intake:
    """One message read by a door: the tokenised ``message``, the acknowledgements it asked for (``plan``) and
    every fault found before the commit."""

    payload: bytes
    message: Message
    plan: AckPlan
    faults: list[Fault]

    @property
    def header(self):
        return self.message.header()

    @property
    def rejected(self) -> bool:
        return any(f.is_error for f in self.faults)

    @property
    def sender(self) -> tuple[str, str]:
        """MSH-3.1 and MSH-4.1, by which the registry knows a feed."""
        header = self.header
        return header.sending_application.namespace_id, header.sending_facility.namespace_id

    @property
    def code(self) -> str:
        """MSA-1 of the acknowledgement the door owes: AA/AR in original mode, CA/CR in enhanced mode."""
        return self.plan.code("reject" if self.rejected else "accept")


def intake_read(payload: bytes, *, default_charset: str | None) -> Intake:
    """Tokenises ``payload`` (MSH-18, else ``default_charset``) and collects the faults that refuse it, but the
    sender's: that needs the registry (``sender_refused``)."""
    message = message_parse(payload, sender_default_charset=default_charset)
    faults = [*message.faults, *_unsupported(message), *_nul(payload)]
    return Intake(payload, message, ack_plan(message.header()), faults)


def _nul(payload: bytes) -> list[Fault]:
    # No HL7 v2 data type holds a NUL, and PostgreSQL's text columns cannot: refused, and stored with U+FFFD
    # in its place in the decoded text (the bytes as received keep it).
    offset = payload.find(b"\x00")
    if offset < 0:
        return []
    return [Fault(codes.DATA_TYPE_ERROR, f"a NUL byte (0x00) at offset {offset}: no HL7 v2 value can hold it")]


_SURROGATES = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` as a database text column holds it: a NUL (PostgreSQL refuses it) and a lone surrogate (the
    bytes of an MSH that could not be decoded, kept by ``surrogateescape`` so the ACK echoes them; no driver
    encodes one) become U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        text = _SURROGATES.sub("\ufffd", text)
    return text


def _unsupported(message: Message) -> list[Fault]:
    header = message.header()
    if not message.has_msh or not header.message_code or header.message_code == "ACK":
        return []
    events = SUPPORTED_EVENTS.get(header.message_code)
    if events is None:
        text = f"message type {header.message_code[:10]} is not taken by this platform"
        return [Fault(codes.UNSUPPORTED_MESSAGE_TYPE, text, ErrorLocation("MSH", 1, 9, 1, 1))]
    if header.trigger_event not in events:
        text = f"trigger event {header.trigger_event[:10]} of {header.message_code} is not taken by this platform"
        return [Fault(codes.UNSUPPORTED_EVENT_CODE, text, ErrorLocation("MSH", 1, 9, 1, 2))]
    return []


def sender_refused(intake: Intake, why: str) -> None:
    """Adds the fault of a sender the door cannot take: 2.5.1 has no table 0357 code for it (research notes
    §2.3), so ERR-3 207 with the platform's own ERR-5 code ``UNKNOWN_SENDER``, at MSH-4."""
    intake.faults.append(
        Fault(codes.APPLICATION_INTERNAL_ERROR, why, ErrorLocation("MSH", 1, 4), application_code="UNKNOWN_SENDER")
    )


def patient_key(message: Message, source_id: int | None) -> str:
    """The sender and the MRN processing registers the patient by (``mrn_of``: the MRN and its assigning
    authority, CX.4 or else MSH-4): messages with one key are applied in the order they were received, and never
    two in one batch. PID-3's *first* repetition was the key: a sender that lists the resident id first in some
    messages gave one patient two keys, and an A08 could be applied beside, or before, its A01."""
    pid = message.segment("PID")
    if pid is None or source_id is None:
        return ""
    found = mrn_of(pid, sending_facility=message.header().sending_facility.namespace_id)
    if found is None:
        return f"{source_id}|{pid.value(3, component=1)}^{pid.value(3, component=4)}"
    return f"{source_id}|{found[0]}^{found[1]}"


def arrival_of(intake: Intake, *, door: str, peer: str, source_id: int | None) -> Arrival:
    """The inbox row's content for ``intake`` (received, or rejected with its faults' codes and locations —
    never a field's value: the error column is shown and logged)."""
    header, rejected = intake.header, intake.rejected
    message_type = "^".join(p for p in (header.message_code, header.trigger_event, header.message_structure) if p)
    return Arrival(
        door=door,
        raw=intake.payload,
        sha256=hashlib.sha256(intake.payload).hexdigest(),
        source_id=source_id,
        peer=peer,
        sending_application=storable(str(header.sending_application)),
        sending_facility=storable(str(header.sending_facility)),
        control_id=storable(header.control_id),
        message_type=storable(message_type),
        version=storable(header.version_id),
        charset=intake.message.codec or "",
        text=storable(intake.message.text),
        patient_key=storable(patient_key(intake.message, source_id)),
        status=InboxMessage.Status.REJECTED if rejected else InboxMessage.Status.RECEIVED,
        ack_code=intake.code,
        error=storable("; ".join(f"{f.code} {f.location or ''} {f.text}".strip() for f in intake.faults if f.is_error)),
    )


def acknowledgement(intake: Intake) -> bytes:
    """The bytes of the acknowledgement owed on the connection once the message is stored (b"" when none is
    due: an inbound ACK, MSH-15 NE / SU / ER in enhanced mode)."""
    if intake.header.message_code == "ACK":
        return b""
    accepted = not intake.rejected
    plan = intake.plan
    due = (
        plan.application_ack_due(accepted=accepted) if plan.mode == ORIGINAL else plan.accept_ack_due(accepted=accepted)
    )
    if not due:
        return b""
    return ack_build(intake.message, code=intake.code, faults=intake.faults).payload
