"""Initial load of the index from a population register: one person per record, no matching.

A region starts its MPI from the population register (or the health card
register), where each resident appears once, keyed by a verified identity
number. Matching every such record against the others would only spend time
confirming what the register already guarantees, so this loader writes them
directly in large batches; feeds registered afterwards go through
``identity_register``. Records that fail the register's own promise (no valid
identity number, or a number already in the index) are not loaded by this
path: they are returned for ordinary registration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from mpi.demographics import Demographics, DemographicsError, blocking_keys, key_hash, profile_build
from mpi.models import Identifier, Identity, LinkEvent, MatchKey, Person
from mpi.services import golden_values, identity_fields


@dataclass(frozen=True)
class RegisterRecord:
    """One population-register record: the register's own id for the resident and the demographics."""

    local_id: str
    demographics: Demographics


@dataclass
class LoadResult:
    loaded: int
    rejected: list[RegisterRecord]


def population_load(
    records: Iterable[RegisterRecord], *, assigning_authority: str, actor: str, batch_size: int = 2000
) -> LoadResult:
    """Loads register records as new persons, one transaction per batch. Returns what was loaded and
    the records that need ordinary registration (invalid or already-indexed identity numbers)."""
    loaded, rejected, batch = 0, [], []
    for record in records:
        batch.append(record)
        if len(batch) >= batch_size:
            n, bad = _load_batch(batch, assigning_authority, actor)
            loaded, batch = loaded + n, []
            rejected.extend(bad)
    if batch:
        n, bad = _load_batch(batch, assigning_authority, actor)
        loaded += n
        rejected.extend(bad)
    return LoadResult(loaded, rejected)


def _load_batch(batch: list[RegisterRecord], authority: str, actor: str) -> tuple[int, list[RegisterRecord]]:
    profiles, rejected = [], []
    seen: set[str] = set()
    local_ids: set[str] = set()
    for record in batch:
        try:
            profile = profile_build(record.demographics)
        except DemographicsError:
            rejected.append(record)
            continue
        usable = profile.resident_id_valid and profile.has_name and record.local_id not in local_ids
        if not usable or profile.resident_id in seen:
            rejected.append(record)
            continue
        seen.add(profile.resident_id)
        local_ids.add(record.local_id)
        profiles.append((record, profile))
    with transaction.atomic():
        known = set(
            Identifier.objects.filter(kind="resident_id", trusted=True, current=True, value__in=seen).values_list(
                "value", flat=True
            )
        )
        taken = set(
            Identity.objects.filter(assigning_authority=authority, local_id__in=local_ids).values_list(
                "local_id", flat=True
            )
        )
        if known or taken:
            rejected.extend(r for r, p in profiles if p.resident_id in known or r.local_id in taken)
            profiles = [(r, p) for r, p in profiles if p.resident_id not in known and r.local_id not in taken]
        if not profiles:
            return 0, rejected
        now = timezone.now()
        fields = [identity_fields(p, r.demographics) for r, p in profiles]
        persons = Person.objects.bulk_create(
            [Person(**golden_values(p, f["name"], r.demographics)) for (r, p), f in zip(profiles, fields, strict=True)]
        )
        identities = Identity.objects.bulk_create(
            [
                Identity(
                    assigning_authority=authority,
                    local_id=r.local_id,
                    received=r.demographics.as_json(),
                    profile=p.as_json(),
                    flags=[f.as_json() for f in p.flags],
                    **f,
                    person=person,
                    link_kind=Identity.LinkKind.NEW,
                    linked_by=actor,
                    linked_at=now,
                )
                for (r, p), person, f in zip(profiles, persons, fields, strict=True)
            ]
        )
        identifiers, keys = [], []
        for (_, p), identity in zip(profiles, identities, strict=True):
            identifiers.append(Identifier(identity=identity, kind="resident_id", value=p.resident_id, trusted=True))
            if p.health_card:
                identifiers.append(
                    Identifier(
                        identity=identity,
                        kind="health_card",
                        value=p.health_card,
                        trusted=p.health_card_valid,
                        flag="" if p.health_card_valid else "health_card_invalid",
                    )
                )
            keys.extend(MatchKey(identity=identity, key=key_hash(k)) for k in blocking_keys(p))
        Identifier.objects.bulk_create(identifiers)
        MatchKey.objects.bulk_create(keys, batch_size=10_000)
        LinkEvent.objects.bulk_create(
            [
                LinkEvent(
                    kind=LinkEvent.Kind.REGISTER,
                    identity=identity,
                    person=person,
                    actor=actor,
                    detail={"decision": "population_register"},
                )
                for identity, person in zip(identities, persons, strict=True)
            ]
        )
    return len(profiles), rejected
