"""What the three rules decide, over one person's facts as the archive keeps them (FHIR R4 JSON).

Pure functions of the facts, the rules (``RuleSet``, loaded from ``healthplatform.alerts.models``), the drug
terminology (``registry.terminology``) and the time: no queries here, so the rules are tested on their own edges
and the evaluation (``healthplatform.alerts.evaluate``) decides what to read.

- **Duplicate test**: a result (an Observation or a DiagnosticReport) of a test the rules list, by its standard
  code, younger than the test's window, from an institution whose results are recognised (mutual recognition,
  检查检验结果互认; the ordering institution's own results always are). A result exactly ``window_days`` old is
  outside the window: the minimum retest interval has passed.
- **Drug–allergy**: an allergy or intolerance that is not refuted, entered in error, inactive or resolved, whose
  allergen names an ATC group the drug's ingredient belongs to (the ingredient itself, ATC level 5, or its class,
  level 4 or any broader group a class names) — ``allergy_severity``, or a configured cross-reactivity between
  groups (penicillins → cephalosporins) with that rule's severity. An allergen that no drug terminology codes
  (free text, or a code the registry cannot place) is shown as an uncoded warning, never dropped; food and
  environment allergies are not drug alerts.
- **Duplicate medication**: the same ingredient, or another ingredient of the same ATC level-4 class, active at
  two institutions within the look-back period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from registry.terminology import DrugTerminology, atc_groups

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
# Results that are results: a registered or cancelled test has no value to spare a repeat.
RESULT_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
# Medications that are being taken (R4 medicationrequest-status, medication-statement-status, dispense status).
ACTIVE_MEDICATION = {
    "MedicationRequest": frozenset({"active", "on-hold", "draft"}),
    "MedicationStatement": frozenset({"active", "intended", "on-hold"}),
    "MedicationDispense": frozenset({"completed", "in-progress", "preparation"}),
}
MEDICATION_TYPES = frozenset(ACTIVE_MEDICATION)
NOT_ALLERGIC = frozenset({"refuted", "entered-in-error"})
ALLERGY_OVER = frozenset({"inactive", "resolved"})
SUMMARY_MAX = 140  # CDS Hooks 2.0 Card.summary: "<140 characters"


# --- what an alert says ---------------------------------------------------------------------------------------


@dataclass
class Evidence:
    """One fact an alert rests on, with where and when it was recorded and what carried it."""

    reference: str  # "Observation/<fhir id>", or "<order>" for the order itself
    resource_type: str
    institution_name: str
    institution_code: str
    when: dt.datetime | None
    submission: str | None = None  # the uuid of the request or message that carried it
    display: str = ""
    value: str | None = None
    unit: str | None = None
    reference_range: str | None = None
    submission_id: int | None = None  # resolved to ``submission`` by the evaluation

    def as_json(self) -> dict:
        return {
            "reference": self.reference,
            "resourceType": self.resource_type,
            "institution": {"code": self.institution_code, "name": self.institution_name},
            "when": self.when.isoformat() if self.when else None,
            "submission": self.submission,
            "display": self.display,
            "value": self.value,
            "unit": self.unit,
            "referenceRange": self.reference_range,
        }


@dataclass
class Finding:
    """An alert: its stable id (``key``: the rule, the order and the facts it rests on), what it says, and why."""

    kind: str
    severity: str
    summary: str
    detail: str
    evidence: list[Evidence]
    order: str | None = None  # the order it was raised on (a proposed or incoming one), None on the record
    rule: str = ""  # which rule row decided (for the key and the reviewer)
    key: str = ""

    def __post_init__(self) -> None:
        if len(self.summary) > SUMMARY_MAX - 1:
            self.summary = self.summary[: SUMMARY_MAX - 2] + "…"
        if not self.key:
            refs = sorted(e.reference for e in self.evidence if e.reference != self.order)
            text = "|".join([self.kind, self.rule, self.order or "", *refs])
            self.key = hashlib.sha256(text.encode()).hexdigest()[:32]


def by_severity(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_RANK.get(f.severity, 9), f.kind, f.key))


# --- the rules as data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    pk: int
    category: str
    system: str
    code: str
    display: str
    display_en: str
    window_days: int
    severity: str


@dataclass(frozen=True)
class RuleSet:
    """One snapshot of the alert rules (``healthplatform.alerts.models``)."""

    windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    # (institution pk | None, level, test pk | None) -> recognised
    recognition: dict[tuple[int | None, str, int | None], bool] = field(default_factory=dict)
    cross: tuple[tuple[str, str, str], ...] = ()  # (allergen group, drug group, severity)
    lookback_days: int = 90
    same_ingredient_severity: str = "warning"
    same_class_severity: str = "info"
    allergy_severity: str = "critical"
    uncoded_allergy_severity: str = "warning"

    @property
    def longest_window(self) -> int:
        return max((w.window_days for w in self.windows.values()), default=0)

    def recognised(self, window: Window, institution_id: int, level: str) -> bool:
        """Whether a result of ``window``'s test from this institution counts: the most specific rule decides."""
        for key in (
            (institution_id, "", window.pk),
            (institution_id, "", None),
            (None, level, window.pk),
            (None, level, None),
        ):
            if key in self.recognition:
                return self.recognition[key]
        return False


# --- facts as the rules see them ------------------------------------------------------------------------------


@dataclass
class Fact:
    """One archived fact with where it came from (the evaluation builds these from archive rows)."""

    resource_type: str
    fhir_id: str
    body: dict
    when: dt.datetime | None
    institution_id: int
    institution_code: str
    institution_name: str
    institution_level: str
    submission_id: int | None = None
    reference: str = ""

    def __post_init__(self) -> None:
        if not self.reference:
            self.reference = f"{self.resource_type}/{self.fhir_id}"

    def evidence(self, **extra) -> Evidence:
        return Evidence(
            reference=self.reference,
            resource_type=self.resource_type,
            institution_name=self.institution_name,
            institution_code=self.institution_code,
            when=self.when,
            submission_id=self.submission_id,
            display=extra.pop("display", "") or concept_display(self.body.get("code")),
            **extra,
        )


def codings(concept) -> list[tuple[str, str]]:
    """(system, code) of a CodeableConcept's codings."""
    if not isinstance(concept, dict):
        return []
    found = []
    for c in concept.get("coding") or ():
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            found.append((c.get("system") if isinstance(c.get("system"), str) else "", c["code"]))
    return found


def concept_display(concept) -> str:
    """What a person reads for a CodeableConcept: its text, else the first coding's display, else its code."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"]:
        return concept["text"]
    for c in concept.get("coding") or ():
        if isinstance(c, dict) and isinstance(c.get("display"), str) and c["display"]:
            return c["display"]
    for c in concept.get("coding") or ():
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            return c["code"]
    return ""


def status_code(element) -> str:
    """A status as a code: a plain code, or a CodeableConcept's first coding's code (clinicalStatus)."""
    if isinstance(element, str):
        return element
    pairs = codings(element)
    return pairs[0][1] if pairs else ""


def medication_concept(body: dict) -> dict | None:
    """A medication's CodeableConcept: medicationCodeableConcept, or the code of the contained Medication a
    ``medicationReference`` of "#id" names (this archive keeps Medication only contained)."""
    concept = body.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    ref = body.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(target, str) and target.startswith("#"):
        for contained in body.get("contained") or ():
            if isinstance(contained, dict) and contained.get("id") == target[1:]:
                code = contained.get("code")
                return code if isinstance(code, dict) else None
    return None


def _number(value) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, int | float | str) else None


def result_value(body: dict) -> tuple[str | None, str | None, str | None]:
    """An Observation's value, unit and reference range as text (None where it has none)."""
    value = unit = None
    quantity = body.get("valueQuantity")
    if isinstance(quantity, dict):
        value = _number(quantity.get("value"))
        unit = quantity.get("unit") or quantity.get("code")
    elif isinstance(body.get("valueString"), str):
        value = body["valueString"]
    elif isinstance(body.get("valueCodeableConcept"), dict):
        value = concept_display(body["valueCodeableConcept"])
    elif body.get("resourceType") == "DiagnosticReport" and isinstance(body.get("conclusion"), str):
        value = body["conclusion"]
    ranges = body.get("referenceRange")
    reference_range = None
    if isinstance(ranges, list) and ranges and isinstance(ranges[0], dict):
        first = ranges[0]
        low = _number((first.get("low") or {}).get("value")) if isinstance(first.get("low"), dict) else None
        high = _number((first.get("high") or {}).get("value")) if isinstance(first.get("high"), dict) else None
        if isinstance(first.get("text"), str) and first["text"]:
            reference_range = first["text"]
        elif low is not None and high is not None:
            reference_range = f"{low}–{high}"
        elif low is not None:
            reference_range = f"≥{low}"
        elif high is not None:
            reference_range = f"≤{high}"
    return value, unit if isinstance(unit, str) else None, reference_range


def _days_ago(now: dt.datetime, when: dt.datetime | None) -> int:
    if when is None:
        return 0
    return max((now - when).days, 0)


# --- duplicate test -------------------------------------------------------------------------------------------


def _window_of(rules: RuleSet, concept) -> Window | None:
    for pair in codings(concept):
        window = rules.windows.get(pair)
        if window is not None:
            return window
    return None


def results_inside_windows(
    facts: Iterable[Fact], rules: RuleSet, now: dt.datetime, *, own_institution: int | None = None
) -> dict[int, Fact]:
    """For every listed test, its newest recognised result still inside the window: window pk -> the fact. An
    Observation is preferred to the DiagnosticReport of the same test (it carries the value)."""
    newest: dict[int, Fact] = {}
    for fact in facts:
        if fact.resource_type not in ("Observation", "DiagnosticReport"):
            continue
        if fact.body.get("status") not in RESULT_STATUSES or fact.when is None:
            continue
        window = _window_of(rules, fact.body.get("code"))
        if window is None or now - fact.when >= dt.timedelta(days=window.window_days):
            continue
        if fact.institution_id != own_institution and not rules.recognised(
            window, fact.institution_id, fact.institution_level
        ):
            continue
        held = newest.get(window.pk)
        if held is None or (fact.when, fact.resource_type == "Observation") > (
            held.when,
            held.resource_type == "Observation",
        ):
            newest[window.pk] = fact
    return newest


def _test_name(window: Window, english: bool) -> str:
    return (window.display_en or window.display) if english else window.display


def _result_evidence(fact: Fact) -> Evidence:
    value, unit, reference_range = result_value(fact.body)
    return fact.evidence(value=value, unit=unit, reference_range=reference_range)


def _result_text(evidence: Evidence) -> str:
    if evidence.value is None:
        return ""
    return f"{evidence.value}{' ' + evidence.unit if evidence.unit else ''}"


def recent_tests(
    facts: Iterable[Fact], rules: RuleSet, now: dt.datetime, *, own_institution: int | None, english: bool = False
) -> list[Finding]:
    """The tests still inside their window (the patient page: what a clinician planning orders need not
    repeat), newest first, as info findings."""
    found = []
    windows = {w.pk: w for w in rules.windows.values()}
    for pk, fact in results_inside_windows(facts, rules, now, own_institution=own_institution).items():
        window = windows[pk]
        evidence = _result_evidence(fact)
        days = _days_ago(now, fact.when)
        summary = _("%(test)s done %(days)s days ago at %(institution)s %(value)s: repeat within %(window)s days") % {
            "test": _test_name(window, english),
            "days": days,
            "institution": fact.institution_name,
            "value": _result_text(evidence),
            "window": window.window_days,
        }
        found.append(
            Finding(
                kind="duplicate-test",
                severity="info",
                summary=" ".join(summary.split()),
                detail=_("Result %(value)s (reference range %(range)s) on %(date)s; window %(window)s days.")
                % {
                    "value": _result_text(evidence) or "—",
                    "range": evidence.reference_range or "—",
                    "date": fact.when.date().isoformat() if fact.when else "—",
                    "window": window.window_days,
                },
                evidence=[evidence],
                rule=f"window:{window.pk}",
            )
        )
    return sorted(found, key=lambda f: f.evidence[0].when or now, reverse=True)


def duplicate_test_on_order(
    order: Fact, facts: list[Fact], rules: RuleSet, now: dt.datetime, *, english: bool = False
) -> list[Finding]:
    """A proposed or incoming test order (ServiceRequest) of a test whose recognised result is inside its window."""
    window = _window_of(rules, order.body.get("code"))
    if window is None:
        return []
    others = [f for f in facts if f.reference != order.reference]
    fact = results_inside_windows(others, rules, now, own_institution=order.institution_id).get(window.pk)
    if fact is None:
        return []
    evidence = _result_evidence(fact)
    summary = _("Duplicate test: %(test)s was done %(days)s days ago at %(institution)s (%(value)s)") % {
        "test": _test_name(window, english),
        "days": _days_ago(now, fact.when),
        "institution": fact.institution_name,
        "value": _result_text(evidence) or _("result available"),
    }
    detail = _(
        "%(test)s on %(date)s at %(institution)s: %(value)s, reference range %(range)s. Results of this "
        "institution are recognised; the minimum retest interval is %(window)s days."
    ) % {
        "test": _test_name(window, english),
        "date": fact.when.date().isoformat() if fact.when else "—",
        "institution": fact.institution_name,
        "value": _result_text(evidence) or "—",
        "range": evidence.reference_range or "—",
        "window": window.window_days,
    }
    return [
        Finding(
            kind="duplicate-test",
            severity=window.severity,
            summary=summary,
            detail=detail,
            evidence=[evidence, order.evidence()],
            order=order.reference,
            rule=f"window:{window.pk}",
        )
    ]


# --- drug–allergy ---------------------------------------------------------------------------------------------


@dataclass
class Allergy:
    fact: Fact
    groups: frozenset[str]  # ATC groups the allergen names; empty: uncoded
    name: str
    high_criticality: bool


def allergies_of(facts: Iterable[Fact], terminology: DrugTerminology) -> tuple[list[Allergy], list[Allergy]]:
    """The person's drug allergies that count (coded) and the ones no drug terminology places (uncoded)."""
    coded, uncoded = [], []
    for fact in facts:
        if fact.resource_type != "AllergyIntolerance":
            continue
        body = fact.body
        if status_code(body.get("verificationStatus")) in NOT_ALLERGIC:
            continue
        if status_code(body.get("clinicalStatus")) in ALLERGY_OVER:
            continue
        categories = body.get("category") if isinstance(body.get("category"), list) else []
        pairs = codings(body.get("code"))
        for reaction in body.get("reaction") or ():
            if isinstance(reaction, dict):
                pairs += codings(reaction.get("substance"))
        groups = terminology.allergen_groups(pairs)
        allergy = Allergy(
            fact=fact,
            groups=groups,
            name=concept_display(body.get("code")) or _("allergy without a name"),
            high_criticality=body.get("criticality") == "high",
        )
        if groups:
            coded.append(allergy)
        elif not categories or "medication" in categories or "biologic" in categories:
            # Food and environment allergies are not drug alerts; anything that may be a drug is shown.
            uncoded.append(allergy)
    return coded, uncoded


@dataclass
class Medication:
    fact: Fact
    ingredients: frozenset[str]
    name: str


def medication_of(fact: Fact, terminology: DrugTerminology) -> Medication:
    concept = medication_concept(fact.body)
    return Medication(fact, terminology.medication_ingredients(codings(concept)), concept_display(concept))


def active_medications(
    facts: Iterable[Fact], rules: RuleSet, terminology: DrugTerminology, now: dt.datetime
) -> list[Medication]:
    """Medications being taken: an active status, recorded within the look-back period."""
    since = now - dt.timedelta(days=rules.lookback_days)
    found = []
    for fact in facts:
        statuses = ACTIVE_MEDICATION.get(fact.resource_type)
        if statuses is None or fact.body.get("status") not in statuses:
            continue
        if fact.when is not None and fact.when < since:
            continue
        found.append(medication_of(fact, terminology))
    return found


def _allergy_match(allergy: Allergy, ingredient: str, rules: RuleSet) -> tuple[str, str] | None:
    """(severity, the group matched) when the allergy warns against the ingredient: its own groups first (the
    ingredient, its level-4 class, or a broader group the allergen names), then the cross-reactivities."""
    groups = atc_groups(ingredient)
    for group in reversed(groups):
        if group in allergy.groups:
            return rules.allergy_severity, group
    best = None
    for allergen_group, drug_group, severity in rules.cross:
        applies = drug_group in groups and any(g.startswith(allergen_group) for g in allergy.groups)
        if applies and (best is None or SEVERITY_RANK[severity] < SEVERITY_RANK[best[0]]):
            best = (severity, f"{allergen_group}→{drug_group}")
    return best


def drug_allergy(
    medication: Medication,
    allergies: list[Allergy],
    uncoded: list[Allergy],
    rules: RuleSet,
    terminology: DrugTerminology,
    *,
    order: str | None = None,
    english: bool = False,
) -> list[Finding]:
    """The allergies that warn against one medication (an active one on the record, or a proposed order)."""
    found = []
    drug_evidence = medication.fact.evidence(display=medication.name)
    for allergy in allergies:
        matches = [(ing, _allergy_match(allergy, ing, rules)) for ing in sorted(medication.ingredients)]
        matches = [(ing, m) for ing, m in matches if m is not None]
        if not matches:
            continue
        ingredient, (severity, group) = min(matches, key=lambda x: SEVERITY_RANK[x[1][0]])
        cross = "→" in group
        if allergy.high_criticality and not cross:
            severity = "critical"
        values = {
            "drug": medication.name or terminology.atc_name(ingredient, english=english),
            "allergy": allergy.name,
            "institution": allergy.fact.institution_name,
            "ingredient": terminology.atc_name(ingredient, english=english),
            "group": group,
        }
        if cross:
            summary = _("Possible cross-reactivity: %(drug)s with the recorded allergy %(allergy)s (%(institution)s)")
            detail = _(
                "%(ingredient)s belongs to a drug group that cross-reacts with the allergen (%(group)s); allergy "
                "recorded at %(institution)s."
            )
        else:
            summary = _("Allergy: %(drug)s against the recorded allergy %(allergy)s (%(institution)s)")
            detail = _(
                "%(ingredient)s is in the ATC group %(group)s the recorded allergy names; allergy recorded at "
                "%(institution)s."
            )
        found.append(
            Finding(
                kind="drug-allergy",
                severity=severity,
                summary=summary % values,
                detail=detail % values,
                evidence=[allergy.fact.evidence(display=allergy.name), drug_evidence],
                order=order,
                rule=f"allergy:{group}",
            )
        )
    for allergy in uncoded:
        values = {"allergy": allergy.name, "institution": allergy.fact.institution_name}
        found.append(
            Finding(
                kind="drug-allergy",
                severity=rules.uncoded_allergy_severity,
                summary=_("Uncoded allergy recorded: “%(allergy)s” (%(institution)s) — check this drug against it")
                % values,
                detail=_(
                    "The allergen is recorded as free text or in a code the platform cannot place in a drug "
                    "class, so it could not be checked automatically."
                ),
                evidence=[allergy.fact.evidence(display=allergy.name), drug_evidence],
                order=order,
                rule="allergy:uncoded",
            )
        )
    return found


def uncoded_allergies(uncoded: list[Allergy], rules: RuleSet) -> list[Finding]:
    """The record's free-text drug allergies, shown on the patient page (never dropped)."""
    return [
        Finding(
            kind="drug-allergy",
            severity=rules.uncoded_allergy_severity,
            summary=_("Uncoded allergy recorded: “%(allergy)s” (%(institution)s)")
            % {"allergy": a.name, "institution": a.fact.institution_name},
            detail=_("Recorded as free text: check every new drug against it."),
            evidence=[a.fact.evidence(display=a.name)],
            rule="allergy:uncoded",
        )
        for a in uncoded
    ]


# --- duplicate medication -------------------------------------------------------------------------------------


def duplicate_medications(
    medications: list[Medication],
    rules: RuleSet,
    terminology: DrugTerminology,
    *,
    order: Medication | None = None,
    english: bool = False,
) -> list[Finding]:
    """The same ingredient, or the same ATC level-4 class, active at two institutions. With ``order``, only the
    duplicates the order makes (the order against the active medications of other institutions)."""
    found = []
    pool = [m for m in medications if order is None or m.fact.reference != order.fact.reference]
    if order is not None:
        pool = [m for m in pool if m.fact.institution_id != order.fact.institution_id]
    for level, severity_of in ((7, rules.same_ingredient_severity), (5, rules.same_class_severity)):
        groups: dict[str, list[Medication]] = {}
        for m in pool + ([order] if order is not None else []):
            for ingredient in m.ingredients:
                groups.setdefault(ingredient[:level], [])
                if m not in groups[ingredient[:level]]:
                    groups[ingredient[:level]].append(m)
        for group, members in sorted(groups.items()):
            if order is not None and order not in members:
                continue
            if len({m.fact.institution_id for m in members}) < 2:
                continue
            if level == 5 and len({i for m in members for i in m.ingredients if i.startswith(group)}) < 2:
                continue  # one ingredient throughout: the ingredient rule said it
            institutions = sorted({m.fact.institution_name for m in members})
            values = {
                "group": terminology.atc_name(group, english=english),
                "code": group,
                "institutions": "、".join(institutions) if not english else ", ".join(institutions),
                "drugs": "、".join(m.name for m in members) if not english else ", ".join(m.name for m in members),
                "days": rules.lookback_days,
            }
            if level == 7:
                summary = _("Duplicate medication: %(group)s active at %(institutions)s")
                detail = _("The same ingredient (%(code)s) prescribed within %(days)s days: %(drugs)s.")
            else:
                summary = _("Same drug class %(group)s (%(code)s) active at %(institutions)s")
                detail = _("Drugs of one ATC level-4 class within %(days)s days: %(drugs)s.")
            found.append(
                Finding(
                    kind="duplicate-medication",
                    severity=severity_of,
                    summary=summary % values,
                    detail=detail % values,
                    evidence=[m.fact.evidence(display=m.name) for m in members],
                    order=order.fact.reference if order is not None else None,
                    rule=f"duplicate:{group}",
                )
            )
    return found


def medication_uncoded(order: Medication) -> Finding:
    """A proposed drug the terminology cannot place: nothing could be checked, and the clinician is told so."""
    return Finding(
        kind="drug-allergy",
        severity="info",
        summary=_("%(drug)s: the drug code is not in the drug dictionary; allergies and duplicates not checked")
        % {"drug": order.name or _("this drug")},
        detail=_("Map the ordering system's drug code to the drug dictionary (registry) to have it checked."),
        evidence=[order.fact.evidence(display=order.name)],
        order=order.fact.reference,
        rule="medication:uncoded",
    )
