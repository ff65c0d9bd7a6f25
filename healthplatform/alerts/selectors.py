"""The alerts' reads: the alerts feeds' orders raised (read as FHIR DetectedIssue) and their overrides, scoped to
who asks — an alert is its ordering institution's: that institution's source systems and clinicians read it,
staff read all, another institution reads none."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from healthplatform.access import Caller
from healthplatform.alerts.models import Alert, Override
from mpi.models import Person
from mpi.selectors import MAX_MERGE_CHAIN, person_id_of_patient


def alerts_readable(caller: Caller) -> QuerySet[Alert]:
    """The alerts this caller may read."""
    rows = Alert.objects.select_related("person")
    if caller.is_staff:
        return rows
    institution = caller.institution
    return rows.filter(institution=institution) if institution is not None else rows.none()


def alert_get(*, caller: Caller, alert_id: str) -> Alert | None:
    """An alert by its id (``Alert.uuid``, the DetectedIssue id), if this caller may read it."""
    try:
        key = uuid.UUID(str(alert_id))
    except ValueError:
        return None
    return alerts_readable(caller).filter(uuid=key).first()


def persons_of_patient(patient_id: str) -> list[int]:
    """The person a Patient id (source or golden) stands for and the persons merged into it: alerts stay with
    the person they were raised for, and a merge brings that person's under the survivor."""
    person_id = person_id_of_patient(patient_id)
    if person_id is None:
        return []
    found, frontier = [person_id], [person_id]
    for _ in range(MAX_MERGE_CHAIN):
        frontier = list(
            Person.objects.filter(merged_into__in=frontier, status=Person.Status.MERGED).values_list("pk", flat=True)
        )
        frontier = [pk for pk in frontier if pk not in found]
        if not frontier:
            break
        found += frontier
    return found


def alerts_search(
    *,
    caller: Caller,
    person_ids: list[int] | None = None,
    kinds: frozenset[str] | None = None,
    alert_id: str | None = None,
    before: int | None = None,
    limit: int,
) -> list[Alert]:
    """The alerts this caller may read, newest first, ``limit`` of them after the keyset cursor ``before`` (the
    last row's pk of the previous page)."""
    rows = alerts_readable(caller)
    if person_ids is not None:
        rows = rows.filter(person_id__in=person_ids)
    if kinds is not None:
        rows = rows.filter(kind__in=sorted(kinds))
    if alert_id is not None:
        alert = alert_get(caller=caller, alert_id=alert_id)
        rows = rows.filter(pk=alert.pk) if alert is not None else rows.none()
    if before is not None:
        rows = rows.filter(pk__lt=before)
    return list(rows.order_by("-pk")[:limit])


def overrides_of(alerts: list[Alert]) -> dict[str, list[Override]]:
    """alert key -> the overrides and acceptances that count for it (its ordering institution's and staff's),
    oldest first (one query)."""
    if not alerts:
        return {}
    wanted = Q()
    for alert in alerts:
        wanted |= Q(alert_key=alert.key) & (Q(institution_id=alert.institution_id) | Q(institution__isnull=True))
    found: dict[str, list[Override]] = {}
    for row in Override.objects.filter(wanted).order_by("at", "pk"):
        found.setdefault(row.alert_key, []).append(row)
    return found
