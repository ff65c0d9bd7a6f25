"""Writes that registration, the manual decisions and re-matching share: the golden record of a person,
moving an identity to another person, retiring a person its last identity left, opening review items.

They run inside their caller's transaction; the caller records its decision as a ``LinkEvent`` (only a
retired person gets one of its own here).
"""

from __future__ import annotations

from collections.abc import Iterable

from mpi.demographics import Demographics, Profile
from mpi.linkage import Candidate
from mpi.matching import Comparison
from mpi.models import Identity, LinkEvent, Person, ReviewItem

SYSTEM_ACTOR = "mpi"


# --- golden record ----------------------------------------------------------------


def golden_values(profile: Profile, name: str, received: Demographics) -> dict:
    """What one identity contributes to its person's golden record. The resident identity number and the
    health card only where trusted, so a mistyped number never becomes the person's key."""
    return {
        "name": name[:200],
        "sex": profile.sex or "",
        "birth_date": profile.birth_date if not profile.birth_year_only else None,
        "resident_id": profile.resident_id if profile.resident_id_valid else "",
        "health_card": profile.health_card if profile.health_card_valid else "",
        "phone": (received.phone or "")[:32],
        "address": (received.address or "")[:300],
    }


def person_refresh(person: Person) -> Person:
    """Recomputes the golden demographics: per field, the most recently updated identity that has it."""
    values: dict = {}
    for ident in person.identities.order_by("-updated_at", "-id").only("received", "profile", "name"):
        contributed = golden_values(
            Profile.from_json(ident.profile), ident.name, Demographics.from_json(ident.received)
        )
        for key, value in contributed.items():
            if key not in values and value:
                values[key] = value
    values = {key: values.get(key, None if key == "birth_date" else "") for key in golden(person)}
    changed = [k for k, v in values.items() if getattr(person, k) != v]
    if changed:
        for k in changed:
            setattr(person, k, values[k])
        person.save(update_fields=[*changed, "updated_at"])
    return person


def golden(person: Person) -> dict:
    """The person's golden demographics as stored, JSON-ready (what a merge records as it was)."""
    return {
        "name": person.name,
        "sex": person.sex,
        "birth_date": person.birth_date.isoformat() if person.birth_date else None,
        "resident_id": person.resident_id,
        "health_card": person.health_card,
        "phone": person.phone,
        "address": person.address,
    }


def person_for(identity_fields: dict, profile: Profile, received: Demographics) -> Person:
    """A new person whose golden record is this one identity's."""
    return Person.objects.create(**golden_values(profile, identity_fields["name"], received))


# --- moving an identity -----------------------------------------------------------


def active_locked(person_id: int) -> Person | None:
    """The person, locked for this transaction, if it is still active (a merge may have taken it)."""
    return Person.objects.select_for_update().filter(pk=person_id, status=Person.Status.ACTIVE).first()


def move(identity: Identity, person: Person, *, kind: str, comparison: Comparison | None, actor: str, now) -> None:
    """Links the identity to ``person`` as ``kind``, with the comparison that decided it (None: a person did)."""
    identity.person = person
    identity.link_kind = kind
    identity.link_score = comparison.score if comparison else None
    identity.link_evidence = comparison.evidence if comparison else {}
    identity.linked_by, identity.linked_at = actor, now
    identity.save(update_fields=["person", "link_kind", "link_score", "link_evidence", "linked_by", "linked_at"])
    # A possible match with the person it now belongs to is no longer a question.
    ReviewItem.objects.filter(identity=identity, candidate=person, status=ReviewItem.Status.OPEN).update(
        status=ReviewItem.Status.OBSOLETE, decided_by=actor, decided_at=now, reason="linked"
    )


def retire_if_empty(person: Person, *, into: Person, actor: str) -> None:
    """A person left without identities is merged into where its last identity went (history keeps it)."""
    if person.identities.exists() or person.status != Person.Status.ACTIVE:
        return
    person.status, person.merged_into = Person.Status.MERGED, into
    person.save(update_fields=["status", "merged_into", "updated_at"])
    Person.objects.filter(merged_into=person).update(merged_into=into)
    ReviewItem.objects.filter(candidate=person, status=ReviewItem.Status.OPEN).update(status=ReviewItem.Status.OBSOLETE)
    LinkEvent.objects.create(
        kind=LinkEvent.Kind.REMATCH,
        person=into,
        other_person=person,
        actor=actor,
        reason="its last identity moved here",
        detail={"retired": person.pk},
    )


# --- review items -----------------------------------------------------------------


# Possible matches put in front of reviewers per registration.
REVIEW_LIMIT = 3


def review_open(identity: Identity, candidates: Iterable[Candidate]) -> list[ReviewItem]:
    """Review items for the first ``REVIEW_LIMIT`` candidates, the identity's own person left out."""
    items = []
    for c in list(candidates)[:REVIEW_LIMIT]:
        if c.person_id == identity.person_id:
            continue
        items.append(
            ReviewItem(
                identity=identity, candidate_id=c.person_id, score=c.comparison.score, evidence=c.comparison.evidence
            )
        )
    # An open item for the same pair already exists when a record is resent: keep that one.
    ReviewItem.objects.bulk_create(items, ignore_conflicts=True)
    return items
