"""The alerts panel at the top of the patient page: what the alerts engine (``healthplatform.alerts``) finds in
the person's record, each finding's evidence linked to its fact page, and the clinician's overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse

from healthplatform.alerts.evaluate import record_alerts
from healthplatform.alerts.services import alert_override


@dataclass
class Panel:
    """The engine's findings (critical first) and the tests still inside their duplicate-test window, with a
    link to the fact page of every evidence item."""

    findings: list = field(default_factory=list)
    recent_tests: list = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # evidence reference -> its fact page


def evidence_link(person_uuid: str, reference: str) -> str:
    """The fact page of an evidence reference ("Observation/<id>"); "" for what is no archived fact."""
    resource_type, _, fhir_id = (reference or "").partition("/")
    if not resource_type or not fhir_id:
        return ""
    return reverse("viewer:fact", args=[person_uuid, resource_type, fhir_id])


def panel(*, caller, person) -> Panel:
    """The alerts of ``person`` for ``caller``."""
    found = record_alerts(caller=caller, person_id=person.pk)
    shown = Panel(findings=list(found.findings), recent_tests=list(found.recent_tests))
    for finding in (*shown.findings, *shown.recent_tests):
        for evidence in finding.evidence:
            shown.links[evidence.reference] = evidence_link(str(person.uuid), evidence.reference)
    return shown


def override(*, caller, user, key: str, reason: str, reason_code: str) -> None:
    """Records the clinician's override of the alert ``key`` (it does not come back on the record)."""
    alert_override(caller=caller, key=key, order=None, reason=reason, reason_code=reason_code, user=user)
