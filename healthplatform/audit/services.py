"""Writing the audit: every door records its reads of resident records here."""

from __future__ import annotations

from collections.abc import Iterable

from healthplatform.access import Caller
from healthplatform.audit.models import AccessEvent


def reads_record(
    *,
    caller: Caller,
    person_ids: Iterable[int],
    door: str,
    what: str,
    action: str = "read",
    reason: str = "",
    reason_text: str = "",
    break_glass: bool = False,
    client_address: str | None = None,
) -> int:
    """Records that ``caller`` read the records of ``person_ids`` (one row per person, one statement); returns
    how many were recorded."""
    institution = caller.institution
    rows = [
        AccessEvent(
            person_id=pk,
            door=door,
            actor=caller.actor[:150],
            institution=institution,
            source=caller.source,
            action=action[:16],
            what=what[:200],
            reason=reason,
            reason_text=reason_text[:300],
            break_glass=break_glass,
            client_address=client_address,
        )
        for pk in sorted(set(person_ids))
    ]
    AccessEvent.objects.bulk_create(rows)
    return len(rows)
