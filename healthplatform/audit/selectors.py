"""Reading the audit: who has read a person's record; and whose records a door's answer carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Q, QuerySet

from ehr.indexing import CLINICAL_TYPES
from ehr.models import Resource
from emr.models import DocumentEntry
from healthplatform.alerts.models import Alert
from healthplatform.audit.models import AccessEvent
from healthplatform.ingest.entries import DOCUMENT_TYPES
from mpi.models import Identity, Person

# The FHIR types whose instances belong to one person, by where their ids live: golden Patients are persons and
# source Patients identities (``Patient``); a document's DocumentReference and its content (``Binary``) share the
# document's id; every archived clinical type is a row of the archive. The directory (Organization,
# Practitioner, Location), an OperationOutcome, a Bundle or an AuditEvent is nobody's record.
ARCHIVED_TYPES = frozenset(CLINICAL_TYPES)
PERSON_TYPES = frozenset({"Patient", *DOCUMENT_TYPES}) | ARCHIVED_TYPES


def _persons_read(person_id: int) -> QuerySet[Person]:
    """The person and those merged into them: a merge brings the duplicate's record, and who read it, along."""
    return Person.objects.filter(Q(pk=person_id) | Q(merged_into_id=person_id)).values("pk")


def person_accesses(person_id: int, *, limit: int = 50) -> list[AccessEvent]:
    """The latest reads of one person's record (and of the records of persons merged into them), newest first,
    with the reader's institution (one query)."""
    qs: QuerySet[AccessEvent] = AccessEvent.objects.filter(person_id__in=_persons_read(person_id)).select_related(
        "institution"
    )
    return list(qs.order_by("-at", "-pk")[:limit])


def access_events(person_id: int, *, count: int, before: int | None = None) -> list[AccessEvent]:
    """A page of the reads of a person's record (as ``person_accesses``), newest first, for the AuditEvent export:
    ``count`` events with primary keys below ``before`` (the keyset of the previous page), with the person, the
    institution and the client loaded (one query)."""
    qs = AccessEvent.objects.filter(person_id__in=_persons_read(person_id))
    if before is not None:
        qs = qs.filter(pk__lt=before)
    return list(qs.select_related("person", "institution", "source").order_by("-pk")[:count])


def access_event_get(pk: int) -> AccessEvent | None:
    """One access event, with what its AuditEvent names."""
    return AccessEvent.objects.select_related("person", "institution", "source").filter(pk=pk).first()


def _uuids(values: Iterable[str]) -> set[uuid.UUID]:
    out = set()
    for value in values:
        try:
            out.add(uuid.UUID(str(value)))
        except ValueError:
            continue  # not an id of ours: it names nobody
    return out


def persons_of_resources(refs: Iterable[tuple[str, str]]) -> list[tuple[int, uuid.UUID]]:
    """The persons whose records the FHIR resources ``refs`` — (type, id) pairs, as a door sent them out —
    belong to: (primary key, golden Patient id) of each, once, in one query however many resources there are.

    Each resource reaches its person through its MPI identity (an archived fact's ``identity``, a document's
    ``identity``, a source Patient *is* an identity), or is the person (a golden Patient); types that are nobody's
    record (not in ``PERSON_TYPES``) are passed over, and an id that names nothing names nobody.
    """
    patients: set[str] = set()
    documents: set[str] = set()
    archived: dict[str, set[str]] = {}
    alerts: set[str] = set()
    for resource_type, fhir_id in refs:
        if resource_type == "DetectedIssue":
            alerts.add(fhir_id)  # an alert raised on the person's order (healthplatform.alerts)
        elif resource_type == "Patient":
            patients.add(fhir_id)
        elif resource_type in DOCUMENT_TYPES:
            documents.add(fhir_id)
        elif resource_type in ARCHIVED_TYPES:
            archived.setdefault(resource_type, set()).add(fhir_id)
    branches = []
    if patient_keys := _uuids(patients):
        branches.append(Person.objects.filter(uuid__in=patient_keys).values_list("pk", "uuid"))
        branches.append(Identity.objects.filter(uuid__in=patient_keys).values_list("person_id", "person__uuid"))
    if document_keys := _uuids(documents):
        branches.append(
            DocumentEntry.objects.filter(uuid__in=document_keys).values_list(
                "identity__person_id", "identity__person__uuid"
            )
        )
    if alert_keys := _uuids(alerts):
        branches.append(Alert.objects.filter(uuid__in=alert_keys).values_list("person_id", "person__uuid"))
    if archived:
        # One branch per type, on the archive's unique (resource_type, fhir_id) index.
        by_type = Q()
        for resource_type, ids in archived.items():
            by_type |= Q(resource_type=resource_type, fhir_id__in=ids)
        branches.append(
            Resource.objects.filter(by_type, identity__isnull=False).values_list(
                "identity__person_id", "identity__person__uuid"
            )
        )
    if not branches:
        return []
    # Without the models' default ordering (Alert's -raised_at): DISTINCT over the ordered column too would
    # keep one row per alert, and name the resident once per alert.
    branches = [branch.order_by() for branch in branches]
    # UNION (not UNION ALL): each person once, whichever branches found them.
    query = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0].distinct()
    return sorted(query)
