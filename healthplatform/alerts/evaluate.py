"""Evaluating the rules for one person: on the record (the patient page, CDS Hooks ``patient-view``) and on orders
(proposed ones from CDS Hooks ``order-select`` / ``order-sign``, incoming ones a feed wrote).

The facts come from the record read (``healthplatform.record.person_facts``): only the recent results, the
medications of the look-back period and every allergy, over every identity linked to the person — a fixed
handful of queries whatever the size of the record. The rules and the drug terminology are per-process
snapshots (``ruleset``, ``registry.terminology``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from ehr import selectors as archive
from healthplatform.access import Caller
from healthplatform.alerts import rules as r
from healthplatform.alerts.models import Alert, AlertPolicy, CrossReactivity, Override, Recognition, RetestWindow
from healthplatform.alerts.selectors import alerts_readable
from healthplatform.ingest.terminology import CodeTranslation
from healthplatform.record import person_facts
from mpi.models import Person
from registry.selectors import source_institutions
from registry.terminology import drug_terminology

RULES_SECONDS = 30.0
# Alerts a feed's order raised stay on the patient page this long (then they are history, read as DetectedIssue).
STORED_ALERT_DAYS = 30
ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})

_lock = threading.Lock()
_rules: tuple[float, r.RuleSet] | None = None


def ruleset() -> r.RuleSet:
    """The current rules (at most ``RULES_SECONDS`` old; a change saved in this process is seen at once)."""
    global _rules
    held, now = _rules, time.monotonic()
    if held is not None and held[0] > now:
        return held[1]
    with _lock:
        windows = {
            (w.system, w.code): r.Window(
                w.pk, w.category, w.system, w.code, w.display, w.display_en, w.window_days, w.severity
            )
            for w in RetestWindow.objects.filter(active=True)
        }
        recognition = {(x.institution_id, x.level, x.test_id): x.recognised for x in Recognition.objects.all()}
        cross = tuple(
            CrossReactivity.objects.filter(active=True)
            .order_by("allergen_group", "drug_group")
            .values_list("allergen_group", "drug_group", "severity")
        )
        policy = AlertPolicy.current()
        rules = r.RuleSet(
            windows=windows,
            recognition=recognition,
            cross=cross,
            lookback_days=policy.medication_lookback_days,
            same_ingredient_severity=policy.same_ingredient_severity,
            same_class_severity=policy.same_class_severity,
            allergy_severity=policy.allergy_severity,
            uncoded_allergy_severity=policy.uncoded_allergy_severity,
        )
        _rules = (now + RULES_SECONDS, rules)
        return rules


def ruleset_forget(**kwargs) -> None:
    """Drops the rules snapshot (a signal receiver: a rule changed in this process)."""
    global _rules
    _rules = None


@dataclass
class AlertSet:
    """What the patient page shows: the alerts (critical first) and the tests still inside their window."""

    person_id: int
    findings: list[r.Finding] = field(default_factory=list)
    recent_tests: list[r.Finding] = field(default_factory=list)


@dataclass
class _Context:
    now: dt.datetime
    rules: r.RuleSet
    terminology: object
    facts: list[r.Fact]
    medications: list[r.Medication]
    allergies: list[r.Allergy]
    uncoded: list[r.Allergy]
    english: bool


def _institution_of(source_id: int | None):
    known = source_institutions().get(source_id) if source_id is not None else None
    if known is None:
        return 0, "", _("entered on the platform"), ""
    return known.institution_id, known.code, known.name, known.level


def fact_of(row) -> r.Fact:
    """An archive row as the rules see it."""
    institution_id, code, name, level = _institution_of(row.source_id)
    return r.Fact(
        resource_type=row.resource_type,
        fhir_id=row.fhir_id,
        body=row.body,
        when=row.effective_low,
        institution_id=institution_id,
        institution_code=code,
        institution_name=name,
        institution_level=level,
        submission_id=row.submission_id,
    )


def _context(caller: Caller, person_id: int, now: dt.datetime | None, record=None) -> _Context:
    now = now or timezone.now()
    rules = ruleset()
    terminology = drug_terminology()
    results_since = now - dt.timedelta(days=rules.longest_window)
    meds_since = now - dt.timedelta(days=rules.lookback_days)
    since = {"Observation": results_since, "DiagnosticReport": results_since, "AllergyIntolerance": None}
    since.update({t: meds_since for t in r.MEDICATION_TYPES})
    read = person_facts(caller=caller, person_id=person_id, since=since, record=record)
    facts = [fact_of(row) for row in read.facts]
    allergies, uncoded = r.allergies_of(facts, terminology)
    return _Context(
        now=now,
        rules=rules,
        terminology=terminology,
        facts=facts,
        medications=r.active_medications(facts, rules, terminology, now),
        allergies=allergies,
        uncoded=uncoded,
        english=(get_language() or "").startswith("en"),
    )


def _provenance(findings: list[r.Finding]) -> None:
    """Names the submission (request or message) that carried each piece of evidence (one query)."""
    wanted = {e.submission_id for f in findings for e in f.evidence if e.submission_id}
    uuids = archive.submission_uuids(wanted)
    for f in findings:
        for e in f.evidence:
            if e.submission_id:
                e.submission = uuids.get(e.submission_id)


def _overridden(keys: set[str], institution_id: int | None) -> dict[str, Override]:
    """The overrides of these alerts that count for the institution ``institution_id``: its own and the platform
    staff's (one hospital's decision to go on does not silence another hospital's warning; None: every override,
    for staff)."""
    if not keys:
        return {}
    rows = Override.objects.filter(alert_key__in=sorted(keys), outcome="overridden")
    if institution_id is not None:
        rows = rows.filter(Q(institution_id=institution_id) | Q(institution__isnull=True))
    found = {}
    for o in rows.order_by("at"):
        found[o.alert_key] = o
    return found


def _stored(caller: Caller, person_id: int, now: dt.datetime, *, besides: set[str]) -> list[r.Finding]:
    """The alerts feeds' orders raised lately for this person, still active, that ``caller`` may read: an alert
    is its ordering institution's (``selectors.alerts_readable``, as DetectedIssue reads them) — another
    hospital's page and patient-view show the record's own alerts, not its neighbour's orders. Those of the keys
    ``besides`` (found on the record itself: the same alert) are not read."""
    # The person's and those of the persons merged into them (as DetectedIssue finds them): a merge moves the
    # identities, and so the facts, but an alert stays with the person it was raised for. A subquery, one
    # statement.
    persons = Person.objects.filter(Q(pk=person_id) | Q(merged_into_id=person_id)).values("pk")
    rows = (
        alerts_readable(caller)
        .filter(
            person_id__in=persons,
            status=Alert.Status.ACTIVE,
            raised_at__gte=now - dt.timedelta(days=STORED_ALERT_DAYS),
        )
        .exclude(key__in=sorted(besides))
        .select_related("institution")
    )
    found = []
    for a in rows:
        evidence = [
            r.Evidence(
                reference=e.get("reference", ""),
                resource_type=e.get("resourceType", ""),
                institution_name=(e.get("institution") or {}).get("name", ""),
                institution_code=(e.get("institution") or {}).get("code", ""),
                when=dt.datetime.fromisoformat(e["when"]) if e.get("when") else None,
                submission=e.get("submission"),
                display=e.get("display", ""),
                value=e.get("value"),
                unit=e.get("unit"),
                reference_range=e.get("referenceRange"),
            )
            for e in a.evidence
            if isinstance(e, dict)
        ]
        found.append(
            r.Finding(
                kind=a.kind,
                severity=a.severity,
                summary=a.summary,
                detail=a.detail,
                evidence=evidence,
                order=a.order,
                key=a.key,
            )
        )
    return found


def _facts_of(finding: r.Finding) -> tuple[str, frozenset[str]]:
    """What an alert says of what: its kind and every fact it names, the order included."""
    return finding.kind, frozenset(
        {e.reference for e in finding.evidence} | ({finding.order} if finding.order else set())
    )


def record_alerts(*, caller: Caller, person_id: int, now: dt.datetime | None = None, record=None) -> AlertSet:
    """The alerts of the person's record as it stands (the patient page, ``patient-view``): drug–allergy on the
    active medications, uncoded allergies, duplicate medications across institutions, the alerts raised on the
    orders of the caller's institution (staff: every institution's); and the tests still inside their window.
    An alert someone overrode is kept out. ``record``: the caller's read of the whole record, when it has one
    (``healthplatform.record.person_facts``)."""
    ctx = _context(caller, person_id, now, record)
    findings: list[r.Finding] = []
    for medication in ctx.medications:
        findings += r.drug_allergy(medication, ctx.allergies, [], ctx.rules, ctx.terminology, english=ctx.english)
    findings += r.uncoded_allergies(ctx.uncoded, ctx.rules)
    findings += r.duplicate_medications(ctx.medications, ctx.rules, ctx.terminology, english=ctx.english)
    # A feed's order raised an alert on the order (keyed with it); once written, the same order is an active
    # medication of the record and the record's own finding says the same of the same facts: shown once.
    same = {_facts_of(f) for f in findings}
    stored = _stored(caller, person_id, ctx.now, besides={f.key for f in findings})
    findings += [f for f in stored if _facts_of(f) not in same]
    institution = caller.institution
    recent = r.recent_tests(
        ctx.facts, ctx.rules, ctx.now, own_institution=institution.pk if institution else None, english=ctx.english
    )
    overridden = _overridden({f.key for f in findings}, institution.pk if institution else None)
    findings = [f for f in findings if f.key not in overridden]
    _provenance(findings + recent)
    return AlertSet(person_id=person_id, findings=r.by_severity(findings), recent_tests=recent)


def order_fact(caller: Caller, order: dict, *, reference: str, now: dt.datetime) -> r.Fact:
    """A proposed order (a draft FHIR resource from CDS Hooks) as a fact of the caller's institution. A hospital
    system proposes in its own local codes: they are translated as its writes would be (ingest.terminology)."""
    institution = caller.institution
    if caller.source is not None:
        order = CodeTranslation.of(caller.source.pk).translated(order)
    return r.Fact(
        resource_type=order.get("resourceType", ""),
        fhir_id=str(order.get("id") or ""),
        body=order,
        when=now,
        institution_id=institution.pk if institution else 0,
        institution_code=institution.code if institution else "",
        institution_name=institution.name if institution else _("entered on the platform"),
        institution_level=institution.level if institution else "",
        reference=reference,
    )


def _order_findings(ctx: _Context, order: r.Fact) -> list[r.Finding]:
    if order.resource_type == "ServiceRequest":
        return r.duplicate_test_on_order(order, ctx.facts, ctx.rules, ctx.now, english=ctx.english)
    if order.resource_type != "MedicationRequest":
        return []
    medication = r.medication_of(order, ctx.terminology)
    if not medication.ingredients:
        return [r.medication_uncoded(medication)]
    others = [m for m in ctx.medications if m.fact.reference != order.reference]
    return r.drug_allergy(
        medication, ctx.allergies, ctx.uncoded, ctx.rules, ctx.terminology, order=order.reference, english=ctx.english
    ) + r.duplicate_medications(others, ctx.rules, ctx.terminology, order=medication, english=ctx.english)


def order_alerts(
    *, caller: Caller, person_id: int, orders: list[r.Fact], now: dt.datetime | None = None
) -> list[r.Finding]:
    """The alerts on orders (``orders``: proposed ones made with ``order_fact``, or incoming ones a feed wrote,
    made with ``fact_of``), critical first; an alert overridden for the same order does not come back."""
    ctx = _context(caller, person_id, now)
    findings = [f for order in orders for f in _order_findings(ctx, order)]
    # The overrides that count are those of the institution whose order it is, not the caller's: the platform
    # evaluates a feed's orders as a caller of no institution, and would otherwise let any hospital's override
    # (a card uuid is computable) withdraw another hospital's alert. A staff-entered order (no institution)
    # counts every override, as staff do.
    ordering = {o.reference: o.institution_id or None for o in orders}
    own = caller.institution.pk if caller.institution else None
    keys_of: dict[int | None, set[str]] = {}
    for f in findings:
        keys_of.setdefault(ordering.get(f.order or "", own), set()).add(f.key)
    overridden: set[str] = set()
    for institution_id, keys in keys_of.items():  # one institution per call in practice: one query
        overridden |= set(_overridden(keys, institution_id))
    findings = [f for f in findings if f.key not in overridden]
    _provenance(findings)
    return r.by_severity(findings)
