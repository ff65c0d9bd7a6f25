"""What the archive extracts from each resource at write time: the FHIR R4 search parameters it serves.

One ``ResourceSpec`` per clinical resource type names (by the R4 search parameter names of each resource's
page, "Search Parameters") the element paths behind each token and reference parameter, the element that
says which patient the fact is about, the element of its clinically relevant time (the one date parameter
the type serves) and the element of its status. Paths are dotted element names; a choice element
(``effective[x]``) is listed by its concrete names.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings


@dataclass(frozen=True)
class ResourceSpec:
    """The search parameters of one resource type and where their values are."""

    patient: str  # the element referencing the Patient ("subject" or "patient")
    date_param: str  # the R4 name of the date parameter served from effective_low/high
    date_paths: tuple[str, ...]
    status_path: str  # "status", or "clinicalStatus" (a CodeableConcept)
    # The search parameter the status column serves (no token rows for it): "status", "clinical-status"…
    status_param: str = "status"
    tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)


_IDENTIFIER = {"identifier": ("identifier",)}

SPECS: dict[str, ResourceSpec] = {
    # A source system's Patient (its MPI identity): stored and versioned here, searched through the MPI.
    "Patient": ResourceSpec(
        patient="",
        date_param="birthdate",
        date_paths=("birthDate",),
        status_path="gender",
        status_param="gender",
        tokens={**_IDENTIFIER, "gender": ("gender",)},
        references={"link": ("link.other",)},
    ),
    "Encounter": ResourceSpec(
        patient="subject",
        date_param="date",
        date_paths=("period",),
        status_path="status",
        tokens={**_IDENTIFIER, "status": ("status",), "class": ("class",), "type": ("type",)},
        references={"service-provider": ("serviceProvider",), "participant": ("participant.individual",)},
    ),
    "Condition": ResourceSpec(
        patient="subject",
        date_param="onset-date",
        date_paths=("onsetDateTime", "onsetPeriod"),
        status_path="clinicalStatus",
        status_param="clinical-status",
        tokens={
            **_IDENTIFIER,
            "code": ("code",),
            "category": ("category",),
            "clinical-status": ("clinicalStatus",),
            "verification-status": ("verificationStatus",),
        },
        references={"encounter": ("encounter",)},
    ),
    "AllergyIntolerance": ResourceSpec(
        patient="patient",
        date_param="date",
        date_paths=("recordedDate",),
        status_path="clinicalStatus",
        status_param="clinical-status",
        tokens={
            **_IDENTIFIER,
            "code": ("code",),
            "category": ("category",),
            "clinical-status": ("clinicalStatus",),
            "criticality": ("criticality",),
        },
        references={"encounter": ("encounter",)},
    ),
    "MedicationRequest": ResourceSpec(
        patient="subject",
        date_param="authoredon",
        date_paths=("authoredOn",),
        status_path="status",
        tokens={
            **_IDENTIFIER,
            "code": ("medicationCodeableConcept",),
            "status": ("status",),
            "intent": ("intent",),
            "category": ("category",),
        },
        references={"encounter": ("encounter",), "requester": ("requester",)},
    ),
    "MedicationStatement": ResourceSpec(
        patient="subject",
        date_param="effective",
        date_paths=("effectiveDateTime", "effectivePeriod"),
        status_path="status",
        tokens={
            **_IDENTIFIER,
            "code": ("medicationCodeableConcept",),
            "status": ("status",),
            "category": ("category",),
        },
        references={"context": ("context",)},
    ),
    "MedicationDispense": ResourceSpec(
        patient="subject",
        date_param="whenhandedover",
        date_paths=("whenHandedOver",),
        status_path="status",
        tokens={**_IDENTIFIER, "code": ("medicationCodeableConcept",), "status": ("status",)},
        references={"prescription": ("authorizingPrescription",), "context": ("context",)},
    ),
    "Observation": ResourceSpec(
        patient="subject",
        date_param="date",
        date_paths=("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
        status_path="status",
        tokens={
            **_IDENTIFIER,
            "code": ("code",),
            "category": ("category",),
            "status": ("status",),
            "component-code": ("component.code",),
        },
        references={"encounter": ("encounter",), "based-on": ("basedOn",), "performer": ("performer",)},
    ),
    "DiagnosticReport": ResourceSpec(
        patient="subject",
        date_param="date",
        date_paths=("effectiveDateTime", "effectivePeriod"),
        status_path="status",
        tokens={**_IDENTIFIER, "code": ("code",), "category": ("category",), "status": ("status",)},
        references={"encounter": ("encounter",), "result": ("result",), "based-on": ("basedOn",)},
    ),
    "ServiceRequest": ResourceSpec(
        patient="subject",
        date_param="authored",
        date_paths=("authoredOn",),
        status_path="status",
        tokens={
            **_IDENTIFIER,
            "code": ("code",),
            "category": ("category",),
            "status": ("status",),
            "intent": ("intent",),
        },
        references={"encounter": ("encounter",), "requester": ("requester",)},
    ),
    "Immunization": ResourceSpec(
        patient="patient",
        date_param="date",
        date_paths=("occurrenceDateTime",),
        status_path="status",
        tokens={**_IDENTIFIER, "vaccine-code": ("vaccineCode",), "status": ("status",)},
        references={"performer": ("performer.actor",)},
    ),
    # An MHD SubmissionSet (ITI-65) or any other list of a patient's resources.
    "List": ResourceSpec(
        patient="subject",
        date_param="date",
        date_paths=("date",),
        status_path="status",
        tokens={**_IDENTIFIER, "code": ("code",), "status": ("status",)},
        references={"item": ("entry.item",)},
    ),
    "Procedure": ResourceSpec(
        patient="subject",
        date_param="date",
        date_paths=("performedDateTime", "performedPeriod"),
        status_path="status",
        tokens={**_IDENTIFIER, "code": ("code",), "category": ("category",), "status": ("status",)},
        references={"encounter": ("encounter",), "based-on": ("basedOn",)},
    ),
}
CLINICAL_TYPES = tuple(t for t in SPECS if t != "Patient")


def values_at(node, path: str) -> Iterator:
    """Every value at a dotted element path, lists flattened at each step."""
    head, _, rest = path.partition(".")
    items = node if isinstance(node, list) else [node]
    for item in items:
        if not isinstance(item, dict) or head not in item:
            continue
        value = item[head]
        if rest:
            yield from values_at(value, rest)
        elif isinstance(value, list):
            yield from value
        else:
            yield value


def token_values(value) -> Iterator[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, Coding, Identifier or code."""
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value.get("coding") or []:
                if isinstance(coding, dict) and coding.get("code"):
                    yield coding.get("system") or "", str(coding["code"])
        elif value.get("code"):  # Coding
            yield value.get("system") or "", str(value["code"])
        elif value.get("value"):  # Identifier
            yield value.get("system") or "", str(value["value"])


_REFERENCE_RE = re.compile(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/\d+)?$")


def reference_target(value) -> tuple[str, str] | None:
    """(type, id) of a literal reference ``Type/id`` (relative or absolute), else None."""
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str):
        return None
    m = _REFERENCE_RE.match(ref)
    return (m.group(1), m.group(2)) if m else None


# --- dates --------------------------------------------------------------------

_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,  # FHIR dates are written in ASCII digits ("２０２４" is not a year)
)
# Every indexed or searched instant lies within these: a date at the edge of the calendar (0001-01-01 in a zone
# east of UTC, 9999-12-31 west of it) reaches past what the database and Python's datetime hold, and a range
# stored past them could no longer be read back.
FAR_PAST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
FAR_FUTURE = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def _zone() -> dt.tzinfo:
    return ZoneInfo(settings.TIME_ZONE)


def _utc(moment: dt.datetime, *, past: bool) -> dt.datetime:
    """``moment`` in UTC, within FAR_PAST..FAR_FUTURE (a moment past them is clamped to the edge)."""
    try:
        moment = moment.astimezone(dt.UTC)
    except OverflowError:
        return FAR_PAST if past else FAR_FUTURE
    return min(max(moment, FAR_PAST), FAR_FUTURE)


def date_range(text: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The instants a FHIR date, dateTime or instant covers, by its precision (R4 search.html#date): "2024" is
    the whole year, "2024-05-01" the whole day (in the platform's time zone), a time to the second that second,
    to the millisecond that millisecond; within FAR_PAST..FAR_FUTURE. None if it is not a FHIR date."""
    m = _DATE_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        if hour is not None:
            tz = _zone() if zone is None else (dt.UTC if zone == "Z" else _offset(zone))
            digits = (fraction or ".")[1:7]
            low = dt.datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second or 0),
                int(digits.ljust(6, "0")) if digits else 0,
                tzinfo=tz,
            )
            if fraction:
                step = dt.timedelta(microseconds=10 ** (6 - len(digits)))
            else:
                step = dt.timedelta(seconds=1) if second is not None else dt.timedelta(minutes=1)
        else:
            tz = _zone()
            if day is not None:
                low, step = dt.datetime(int(year), int(month), int(day), tzinfo=tz), dt.timedelta(days=1)
            elif month is not None:
                low = dt.datetime(int(year), int(month), 1, tzinfo=tz)
                step = (low.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - low
            else:
                low = dt.datetime(int(year), 1, 1, tzinfo=tz)
                step = low.replace(year=int(year) + 1) - low if int(year) < 9999 else dt.timedelta(days=365)
    except ValueError:  # 2024-02-30, 25:00
        return None
    try:
        high = low + step - dt.timedelta(microseconds=1)
    except OverflowError:  # the last day of year 9999
        high = dt.datetime.max.replace(tzinfo=low.tzinfo)
    if low.year > 1 and high.year < 9999:  # the usual case: nowhere near the edges, nothing to clamp
        return low, high
    return _utc(low, past=True), _utc(high, past=False)


def _offset(zone: str) -> dt.timezone:
    sign = 1 if zone[0] == "+" else -1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def effective_range(body: dict, spec: ResourceSpec) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The resource's clinically relevant time as a range (a Period's open end reaches the far past/future)."""
    for path in spec.date_paths:
        for value in values_at(body, path):
            if isinstance(value, str):
                found = date_range(value)
                if found:
                    return found
            elif isinstance(value, dict) and (value.get("start") or value.get("end")):
                start = date_range(value["start"]) if value.get("start") else None
                end = date_range(value["end"]) if value.get("end") else None
                return (start[0] if start else FAR_PAST), (end[1] if end else FAR_FUTURE)
    return None, None


@dataclass
class Extracted:
    """The index values of one resource."""

    tokens: list[tuple[str, str, str]]  # (param, system, code)
    references: list[tuple[str, str, str]]  # (param, target type, target id)
    effective: tuple[dt.datetime | None, dt.datetime | None]
    status: str
    identifier: tuple[str, str]  # the business identifier: (system, value) or ("", "")


def business_identifier(resource_type: str, body: dict) -> tuple[str, str]:
    """(system, value) of the first identifier with a value: the fact's business identifier."""
    if resource_type == "Patient":
        # A source Patient is keyed by its identity (the MRN), not by a business identifier: two MRNs of one
        # hospital may carry the same resident number first.
        return "", ""
    return next(
        (
            (str(i.get("system") or "")[:255], str(i["value"])[:255])
            for i in body.get("identifier") or []
            if isinstance(i, dict) and i.get("value")
        ),
        ("", ""),
    )


def extract(resource_type: str, body: dict) -> Extracted:
    """The search values of a resource, by its type's ``ResourceSpec``. The status parameter and the first
    identifier live in columns of ``Resource``; every other token value becomes a token row."""
    spec = SPECS[resource_type]
    identifier = business_identifier(resource_type, body)
    tokens = list(
        dict.fromkeys(
            (param, system[:255], code[:255])
            for param, paths in spec.tokens.items()
            if param != spec.status_param
            for path in paths
            for value in values_at(body, path)
            for system, code in token_values(value)
            if not (param == "identifier" and (system[:255], code[:255]) == identifier)
        )
    )
    references = list(
        dict.fromkeys(
            (param, *target)
            for param, paths in spec.references.items()
            for path in paths
            for value in values_at(body, path)
            if (target := reference_target(value))
        )
    )
    status = next((code for v in values_at(body, spec.status_path) for _, code in token_values(v)), "")
    return Extracted(tokens, references, effective_range(body, spec), status[:32], identifier)
