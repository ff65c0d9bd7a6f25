"""CDS Hooks feedback (§ "Feedback"): what a client says the clinician did with a card, recorded as an override or
an acceptance (``healthplatform.alerts.services.alert_override``).

A card's uuid is its alert's stable id (``cards.card_uuid``), so feedback needs no memory of the cards given: an
overridden alert does not come back for the same order (its id names the order), for the institution that
overrode it. The whole request is checked before anything is recorded: one bad item refuses it all (400).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from healthplatform.access import Caller
from healthplatform.alerts.cdshooks.cards import OVERRIDE_REASON_SYSTEM, REASONS, key_of_card
from healthplatform.alerts.cdshooks.hooks import bad
from healthplatform.alerts.services import alert_override

MAX_FEEDBACK = 100
MAX_COMMENT = 500


@dataclass
class Feedback:
    key: str
    outcome: str
    reason_code: str
    reason: str


def _timestamp(value, where: str) -> None:
    if not isinstance(value, str):
        raise bad(f"{where}.outcomeTimestamp: an RFC 3339 date and time (UTC) is required")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad(f"{where}.outcomeTimestamp: an RFC 3339 date and time (UTC) is required") from None
    if when.tzinfo is None:
        raise bad(f"{where}.outcomeTimestamp: needs its offset (Z for UTC)")


def _coding(value, where: str) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise bad(f"{where}: a Coding (system, code) is required")
    system, code = value.get("system"), value.get("code")
    if not isinstance(system, str) or not system or not isinstance(code, str) or not code:
        raise bad(f"{where}: a Coding needs its system and code")
    return system, code


def _item(item, where: str) -> Feedback:
    if not isinstance(item, dict):
        raise bad(f"{where}: a Feedback object is required")
    key = key_of_card(item.get("card"))
    if key is None:
        raise bad(f"{where}.card: the uuid of a card this service returned is required")
    outcome = item.get("outcome")
    if outcome not in ("accepted", "overridden"):
        raise bad(f"{where}.outcome: accepted or overridden")
    _timestamp(item.get("outcomeTimestamp"), where)
    reason_code, reason = "", ""
    if outcome == "accepted":
        accepted = item.get("acceptedSuggestions")
        if not isinstance(accepted, list) or not accepted:
            raise bad(f"{where}.acceptedSuggestions: required for an accepted card")
        for n, suggestion in enumerate(accepted):
            if not isinstance(suggestion, dict) or not isinstance(suggestion.get("id"), str) or not suggestion["id"]:
                raise bad(f"{where}.acceptedSuggestions[{n}].id: the uuid of the suggestion accepted")
    override = item.get("overrideReason")
    if override is not None:
        if outcome != "overridden" or not isinstance(override, dict):
            raise bad(f"{where}.overrideReason: an OverrideReason object, with an overridden outcome only")
        if override.get("reason") is not None:
            system, code = _coding(override["reason"], f"{where}.overrideReason.reason")
            reason_code = code if system == OVERRIDE_REASON_SYSTEM else f"{system}|{code}"
            known = REASONS.get(code) if system == OVERRIDE_REASON_SYSTEM else None
            reason = known.zh if known else ""
        comment = override.get("userComment")
        if comment is not None:
            if not isinstance(comment, str):
                raise bad(f"{where}.overrideReason.userComment: a string")
            comment = " ".join(comment.split())[:MAX_COMMENT]
            reason = f"{reason}: {comment}" if reason and comment else (comment or reason)
    return Feedback(key=key, outcome=outcome, reason_code=reason_code[:64], reason=reason)


def feedback_parse(body) -> list[Feedback]:
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise bad("the request body: an object with a non-empty feedback array is required")
    items = body["feedback"]
    if len(items) > MAX_FEEDBACK:
        raise bad(f"feedback: at most {MAX_FEEDBACK} items in one request")
    return [_item(item, f"feedback[{n}]") for n, item in enumerate(items)]


def feedback_record(*, caller: Caller, items: list[Feedback]) -> int:
    """Records every item (all or none); returns how many."""
    with transaction.atomic():
        for item in items:
            alert_override(
                caller=caller, key=item.key, reason=item.reason, reason_code=item.reason_code, outcome=item.outcome
            )
    return len(items)
