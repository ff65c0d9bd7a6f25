"""Which HL7 v2 message writes what: a tokenised message as the transaction Bundle the write corridor applies
(after HL7's v2-to-FHIR implementation guide's message maps), plus, for ADT^A40, the MPI merge it asks for.

Every message's PID is its Patient (a conditional update on the sender's MRN, as a FHIR feed sends it), and
every fact refers to it. Each fact is written by a conditional update on its business identifier (order
numbers, visit number, document number, filler number, order + test code), so a message processed twice, a
resend and a correction (OBX-11 C, ORC-1 CA / DC, A11, A13, RXA-21 D) name the same resource and make its
next version, never a second fact.

- ADT A01 / A04 (admit, register), A02 (transfer), A03 (discharge), A05 (pre-admit), A08 (update), A11
  (cancel admit → Encounter cancelled), A13 (cancel discharge → in progress again, no end), A28 / A31 (person
  information: the Patient only); AL1 segments of any ADT → AllergyIntolerance.
- ADT A60 (allergy update): IAM → AllergyIntolerance (IAM-6 D → entered in error).
- ADT A40 (merge patient, patient identifier list): the survivor's Patient (PID), then the prior MRN (MRG-1)
  merged into it in the MPI (``person_merge``; the prior identity's facts stay its own and are read with the
  person). Only the sender's own MRNs may be merged.
- ORU R01: per OBR a DiagnosticReport with an Observation per OBX (its results).
- ORM O01 / OML O21: per ORC an order: OBR → ServiceRequest; RXO (pharmacy) → MedicationRequest.
- RDE O11: per ORC, RXE (+ RXR, TQ1) → MedicationRequest.
- MDM T02: TXA + OBX content → DocumentReference (the document store, ``emr``).
- VXU V04: per ORC, RXA (+ RXR) → Immunization.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from healthplatform.ingest.hl7v2 import faults
from healthplatform.ingest.hl7v2.message import Message, Segment
from healthplatform.ingest.v2tofhir import (
    IMAGING_SECTIONS,
    Context,
    allergy_of,
    authority_system,
    document_of,
    encounter_of,
    immunization_of,
    medication_request_of,
    observation_of,
    patient_of,
    report_of,
    service_request_of,
    text_of,
)


def _full_url() -> str:
    """A new ``urn:uuid:`` fullUrl (R4 bundle.html: a UUID): a message's entries name one another by these until
    the corridor gives them their ids, and several messages' Bundles may be written as one transaction, so no
    two messages may share one."""
    return f"urn:uuid:{uuid.uuid4()}"


# ADT trigger → the Encounter status its PV1 is written with (None: the trigger writes no Encounter).
ENCOUNTER_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "in-progress",
    "A05": "planned",
    "A08": "in-progress",
    "A11": "cancelled",
    "A13": "in-progress",
}
ADT_EVENTS = {"A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13", "A28", "A31", "A40", "A60"}


class NotMapped(Exception):
    """A message the processing cannot turn into resources: its text says why, without patient data; the table
    0357 ``code`` and ``location`` are what an application acknowledgement's ERR says."""

    def __init__(self, text: str, *, code: int = faults.APPLICATION_INTERNAL_ERROR, location=None):
        super().__init__(text)
        self.code = code
        self.location = location

    def fault(self) -> faults.Fault:
        return faults.Fault(self.code, str(self), self.location)


@dataclass
class Sender:
    """What the maps need to know of the message's source system: its sending facility (the default assigning
    authority), its local code system, the registry's HL7 v2 coding-system names, and which registration
    numbers the directory knows (an XCN of a known practitioner becomes a directory reference)."""

    facility: str
    local_system: str
    systems: Mapping[str, str] = field(default_factory=dict)
    known_practitioner: Callable[[str], bool] | None = None


@dataclass
class Merge:
    """ADT^A40: the prior MRN (MRG-1) to merge into the message's patient."""

    authority_system: str
    local_id: str


@dataclass
class Mapped:
    """A message as the corridor applies it, and the MPI merge it asks for afterwards."""

    bundle: dict
    merge: Merge | None = None


def _criterion(text: str) -> str:
    """One side of ``identifier=system|value`` as the corridor reads it back exactly: R4 search §2.1.1.7 escapes
    ``\\`` and ``,`` (a bare comma is an OR: ``V-9,<system>|V-1`` in PV1-19 matched, and overwrote, visit V-1),
    then every character a query string gives a meaning to is percent-encoded (``+`` read back as a space, ``%2D``
    as ``-``, ``&`` / ``#`` / ``=`` cutting the criteria: the resend of a message then found nothing and was
    refused as a second create)."""
    if "," in text:
        text = text.replace("\\", "\\\\").replace(",", "\\,")
    return quote(text, safe=":/")


def _conditional(resource: dict) -> str:
    identifier = resource["identifier"][0]
    system, value = _criterion(identifier["system"]), _criterion(identifier["value"])
    return f"{resource['resourceType']}?identifier={system}|{value}"


# C0 controls but TAB, LF, CR, and DEL: what a ``\Xhh\`` escape (HL7 v2.5.1 ch. 2.7.2) can put in a value, which a
# FHIR R4 string cannot carry (datatypes.html#string: ``[ \r\n\t\S]+``) and PostgreSQL's text and jsonb refuse
# (NUL): SQLite stored them, PostgreSQL parked the message as "DataError at copy:…".
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _controls_refused(node, path: str) -> None:
    """``NotMapped`` naming the first element (a FHIR path, never its value) that holds a control character."""
    if isinstance(node, str):
        if _CONTROLS.search(node):
            raise NotMapped(
                f"{path}: a field holds a control character (an \\Xhh\\ escape of 00-1F); FHIR text cannot carry it",
                code=faults.DATA_TYPE_ERROR,
            )
    elif isinstance(node, dict):
        for key, child in node.items():
            _controls_refused(child, f"{path}.{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _controls_refused(child, f"{path}[{i}]")


def _one_patient(message: Message) -> None:
    """One message, one patient. HL7 v2.5.1 lets an ORU^R01 carry several PATIENT_RESULT groups and an ADT_A39
    (A40) several PATIENT groups, each with its own PID (and MRG); the maps read the first PID as the patient of
    every fact, so the second patient's results were filed under the first's. Such a message is parked whole
    (nothing partly written) for its sender to send one patient per message."""
    for name in ("PID", "MRG"):
        found = message[name]
        if len(found) > 1:
            raise NotMapped(
                f"the message carries {len(found)} {name} segments: one patient per message is mapped",
                code=faults.SEGMENT_SEQUENCE_ERROR,
                location=faults.ErrorLocation(name, 2),
            )


def _put(resource: dict, full_url: str | None = None) -> dict:
    """An entry written by a conditional update on its first identifier (a POST when it has none)."""
    request = (
        {"method": "PUT", "url": _conditional(resource)}
        if resource.get("identifier")
        else {"method": "POST", "url": resource["resourceType"]}
    )
    entry = {"resource": resource, "request": request}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _groups(message: Message, starts: set[str]) -> list[list[Segment]]:
    """The message's segments after the patient's, cut where a segment of ``starts`` begins a new group (an
    ORC begins an order; an OBR or RXA begins one unless its group's ORC has none yet)."""
    groups: list[list[Segment]] = []
    for segment in message.segments:
        opened = bool(groups) and groups[-1][0].name == "ORC"
        if segment.name in starts and not (
            segment.name != "ORC" and opened and not any(s.name == segment.name for s in groups[-1])
        ):
            groups.append([segment])
        elif groups:
            groups[-1].append(segment)
    return groups


def _first(group: list[Segment], name: str) -> Segment | None:
    return next((s for s in group if s.name == name), None)


def message_mapped(message: Message, *, sender: Sender) -> Mapped:
    """The transaction Bundle (and A40 merge) of one tokenised message; ``NotMapped`` says why it has none."""
    header = message.header()
    code, trigger = header.message_code, header.trigger_event
    pid = message.segment("PID")
    if pid is None:
        raise NotMapped("no PID segment", code=faults.SEGMENT_SEQUENCE_ERROR, location=faults.ErrorLocation("PID"))
    _one_patient(message)
    facility = header.sending_facility.namespace_id or sender.facility
    patient = patient_of(pid, sending_facility=facility)
    mrns = [i for i in patient["identifier"] if i.get("type")]
    if not mrns:
        raise NotMapped(
            "PID-3 holds no identifier of the sender's (an MRN)",
            code=faults.REQUIRED_FIELD_MISSING,
            location=faults.ErrorLocation("PID", 1, 3),
        )
    patient["identifier"].sort(key=lambda i: i not in mrns)  # the MRN first: the conditional update's key
    mrn = mrns[0]["value"]
    if "," in mrn:
        # The corridor takes a Patient's conditional update only as identifier=<system>|<mrn>, one value: a comma
        # would make it an OR of two (R4 search §2.1.1.7), and the refusal would quote the MRN to the operator.
        raise NotMapped(
            "PID-3's MRN holds a comma, which no identifier search can name",
            code=faults.DATA_TYPE_ERROR,
            location=faults.ErrorLocation("PID", 1, 3),
        )
    patient_url = _full_url()
    entries = [
        {"fullUrl": patient_url, "resource": patient, "request": {"method": "PUT", "url": _conditional(patient)}}
    ]
    context = Context(patient_url, facility, sender.local_system, sender.systems, sender.known_practitioner)
    merge = None
    if code == "ADT" and trigger in ADT_EVENTS:
        pv1 = message.segment("PV1")
        status = ENCOUNTER_STATUS.get(trigger)
        if status and pv1 is not None and text_of(pv1.value(19)):
            if status == "in-progress" and trigger != "A13" and text_of(pv1.value(45)):
                status = "finished"  # an A08 after the discharge keeps the encounter finished
            encounter = encounter_of(pv1, patient_reference=patient_url, sending_facility=facility, status=status)
            if trigger == "A13":
                encounter.get("period", {}).pop("end", None)  # the discharge is cancelled: the stay goes on
            entries.append(_put(encounter))
        for segment in message.segments:
            if segment.name in ("AL1", "IAM"):
                entries.append(_put(allergy_of(segment, context, patient_key=mrn)))
        if trigger == "A40":
            mrg = message.segment("MRG")
            prior = text_of(mrg.value(1)) if mrg is not None else ""
            if not prior:
                raise NotMapped(
                    "ADT^A40 without MRG-1 (the prior patient identifier)",
                    code=faults.REQUIRED_FIELD_MISSING,
                    location=faults.ErrorLocation("MRG", 1, 1),
                )
            authority = text_of(mrg.value(1, component=4)) or facility
            merge = Merge(authority_system(authority), prior)
    elif code == "ORU" and trigger == "R01":
        # HL7 v2.5.1 ORU_R01: every OBX belongs to an ORDER_OBSERVATION group begun by its OBR. An OBX before the
        # first OBR (or an ORU with no OBR at all) was dropped and the message called processed: results lost
        # without a word. Parked instead, naming the first such OBX.
        segments = [s.name for s in message.segments]
        first_obr = segments.index("OBR") if "OBR" in segments else len(segments)
        if "OBX" in segments[:first_obr] or first_obr == len(segments):
            stray = segments[:first_obr].count("OBX")
            raise NotMapped(
                "ORU^R01 result (OBX) outside an order (OBR): OBR begins each ORDER_OBSERVATION group"
                if stray
                else "ORU^R01 without OBR",
                code=faults.SEGMENT_SEQUENCE_ERROR,
                location=faults.ErrorLocation("OBX" if stray else "OBR", 1),
            )
        repeats: dict[str, int] = {}
        for group in _groups(message, {"ORC", "OBR"}):
            obr = _first(group, "OBR")
            if obr is None:
                continue
            order = text_of(obr.value(3)) or text_of(obr.value(2))
            category = "imaging" if text_of(obr.value(24)).upper() in IMAGING_SECTIONS else "laboratory"
            results = []
            for obx in (s for s in group if s.name == "OBX"):
                observation = observation_of(
                    obx,
                    patient_reference=patient_url,
                    order_id=order,
                    category=category,
                    local_system=sender.local_system,
                    systems=sender.systems,
                )
                identifier = (observation.get("identifier") or [None])[0]
                if identifier is not None:
                    # OBX-4 sub-ID tells apart results of one test under one order (HL7 v2.5.1 §7.4.2.4), but
                    # senders leave it empty on repeated TX / ST lines of one code: each repeat was the same
                    # Observation changed twice and the whole report was parked. The n-th repeat of a key is its
                    # own result (the same message sent again numbers them the same).
                    repeats[identifier["value"]] = seen = repeats.get(identifier["value"], 0) + 1
                    if seen > 1:
                        identifier["value"] = f"{identifier['value']}|#{seen}"
                url = _full_url()
                entries.append(_put(observation, url))
                results.append(url)
            entries.append(_put(report_of(obr, context, results=results)))
    elif (code, trigger) in (("ORM", "O01"), ("OML", "O21"), ("RDE", "O11"), ("VXU", "V04")):
        for group in _groups(message, {"ORC", "OBR", "RXA"} if code == "VXU" else {"ORC", "OBR"}):
            orc = _first(group, "ORC")
            obr, rxe, rxo, rxa = (_first(group, n) for n in ("OBR", "RXE", "RXO", "RXA"))
            route, timing = _first(group, "RXR"), _first(group, "TQ1")
            if code == "VXU":
                if rxa is not None:
                    entries.append(_put(immunization_of(orc, rxa, context, route=route)))
            elif rxe is not None or rxo is not None:
                give = rxe if rxe is not None else rxo
                entries.append(_put(medication_request_of(orc, give, context, route=route, timing=timing)))
            elif obr is not None:
                entries.append(_put(service_request_of(orc, obr, context)))
        if len(entries) == 1:
            raise NotMapped(
                f"{code}^{trigger} without an order this platform maps (OBR, RXO, RXE or RXA)",
                code=faults.SEGMENT_SEQUENCE_ERROR,
            )
    elif code == "MDM" and trigger == "T02":
        txa = message.segment("TXA")
        if txa is None:
            raise NotMapped(
                "MDM^T02 without TXA", code=faults.SEGMENT_SEQUENCE_ERROR, location=faults.ErrorLocation("TXA")
            )
        content = [s for s in message.segments if s.name == "OBX"]
        document = document_of(txa, content, context)
        if document is None:
            raise NotMapped(
                "MDM^T02 without TXA-12 (unique document number) or without content in OBX-5",
                code=faults.REQUIRED_FIELD_MISSING,
                location=faults.ErrorLocation("TXA", 1, 12),
            )
        entries.append({"resource": document, "request": {"method": "POST", "url": "DocumentReference"}})
    else:
        raise NotMapped(
            f"{code}^{trigger} is not mapped",
            code=faults.UNSUPPORTED_EVENT_CODE,
            location=faults.ErrorLocation("MSH", 1, 9),
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    _controls_refused(bundle, "Bundle")
    return Mapped(bundle, merge)
