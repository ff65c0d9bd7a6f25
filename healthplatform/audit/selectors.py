"""Reading the audit: who has read a person's record."""

from __future__ import annotations

from django.db.models import QuerySet

from healthplatform.audit.models import AccessEvent


def person_accesses(person_id: int, *, limit: int = 50) -> list[AccessEvent]:
    """The latest reads of one person's record, newest first, with the reader's institution (one query)."""
    qs: QuerySet[AccessEvent] = AccessEvent.objects.filter(person_id=person_id).select_related("institution")
    return list(qs.order_by("-at", "-pk")[:limit])
