"""HL7 v2 to FHIR R4, after HL7's v2-to-FHIR implementation guide (segment and data-type maps; research notes §3):
what a tokenised message (``healthplatform.ingest.hl7v2.message``) says, as the FHIR resources the write corridor
takes. Pure functions: no database, no registry; the processing builds a transaction Bundle from them and writes
it through the corridor as the message's source system, exactly as a FHIR feed's Bundle is written.

Segments covered: PID → Patient (PID-3 identifiers with their assigning authorities, the resident identity
number and health card also where Chinese HIS put them, PID-19 / PID-20; PID-5 name, PID-7 birth date, PID-8
sex, PID-11 address, PID-13 phone), PV1 → Encounter (class, visit number, period, location), OBX → Observation
(code, value by OBX-2, units, reference range, interpretation, status, time), OBR → DiagnosticReport,
ORC + OBR → ServiceRequest, ORC + RXE / RXO + RXR + TQ1 → MedicationRequest, AL1 / IAM → AllergyIntolerance,
TXA + OBX → DocumentReference, RXA + RXR → Immunization; XCN → a Practitioner reference. The message-level
maps (which trigger writes what, cancels, A40) are in ``v2events``.

Codes: a CWE's coding system (CWE.3) is looked up in ``systems`` (the HL7 v2 names the registry gives its
code systems: the standard ones and the sender's own), then in the table below; a code without a system is
the sender's (``local_system``). The corridor translates local codes through the registry's concept maps.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from healthplatform.ingest.hl7v2.message import NULL, Segment

LOINC = "http://loinc.org"
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD_SYSTEM = "urn:oid:2.16.156.10011.1.19"
AUTHORITY_PREFIX = "urn:platform:authority:"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# HL7 table 0001 (administrative sex) → FHIR administrative-gender (the IG's ConceptMap).
GENDERS = {"F": "female", "M": "male", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
# CX.5 identifier type codes (table 0203) Chinese senders use for the two national documents.
RESIDENT_ID_TYPES = {"NNCHN", "NI", "RID", "SFZ"}
HEALTH_CARD_TYPES = {"HC", "JHN", "YBK"}
# PV1-2 patient class (table 0004) → v3 ActEncounterCode (the IG's ConceptMap).
ENCOUNTER_CLASSES = {"I": "IMP", "O": "AMB", "E": "EMER", "P": "PRENC", "R": "AMB", "B": "IMP", "N": "AMB"}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# OBX-11 (table 0085) → Observation.status.
OBSERVATION_STATUSES = {
    "F": "final",
    "C": "corrected",
    "P": "preliminary",
    "R": "registered",
    "S": "preliminary",
    "X": "cancelled",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "I": "registered",
    "A": "amended",
}
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PRACTITIONER_LICENCE_SYSTEM = "urn:platform:practitioner-licence"  # registry.codes (no registry import here)
# Coding systems of CWE.3 (table 0396) → FHIR URIs.
CODING_SYSTEMS = {
    "LN": LOINC,
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "ATC": "http://www.whocc.no/atc",
    "WC": "http://www.whocc.no/atc",
    "UCUM": "http://unitsofmeasure.org",
    "HL70162": "http://terminology.hl7.org/CodeSystem/v2-0162",
    "HL70163": "http://terminology.hl7.org/CodeSystem/v2-0163",
}
_RESIDENT_ID = re.compile(r"\d{17}[\dXx]")
# TS / DTM (ch. 2A): YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
_TS = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?")


# NM (HL7 v2.5.1 ch. 2A.2.47): "an optional leading sign (+ or -), the digits and an optional decimal point", in
# ASCII. Python's int() and float() read far more: "1_5" as 15, full-width "１２" as 12, "1e400" as infinity (which
# FHIR's decimal refuses, parking the whole report) — a typo read as another lab value. What is not an NM is kept
# as the text sent (valueString), as a value that is no number at all always was.
_NM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def nm_value(text: str) -> int | float | None:
    """An NM as a JSON number (an int when it has no decimal point), None when it is not an NM."""
    if not _NM.fullmatch(text):
        return None
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:  # more digits than int() reads (4,300)
        return None
    return value if math.isfinite(value) else None  # "1" * 400 + ".0" is a float's infinity


def text_of(value) -> str:
    """A field's value as stripped text (an HL7 null ``""`` or an absent value: empty)."""
    return "" if value is NULL or value is None else str(value).strip()


def authority_system(authority: str) -> str:
    """The FHIR Identifier.system of a CX.4 / HD namespace (an OID as ``urn:oid:``, else the platform's
    authority namespace), as the MPI names assigning authorities."""
    if re.fullmatch(r"[0-2](\.[0-9]+)+", authority):
        return f"urn:oid:{authority}"
    return AUTHORITY_PREFIX + authority


def hl7_date(value: str) -> str | None:
    """A DT / TS / DTM's date as FHIR ``date`` (YYYY, YYYY-MM or YYYY-MM-DD), None when it is not one."""
    value = text_of(value)
    match = _TS.fullmatch(value)
    if not match:
        return None
    year, month, day, _offset = match.groups()
    try:
        if day:
            return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None
    return f"{year}-{month}" if month else year


def hl7_datetime(value: str) -> str | None:
    """A TS / DTM as FHIR ``dateTime``: to the second when given, with its offset, else only the date part
    (an HL7 time without an offset is the sender's local time, which FHIR cannot say without one: the date
    alone is the honest reading)."""
    value = text_of(value)
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?", value)
    if not match:
        return hl7_date(value)
    year, month, day, hour, minute, second, offset = match.groups()
    if offset is None:
        return hl7_date(value)
    try:
        moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    return f"{moment.isoformat()}{offset[:3]}:{offset[3:]}"


def coding_system(name: str, *, local_system: str, systems: Mapping[str, str] | None = None) -> str:
    """The FHIR system of a CWE.3 / CWE.6 coding system name (table 0396 or the sender's own): the registry's
    names first, then the well-known ones; no name is the sender's local system, an unknown name is kept
    beside it (``<local system>:<name>``, counted unmapped by the corridor)."""
    key = name.upper()
    if systems and key in systems:
        return systems[key]
    if key in CODING_SYSTEMS:
        return CODING_SYSTEMS[key]
    return local_system if not name else f"{local_system}:{name}"


def coded(
    segment: Segment, field: int, *, local_system: str, systems: Mapping[str, str] | None = None, repetition: int = 1
) -> dict | None:
    """A CE / CWE field as a CodeableConcept: its identifier, text and coding system (CWE.1-3), and the
    alternate triple (CWE.4-6); a code of no known table in ``local_system`` (the sender's own code system,
    which the corridor translates through the registry's concept maps). Text alone (a free-text allergen,
    CWE.2 or CWE.9 without a code) is kept as ``text``."""
    codings, free_text = [], ""
    for start in (1, 4):
        code = text_of(segment.value(field, component=start, repetition=repetition))
        display = text_of(segment.value(field, component=start + 1, repetition=repetition))
        system = text_of(segment.value(field, component=start + 2, repetition=repetition))
        if not code:
            # A display without its code is text, not a coding (a free-text allergen, "青霉素").
            if display and not codings and not free_text:
                free_text = display
            continue
        coding = {"system": coding_system(system, local_system=local_system, systems=systems), "code": code}
        if display:
            coding["display"] = display
        codings.append(coding)
    text = (
        text_of(segment.value(field, component=9, repetition=repetition))
        or free_text
        or next((c["display"] for c in codings if "display" in c), "")
    )
    if not codings and not text:
        return None
    concept: dict = {"coding": codings} if codings else {}
    if text:
        concept["text"] = text
    return concept


def _pid_3(pid: Segment, sending_facility: str) -> list[tuple[str, str, str, str]]:
    """PID-3's identifiers as (value, what, CX.5 type, authority): what is "resident" (a resident identity
    number), "card" (a health card) or "own" (one of the sender's numbers); the authority is CX.4, else the
    sending facility."""
    found = []
    for repetition in pid.field(3).repetitions():
        value = text_of(repetition.value(1))
        if not value:
            continue
        kind = text_of(repetition.value(5)).upper()
        authority = text_of(repetition.value(4)) or sending_facility
        what = "own"
        if kind in RESIDENT_ID_TYPES or (kind == "" and _RESIDENT_ID.fullmatch(value) and authority == "CHN"):
            what = "resident"
        elif kind in HEALTH_CARD_TYPES:
            what = "card"
        found.append((value, what, kind, authority))
    return found


def mrn_of(pid: Segment, *, sending_facility: str) -> tuple[str, str] | None:
    """The (MRN, assigning authority) ``patient_of`` makes the Patient's key: the first of PID-3's identifiers that
    is the sender's own number (not a resident id or health card, whichever repetition it is)."""
    return next(((v, a) for v, what, _kind, a in _pid_3(pid, sending_facility) if what == "own"), None)


def patient_of(pid: Segment, *, sending_facility: str) -> dict:
    """PID → Patient (the IG's PID[Patient] map, the parts the MPI reads). An MRN without its assigning
    authority (CX.4) is the sending facility's (research notes §4.5: many HIS leave CX.4 empty)."""
    identifiers = []
    for value, what, kind, authority in _pid_3(pid, sending_facility):
        if what == "resident":
            identifiers.append({"system": RESIDENT_ID_SYSTEM, "value": value.upper()})
        elif what == "card":
            identifiers.append({"system": HEALTH_CARD_SYSTEM, "value": value})
        else:
            identifier = {"system": authority_system(authority), "value": value}
            identifier["type"] = {"coding": [{"system": V2_0203, "code": kind or "MR"}]}
            identifiers.append(identifier)
    # PID-19 (SSN number) and PID-20 (driver's licence) are where many Chinese HIS put the resident identity
    # number and the health card (research notes §5.2).
    national = text_of(pid.value(19))
    if _RESIDENT_ID.fullmatch(national) and not any(i["system"] == RESIDENT_ID_SYSTEM for i in identifiers):
        identifiers.append({"system": RESIDENT_ID_SYSTEM, "value": national.upper()})
    card = text_of(pid.value(20))
    if card and not any(i["system"] == HEALTH_CARD_SYSTEM for i in identifiers):
        identifiers.append({"system": HEALTH_CARD_SYSTEM, "value": card})
    patient: dict = {"resourceType": "Patient", "identifier": identifiers}
    family, given = text_of(pid.value(5, component=1)), text_of(pid.value(5, component=2))
    if family or given:
        # A Chinese name is written family name first, without a space.
        joined = f"{family}{given}" if re.search(r"[\u4e00-\u9fff]", family + given) else f"{given} {family}".strip()
        name = {"text": joined}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        patient["name"] = [name]
    birth = hl7_date(pid.value(7))
    if birth:
        patient["birthDate"] = birth
    sex = text_of(pid.value(8)).upper()
    if sex in GENDERS:
        patient["gender"] = GENDERS[sex]
    address = [text_of(pid.value(11, component=c)) for c in (1, 3, 4, 5, 6)]
    if any(address):
        street, city, state, postal, country = address
        entry = {"text": "".join(p for p in (state, city, street) if p)}
        entry |= {
            k: v for k, v in (("city", city), ("state", state), ("postalCode", postal), ("country", country)) if v
        }
        if street:
            entry["line"] = [street]
        patient["address"] = [entry]
    phones = [(text_of(r.value(1)) or text_of(r.value(12))) for r in pid.field(13).repetitions()]
    if any(phones):
        patient["telecom"] = [{"system": "phone", "value": p} for p in phones if p]
    return patient


def encounter_of(pv1: Segment, *, patient_reference: str, sending_facility: str, status: str) -> dict:
    """PV1 → Encounter (class PV1-2, visit number PV1-19 as its identifier, period PV1-44 / PV1-45)."""
    patient_class = text_of(pv1.value(2)).upper()
    encounter: dict = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": ACT_CODE, "code": ENCOUNTER_CLASSES.get(patient_class, "AMB")},
        "subject": {"reference": patient_reference},
    }
    visit = text_of(pv1.value(19))
    if visit:
        encounter["identifier"] = [{"system": authority_system(sending_facility) + ":visit", "value": visit}]
    start, end = hl7_datetime(pv1.value(44)), hl7_datetime(pv1.value(45))
    if start or end:
        encounter["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    location = "^".join(p for p in (text_of(pv1.value(3, component=c)) for c in (1, 2, 3)) if p)
    if location:
        encounter["location"] = [{"location": {"display": location}}]
    return encounter


def observation_of(
    obx: Segment,
    *,
    patient_reference: str,
    local_system: str,
    order_id: str,
    systems: Mapping[str, str] | None = None,
    category: str = "laboratory",
) -> dict:
    """OBX → Observation (the IG's OBX[Observation] map): code OBX-3, value by OBX-2 (NM → valueQuantity with
    OBX-6, CE/CWE → valueCodeableConcept, ST/TX/FT → valueString), reference range OBX-7, interpretation
    OBX-8, status OBX-11, time OBX-14; identified by the order (filler or placer number) and the test code, so
    that a corrected result (OBX-11 C) names the same fact and becomes its new version."""
    code = coded(obx, 3, local_system=local_system, systems=systems) or {"text": "(not coded)"}
    observation: dict = {
        "resourceType": "Observation",
        "status": OBSERVATION_STATUSES.get(text_of(obx.value(11)).upper(), "final"),
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": code,
        "subject": {"reference": patient_reference},
    }
    key = text_of(obx.value(3, component=1)) or text_of(obx.value(1))
    sub_id = text_of(obx.value(4))
    if sub_id:  # OBX-4 tells apart repeated results of one test within one order
        key = f"{key}|{sub_id}"
    if order_id and key:
        observation["identifier"] = [{"system": f"{local_system}:result", "value": f"{order_id}|{key}"}]
    kind = text_of(obx.value(2)).upper()
    raw = text_of(obx.value(5))
    unit = text_of(obx.value(6, component=1)) or text_of(obx.value(6, component=2))
    if kind in ("NM", "SN") and raw:
        comparator, number = re.fullmatch(r"(<=|>=|<|>)?\s*(.*)", raw).groups()
        value = nm_value(number)
        if value is None:
            observation["valueString"] = raw
        else:
            quantity: dict = {"value": value}
            if comparator:
                quantity["comparator"] = comparator
            if unit:
                quantity["unit"] = unit
            observation["valueQuantity"] = quantity
    elif kind in ("CE", "CWE", "CNE") and raw:
        observation["valueCodeableConcept"] = coded(obx, 5, local_system=local_system, systems=systems)
    elif raw:
        observation["valueString"] = raw
    reference = text_of(obx.value(7))
    bounds = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*[-~–]\s*([-+]?\d+(?:\.\d+)?)\s*", reference)
    if bounds:
        low, high = (float(b) for b in bounds.groups())
        limits: dict = {"low": {"value": low}, "high": {"value": high}}
        if unit:
            limits["low"]["unit"] = limits["high"]["unit"] = unit
        observation["referenceRange"] = [limits]
    elif reference:
        observation["referenceRange"] = [{"text": reference}]
    flag = text_of(obx.value(8)).upper()
    if flag:
        observation["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
    effective = hl7_datetime(obx.value(14))
    if effective:
        observation["effectiveDateTime"] = effective
    return observation


# --- Orders, prescriptions, allergies, documents, immunisations ---------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every segment map of one message needs: the Patient it is about (a Bundle reference), the sending
    facility (the default assigning authority), the sender's local code system and the registry's coding-system
    names, and which registration numbers the directory knows (``known``)."""

    patient_reference: str
    facility: str
    local_system: str
    systems: Mapping[str, str] = field(default_factory=dict)
    known: Callable[[str], bool] | None = None

    def coded(self, segment: Segment, number: int) -> dict | None:
        return coded(segment, number, local_system=self.local_system, systems=self.systems)

    def practitioner(self, segment: Segment | None, number: int) -> dict | None:
        return practitioner_of(segment, number, known=self.known) if segment is not None else None

    def route(self, segment: Segment | None) -> dict | None:
        """RXR-1 route (table 0162 unless CWE.3 names another system)."""
        if segment is None:
            return None
        return coded(segment, 1, local_system=CODING_SYSTEMS["HL70162"], systems=self.systems)


# ORC-1 order control (table 0119) → request status (the IG's ORC[ServiceRequest] map): a cancel or discontinue
# revokes, a hold holds, anything else keeps the order active. ORC-5 order status (table 0038), when sent, wins.
ORDER_CONTROL_STATUS = {
    "CA": "revoked",
    "OC": "revoked",
    "CR": "revoked",
    "DC": "revoked",
    "OD": "revoked",
    "DR": "revoked",
    "HD": "on-hold",
    "OH": "on-hold",
}
ORDER_STATUS = {
    "A": "active",
    "IP": "active",
    "SC": "active",
    "CM": "completed",
    "CA": "revoked",
    "DC": "revoked",
    "HD": "on-hold",
    "ER": "entered-in-error",
}
# OBR-25 result status (table 0123) → DiagnosticReport.status.
REPORT_STATUSES = {
    "O": "registered",
    "I": "registered",
    "S": "partial",
    "A": "partial",
    "P": "preliminary",
    "C": "corrected",
    "R": "partial",
    "F": "final",
    "X": "cancelled",
    "M": "amended",
}
# OBR-24 diagnostic service section (table 0074) → v2-0074 code and the Observation category it implies.
IMAGING_SECTIONS = {"RAD", "CT", "MR", "US", "NMR", "NMS", "RX", "VUS", "XRC", "CUS", "OUS"}
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
# AL1-2 / IAM-2 allergen type (table 0127) → AllergyIntolerance.category (and type).
ALLERGEN_CATEGORIES = {"DA": "medication", "MA": "medication", "FA": "food", "EA": "environment", "PA": "environment"}
# AL1-4 / IAM-4 severity (table 0128) → criticality.
ALLERGY_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}
ALLERGY_REACTION_SEVERITY = {"SV": "severe", "MO": "moderate", "MI": "mild"}
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
# TXA-2 document type (table 0270) → LOINC document type.
DOCUMENT_TYPES = {
    "DS": ("18842-5", "Discharge summary", "出院小结"),
    "CN": ("11488-4", "Consult note", "会诊记录"),
    "HP": ("34117-2", "History and physical note", "入院记录"),
    "OP": ("11504-8", "Surgical operation note", "手术记录"),
    "PN": ("11506-3", "Progress note", "病程记录"),
    "DI": ("18748-4", "Diagnostic imaging study", "影像检查报告"),
    "AR": ("18743-5", "Autopsy report", "尸检报告"),
    "PH": ("11492-6", "History and physical note", "体格检查"),
}
# TXA-17 document completion status (table 0271) → DocumentReference.docStatus.
DOCUMENT_COMPLETION = {"DO": "final", "AU": "final", "LA": "final", "PA": "preliminary", "IP": "preliminary"}
DOCUMENT_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
# TXA-2 → the document store's class (emr.codes), where the type says it without doubt.
DOCUMENT_CLASS_SYSTEM = "urn:platform:codes:document-class"  # emr.codes.DOCUMENT_CLASS_SYSTEM
DOCUMENT_CLASSES = {"DS": "discharge-summary", "DI": "exam-report"}
# ED data type (ch. 2A.2.23): type of data (table 0191) / subtype → MIME type when ED.2 is not a MIME top level.
ED_TYPES = {"TEXT": "text/plain", "AP": "application/octet-stream", "IM": "image/jpeg", "PDF": "application/pdf"}
# RXA-20 completion status (table 0322) → Immunization.status.
IMMUNIZATION_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}
# TQ1-3 / RXE-1.2 repeat pattern (table 0335) → Timing.repeat.
_EVERY_HOURS = re.compile(r"Q(\d+)H")


def practitioner_of(segment: Segment, field: int, *, known: Callable[[str], bool] | None = None) -> dict | None:
    """An XCN (ID number XCN.1, family XCN.2.1, given XCN.3) as a reference: to the directory's Practitioner by
    registration number when the registry knows it (``known``), else a logical reference (identifier and name)
    so that a message is never refused for want of a directory entry."""
    number = text_of(segment.value(field, component=1))
    family = text_of(segment.value(field, component=2))
    given = text_of(segment.value(field, component=3))
    name = f"{family}{given}" if re.search(r"[\u4e00-\u9fff]", family + given) else f"{given} {family}".strip()
    if not number and not name:
        return None
    reference: dict = {}
    if number and known is not None and known(number.upper()):
        reference["reference"] = f"Practitioner?identifier={PRACTITIONER_LICENCE_SYSTEM}|{number.upper()}"
    elif number:
        reference["identifier"] = {"system": PRACTITIONER_LICENCE_SYSTEM, "value": number.upper()}
    if name:
        reference["display"] = name
    return reference


def entity_identifier(segment: Segment, field: int, *, default_authority: str, kind: str) -> dict | None:
    """An EI (entity identifier EI.1, namespace EI.2) as an Identifier of ``kind`` (placer, filler, document):
    its namespace, else the sending facility's."""
    value = text_of(segment.value(field, component=1))
    if not value:
        return None
    namespace = text_of(segment.value(field, component=2)) or default_authority
    return {"system": f"{authority_system(namespace)}:{kind}", "value": value}


def _order_identifiers(orc: Segment | None, obr: Segment | None, *, facility: str) -> list[dict]:
    """Placer (ORC-2, else OBR-2) then filler (ORC-3, else OBR-3) order numbers: the placer's first, as it is
    what every later message about the order carries."""
    found = []
    for kind, number in (("placer", 2), ("filler", 3)):
        for segment in (orc, obr):
            if segment is not None:
                identifier = entity_identifier(segment, number, default_authority=facility, kind=kind)
                if identifier:
                    found.append(identifier)
                    break
    return found


def order_status(orc: Segment | None) -> str:
    """ORC-5 order status when sent, else what ORC-1 order control implies (active for a new order)."""
    if orc is None:
        return "active"
    return ORDER_STATUS.get(text_of(orc.value(5)).upper()) or ORDER_CONTROL_STATUS.get(
        text_of(orc.value(1)).upper(), "active"
    )


def service_request_of(orc: Segment | None, obr: Segment, context: Context) -> dict:
    """ORC + OBR → ServiceRequest (the IG's ORC[ServiceRequest] and OBR[ServiceRequest] maps): order numbers,
    status, the test or exam ordered (OBR-4), when it was ordered (ORC-9) and is due (TQ1-7 / OBR-27.4 /
    OBR-6), who ordered it (ORC-12, else OBR-16), the reason (OBR-31)."""
    request: dict = {
        "resourceType": "ServiceRequest",
        "status": order_status(orc),
        "intent": "order",
        "code": context.coded(obr, 4) or {"text": "(not coded)"},
        "subject": {"reference": context.patient_reference},
    }
    identifiers = _order_identifiers(orc, obr, facility=context.facility)
    if identifiers:
        request["identifier"] = identifiers
    section = text_of(obr.value(24)).upper()
    category = "363679005" if section in IMAGING_SECTIONS else "108252007"
    request["category"] = [
        {"coding": [{"system": "http://snomed.info/sct", "code": category}]} | ({"text": section} if section else {})
    ]
    authored = hl7_datetime(orc.value(9)) if orc is not None else None
    if authored:
        request["authoredOn"] = authored
    due = hl7_datetime(obr.value(27, component=4)) or hl7_datetime(obr.value(6))
    if due:
        request["occurrenceDateTime"] = due
    requester = context.practitioner(orc, 12) or context.practitioner(obr, 16)
    if requester:
        request["requester"] = requester
    reason = context.coded(obr, 31)
    if reason:
        request["reasonCode"] = [reason]
    priority = text_of(obr.value(27, component=6)).upper() or text_of(obr.value(5)).upper()
    if priority in ("S", "A"):
        request["priority"] = "stat" if priority == "S" else "asap"
    return request


def report_of(obr: Segment, context: Context, *, results: list[str]) -> dict:
    """OBR → DiagnosticReport (the IG's OBR[DiagnosticReport] map): the filler's (else placer's) order number as
    its identifier, so a corrected report is the same report's next version; status OBR-25, code OBR-4,
    category OBR-24, effective OBR-7 (to OBR-8), the OBX Observations as its results."""
    report: dict = {
        "resourceType": "DiagnosticReport",
        "status": REPORT_STATUSES.get(text_of(obr.value(25)).upper(), "final"),
        "code": context.coded(obr, 4) or {"text": "(not coded)"},
        "subject": {"reference": context.patient_reference},
    }
    identifier = entity_identifier(obr, 3, default_authority=context.facility, kind="filler") or entity_identifier(
        obr, 2, default_authority=context.facility, kind="placer"
    )
    if identifier:
        report["identifier"] = [identifier]
    section = text_of(obr.value(24)).upper()
    report["category"] = [{"coding": [{"system": V2_0074, "code": section or "LAB"}]}]
    start, end = hl7_datetime(obr.value(7)), hl7_datetime(obr.value(8))
    if start and end and end != start:
        report["effectivePeriod"] = {"start": start, "end": end}
    elif start:
        report["effectiveDateTime"] = start
    interpreter = context.practitioner(obr, 32)
    if interpreter:
        report["resultsInterpreter"] = [interpreter]
    if results:
        report["result"] = [{"reference": r} for r in results]
    return report


def _dose(amount: str, unit: str) -> dict | None:
    value = nm_value(amount)  # RXE-3 / RXO-2 / RXA-6 are NM
    if value is None:
        return None
    quantity: dict = {"value": value}
    if unit:
        quantity["unit"] = unit
    return quantity


def timing_of(pattern: str) -> dict | None:
    """A repeat pattern (table 0335: QD, BID, TID, QID, QnH, QOD, QW, PRN …) as a FHIR Timing."""
    code = pattern.upper().strip()
    per_day = {"QD": 1, "QAM": 1, "QPM": 1, "QHS": 1, "BID": 2, "TID": 3, "QID": 4}
    if code in per_day:
        return {"repeat": {"frequency": per_day[code], "period": 1, "periodUnit": "d"}, "code": {"text": code}}
    if code == "QOD":
        return {"repeat": {"frequency": 1, "period": 2, "periodUnit": "d"}, "code": {"text": code}}
    if code == "QW":
        return {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}, "code": {"text": code}}
    hours = _EVERY_HOURS.fullmatch(code)
    if hours:
        return {"repeat": {"frequency": 1, "period": int(hours.group(1)), "periodUnit": "h"}, "code": {"text": code}}
    return {"code": {"text": code}} if code else None


def medication_request_of(
    orc: Segment | None, give: Segment, context: Context, *, route: Segment | None, timing: Segment | None
) -> dict:
    """ORC + RXE (or RXO) + RXR + TQ1 → MedicationRequest (the IG's RXE[MedicationRequest] / RXO maps): the
    drug (RXE-2 give code, RXO-1 requested give code), the dose (RXE-3 / RXO-2 with RXE-5 / RXO-4 units), the
    route (RXR-1), the timing (TQ1-3 repeat pattern, else RXE-1.2), the order's numbers, status and time."""
    is_rxe = give.name == "RXE"
    code_field, amount_field, unit_field = (2, 3, 5) if is_rxe else (1, 2, 4)
    request: dict = {
        "resourceType": "MedicationRequest",
        "status": order_status(orc),
        "intent": "order",
        "medicationCodeableConcept": context.coded(give, code_field) or {"text": "(not coded)"},
        "subject": {"reference": context.patient_reference},
    }
    if request["status"] == "revoked":
        request["status"] = "cancelled" if text_of(orc.value(1)).upper() in ("CA", "OC", "CR") else "stopped"
    identifiers = _order_identifiers(orc, None, facility=context.facility)
    if identifiers:
        request["identifier"] = identifiers
    authored = hl7_datetime(orc.value(9)) if orc is not None else None
    if authored:
        request["authoredOn"] = authored
    requester = context.practitioner(orc, 12)
    if requester:
        request["requester"] = requester
    dosage: dict = {}
    quantity = _dose(text_of(give.value(amount_field)), text_of(give.value(unit_field, component=1)))
    if quantity:
        dosage["doseAndRate"] = [{"doseQuantity": quantity}]
    pattern = text_of(timing.value(3, component=1)) if timing is not None else text_of(give.value(1, component=2))
    when = timing_of(pattern) if is_rxe or timing is not None else None
    if when:
        if pattern.upper() == "PRN":
            dosage["asNeededBoolean"] = True
        else:
            dosage["timing"] = when
    route_code = context.route(route)
    if route_code:
        dosage["route"] = route_code
    instructions = text_of(give.value(21, component=2) or give.value(21, component=1)) if is_rxe else ""
    if instructions:
        dosage["text"] = instructions
    if dosage:
        request["dosageInstruction"] = [{"sequence": 1, **dosage}]
    return request


def allergy_of(segment: Segment, context: Context, *, patient_key: str) -> dict:
    """AL1 (in ADT) or IAM (ADT^A60) → AllergyIntolerance (the IG's AL1 and IAM maps): the allergen (AL1-3 /
    IAM-3, a free-text allergen kept as text, never dropped), its type (-2), severity (-4), reactions (AL1-5 /
    IAM-5), the date identified (AL1-6 / IAM-11 onset). IAM-6 action D (delete) records it entered in error.
    Identified by IAM-7 when sent, else by the patient and the allergen, so a resend updates, not duplicates."""
    allergen = context.coded(segment, 3)
    if allergen is None:
        allergen = {"text": "(allergen not stated)"}
    allergy: dict = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]},
        "code": allergen,
        "patient": {"reference": context.patient_reference},
    }
    kind = text_of(segment.value(2, component=1)).upper()
    if kind in ALLERGEN_CATEGORIES:
        allergy["category"] = [ALLERGEN_CATEGORIES[kind]]
    allergy["type"] = "intolerance" if kind in ("MC", "LA") or kind.endswith("I") else "allergy"
    severity = text_of(segment.value(4, component=1)).upper()
    if severity in ALLERGY_CRITICALITY:
        allergy["criticality"] = ALLERGY_CRITICALITY[severity]
    reactions = [text_of(r.value(1)) or text_of(r.value(2)) for r in segment.field(5).repetitions()]
    reactions = [r for r in reactions if r]
    if reactions:
        reaction: dict = {"manifestation": [{"text": r} for r in reactions]}
        if severity in ALLERGY_REACTION_SEVERITY:
            reaction["severity"] = ALLERGY_REACTION_SEVERITY[severity]
        allergy["reaction"] = [reaction]
    if segment.name == "IAM":
        onset = hl7_date(segment.value(11))
        if onset:
            allergy["onsetDateTime"] = onset
        recorded = hl7_datetime(segment.value(13))
        if recorded:
            allergy["recordedDate"] = recorded
        if text_of(segment.value(6, component=1)).upper() == "D":
            allergy["verificationStatus"]["coding"][0]["code"] = "entered-in-error"
            del allergy["clinicalStatus"]  # R4 ait-1: no clinical status when entered in error
        unique = text_of(segment.value(7, component=1))
    else:
        onset = hl7_date(segment.value(6))
        if onset:
            allergy["onsetDateTime"] = onset
        unique = ""
    key = unique or next((c["code"] for c in allergen.get("coding", []) if c.get("code")), "") or allergen["text"]
    allergy["identifier"] = [{"system": f"{context.local_system}:allergy", "value": f"{patient_key}|{key}"[:250]}]
    return allergy


def _ed_content(obx: Segment) -> tuple[str, bytes] | None:
    """An OBX-5 ED (source ^ type of data ^ subtype ^ encoding ^ data) as its MIME type and bytes."""
    kind = text_of(obx.value(5, component=2))
    subtype = text_of(obx.value(5, component=3))
    encoding = text_of(obx.value(5, component=4)).upper()
    data = text_of(obx.value(5, component=5))
    if not data:
        return None
    if kind.lower() in ("application", "text", "image", "audio", "video", "multipart") and subtype:
        content_type = f"{kind.lower()}/{subtype.lower()}"
    else:
        content_type = ED_TYPES.get(subtype.upper()) or ED_TYPES.get(kind.upper(), "application/octet-stream")
    if encoding in ("BASE64", "B64"):
        try:
            return content_type, base64.b64decode(data, validate=False)
        except ValueError:
            return None
    if encoding == "HEX":
        try:
            return content_type, bytes.fromhex(data)
        except ValueError:
            return None
    return content_type, data.encode()


def document_of(txa: Segment, content: list[Segment], context: Context) -> dict | None:
    """TXA + OBX → DocumentReference (the IG's MDM maps): TXA-12 unique document number as its business id,
    TXA-2 document type, TXA-17 completion status, TXA-4 / TXA-6 its time, TXA-5 / TXA-9 its author; the
    content from OBX-5: an ED (base64 PDF and the like) as is, TX / FT / ST lines as UTF-8 text. None when the
    message carries no content."""
    data, content_type = b"", "text/plain; charset=utf-8"
    lines = []
    for obx in content:
        kind = text_of(obx.value(2)).upper()
        if kind in ("ED", "RP"):
            found = _ed_content(obx) if kind == "ED" else None
            if found:
                content_type, data = found
                break
        else:
            lines.extend(text_of(r.value(1)) for r in obx.field(5).repetitions())
    if not data and lines:
        data = "\n".join(lines).encode()
    if not data:
        return None
    number = entity_identifier(txa, 12, default_authority=context.facility, kind="document")
    if number is None:
        return None
    doc_type = text_of(txa.value(2, component=1)).upper()
    # The content's OBX-3, when LOINC, is the document's type (senders put 34133-9 "summary of episode note"
    # there for what TXA-2 only calls a progress note); else TXA-2 through table 0270.
    content_code = next((c for c in (context.coded(o, 3) for o in content) if c), None) or {}
    loinc = next((c for c in content_code.get("coding", []) if c["system"] == LOINC), None)
    if loinc is not None:
        type_concept = {"coding": [loinc], "text": content_code.get("text") or loinc.get("display", "")}
    elif doc_type in DOCUMENT_TYPES:
        code, english, chinese = DOCUMENT_TYPES[doc_type]
        type_concept = {"coding": [{"system": LOINC, "code": code, "display": english}], "text": chinese}
    else:
        type_concept = context.coded(txa, 2) or {"text": doc_type or "文档"}
    when = hl7_datetime(txa.value(4)) or hl7_datetime(txa.value(6)) or hl7_datetime(txa.value(22))
    attachment: dict = {
        "contentType": content_type,
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
    }
    title = text_of(txa.value(16)) or type_concept.get("text", "")
    if title:
        attachment["title"] = title
    document: dict = {
        "resourceType": "DocumentReference",
        "masterIdentifier": number,
        "status": "current",
        "docStatus": DOCUMENT_COMPLETION.get(text_of(txa.value(17)).upper(), "final"),
        "type": type_concept,
        "category": [{"coding": [{"system": DOCUMENT_CATEGORY, "code": "clinical-note"}]}],
        # The document store's class (WS/T 500 shared documents) where TXA-2 says it; else the store takes it
        # from the LOINC type, or refuses the document naming what is missing.
        "subject": {"reference": context.patient_reference},
        "content": [{"attachment": attachment}],
    }
    if when and "T" in when:
        document["date"] = when
    if doc_type in DOCUMENT_CLASSES:
        document["category"].append({"coding": [{"system": DOCUMENT_CLASS_SYSTEM, "code": DOCUMENT_CLASSES[doc_type]}]})
    authors = [a for a in (context.practitioner(txa, 5), context.practitioner(txa, 9)) if a]
    if authors:
        document["author"] = authors[:1]
    return document


def immunization_of(orc: Segment | None, rxa: Segment, context: Context, *, route: Segment | None) -> dict:
    """RXA (+ ORC, RXR) → Immunization (the IG's RXA[Immunization] map): vaccine RXA-5 (CVX and the sender's
    codes), when RXA-3, dose RXA-6 / RXA-7 (999 = not known), primary source from RXA-9 (00 new record), who
    RXA-10, lot RXA-15, manufacturer RXA-17, status RXA-20 (RXA-21 D: entered in error). Identified by the
    filler order number (ORC-3), else by the vaccine and the time given."""
    vaccine = context.coded(rxa, 5) or {"text": "(not coded)"}
    status = IMMUNIZATION_STATUS.get(text_of(rxa.value(20)).upper(), "completed")
    if text_of(rxa.value(21)).upper() == "D":
        status = "entered-in-error"
    when = hl7_datetime(rxa.value(3))
    immunization: dict = {
        "resourceType": "Immunization",
        "status": status,
        "vaccineCode": vaccine,
        "patient": {"reference": context.patient_reference},
    }
    # occurrence[x] is required (1..1): a time not sent, or not readable, is said so in words.
    immunization["occurrenceDateTime" if when else "occurrenceString"] = when or "unknown"
    filler = entity_identifier(orc, 3, default_authority=context.facility, kind="filler") if orc is not None else None
    if filler is None:
        code = next((c["code"] for c in vaccine.get("coding", []) if c.get("code")), vaccine.get("text", ""))
        filler = {
            "system": f"{authority_system(context.facility)}:immunization",
            "value": f"{code}|{text_of(rxa.value(3))}",
        }
    immunization["identifier"] = [filler]
    notes = text_of(rxa.value(9, component=1))
    immunization["primarySource"] = notes in ("", "00")
    amount = text_of(rxa.value(6))
    if amount and amount != "999":
        dose = _dose(amount, text_of(rxa.value(7, component=1)))
        if dose:
            immunization["doseQuantity"] = dose
    performer = context.practitioner(rxa, 10)
    if performer:
        immunization["performer"] = [{"actor": performer}]
    lot = text_of(rxa.value(15))
    if lot:
        immunization["lotNumber"] = lot
    maker = text_of(rxa.value(17, component=2)) or text_of(rxa.value(17, component=1))
    if maker:
        immunization["manufacturer"] = {"display": maker}
    route_code = context.route(route)
    if route_code:
        immunization["route"] = route_code
    return immunization
