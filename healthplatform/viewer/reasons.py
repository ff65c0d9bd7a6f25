"""The viewer's access rule: a clinician opens a resident their institution knows (``Caller.knows``); any other
resident only after stating a reason (emergency, referral, consultation, with free text), which every read
that follows records in the audit, marked break-the-glass.

A stated reason holds for that clinician and that resident for ``REASON_HOURS`` hours, and never beyond the
login session it was stated in (it lives in the session, which logging out or another user's login flushes):
long enough for one emergency or one consultation, short enough that the next episode asks again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from healthplatform.audit.models import AccessEvent

REASON_HOURS = 4
SESSION_KEY = "viewer_reasons"
REASON_TEXT_MAX = 300


@dataclass(frozen=True)
class Access:
    """How a clinician may open one resident now: ``allowed``, and the reason that lets them when their
    institution does not know the resident (``break_glass``)."""

    allowed: bool
    known: bool
    reason: str = ""
    reason_text: str = ""
    until: dt.datetime | None = None

    @property
    def break_glass(self) -> bool:
        return self.allowed and not self.known

    def reason_label(self) -> str:
        return AccessEvent.Reason(self.reason).label if self.reason else ""


def access_decide(request, *, person_uuid: str, identities) -> Access:
    """Whether the clinician of ``request`` may open the resident with these identities now."""
    if request.caller.knows(identities):
        return Access(allowed=True, known=True)
    held = request.session.get(SESSION_KEY, {}).get(person_uuid)
    if held and held.get("actor") == request.caller.actor:
        until = dt.datetime.fromisoformat(held["until"])
        if until > timezone.now():
            return Access(allowed=True, known=False, reason=held["reason"], reason_text=held["text"], until=until)
    return Access(allowed=False, known=False)


def reason_state(request, *, person_uuid: str, reason: str, text: str) -> dt.datetime:
    """Records in the session that the clinician stated ``reason`` for this resident; returns until when it
    holds. The audit row is written by the read that follows (every read carries the reason)."""
    if reason not in AccessEvent.Reason.values:
        raise ValueError(f"reason: expected one of {', '.join(AccessEvent.Reason.values)}, got {reason!r}")
    until = timezone.now() + dt.timedelta(hours=REASON_HOURS)
    held = {k: v for k, v in request.session.get(SESSION_KEY, {}).items() if _still(v)}
    held[person_uuid] = {
        "actor": request.caller.actor,
        "reason": reason,
        "text": text[:REASON_TEXT_MAX],
        "until": until.isoformat(),
    }
    request.session[SESSION_KEY] = held
    return until


def _still(held: dict) -> bool:
    try:
        return dt.datetime.fromisoformat(held["until"]) > timezone.now()
    except (KeyError, TypeError, ValueError):
        return False
