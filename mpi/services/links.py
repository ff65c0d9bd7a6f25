"""Writes that registration, the manual decisions and re-matching share: the golden record of a person,
moving an identity to another person, retiring a person its last identity left, opening review items.

They run inside their caller's transaction; the caller records its decision as a ``LinkEvent`` (only a
retired person gets one of its own here).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone

from mpi.demographics import Demographics, Profile
from mpi.linkage import Candidate
from mpi.matching import Comparison
from mpi.models import Identity, LinkEvent, Person, ReviewItem

SYSTEM_ACTOR = "mpi"


# --- golden record ----------------------------------------------------------------
#
# Survivorship (which identity's value the golden record shows, field by field):
# - name, sex, birth date, resident identity number, health card: a trusted authority's value — the population
#   register's (``MPI_TRUSTED_AUTHORITIES``) — wins over any institution's; among equals the most recently
#   updated identity's. A hospital's misspelt name or transposed birth date does not rename the resident for
#   every other institution once the register has spoken.
# - phone, address: the most recently reported, whoever reported it: people move and change numbers, and the
#   last institution that saw the resident is the likeliest to be right. But a change is never silent: the
#   golden record says who reported each value and since when (``Person.provenance``), keeps the value it
#   replaced and who had reported that, and the history gets a "contact details changed" entry naming the
#   institution (``LinkEvent.Kind.CONTACT``). The FHIR golden Patient carries both (patient.html: a
#   ContactPoint's and an Address's ``period``).
# Every identity keeps what its source sent (``Identity.received``), so nothing reported is lost either way.

IDENTITY_FIELDS = ("name", "sex", "birth_date", "resident_id", "health_card")
CONTACT_FIELDS = ("phone", "address")


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


def trusted_authority(authority: str) -> bool:
    return authority in settings.MPI_TRUSTED_AUTHORITIES


def reporter(authority: str, source) -> dict:
    """Who reports a value, as the provenance keeps it: the assigning authority, and the institution of the
    source system that sent it (its code and name then: what a reader is shown)."""
    institution = source.institution if source is not None else None
    return {
        "authority": authority,
        "institution": institution.code if institution else "",
        "institution_name": institution.name if institution else "",
    }


def golden_absorbed(before: dict, contributed: dict, by: dict, now) -> tuple[dict, dict, dict]:
    """An identity's values applied to a golden record ``before`` (its fields and ``provenance``) by the rules
    above: the fields that change, the provenance after, and the contact fields whose value was replaced
    (``{field: (old, new)}``)."""
    provenance = dict(before.get("provenance") or {})
    values, replaced = {}, {}
    for key, value in contributed.items():
        held, had = provenance.get(key) or {}, before.get(key)
        if not value or value == had:
            continue
        register_spoke = key in IDENTITY_FIELDS and had and trusted_authority(held.get("authority", ""))
        if register_spoke and not trusted_authority(by["authority"]):
            continue  # the register's word stands
        values[key] = value
        provenance[key] = _provenance_entry(key, had, held, by, now)
        if key in CONTACT_FIELDS and had:
            replaced[key] = (had, value)
    return values, provenance, replaced


def _provenance_entry(key: str, had, held: dict, by: dict, now) -> dict:
    """Who reports the field's new value and since when; for a contact field, also the value it replaced and
    who had reported that."""
    entry = {**by, "since": now.isoformat()}
    if key in CONTACT_FIELDS and had:
        previous = {k: held.get(k, "") for k in ("authority", "institution", "institution_name")}
        entry["previous"] = {"value": had, **previous, "until": now.isoformat()}
    return entry


def contact_change_record(person_id: int, identity, replaced: dict, by: dict, *, actor: str) -> None:
    """The history entry of a change of contact details: which fields, reported by whom (the values are in
    the golden record's provenance and the identities, for the MPI's staff)."""
    if not replaced:
        return
    who = by.get("institution_name") or by.get("institution") or by["authority"]
    LinkEvent.objects.create(
        kind=LinkEvent.Kind.CONTACT,
        identity=identity,
        person_id=person_id,
        actor=actor,
        reason=f"{', '.join(sorted(replaced))} changed as reported by {who}",
        detail={"fields": sorted(replaced), "reported_by": by},
    )


def person_refresh(person: Person, *, actor: str = SYSTEM_ACTOR) -> Person:
    """Recomputes the golden demographics from every linked identity, by the survivorship rules above (after
    a link, an unlink, a merge or an update that changed what an identity holds)."""
    identities = list(
        person.identities.select_related("source__institution")
        .order_by("-updated_at", "-id")
        .only("received", "profile", "name", "assigning_authority", "updated_at", "source__institution")
    )
    contributions = [
        (ident, golden_values(Profile.from_json(ident.profile), ident.name, Demographics.from_json(ident.received)))
        for ident in identities
    ]
    # Trusted authorities first for the identity fields (a stable sort keeps the most recent first within each).
    ranked = sorted(contributions, key=lambda c: not trusted_authority(c[0].assigning_authority))
    chosen: dict = {}
    for key in (*IDENTITY_FIELDS, *CONTACT_FIELDS):
        for ident, values in ranked if key in IDENTITY_FIELDS else contributions:
            if values[key]:
                chosen[key] = (values[key], ident)
                break
    provenance = dict(person.provenance or {})
    now = timezone.now()
    replaced_by: dict = {}
    values = {}
    for key in (*IDENTITY_FIELDS, *CONTACT_FIELDS):
        value, ident = chosen.get(key, (None if key == "birth_date" else "", None))
        if value == getattr(person, key):
            continue
        values[key] = value
        if ident is None:
            provenance.pop(key, None)
            continue
        had, by = getattr(person, key), reporter(ident.assigning_authority, ident.source)
        provenance[key] = _provenance_entry(key, had, provenance.get(key) or {}, by, now)
        if key in CONTACT_FIELDS and had:
            replaced_by.setdefault(ident.pk, (ident, by, {}))[2][key] = (had, value)
    if values:
        for key, value in values.items():
            setattr(person, key, value)
        person.provenance = provenance
        person.save(update_fields=[*values, "provenance", "updated_at"])
    for ident, by, replaced in replaced_by.values():
        contact_change_record(person.pk, ident, replaced, by, actor=actor)
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
