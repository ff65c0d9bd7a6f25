"""Findings as CDS Hooks 2.0 Cards (§ "CDS Service Response", "Card Attributes").

- ``uuid`` is the finding's stable id (``Finding.key``, 32 hex digits) written as a UUID: the same alert on the
  same order is the same card, call after call, and feedback names it (``key_of_card``).
- ``summary`` is under 140 characters (``rules.Finding`` cuts it), ``indicator`` the severity, ``detail`` the
  rule's explanation and the evidence (each fact with its value, date and institution) in Markdown.
- ``source`` is the platform (label 区域健康信息平台), with the kind of alert as its ``topic``.
- ``overrideReasons``: a small coded list per kind of alert (``OVERRIDE_REASONS``).
- On an order, one suggestion: remove it (a ``delete`` action naming the draft order), recommended when the
  alert is critical.
- ``links``: the resident's page in the clinician viewer (``/viewer/patient/<golden Patient id>/``).

Text is Chinese, English when the request asks for it (``Accept-Language: en``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import get_language

from healthplatform.alerts import rules as r

SOURCE_LABEL = "区域健康信息平台"
KIND_SYSTEM = "urn:platform:alerts:kind"
OVERRIDE_REASON_SYSTEM = "urn:platform:cds-hooks:override-reason"
# The viewer is mounted at /viewer/ (healthplatform/viewer/urls.py, name "viewer:patient"); until it is, the
# link is this path on the platform's host.
VIEWER_PATIENT_PATH = "/viewer/patient/{uuid}/"
VIEWER_HOME_PATH = "/viewer/"
# Suggestion ids are derived from the card's (stable, and so are they).
_SUGGESTION_NAMESPACE = uuid.UUID("6f2d6c1e-3a51-4f0e-9a5e-2f3c1c0de7a1")


def english() -> bool:
    return (get_language() or "").startswith("en")


def say(zh: str, en: str) -> str:
    return en if english() else zh


KINDS = {
    "duplicate-test": ("重复检查检验", "Duplicate test"),
    "drug-allergy": ("药物过敏", "Drug–allergy"),
    "duplicate-medication": ("重复用药", "Duplicate medication"),
}


@dataclass(frozen=True)
class OverrideReason:
    """A reason a clinician may give for going on despite an alert, and the HL7 v3 ActCode detected-issue
    management code it amounts to (DetectedIssue.mitigation.action), if one fits."""

    code: str
    zh: str
    en: str
    act_code: tuple[str, str] | None = None

    def coding(self) -> dict:
        return {"system": OVERRIDE_REASON_SYSTEM, "code": self.code, "display": say(self.zh, self.en)}


REASONS = {
    reason.code: reason
    for reason in (
        OverrideReason("aware", "已知悉，继续", "Aware of it, proceeding", ("1", "Therapy Appropriate")),
        OverrideReason(
            "tolerated-before", "患者既往使用耐受", "Patient tolerated it before", ("23", "prior therapy documented")
        ),
        OverrideReason("skin-test-negative", "皮试阴性", "Skin test negative", ("2", "Assessed Patient")),
        OverrideReason("clinically-necessary", "临床必需", "Clinically necessary", ("1", "Therapy Appropriate")),
        OverrideReason(
            "condition-changed",
            "病情变化，需要复查",
            "The condition changed: a repeat is needed",
            ("22", "appropriate indication or diagnosis"),
        ),
        OverrideReason(
            "combination-intended", "有意联合用药", "The combination is intended", ("1", "Therapy Appropriate")
        ),
        OverrideReason("other-stopped", "另一处方已停用", "The other prescription was stopped"),
    )
}
OVERRIDE_REASONS = {
    "drug-allergy": ("aware", "tolerated-before", "skin-test-negative", "clinically-necessary"),
    "duplicate-test": ("aware", "condition-changed", "clinically-necessary"),
    "duplicate-medication": ("aware", "combination-intended", "other-stopped", "clinically-necessary"),
}

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def markdown_text(text: str) -> str:
    """Hospital-supplied text as literal Markdown (GFM): its special characters escaped, lines kept."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def card_uuid(key: str) -> str:
    """A finding's stable id written as a UUID (keys are 32 hex digits; anything else is hashed to 32)."""
    try:
        return str(uuid.UUID(hex=key))
    except ValueError:
        return str(uuid.UUID(hex=hashlib.sha256(key.encode()).hexdigest()[:32]))


def key_of_card(card: str) -> str | None:
    """The finding key a card uuid stands for (None: not a UUID)."""
    try:
        return uuid.UUID(card).hex
    except (ValueError, AttributeError, TypeError):
        return None


def viewer_url(request, person_uuid: str | None = None) -> str:
    """The viewer's patient page of ``person_uuid`` (its home without one), absolute."""
    try:
        path = reverse("viewer:patient", kwargs={"person_uuid": person_uuid}) if person_uuid else reverse("viewer:home")
    except NoReverseMatch:
        path = VIEWER_PATIENT_PATH.format(uuid=person_uuid) if person_uuid else VIEWER_HOME_PATH
    return request.build_absolute_uri(path)


def _date(when) -> str:
    return timezone.localtime(when).date().isoformat() if when else "—"


def evidence_line(e: r.Evidence) -> str:
    """One piece of evidence as a line a clinician reads: what, value, range, date, institution."""
    parts = [f"**{markdown_text(e.display or e.resource_type)}**"]
    if e.value is not None:
        parts.append(markdown_text(f"{e.value}{' ' + e.unit if e.unit else ''}"))
    if e.reference_range:
        parts.append(say("参考范围 ", "reference range ") + markdown_text(e.reference_range))
    parts.append(_date(e.when))
    if e.institution_name:
        parts.append(markdown_text(e.institution_name))
    return " · ".join(parts)


def _detail(finding: r.Finding) -> str:
    lines = [markdown_text(finding.detail)] if finding.detail else []
    evidence = [e for e in finding.evidence if e.reference != finding.order]
    if evidence:
        lines += ["", say("**依据**", "**Evidence**"), *(f"- {evidence_line(e)}" for e in evidence)]
    return "\n".join(lines)


def source(request, kind: str) -> dict:
    zh, en = KINDS.get(kind, (kind, kind))
    return {
        "label": SOURCE_LABEL,
        "url": viewer_url(request),
        "topic": {"system": KIND_SYSTEM, "code": kind, "display": say(zh, en)},
    }


def _links(request, person_uuid: str) -> list[dict]:
    label = say("在区域健康信息平台查看该患者的完整记录", "Open the resident's regional record")
    return [{"label": label, "url": viewer_url(request, person_uuid), "type": "absolute"}]


def card(request, finding: r.Finding, *, person_uuid: str, order: tuple[str, str] | None = None) -> dict:
    """The card of one finding; ``order`` (type, id): the draft order it was raised on, as the client named it."""
    body: dict = {
        "uuid": card_uuid(finding.key),
        "summary": finding.summary,
        "indicator": finding.severity if finding.severity in r.SEVERITY_RANK else "warning",
        "source": source(request, finding.kind),
    }
    if detail := _detail(finding):
        body["detail"] = detail
    if order is not None and finding.severity in ("warning", "critical"):
        reference = f"{order[0]}/{order[1]}"
        body["suggestions"] = [
            {
                "label": say("撤销此医嘱", "Remove this order"),
                "uuid": str(uuid.uuid5(_SUGGESTION_NAMESPACE, f"{finding.key}:remove")),
                "isRecommended": finding.severity == "critical",
                "actions": [
                    {
                        "type": "delete",
                        "description": say(f"撤销 {reference}", f"Remove {reference}"),
                        "resourceId": reference,
                    }
                ],
            }
        ]
        body["selectionBehavior"] = "at-most-one"
    reasons = OVERRIDE_REASONS.get(finding.kind, ("aware",))
    body["overrideReasons"] = [REASONS[code].coding() for code in reasons]
    body["links"] = _links(request, person_uuid)
    return body


def recent_tests_card(request, recent: list[r.Finding], *, person_uuid: str) -> dict | None:
    """One information card listing the tests still inside their retest window (patient-view: what a clinician
    planning orders need not repeat), or None when there are none."""
    if not recent:
        return None
    key = hashlib.sha256("|".join(["recent-tests", *sorted(f.key for f in recent)]).encode()).hexdigest()[:32]
    lines = []
    for finding in recent:
        lines.append(f"- {markdown_text(finding.summary)}")
        lines += [f"  - {evidence_line(e)}" for e in finding.evidence]
    return {
        "uuid": card_uuid(key),
        "summary": say(
            f"{len(recent)} 项检查检验结果仍在复查间隔内，开单前请先查看",
            f"{len(recent)} recent test results are still inside their retest window: check them before ordering",
        ),
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": source(request, "duplicate-test"),
        "links": _links(request, person_uuid),
    }
