"""HL7 v2 to FHIR R4, after HL7's v2-to-FHIR implementation guide (segment and data-type maps; research notes §3):
what a tokenised message (``healthplatform.ingest.hl7v2.message``) says, as the FHIR resources the write corridor
takes. Pure functions: no database, no registry; the processing builds a transaction Bundle from them and writes
it through the corridor as the message's source system, exactly as a FHIR feed's Bundle is written.

Covered so far: PID → Patient (PID-3 identifiers with their assigning authorities, the resident identity
number and health card also where Chinese HIS put them, PID-19 / PID-20; PID-5 name, PID-7 birth date, PID-8
sex, PID-11 address, PID-13 phone), PV1 → Encounter (class, visit number, period, location), OBX → Observation
(code, value by OBX-2, units, reference range, interpretation, status, time) and OBR → DiagnosticReport. The
message-level maps (which trigger writes what, cancels, A40) come with the processing.
"""

from __future__ import annotations

import datetime as dt
import re

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
# Coding systems of CWE.3 (table 0396) → FHIR URIs.
CODING_SYSTEMS = {"LN": LOINC, "SCT": "http://snomed.info/sct", "I10": "http://hl7.org/fhir/sid/icd-10"}
_RESIDENT_ID = re.compile(r"\d{17}[\dXx]")
# TS / DTM (ch. 2A): YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
_TS = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?")


def _text(value) -> str:
    return "" if value is NULL or value is None else str(value).strip()


def authority_system(authority: str) -> str:
    """The FHIR Identifier.system of a CX.4 / HD namespace (an OID as ``urn:oid:``, else the platform's
    authority namespace), as the MPI names assigning authorities."""
    if re.fullmatch(r"[0-2](\.[0-9]+)+", authority):
        return f"urn:oid:{authority}"
    return AUTHORITY_PREFIX + authority


def hl7_date(value: str) -> str | None:
    """A DT / TS / DTM's date as FHIR ``date`` (YYYY, YYYY-MM or YYYY-MM-DD), None when it is not one."""
    value = _text(value)
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
    value = _text(value)
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


def coded(segment: Segment, field: int, *, local_system: str) -> dict | None:
    """A CE / CWE field as a CodeableConcept: its identifier, text and coding system (CWE.1-3), and the
    alternate triple (CWE.4-6); a code of no known table in ``local_system`` (the sender's own code system,
    which the corridor translates through the registry's concept maps)."""
    codings = []
    for start in (1, 4):
        code = _text(segment.value(field, component=start))
        display = _text(segment.value(field, component=start + 1))
        system = _text(segment.value(field, component=start + 2))
        if not code and not display:
            continue
        coding = {
            "system": CODING_SYSTEMS.get(system.upper(), local_system if not system else f"{local_system}:{system}")
        }
        if code:
            coding["code"] = code
        if display:
            coding["display"] = display
        codings.append(coding)
    text = _text(segment.value(field, component=9)) or next((c.get("display") for c in codings if c.get("display")), "")
    if not codings and not text:
        return None
    concept: dict = {"coding": codings} if codings else {}
    if text:
        concept["text"] = text
    return concept


def patient_of(pid: Segment, *, sending_facility: str) -> dict:
    """PID → Patient (the IG's PID[Patient] map, the parts the MPI reads). An MRN without its assigning
    authority (CX.4) is the sending facility's (research notes §4.5: many HIS leave CX.4 empty)."""
    identifiers = []
    for repetition in pid.field(3).repetitions():
        value = _text(repetition.value(1))
        if not value:
            continue
        kind = _text(repetition.value(5)).upper()
        authority = _text(repetition.value(4)) or sending_facility
        if kind in RESIDENT_ID_TYPES or (kind == "" and _RESIDENT_ID.fullmatch(value) and authority == "CHN"):
            identifiers.append({"system": RESIDENT_ID_SYSTEM, "value": value.upper()})
        elif kind in HEALTH_CARD_TYPES:
            identifiers.append({"system": HEALTH_CARD_SYSTEM, "value": value})
        else:
            identifier = {"system": authority_system(authority), "value": value}
            identifier["type"] = {"coding": [{"system": V2_0203, "code": kind or "MR"}]}
            identifiers.append(identifier)
    # PID-19 (SSN number) and PID-20 (driver's licence) are where many Chinese HIS put the resident identity
    # number and the health card (research notes §5.2).
    national = _text(pid.value(19))
    if _RESIDENT_ID.fullmatch(national) and not any(i["system"] == RESIDENT_ID_SYSTEM for i in identifiers):
        identifiers.append({"system": RESIDENT_ID_SYSTEM, "value": national.upper()})
    card = _text(pid.value(20))
    if card and not any(i["system"] == HEALTH_CARD_SYSTEM for i in identifiers):
        identifiers.append({"system": HEALTH_CARD_SYSTEM, "value": card})
    patient: dict = {"resourceType": "Patient", "identifier": identifiers}
    family, given = _text(pid.value(5, component=1)), _text(pid.value(5, component=2))
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
    sex = _text(pid.value(8)).upper()
    if sex in GENDERS:
        patient["gender"] = GENDERS[sex]
    address = [_text(pid.value(11, component=c)) for c in (1, 3, 4, 5, 6)]
    if any(address):
        street, city, state, postal, country = address
        entry = {"text": "".join(p for p in (state, city, street) if p)}
        entry |= {
            k: v for k, v in (("city", city), ("state", state), ("postalCode", postal), ("country", country)) if v
        }
        if street:
            entry["line"] = [street]
        patient["address"] = [entry]
    phones = [(_text(r.value(1)) or _text(r.value(12))) for r in pid.field(13).repetitions()]
    if any(phones):
        patient["telecom"] = [{"system": "phone", "value": p} for p in phones if p]
    return patient


def encounter_of(pv1: Segment, *, patient_reference: str, sending_facility: str, status: str) -> dict:
    """PV1 → Encounter (class PV1-2, visit number PV1-19 as its identifier, period PV1-44 / PV1-45)."""
    patient_class = _text(pv1.value(2)).upper()
    encounter: dict = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": ACT_CODE, "code": ENCOUNTER_CLASSES.get(patient_class, "AMB")},
        "subject": {"reference": patient_reference},
    }
    visit = _text(pv1.value(19))
    if visit:
        encounter["identifier"] = [{"system": authority_system(sending_facility) + ":visit", "value": visit}]
    start, end = hl7_datetime(pv1.value(44)), hl7_datetime(pv1.value(45))
    if start or end:
        encounter["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    location = "^".join(p for p in (_text(pv1.value(3, component=c)) for c in (1, 2, 3)) if p)
    if location:
        encounter["location"] = [{"location": {"display": location}}]
    return encounter


def observation_of(obx: Segment, *, patient_reference: str, local_system: str, order_id: str) -> dict:
    """OBX → Observation (the IG's OBX[Observation] map): code OBX-3, value by OBX-2 (NM → valueQuantity with
    OBX-6, CE/CWE → valueCodeableConcept, ST/TX/FT → valueString), reference range OBX-7, interpretation
    OBX-8, status OBX-11, time OBX-14; identified by the order (filler or placer number) and the test code, so
    that a corrected result (OBX-11 C) names the same fact and becomes its new version."""
    code = coded(obx, 3, local_system=local_system) or {"text": "(not coded)"}
    observation: dict = {
        "resourceType": "Observation",
        "status": OBSERVATION_STATUSES.get(_text(obx.value(11)).upper(), "final"),
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": code,
        "subject": {"reference": patient_reference},
    }
    key = _text(obx.value(3, component=1)) or _text(obx.value(1))
    if order_id and key:
        observation["identifier"] = [{"system": f"{local_system}:result", "value": f"{order_id}|{key}"}]
    kind = _text(obx.value(2)).upper()
    raw = _text(obx.value(5))
    unit = _text(obx.value(6, component=1)) or _text(obx.value(6, component=2))
    if kind in ("NM", "SN") and raw:
        comparator, number = re.fullmatch(r"(<=|>=|<|>)?\s*(.*)", raw).groups()
        try:
            quantity: dict = {"value": float(number) if "." in number or "e" in number.lower() else int(number)}
        except ValueError:
            observation["valueString"] = raw
        else:
            if comparator:
                quantity["comparator"] = comparator
            if unit:
                quantity["unit"] = unit
            observation["valueQuantity"] = quantity
    elif kind in ("CE", "CWE", "CNE") and raw:
        observation["valueCodeableConcept"] = coded(obx, 5, local_system=local_system)
    elif raw:
        observation["valueString"] = raw
    reference = _text(obx.value(7))
    bounds = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*[-~–]\s*([-+]?\d+(?:\.\d+)?)\s*", reference)
    if bounds:
        low, high = (float(b) for b in bounds.groups())
        limits: dict = {"low": {"value": low}, "high": {"value": high}}
        if unit:
            limits["low"]["unit"] = limits["high"]["unit"] = unit
        observation["referenceRange"] = [limits]
    elif reference:
        observation["referenceRange"] = [{"text": reference}]
    flag = _text(obx.value(8)).upper()
    if flag:
        observation["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
    effective = hl7_datetime(obx.value(14))
    if effective:
        observation["effectiveDateTime"] = effective
    return observation
