"""The alerts raised on the orders feeds send (``healthplatform.alerts.models.Alert``) as FHIR R4 DetectedIssue.

- ``id``: the alert's uuid; ``identifier``: its stable key (``urn:platform:alert``), the id CDS Hooks cards carry
  as their uuid.
- ``status`` (R4 binds DetectedIssue.status to observation-status): an active or overridden alert is ``final``
  (an override is a mitigation, not a change of the finding); one withdrawn because the order or the record
  changed is ``cancelled`` — it no longer holds, but was not raised in error (``entered-in-error``).
- ``code``: HL7 v3 ActCode ALGY (Allergy Alert) for drug–allergy, DUPTHPY (Duplicate Therapy Alert) for
  duplicate medication (the R4 detectedissue-category codes); ActCode has no concept for a repeated test, so
  duplicate test is coded only in the platform's kinds (``urn:platform:alerts:kind``), which every alert also
  carries.
- ``severity``: critical → high, warning → moderate, info → low.
- ``patient``: the golden Patient; ``identifiedDateTime``: when the alert was raised.
- ``implicated``: the order, then each fact the alert rests on; ``evidence[].detail``: those facts, each with
  what it is, its value, date and institution as the reference's display.
- ``detail``: the summary and the explanation; ``mitigation``: each override or acceptance that counts (the
  ordering institution's or the platform staff's), with its coded reason, date and who.
"""

from __future__ import annotations

import datetime as dt

from healthplatform.alerts.cdshooks.cards import KIND_SYSTEM, KINDS, OVERRIDE_REASON_SYSTEM, REASONS

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ALERT_SYSTEM = "urn:platform:alert"
KIND_CODES = {"drug-allergy": ("ALGY", "Allergy Alert"), "duplicate-medication": ("DUPTHPY", "Duplicate Therapy Alert")}
STATUS = {"active": "final", "overridden": "final", "withdrawn": "cancelled"}
SEVERITY = {"critical": "high", "warning": "moderate", "info": "low"}
# Token search on DetectedIssue.code: (system, code) -> the alert kind it names.
CODE_KINDS = {
    **{(ACT_CODE, code): kind for kind, (code, _) in KIND_CODES.items()},
    **{(KIND_SYSTEM, kind): kind for kind in KINDS},
}


def kinds_of_code(system: str | None, code: str) -> frozenset[str]:
    """The alert kinds a ``code`` search value names (``system|code``, or ``code`` in any system)."""
    return frozenset(kind for (s, c), kind in CODE_KINDS.items() if c == code and system in (None, s))


def _evidence_display(e: dict) -> str:
    parts = [str(e.get("display") or e.get("resourceType") or "")]
    if e.get("value") is not None:
        parts.append(f"{e['value']}{' ' + e['unit'] if e.get('unit') else ''}")
    if e.get("referenceRange"):
        parts.append(str(e["referenceRange"]))
    if e.get("when"):
        parts.append(str(e["when"])[:10])
    if (e.get("institution") or {}).get("name"):
        parts.append(str(e["institution"]["name"]))
    return " · ".join(p for p in parts if p)


def _mitigation(override) -> dict:
    coding = []
    reason = REASONS.get(override.reason_code)
    if reason is not None:
        if reason.act_code:
            coding.append({"system": ACT_CODE, "code": reason.act_code[0], "display": reason.act_code[1]})
        coding.append({"system": OVERRIDE_REASON_SYSTEM, "code": reason.code, "display": reason.zh})
    if override.outcome == "accepted":
        text = "已采纳提醒的建议 (the alert's advice was taken)"
    else:
        text = override.reason or "已知悉，继续 (overridden without a reason)"
    action: dict = {"text": text}
    if coding:
        action["coding"] = coding
    return {"action": action, "date": override.at.isoformat(), "author": {"display": override.actor}}


def detected_issue(alert, overrides=()) -> dict:
    """The alert as a DetectedIssue (``alert.person`` loaded; ``overrides``: those that count for it)."""
    kind_zh, kind_en = KINDS.get(alert.kind, (alert.kind, alert.kind))
    coding = []
    if alert.kind in KIND_CODES:
        code, display = KIND_CODES[alert.kind]
        coding.append({"system": ACT_CODE, "code": code, "display": display})
    coding.append({"system": KIND_SYSTEM, "code": alert.kind, "display": kind_en})
    evidence = [e for e in alert.evidence if isinstance(e, dict) and e.get("reference")]
    facts = [e for e in evidence if e["reference"] != alert.order]
    implicated = [{"reference": alert.order}] if alert.order else []
    implicated += [{"reference": e["reference"]} for e in facts]
    issue = {
        "resourceType": "DetectedIssue",
        "id": str(alert.uuid),
        "identifier": [{"system": ALERT_SYSTEM, "value": alert.key}],
        "status": STATUS.get(alert.status, "final"),
        "code": {"coding": coding, "text": kind_zh},
        "severity": SEVERITY.get(alert.severity, "moderate"),
        "patient": {"reference": f"Patient/{alert.person.uuid}"},
        "identifiedDateTime": alert.raised_at.astimezone(dt.UTC).isoformat(),
        "detail": f"{alert.summary}\n{alert.detail}".strip(),
    }
    if implicated:
        issue["implicated"] = implicated
    if facts:
        issue["evidence"] = [
            {"detail": [{"reference": e["reference"], "display": _evidence_display(e)}]} for e in facts
        ]
    if overrides:
        issue["mitigation"] = [_mitigation(o) for o in overrides]
    return issue
