"""The alerts panel at the top of the patient page: what the alerts engine (``healthplatform.alerts``) finds in
the person's record, each finding's evidence linked to its fact page, and the clinician's overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse

from healthplatform.alerts.evaluate import record_alerts
from healthplatform.alerts.services import alert_override

# Evidence items shown under one finding: a duplicate medication over months of refills rests on dozens of
# facts, and the first few (newest) say what the clinician needs; the count of the rest is shown.
EVIDENCE_SHOWN = 5
# Findings shown in full (evidence, override form); the rest by their summary alone, folded: a resident refilled
# at five institutions raises dozens of duplicate-medication findings, which would bury the first ones.
FINDINGS_SHOWN = 10


@dataclass
class Shown:
    """A finding as the panel shows it: its first ``EVIDENCE_SHOWN`` evidence items and how many more."""

    finding: object
    evidence: list
    more: int

    def __getattr__(self, name):
        return getattr(self.finding, name)


def _shown(finding) -> Shown:
    evidence = list(finding.evidence)
    return Shown(finding, evidence[:EVIDENCE_SHOWN], max(len(evidence) - EVIDENCE_SHOWN, 0))


@dataclass
class Panel:
    """The engine's findings (critical first) and the tests still inside their duplicate-test window, with a
    link to the fact page of every evidence item."""

    findings: list = field(default_factory=list)
    folded: list = field(default_factory=list)  # the findings after FINDINGS_SHOWN: summaries only
    recent_tests: list = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # evidence reference -> its fact page


def evidence_link(person_uuid: str, reference: str) -> str:
    """The fact page of an evidence reference ("Observation/<id>"); "" for what is no archived fact."""
    resource_type, _, fhir_id = (reference or "").partition("/")
    if not resource_type or not fhir_id:
        return ""
    return reverse("viewer:fact", args=[person_uuid, resource_type, fhir_id])


def panel(*, caller, person, record=None) -> Panel:
    """The alerts of ``person`` for ``caller`` (``record``: the page's read of the record, read again if None)."""
    found = record_alerts(caller=caller, person_id=person.pk, record=record)
    findings = list(found.findings)
    shown = Panel(
        findings=[_shown(f) for f in findings[:FINDINGS_SHOWN]],
        folded=findings[FINDINGS_SHOWN:],
        recent_tests=[_shown(f) for f in found.recent_tests],
    )
    for finding in (*shown.findings, *shown.recent_tests):
        for evidence in finding.evidence:
            shown.links[evidence.reference] = evidence_link(str(person.uuid), evidence.reference)
    return shown


def override(*, caller, user, key: str, reason: str, reason_code: str) -> None:
    """Records the clinician's override of the alert ``key`` (it does not come back on the record)."""
    alert_override(caller=caller, key=key, order=None, reason=reason, reason_code=reason_code, user=user)
