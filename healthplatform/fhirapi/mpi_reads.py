"""Reads of the MPI that ``mpi.selectors`` does not offer yet.

Stop-gaps, kept in one place so they can be replaced by selectors of the MPI
(``person_get``, ``persons_in_bulk``, ``assigning_authority_known``) without
touching the views. They read only; every write goes through ``mpi.services``.
"""

from __future__ import annotations

import uuid

from django.db.models import Prefetch

from mpi.models import Identifier, Identity, Person
from mpi.selectors import authority_of_system

# How far a chain of merges (A into B, B into C) is followed to its survivor.
MAX_MERGE_CHAIN = 20


def _with_identities(qs):
    """The prefetch a Patient needs: identities (MRNs, split names) and their current identifiers."""
    return qs.prefetch_related(
        Prefetch(
            "identities",
            queryset=Identity.objects.order_by("assigning_authority", "local_id").prefetch_related(
                Prefetch("identifiers", queryset=Identifier.objects.filter(current=True))
            ),
        )
    )


def person_get(person_uuid: str) -> Person | None:
    """A person by its uuid, active or merged, with what a Patient needs prefetched."""
    try:
        value = uuid.UUID(person_uuid)
    except ValueError:
        return None
    return _with_identities(Person.objects.filter(uuid=value)).first()


def persons_in_bulk(pks: list[int]) -> dict[int, Person]:
    """Persons by primary key, with what a Patient needs prefetched (one query per relation, not per person)."""
    return {p.pk: p for p in _with_identities(Person.objects.filter(pk__in=pks))}


def survivor_of(person: Person) -> Person | None:
    """The active person a merged one ended in (following merges of merges), or None if it is active."""
    current, steps = person, 0
    while current.status == Person.Status.MERGED and current.merged_into_id and steps < MAX_MERGE_CHAIN:
        current = Person.objects.get(pk=current.merged_into_id)
        steps += 1
    return current if current.pk != person.pk else None


def assigning_authority_known(system: str) -> bool:
    """Whether any identity was registered under the assigning authority this FHIR system names.

    One index probe: (assigning_authority, local_id) is unique, so its index leads with the authority.
    """
    return Identity.objects.filter(assigning_authority=authority_of_system(system)).exists()
