"""Writing the audit: every door records its reads of resident records here.

A read that cannot be recorded must not be answered (an attributable read: who read a resident's record is
part of the record): these functions raise when the row cannot be written, and the door answers an error in
place of the data. They never swallow a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction

from healthplatform.access import Caller
from healthplatform.audit.models import AccessEvent
from healthplatform.audit.selectors import persons_of_resources


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
    query: str = "",
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
            query=query,
            reason=reason,
            reason_text=reason_text[:300],
            break_glass=break_glass,
            client_address=client_address,
        )
        for pk in sorted(set(person_ids))
    ]
    if not rows:
        return 0
    # A savepoint inside a caller's transaction (a transaction Bundle's GET entries): a failed insert leaves
    # that transaction usable for the error answer, and the caller decides what the failure undoes.
    with transaction.atomic():
        AccessEvent.objects.bulk_create(rows)
    return len(rows)


def resources_read(
    *,
    caller: Caller,
    resources: Iterable[tuple[str, str]],
    door: str,
    what: str,
    action: str,
    client_address: str | None = None,
    query: str = "",
) -> list[uuid.UUID]:
    """Records that ``caller`` was sent the resources ``resources`` ((FHIR type, id) pairs): one access event
    per person whose record they belong to (``selectors.persons_of_resources``). Returns those persons' golden
    Patient ids (for the access log). Two statements whatever the number of resources: the persons, the
    insert; none when no resource belongs to a person."""
    persons = persons_of_resources(resources)
    if persons:
        reads_record(
            caller=caller,
            person_ids=[pk for pk, _ in persons],
            door=door,
            what=what,
            action=action,
            client_address=client_address,
            query=query,
        )
    return [person_uuid for _, person_uuid in persons]
