"""A clinician's reading of archived FHIR resources: one ``Fact`` per resource, with what a row of the patient
page shows — the concept's display, the value, the date, the institution.

Displays: the display of a coding in Chinese first (in English, a display without Chinese characters first),
else the concept's text, else the code. When the write corridor translated a local code, the concept carries the
sender's local coding and the standard one beside it: the standard display leads and the local one is shown as
secondary, so one test reads the same whichever hospital sent it, and the hospital's own word stays visible.
A coding is local when its system is a source system's registered local code system (``CodeSystem
.source_system``), or has no system at all.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

from django.utils.translation import get_language, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from registry.models import CodeSystem
from registry.selectors import SourceInstitution

LOCAL_SYSTEMS_SECONDS = 60.0
_local_lock = threading.Lock()
_local: tuple[float, frozenset[str]] | None = None


def local_code_systems() -> frozenset[str]:
    """The URLs of every source system's local code system (one query a minute per process: the registry
    changes by the day, and a page must not ask for every fact)."""
    global _local
    held, now = _local, time.monotonic()
    if held is not None and held[0] > now:
        return held[1]
    with _local_lock:
        urls = frozenset(CodeSystem.objects.filter(source_system__isnull=False).values_list("url", flat=True))
        _local = (now + LOCAL_SYSTEMS_SECONDS, urls)
        return urls


def local_code_systems_forget() -> None:
    global _local
    _local = None


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@dataclass(frozen=True)
class Display:
    """How a concept (a CodeableConcept) reads: ``text`` leads, ``secondary`` is the sender's local word when a
    standard one leads, ``key`` groups results of one test across institutions (the standard coding)."""

    text: str
    secondary: str = ""
    key: tuple[str, str] | None = None
    code: str = ""


def concept_display(concept, local_systems: frozenset[str], chinese: bool | None = None) -> Display:
    """The display of a FHIR CodeableConcept (see the module's docstring); ``chinese``: whether Chinese
    displays lead (by default, whether the active language is Chinese)."""
    if not isinstance(concept, dict):
        return Display("")
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and (c.get("code") or c.get("display"))]
    standard = [c for c in codings if c.get("system") and c.get("system") not in local_systems]
    local = [c for c in codings if not c.get("system") or c.get("system") in local_systems]
    if chinese is None:
        chinese = chinese_active()

    def best(candidates) -> dict | None:
        shown = [c for c in candidates if str(c.get("display") or "").strip()]
        if not shown:
            return None
        preferred = [c for c in shown if _has_chinese(str(c["display"])) == chinese]
        return (preferred or shown)[0]

    keyed = standard[0] if standard else (codings[0] if codings else None)
    key = (str(keyed.get("system") or ""), str(keyed.get("code") or "")) if keyed else None
    code = str(keyed.get("code") or "") if keyed else ""
    text = str(concept.get("text") or "").strip()
    lead = best(standard)
    if lead is not None:
        other = best(local)
        secondary = str(other["display"]).strip() if other else (str(local[0].get("code") or "") if local else "")
        if secondary == str(lead["display"]).strip():
            secondary = ""
        return Display(str(lead["display"]).strip(), secondary, key, code)
    lead = best(local)
    if lead is not None:
        return Display(str(lead["display"]).strip(), "", key, code)
    if text:
        return Display(text, "", key or ("", text), code)
    return Display(code or "", "", key, code)


def chinese_active() -> bool:
    return (get_language() or "zh-hans").startswith("zh")


def _concepts(value) -> list:
    return value if isinstance(value, list) else ([value] if isinstance(value, dict) else [])


def _first_code(concepts) -> str:
    for concept in _concepts(concepts):
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and coding.get("code"):
                return str(coding["code"])
    return ""


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _format_number(value: float) -> str:
    return f"{value:g}"


def _quantity_text(quantity) -> tuple[str, str, float | None]:
    if not isinstance(quantity, dict):
        return "", "", None
    number = _number(quantity.get("value"))
    comparator = str(quantity.get("comparator") or "")
    unit = str(quantity.get("unit") or quantity.get("code") or "")
    return (comparator + _format_number(number) if number is not None else ""), unit, number


def _range_text(ranges) -> tuple[str, float | None, float | None]:
    """The first reference range as text, with its numeric low and high."""
    for item in ranges if isinstance(ranges, list) else []:
        if not isinstance(item, dict):
            continue
        low, high = item.get("low") or {}, item.get("high") or {}
        lo = _number(low.get("value")) if isinstance(low, dict) else None
        hi = _number(high.get("value")) if isinstance(high, dict) else None
        if item.get("text"):
            return str(item["text"]), lo, hi
        if lo is not None and hi is not None:
            return f"{_format_number(lo)}–{_format_number(hi)}", lo, hi
        if lo is not None:
            return f"≥{_format_number(lo)}", lo, hi
        if hi is not None:
            return f"≤{_format_number(hi)}", lo, hi
    return "", None, None


# FHIR codes a clinician reads in their own words (R4 value sets: observation-interpretation, the statuses).
STATUS_LABELS = {
    "active": pgettext_lazy("clinical status", "active"),
    "inactive": pgettext_lazy("clinical status", "inactive"),
    "resolved": pgettext_lazy("clinical status", "resolved"),
    "remission": pgettext_lazy("clinical status", "in remission"),
    "recurrence": pgettext_lazy("clinical status", "recurrence"),
    "relapse": pgettext_lazy("clinical status", "relapse"),
    "completed": pgettext_lazy("clinical status", "completed"),
    "stopped": pgettext_lazy("clinical status", "stopped"),
    "on-hold": pgettext_lazy("clinical status", "on hold"),
    "cancelled": pgettext_lazy("clinical status", "cancelled"),
    "entered-in-error": pgettext_lazy("clinical status", "entered in error"),
    "draft": pgettext_lazy("clinical status", "draft"),
    "intended": pgettext_lazy("clinical status", "intended"),
    "not-taken": pgettext_lazy("clinical status", "not taken"),
    "final": pgettext_lazy("clinical status", "final"),
    "amended": pgettext_lazy("clinical status", "amended"),
    "corrected": pgettext_lazy("clinical status", "corrected"),
    "preliminary": pgettext_lazy("clinical status", "preliminary"),
    "registered": pgettext_lazy("clinical status", "registered"),
    "finished": pgettext_lazy("clinical status", "finished"),
    "in-progress": pgettext_lazy("clinical status", "in progress"),
    "planned": pgettext_lazy("clinical status", "planned"),
    "arrived": pgettext_lazy("clinical status", "arrived"),
    "confirmed": pgettext_lazy("clinical status", "confirmed"),
    "unconfirmed": pgettext_lazy("clinical status", "unconfirmed"),
    "refuted": pgettext_lazy("clinical status", "refuted"),
    "provisional": pgettext_lazy("clinical status", "provisional"),
    "differential": pgettext_lazy("clinical status", "differential"),
    "high": pgettext_lazy("clinical status", "high criticality"),
    "low": pgettext_lazy("clinical status", "low criticality"),
    "unable-to-assess": pgettext_lazy("clinical status", "criticality not assessed"),
    "current": pgettext_lazy("clinical status", "current"),
    "superseded": pgettext_lazy("clinical status", "superseded"),
    "unknown": pgettext_lazy("clinical status", "unknown"),
}
ENCOUNTER_CLASSES = {
    "AMB": _("outpatient"),
    "IMP": _("inpatient"),
    "EMER": _("emergency"),
    "HH": _("home health"),
    "VR": _("virtual"),
    "OBSENC": _("observation"),
    "PRENC": _("pre-admission"),
    "SS": _("day surgery"),
}
HIGH_FLAGS = {"H", "HH", "HU", ">", "AA"}
LOW_FLAGS = {"L", "LL", "LU", "<"}
ACTIVE_CONDITIONS = {"active", "recurrence", "relapse"}
ACTIVE_MEDICATIONS = {"active", "on-hold", "intended"}


_STATUS_TEXT: dict[tuple[str, str], str] = {}


def status_label(code: str) -> str:
    """A status code in the active language (the translations looked up once per process and language)."""
    if not code:
        return ""
    key = (get_language() or "", code)
    text = _STATUS_TEXT.get(key)
    if text is None:
        text = _STATUS_TEXT[key] = str(STATUS_LABELS.get(code, code))
    return text


@dataclass
class Fact:
    """One archived resource as a row of the patient page."""

    resource_type: str
    fhir_id: str
    when: dt.datetime | None
    until: dt.datetime | None
    institution: SourceInstitution | None
    display: Display
    status: str = ""
    status_text: str = ""
    category: str = ""
    detail: str = ""
    value: str = ""
    unit: str = ""
    number: float | None = None
    reference_range: str = ""
    low: float | None = None
    high: float | None = None
    flag: str = ""  # "high", "low", "abnormal" or ""
    active: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.fhir_id}"

    @property
    def institution_code(self) -> str:
        return self.institution.code if self.institution else ""


def _concept_key(concept) -> tuple | None:
    """A hashable form of a CodeableConcept (what its display depends on), None when it cannot have one."""
    if not isinstance(concept, dict):
        return None
    codings = concept.get("coding") or ()
    if not isinstance(codings, list):
        return None
    key = [concept.get("text")]
    for c in codings:
        if not isinstance(c, dict):
            return None
        key += (c.get("system"), c.get("code"), c.get("display"))
    try:
        hash(tuple(key))
    except TypeError:  # a sender's list or object where a string belongs
        return None
    return tuple(key)


@dataclass(frozen=True)
class Reading:
    """How one page reads concepts: the local code systems, and whether Chinese displays lead. A page reads the
    same few concepts (a test's code, its category) on thousands of facts: each is worked out once per page."""

    local_systems: frozenset[str]
    chinese: bool
    memo: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def display(self, concept) -> Display:
        key = _concept_key(concept)
        if key is None:
            return concept_display(concept, self.local_systems, self.chinese)
        shown = self.memo.get(key)
        if shown is None:
            shown = self.memo[key] = concept_display(concept, self.local_systems, self.chinese)
        return shown

    def status(self, code: str) -> str:
        key = ("status", code)
        text = self.memo.get(key)
        if text is None:
            text = self.memo[key] = status_label(code)
        return text


def reading_now() -> Reading:
    """The reading of the request being answered (the registry's local code systems, the active language)."""
    return Reading(local_code_systems(), chinese_active())


def fact_of(resource, institutions: dict[int, SourceInstitution], reading: Reading) -> Fact:
    """The row of one archived resource (its JSON body read once, nothing asked of the database)."""
    body = resource.body if isinstance(resource.body, dict) else {}
    kind = resource.resource_type
    institution = institutions.get(resource.source_id) if resource.source_id else None
    fact = Fact(
        resource_type=kind,
        fhir_id=resource.fhir_id,
        when=resource.effective_low or resource.last_updated,
        until=resource.effective_high,
        institution=institution,
        display=Display(""),
        status=resource.status or "",
        status_text=reading.status(resource.status or ""),
    )
    reader = _READERS.get(kind)
    if reader is not None:
        reader(fact, body, reading)
    else:
        fact.display = reading.display(body.get("code"))
    if not fact.display.text:
        fact.display = Display(str(_("(not coded)")))
    return fact


def _category(fact: Fact, body: dict, reading) -> None:
    categories = _concepts(body.get("category"))
    if categories:
        fact.category = reading.display(categories[0]).text


def _allergy(fact: Fact, body: dict, reading) -> None:
    fact.display = reading.display(body.get("code"))
    verification = _first_code(body.get("verificationStatus"))
    fact.active = fact.status in ("active", "") and verification != "refuted"
    reactions = []
    for reaction in body.get("reaction") or []:
        if isinstance(reaction, dict):
            for manifestation in _concepts(reaction.get("manifestation")):
                shown = reading.display(manifestation).text
                if shown:
                    reactions.append(shown)
    fact.detail = "、".join(reactions)
    fact.extra = {
        "criticality": reading.status(str(body.get("criticality") or "")),
        "verification": reading.status(verification),
        "categories": ", ".join(str(c) for c in body.get("category") or [] if isinstance(c, str)),
    }


def _medication(fact: Fact, body: dict, reading) -> None:
    fact.display = reading.display(body.get("medicationCodeableConcept"))
    if not fact.display.text and isinstance(body.get("medicationReference"), dict):
        fact.display = Display(str(body["medicationReference"].get("display") or ""))
    fact.active = fact.resource_type != "MedicationDispense" and fact.status in ACTIVE_MEDICATIONS
    doses = []
    for dosage in body.get("dosageInstruction") or body.get("dosage") or []:
        if isinstance(dosage, dict) and dosage.get("text"):
            doses.append(str(dosage["text"]))
    fact.detail = "; ".join(doses)
    quantity = body.get("quantity")
    if isinstance(quantity, dict):
        fact.value, fact.unit, _n = _quantity_text(quantity)


def _condition(fact: Fact, body: dict, reading) -> None:
    fact.display = reading.display(body.get("code"))
    _category(fact, body, reading)
    fact.active = fact.status in ACTIVE_CONDITIONS
    fact.extra = {"verification": reading.status(_first_code(body.get("verificationStatus")))}
    fact.detail = fact.extra["verification"]


def _encounter(fact: Fact, body: dict, reading) -> None:
    klass = body.get("class") if isinstance(body.get("class"), dict) else {}
    class_code = str(klass.get("code") or "")
    types = _concepts(body.get("type"))
    shown = reading.display(types[0]) if types else Display("")
    fact.category = str(ENCOUNTER_CLASSES.get(class_code, klass.get("display") or class_code))
    fact.display = shown if shown.text else Display(fact.category or str(_("encounter")))
    reasons = [reading.display(r).text for r in _concepts(body.get("reasonCode"))]
    diagnoses = []
    for item in body.get("diagnosis") or []:
        if isinstance(item, dict) and isinstance(item.get("condition"), dict):
            diagnoses.append(str(item["condition"].get("display") or ""))
    fact.detail = "; ".join(t for t in (*reasons, *diagnoses) if t)
    provider = body.get("serviceProvider")
    fact.extra = {"provider": str(provider.get("display") or "") if isinstance(provider, dict) else ""}


def _observation(fact: Fact, body: dict, reading) -> None:
    fact.display = reading.display(body.get("code"))
    _category(fact, body, reading)
    if "valueQuantity" in body:
        fact.value, fact.unit, fact.number = _quantity_text(body["valueQuantity"])
    elif "valueCodeableConcept" in body:
        fact.value = reading.display(body["valueCodeableConcept"]).text
    elif "valueString" in body:
        fact.value = str(body["valueString"])
    elif "valueInteger" in body:
        fact.number = _number(body["valueInteger"])
        fact.value = _format_number(fact.number) if fact.number is not None else ""
    elif "valueBoolean" in body:
        fact.value = str(_("yes") if body["valueBoolean"] else _("no"))
    elif body.get("component"):
        parts = []
        for component in body["component"]:
            if not isinstance(component, dict):
                continue
            name = reading.display(component.get("code")).text
            value, unit, _n = _quantity_text(component.get("valueQuantity"))
            if value:
                parts.append(f"{name} {value} {unit}".strip())
        fact.value = "; ".join(parts)
    fact.reference_range, fact.low, fact.high = _range_text(body.get("referenceRange"))
    flag = _first_code(body.get("interpretation")).upper()
    if flag in HIGH_FLAGS or (fact.number is not None and fact.high is not None and fact.number > fact.high):
        fact.flag = "high"
    elif flag in LOW_FLAGS or (fact.number is not None and fact.low is not None and fact.number < fact.low):
        fact.flag = "low"
    elif flag in {"A", "POS", "DET"}:
        fact.flag = "abnormal"


def _report(fact: Fact, body: dict, reading) -> None:
    fact.display = reading.display(body.get("code"))
    _category(fact, body, reading)
    conclusion = str(body.get("conclusion") or "")
    codes = [reading.display(c).text for c in _concepts(body.get("conclusionCode"))]
    fact.detail = conclusion or "; ".join(c for c in codes if c)
    fact.extra = {"results": len(body.get("result") or [])}


def _other(fact: Fact, body: dict, reading) -> None:
    for element in ("code", "vaccineCode"):
        if element in body:
            fact.display = reading.display(body.get(element))
            break
    _category(fact, body, reading)
    fact.detail = {
        "Procedure": str(_("procedure")),
        "Immunization": str(_("immunization")),
        "ServiceRequest": str(_("order")),
    }.get(fact.resource_type, fact.resource_type)


_READERS = {
    "AllergyIntolerance": _allergy,
    "MedicationRequest": _medication,
    "MedicationStatement": _medication,
    "MedicationDispense": _medication,
    "Condition": _condition,
    "Encounter": _encounter,
    "Observation": _observation,
    "DiagnosticReport": _report,
    "Procedure": _other,
    "Immunization": _other,
    "ServiceRequest": _other,
}
