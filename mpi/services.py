"""The MPI's writes: register, link, unlink, merge, unmerge, review decisions and re-matching.

Each service is one transaction and leaves a ``LinkEvent``. Manual decisions
(links, unlinks, merges, review answers) are marked ``manual`` and no
automatic step moves such an identity again; do-not-link decisions are checked
by every operation that can put two identities under one person.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import errors as psycopg_errors

from mpi.demographics import Demographics, DemographicsError, Profile, blocking_keys, key_hash, profile_build
from mpi.inserts import Rows, rows_insert_chain
from mpi.linkage import Candidate, decide, dnl_crossed, person_verdict, second_links
from mpi.matching import Comparison
from mpi.models import DoNotLink, Identifier, Identity, LinkEvent, MatchKey, Person, RematchRun, ReviewItem

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "mpi"
# Possible matches put in front of reviewers per registration.
REVIEW_LIMIT = 3


class MPIError(Exception):
    """An MPI operation that cannot be done; the message says why and what to do."""


@dataclass
class Registration:
    """What ``identity_register`` did: the identity, its person, and how the link was decided."""

    identity: Identity
    decision: str  # identifier | auto | review | new | unchanged | kept_manual | kept
    created: bool
    score: float | None = None
    evidence: dict = field(default_factory=dict)
    review_items: list[ReviewItem] = field(default_factory=list)

    @property
    def person(self) -> Person:
        """The person the identity is linked to (read when first asked for: most callers need only its id)."""
        return self.identity.person

    @property
    def flags(self) -> list[dict]:
        return self.identity.flags


def _dnl_add(identity_ids_a: Iterable[int], identity_ids_b: Iterable[int], *, actor: str, reason: str) -> int:
    pairs = {(min(a, b), max(a, b)) for a in identity_ids_a for b in identity_ids_b if a != b}
    DoNotLink.objects.bulk_create(
        [DoNotLink(identity_a_id=a, identity_b_id=b, actor=actor, reason=reason) for a, b in sorted(pairs)],
        ignore_conflicts=True,
    )
    return len(pairs)


# --- golden record -------------------------------------------------------------


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
    values = {key: values.get(key, None if key == "birth_date" else "") for key in _golden(person)}
    changed = [k for k, v in values.items() if getattr(person, k) != v]
    if changed:
        for k in changed:
            setattr(person, k, values[k])
        person.save(update_fields=[*changed, "updated_at"])
    return person


def _person_absorb(person_id: int, profile: Profile, fields: dict, received: Demographics, now) -> bool:
    """Updates the golden record for a newly registered identity that joins it: that identity is now the
    most recent, so each field it carries wins (``person_refresh`` without reading the other identities,
    in one UPDATE). False if the person is no longer active (merged meanwhile)."""
    values = golden_values(profile, fields["name"], received)
    updated = Person.objects.filter(pk=person_id, status=Person.Status.ACTIVE).update(
        **{k: v for k, v in values.items() if v}, updated_at=now
    )
    return updated == 1


def _golden(person: Person) -> dict:
    return {
        "name": person.name,
        "sex": person.sex,
        "birth_date": person.birth_date.isoformat() if person.birth_date else None,
        "resident_id": person.resident_id,
        "health_card": person.health_card,
        "phone": person.phone,
        "address": person.address,
    }


def _person_for(identity_fields: dict, profile: Profile, received: Demographics) -> Person:
    return Person.objects.create(**golden_values(profile, identity_fields["name"], received))


# --- registration ------------------------------------------------------------


def identity_fields(profile: Profile, d: Demographics) -> dict:
    """The display columns of an identity (name as sent, Latin name, sex, birth date)."""
    name = (d.name or "").strip()
    if not name:
        family, given = (d.family_name or "").strip(), (d.given_name or "").strip()
        name = family + given if profile.hanzi else f"{family} {given}".strip()
    return {
        "name": name[:200],
        "name_latin": profile.latin[:200],
        "sex": profile.sex or "",
        "birth_date": profile.birth_date,
    }


def _identifiers_wanted(profile: Profile) -> dict[tuple[str, str], tuple[bool, str]]:
    """(kind, value) -> (trusted, flag) of every identifier the profile carries."""
    flags = {f.element: f.code for f in profile.flags}
    wanted: dict[tuple[str, str], tuple[bool, str]] = {}
    if profile.resident_id:
        wanted[("resident_id", profile.resident_id)] = (profile.resident_id_valid, flags.get("resident_id", ""))
    if profile.health_card:
        flag = flags.get("health_card", "")
        wanted[("health_card", profile.health_card)] = (not flag, flag)
    for kind, value in profile.documents:
        flag = flags.get(f"documents.{kind}", "")
        wanted[(kind, value)] = (not flag, flag)
    return wanted


def _identifiers_sync(identity: Identity, profile: Profile, *, now, fresh: bool = False) -> None:
    """Writes the identifiers the identity now carries; ones it no longer carries are superseded, not deleted."""
    wanted = _identifiers_wanted(profile)
    existing = {} if fresh else {(i.kind, i.value): i for i in identity.identifiers.filter(current=True)}
    for key, ident in existing.items():
        if key not in wanted:
            ident.current, ident.superseded_at = False, now
            ident.save(update_fields=["current", "superseded_at"])
        elif (ident.trusted, ident.flag) != wanted[key]:
            ident.trusted, ident.flag = wanted[key]
            ident.save(update_fields=["trusted", "flag"])
    Identifier.objects.bulk_create(
        [
            Identifier(identity=identity, kind=kind, value=value, trusted=trusted, flag=flag)
            for (kind, value), (trusted, flag) in wanted.items()
            if (kind, value) not in existing
        ]
    )


def _keys_sync(identity: Identity, profile: Profile, *, fresh: bool) -> None:
    if not fresh:
        MatchKey.objects.filter(identity=identity).delete()
    MatchKey.objects.bulk_create([MatchKey(identity=identity, key=key_hash(k)) for k in sorted(blocking_keys(profile))])


def _serialize_lock(profiles: list[Profile]) -> None:
    """On PostgreSQL, registrations that may be the same resident wait for each other: those carrying
    the same trusted number or health card, and those with the same birth date.

    Without it two hospitals registering one new resident at the same moment
    would each see no candidate and create two persons. The locks are taken in
    one statement, in sorted order, so two transactions never wait on each other
    in a cycle (a batch takes all of its locks at its start).
    """
    if connection.vendor != "postgresql":
        return
    keys: set[int] = set()
    for profile in profiles:
        if profile.resident_id and profile.resident_id_valid:
            keys.add(key_hash(f"id:{profile.resident_id}"))
        if profile.health_card and profile.health_card_valid:
            keys.add(key_hash(f"hc:{profile.health_card}"))
        if profile.birth_date and not profile.birth_year_only:
            keys.add(key_hash(f"dob:{profile.birth_date.isoformat()}"))
    if keys:
        with connection.cursor() as cur:
            cur.execute("SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(keys)), sorted(keys))


def _review_open(identity: Identity, candidates: Iterable[Candidate]) -> list[ReviewItem]:
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


def identity_register(
    *,
    assigning_authority: str,
    local_id: str,
    demographics: Demographics,
    source=None,
    actor: str = SYSTEM_ACTOR,
    today: dt.date | None = None,
) -> Registration:
    """Registers (or updates) how ``assigning_authority`` knows a resident and links it to a person.

    A new identity is linked by a trusted identifier that agrees (after a
    sanity check of name and birth date), or by a corroborated score in the
    auto-link band; a score in the review band makes a new person and review
    items; anything else makes a new person. An update re-checks an automatic
    link and leaves a manual one alone.
    """
    authority, local_id, profile = _checked(assigning_authority, local_id, demographics, today)
    return _register_retrying(authority, local_id, demographics, profile, source, actor)


def _checked(authority: str, local_id: str, demographics: Demographics, today) -> tuple[str, str, Profile]:
    """The stripped key and the profile of a registration; ``DemographicsError`` if it cannot be registered."""
    authority, local_id = (authority or "").strip(), (local_id or "").strip()
    if not authority or not local_id:
        raise DemographicsError("an identity needs its assigning authority and local id (CX.1 and CX.4)")
    if len(authority) > 64 or len(local_id) > 64:
        raise DemographicsError("assigning authority and local id are at most 64 characters")
    profile = profile_build(demographics, today=today)
    if not profile.has_name and not (profile.resident_id or profile.health_card or profile.documents):
        raise DemographicsError(
            "a registration needs a name or an identity document (resident id, health card, passport)"
        )
    return authority, local_id, profile


def _register_retrying(authority, local_id, demographics, profile, source, actor) -> Registration:
    try:
        with transaction.atomic():
            return _register(authority, local_id, demographics, profile, source, actor)
    except IntegrityError:
        # A concurrent registration of the same local id won the insert: ours is now an update.
        with transaction.atomic():
            return _register(authority, local_id, demographics, profile, source, actor)


@dataclass(frozen=True)
class RegistrationRequest:
    """One registration of a batch: who sent it and what."""

    assigning_authority: str
    local_id: str
    demographics: Demographics
    source: object = None


BATCH_ATTEMPTS = 3


def identity_register_batch(
    requests: Iterable[RegistrationRequest], *, actor: str = SYSTEM_ACTOR
) -> list[Registration | DemographicsError]:
    """Registers many identities in one transaction (one commit instead of one per record), each in its
    own savepoint: a record that cannot be registered is answered with its error, the others still land.

    Concurrent batches may hold rows the other needs (two clinics' records of one resident): the
    advisory locks of the whole batch are taken first, in one global order, and a deadlock that still
    happens on rows rolls the batch back and runs it again.
    """
    requests = list(requests)
    for attempt in range(BATCH_ATTEMPTS):
        try:
            return _register_batch(requests, actor)
        except OperationalError as exc:
            if not isinstance(exc.__cause__, psycopg_errors.DeadlockDetected) or attempt == BATCH_ATTEMPTS - 1:
                raise
            logger.warning("registration batch deadlocked with another; retrying (attempt %d)", attempt + 2)
    raise AssertionError("unreachable")


def _register_batch(requests: list[RegistrationRequest], actor: str) -> list[Registration | DemographicsError]:
    checked: list[tuple[str, str, Profile] | DemographicsError] = []
    for r in requests:
        try:
            checked.append(_checked(r.assigning_authority, r.local_id, r.demographics, None))
        except DemographicsError as exc:
            checked.append(exc)
    results: list[Registration | DemographicsError] = []
    with transaction.atomic():
        _serialize_lock([c[2] for c in checked if not isinstance(c, DemographicsError)])
        for r, c in zip(requests, checked, strict=True):
            if isinstance(c, DemographicsError):
                results.append(c)
            else:
                results.append(_register_retrying(*c[:2], r.demographics, c[2], r.source, actor))
    return results


def _identity_locked(authority: str, local_id: str) -> Identity | None:
    """The identity of this local id, locked for the transaction, or None. Most registrations of a feed are
    new local ids, and one indexed statement answers that: the ORM's query compilation costs five times the
    CPU of the statement itself here (bench/fhir_speed.py, issue 4), on every registration."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT id FROM {Identity._meta.db_table} WHERE assigning_authority = %s AND local_id = %s{lock}"  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, [authority, local_id])
        row = cur.fetchone()
    return Identity.objects.get(pk=row[0]) if row else None


def _register(authority, local_id, demographics, profile, source, actor) -> Registration:
    _serialize_lock([profile])
    now = timezone.now()
    received = demographics.as_json()
    fields = identity_fields(profile, demographics)
    flags = [f.as_json() for f in profile.flags]
    identity = _identity_locked(authority, local_id)
    if identity is not None:
        return _update(identity, demographics, profile, received, fields, flags, source, actor, now)

    for _ in range(3):
        chosen, review = decide(None, profile, authority=authority)
        bridges: list[Candidate] = []
        if chosen is not None and review:
            bridges, ambiguous = second_links(profile, chosen, review, authority)
            if ambiguous:
                chosen, review = None, [chosen, *review]
            bridged = {c.person_id for c in bridges}
            review = [c for c in review if c.person_id not in bridged]
        # The UPDATE locks the person; if a merge took it meanwhile (0 rows), decide again on what is now.
        if chosen is None or _person_absorb(chosen.person_id, profile, fields, demographics, now):
            break
    else:
        chosen = None
    if chosen is not None:
        person = None
        kind = Identity.LinkKind.IDENTIFIER if chosen.comparison.identifier_agrees else Identity.LinkKind.AUTO
        score, evidence = chosen.comparison.score, chosen.comparison.evidence
    else:
        person = Person(**golden_values(profile, fields["name"], demographics))
        kind = Identity.LinkKind.NEW
        score, evidence = (review[0].comparison.score, review[0].comparison.evidence) if review else (None, {})
    identity = Identity(
        assigning_authority=authority,
        local_id=local_id,
        source=source,
        received=received,
        profile=profile.as_json(),
        flags=flags,
        person_id=chosen.person_id if chosen else None,
        link_kind=kind,
        link_score=score,
        link_evidence=evidence,
        linked_by=actor,
        linked_at=now,
        **fields,
    )
    groups = [
        Rows("person", [person] if person else []),
        Rows("identity", [identity], {"person_id": "person"} if person else {}),
        Rows(
            "identifiers",
            [
                Identifier(kind=k, value=v, trusted=trusted, flag=flag)
                for (k, v), (trusted, flag) in _identifiers_wanted(profile).items()
            ],
            {"identity_id": "identity"},
        ),
        Rows("keys", [MatchKey(key=key_hash(k)) for k in sorted(blocking_keys(profile))], {"identity_id": "identity"}),
    ]
    if not (bridges or review):
        # The usual registration (a new person, or a link with nobody else in question): its history entry
        # is known now and goes in the same statement.
        decision = str(kind)
        event = LinkEvent(
            kind=LinkEvent.Kind.REGISTER,
            person_id=identity.person_id,
            actor=actor,
            detail={"decision": decision, "score": score, "reviews": []},
        )
        refers = {"identity_id": "identity", **({"person_id": "person"} if person else {})}
        groups.append(Rows("event", [event], refers))
    rows_insert_chain(groups)
    if person is not None:
        identity.person = person
    if bridges or review:
        _bridge(identity, bridges, actor)
        items = _review_open(identity, review) if review else []
        decision = {"identifier": "identifier", "auto": "auto", "new": "review" if items else "new"}[kind]
        LinkEvent.objects.create(
            kind=LinkEvent.Kind.REGISTER,
            identity=identity,
            person_id=identity.person_id,
            actor=actor,
            detail={"decision": decision, "score": score, "reviews": [i.candidate_id for i in items]},
        )
    else:
        items = []
    return Registration(identity, decision, True, score, evidence, items)


def _bridge(identity: Identity, bridges: list[Candidate], actor: str) -> None:
    for c in bridges:
        if Identity.objects.filter(person_id=c.person_id, link_kind=Identity.LinkKind.MANUAL).exists():
            continue  # a person's decision shaped that person: reviewers merge it, not a bridge
        person_merge(
            survivor=Person(pk=identity.person_id),
            duplicate=Person(pk=c.person_id),
            actor=actor,
            reason=f"bridged by {identity.assigning_authority}|{identity.local_id} (score {c.comparison.score:.1f})",
            automatic=True,
        )


def _update(identity, demographics, profile, received, fields, flags, source, actor, now) -> Registration:
    if identity.received == received and identity.profile == profile.as_json():
        return Registration(identity, "unchanged", False, identity.link_score, identity.link_evidence)
    previous = {"received": identity.received}
    identity.received, identity.profile, identity.flags = received, profile.as_json(), flags
    for key, value in fields.items():
        setattr(identity, key, value)
    if source is not None:
        identity.source = source
    identity.save()
    _identifiers_sync(identity, profile, now=now)
    _keys_sync(identity, profile, fresh=False)
    person = identity.person
    decision = (
        "kept_manual" if identity.link_kind == Identity.LinkKind.MANUAL else _relink(identity, profile, actor, now)
    )
    person_refresh(identity.person)
    if identity.person_id != person.pk:
        person_refresh(person)
        _retire_if_empty(person, into=identity.person, actor=actor)
    LinkEvent.objects.create(
        kind=LinkEvent.Kind.UPDATE,
        identity=identity,
        person=identity.person,
        other_person=person if identity.person_id != person.pk else None,
        actor=actor,
        detail={"decision": decision, **previous},
    )
    return Registration(identity, decision, False, identity.link_score, identity.link_evidence)


def _relink(identity: Identity, profile: Profile, actor: str, now) -> str:
    """Re-checks an automatic link after the identity changed (or the rules did). Returns the decision."""
    siblings = identity.person.identities.exclude(pk=identity.pk).exists()
    if siblings and identity.person.identities.filter(link_kind=Identity.LinkKind.MANUAL).exists():
        return "kept_manual"  # a person's decision holds this person together; only a person splits it
    if siblings:
        best = person_verdict(profile, identity.person_id, {identity.pk}, identity.assigning_authority)
        if best is not None and best.band() == "auto_link":
            identity.link_score, identity.link_evidence = best.score, best.evidence
            identity.save(update_fields=["link_score", "link_evidence"])
            return "kept"
    chosen, review = decide(identity.pk, profile, authority=identity.assigning_authority)
    if chosen is not None and chosen.person_id == identity.person_id:
        return "kept"
    target = _active_locked(chosen.person_id) if chosen is not None else None
    if target is not None:
        kind = Identity.LinkKind.IDENTIFIER if chosen.comparison.identifier_agrees else Identity.LinkKind.AUTO
        _move(identity, target, kind=kind, comparison=chosen.comparison, actor=actor, now=now)
        decision = str(kind)
    elif siblings:
        # It no longer belongs with its person, and nobody else is sure: a new person, and reviewers decide.
        _move(
            identity,
            _person_for({"name": identity.name}, profile, Demographics.from_json(identity.received)),
            kind=Identity.LinkKind.NEW,
            comparison=None,
            actor=actor,
            now=now,
        )
        decision = "new"
    else:
        decision = "kept"
    items = _review_open(identity, [c for c in review if c.person_id != identity.person_id])
    return "review" if items and decision in ("new", "kept") else decision


def _active_locked(person_id: int) -> Person | None:
    """The person, locked for this transaction, if it is still active (a merge may have taken it)."""
    return Person.objects.select_for_update().filter(pk=person_id, status=Person.Status.ACTIVE).first()


def _move(identity: Identity, person: Person, *, kind: str, comparison: Comparison | None, actor: str, now) -> None:
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


def _retire_if_empty(person: Person, *, into: Person, actor: str) -> None:
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


# --- manual operations -------------------------------------------------------------


def _link_state(identity: Identity) -> dict:
    return {
        "id": identity.pk,
        "person": identity.person_id,
        "link_kind": identity.link_kind,
        "link_score": identity.link_score,
        "link_evidence": identity.link_evidence,
        "linked_by": identity.linked_by,
        "linked_at": identity.linked_at.isoformat(),
    }


def identity_link(*, identity: Identity, person: Person, actor: str, reason: str = "") -> Identity:
    """Links an identity to a person by a person's decision (it then outranks every automatic one)."""
    with transaction.atomic():
        # Persons first, in id order, then the identity: the order person_merge locks in (no deadlock).
        current = Identity.objects.values_list("person_id", flat=True).get(pk=identity.pk)
        locked = {
            p.pk: p for p in Person.objects.select_for_update().filter(pk__in=[current, person.pk]).order_by("pk")
        }
        person = locked[person.pk]
        identity = Identity.objects.select_for_update().get(pk=identity.pk)
        if identity.person_id != current:
            raise MPIError("the identity moved while this decision was made; look again and retry")
        if person.status != Person.Status.ACTIVE:
            raise MPIError(f"person {person.uuid} was merged into another; link to the surviving person")
        if dnl_crossed([identity.pk], person.identities.values_list("id", flat=True)):
            raise MPIError("a do-not-link decision separates this identity from that person; remove it first")
        before, old_person = _link_state(identity), identity.person
        ReviewItem.objects.filter(identity=identity, candidate=person, status=ReviewItem.Status.OPEN).update(
            status=ReviewItem.Status.ACCEPTED, decided_by=actor, decided_at=timezone.now(), reason=reason
        )
        _move(identity, person, kind=Identity.LinkKind.MANUAL, comparison=None, actor=actor, now=timezone.now())
        person_refresh(person)
        if old_person.pk != person.pk:
            person_refresh(old_person)
            _retire_if_empty(old_person, into=person, actor=actor)
        LinkEvent.objects.create(
            kind=LinkEvent.Kind.LINK,
            identity=identity,
            person=person,
            other_person=old_person,
            actor=actor,
            reason=reason,
            detail={"before": before},
        )
        return identity


def identity_unlink(*, identity: Identity, actor: str, reason: str = "") -> Identity:
    """Separates an identity from its person: a new person, do-not-link decisions against the identities it
    leaves, then a fresh match elsewhere (it may join a third person, never the one it left)."""
    with transaction.atomic():
        identity = Identity.objects.select_for_update().get(pk=identity.pk)
        old_person = Person.objects.select_for_update().get(pk=identity.person_id)
        remaining = list(old_person.identities.exclude(pk=identity.pk).values_list("id", flat=True))
        if not remaining:
            raise MPIError("this identity is the person's only identity; there is nothing to unlink it from")
        now = timezone.now()
        before = _link_state(identity)
        profile = Profile.from_json(identity.profile)
        new_person = _person_for({"name": identity.name}, profile, Demographics.from_json(identity.received))
        _move(identity, new_person, kind=Identity.LinkKind.MANUAL, comparison=None, actor=actor, now=now)
        _dnl_add([identity.pk], remaining, actor=actor, reason=reason or "unlinked")
        person_refresh(old_person)
        LinkEvent.objects.create(
            kind=LinkEvent.Kind.UNLINK,
            identity=identity,
            person=new_person,
            other_person=old_person,
            actor=actor,
            reason=reason,
            detail={"before": before, "separated_from": remaining},
        )
        chosen, review = decide(identity.pk, profile, authority=identity.assigning_authority)
        target = _active_locked(chosen.person_id) if chosen is not None else None
        if target is not None:
            _move(
                identity, target, kind=Identity.LinkKind.AUTO, comparison=chosen.comparison, actor=SYSTEM_ACTOR, now=now
            )
            person_refresh(target)
            _retire_if_empty(new_person, into=target, actor=SYSTEM_ACTOR)
            LinkEvent.objects.create(
                kind=LinkEvent.Kind.REMATCH,
                identity=identity,
                person=target,
                other_person=new_person,
                actor=SYSTEM_ACTOR,
                detail={"decision": "auto", "score": chosen.comparison.score},
            )
        _review_open(identity, review)
        return identity


def person_merge(
    *, survivor: Person, duplicate: Person, actor: str, reason: str = "", automatic: bool = False
) -> LinkEvent:
    """Moves every identity of ``duplicate`` to ``survivor`` (HL7 ADT^A40); ``person_unmerge`` undoes it exactly.

    A merge by a person (or a sending system) makes the moved links manual; an ``automatic`` merge (a
    record that bridges two persons) keeps them automatic, so a later re-match may still revisit them.
    """
    if survivor.pk == duplicate.pk:
        raise MPIError("a person cannot be merged into itself")
    with transaction.atomic():
        locked = {p.pk: p for p in Person.objects.select_for_update().filter(pk__in=[survivor.pk, duplicate.pk])}
        survivor, duplicate = locked[survivor.pk], locked[duplicate.pk]
        for p in (survivor, duplicate):
            if p.status != Person.Status.ACTIVE:
                raise MPIError(f"person {p.uuid} is already merged; merge its surviving person instead")
        moved = list(Identity.objects.select_for_update().filter(person=duplicate).order_by("pk"))
        if dnl_crossed([i.pk for i in moved], survivor.identities.values_list("id", flat=True)):
            raise MPIError("a do-not-link decision separates identities of these two persons; they cannot be merged")
        now = timezone.now()
        detail = {"identities": [_link_state(i) for i in moved], "survivor_before": _golden(survivor)}
        for identity in moved:
            if automatic:
                identity.person, identity.linked_by, identity.linked_at = survivor, actor, now
                identity.save(update_fields=["person", "linked_by", "linked_at"])
            else:
                _move(identity, survivor, kind=Identity.LinkKind.MANUAL, comparison=None, actor=actor, now=now)
        duplicate.status, duplicate.merged_into = Person.Status.MERGED, survivor
        duplicate.save(update_fields=["status", "merged_into", "updated_at"])
        settled = ReviewItem.objects.filter(
            Q(candidate=duplicate) | Q(identity__in=moved, candidate=survivor), status=ReviewItem.Status.OPEN
        )
        detail["review_items"] = list(settled.values_list("pk", flat=True))
        settled.update(status=ReviewItem.Status.OBSOLETE, decided_by=actor, decided_at=now, reason="merged")
        person_refresh(survivor)
        return LinkEvent.objects.create(
            kind=LinkEvent.Kind.MERGE,
            person=survivor,
            other_person=duplicate,
            actor=actor,
            reason=reason,
            detail=detail,
        )


def person_unmerge(*, merge: LinkEvent, actor: str, reason: str = "") -> LinkEvent:
    """Undoes one merge: the duplicate is active again with exactly the identities and link states it had.

    A do-not-link decision is recorded between the two sides, so no automatic
    re-match merges them again.
    """
    with transaction.atomic():
        merge = LinkEvent.objects.select_for_update().get(pk=merge.pk)
        if merge.kind != LinkEvent.Kind.MERGE:
            raise MPIError("only a merge can be unmerged")
        if merge.undone_by_id:
            raise MPIError("this merge was already undone")
        survivor = Person.objects.select_for_update().get(pk=merge.person_id)
        duplicate = Person.objects.select_for_update().get(pk=merge.other_person_id)
        if survivor.status != Person.Status.ACTIVE:
            raise MPIError("the surviving person was merged again since; unmerge that later merge first")
        states = {s["id"]: s for s in merge.detail["identities"]}
        identities = list(Identity.objects.select_for_update().filter(pk__in=states, person=survivor))
        missing = sorted(set(states) - {i.pk for i in identities})
        for identity in identities:
            s = states[identity.pk]
            identity.person = duplicate
            identity.link_kind, identity.link_score, identity.link_evidence = (
                s["link_kind"],
                s["link_score"],
                s["link_evidence"],
            )
            identity.linked_by, identity.linked_at = s["linked_by"], dt.datetime.fromisoformat(s["linked_at"])
            identity.save(
                update_fields=["person", "link_kind", "link_score", "link_evidence", "linked_by", "linked_at"]
            )
        duplicate.status, duplicate.merged_into = Person.Status.ACTIVE, None
        duplicate.save(update_fields=["status", "merged_into", "updated_at"])
        _dnl_add(
            [i.pk for i in identities],
            survivor.identities.values_list("id", flat=True),
            actor=actor,
            reason=reason or "unmerged",
        )
        person_refresh(survivor)
        person_refresh(duplicate)
        # The possible matches the merge settled are questions again (unless now on both sides of a decision).
        for item in ReviewItem.objects.filter(
            pk__in=merge.detail.get("review_items", []), status=ReviewItem.Status.OBSOLETE, reason="merged"
        ).select_related("identity"):
            if item.identity.person_id != item.candidate_id and not dnl_crossed(
                [item.identity_id], item.candidate.identities.values_list("id", flat=True)
            ):
                item.status, item.decided_by, item.decided_at, item.reason = ReviewItem.Status.OPEN, "", None, ""
                try:
                    with transaction.atomic():
                        item.save(update_fields=["status", "decided_by", "decided_at", "reason"])
                except IntegrityError:
                    pass  # an open item for the same pair exists already
        event = LinkEvent.objects.create(
            kind=LinkEvent.Kind.UNMERGE,
            person=duplicate,
            other_person=survivor,
            actor=actor,
            reason=reason,
            detail={"merge": merge.pk, "restored": [i.pk for i in identities], "moved_since": missing},
        )
        merge.undone_by = event
        merge.save(update_fields=["undone_by"])
        return event


def _review_open_item(item: ReviewItem, actor: str) -> ReviewItem:
    """The item, locked, if it still asks a question; an ``MPIError`` otherwise."""
    item = ReviewItem.objects.select_for_update().select_related("identity", "candidate").get(pk=item.pk)
    if item.status != ReviewItem.Status.OPEN:
        raise MPIError("this possible match was already decided")
    if item.identity.person_id == item.candidate_id:
        item.status, item.decided_by, item.decided_at, item.reason = (
            ReviewItem.Status.OBSOLETE, actor, timezone.now(), "already linked",
        )  # fmt: skip
        item.save(update_fields=["status", "decided_by", "decided_at", "reason"])
        raise MPIError("the identity has been linked to that person since; nothing left to decide")
    return item


def review_accept(*, item: ReviewItem, actor: str, reason: str = "") -> Identity:
    """The reviewer says the identity is that person: a manual link."""
    with transaction.atomic():
        item = _review_open_item(item, actor)
        return identity_link(identity=item.identity, person=item.candidate, actor=actor, reason=reason)


def review_merge(*, item: ReviewItem, actor: str, reason: str = "") -> LinkEvent:
    """The reviewer says the identity's whole person is that person: merge the identity's person into the candidate."""
    with transaction.atomic():
        item = _review_open_item(item, actor)
        event = person_merge(survivor=item.candidate, duplicate=item.identity.person, actor=actor, reason=reason)
        ReviewItem.objects.filter(pk=item.pk).update(
            status=ReviewItem.Status.ACCEPTED, decided_by=actor, decided_at=timezone.now(), reason=reason
        )
        return event


def review_reject(*, item: ReviewItem, actor: str, reason: str = "") -> ReviewItem:
    """The reviewer says they are different residents: a do-not-link decision that no automatic step crosses."""
    with transaction.atomic():
        item = _review_open_item(item, actor)
        _dnl_add([item.identity_id], item.candidate.identities.values_list("id", flat=True), actor=actor, reason=reason)
        item.status, item.decided_by, item.decided_at, item.reason = (
            ReviewItem.Status.REJECTED,
            actor,
            timezone.now(),
            reason,
        )
        item.save(update_fields=["status", "decided_by", "decided_at", "reason"])
        LinkEvent.objects.create(
            kind=LinkEvent.Kind.REVIEW,
            identity=item.identity,
            person=item.identity.person,
            other_person=item.candidate,
            actor=actor,
            reason=reason,
            detail={"decision": "rejected", "review_item": item.pk},
        )
        return item


# --- re-matching ---------------------------------------------------------------------


def rematch_start(*, actor: str) -> RematchRun:
    """Starts a re-match of every automatic link (after a rule or threshold change)."""
    from mpi.matching import thresholds

    return RematchRun.objects.create(actor=actor, thresholds=thresholds())


def _profiles_rebuild(run: RematchRun, batch_size: int) -> RematchRun:
    """Phase one of a re-match: rebuilds the profile, flags, display columns, identifiers and blocking keys
    of the next batch of identities from their demographics as received, so that a change in the
    normalisation rules reaches the whole index before any link is re-decided."""
    batch = list(Identity.objects.filter(pk__gt=run.last_identity_id).order_by("pk")[:batch_size])
    counts = dict(run.counts)
    now, today = timezone.now(), timezone.localdate()
    for identity in batch:
        received = Demographics.from_json(identity.received)
        profile = profile_build(received, today=today)
        if identity.profile == profile.as_json():
            continue
        identity.profile, identity.flags = profile.as_json(), [f.as_json() for f in profile.flags]
        for key, value in identity_fields(profile, received).items():
            setattr(identity, key, value)
        identity.save()
        _identifiers_sync(identity, profile, now=now)
        _keys_sync(identity, profile, fresh=False)
        counts["profiles_rebuilt"] = counts.get("profiles_rebuilt", 0) + 1
    run.counts = counts
    if len(batch) < batch_size:
        run.phase, run.last_identity_id = RematchRun.Phase.LINKS, 0
    else:
        run.last_identity_id = batch[-1].pk
    run.save()
    return run


def rematch_step(*, run: RematchRun, batch_size: int = 500) -> RematchRun:
    """Re-matches the next batch of identities after ``run.last_identity_id``; one transaction per batch,
    so a stopped run resumes where it was. The first phase rebuilds profiles and keys, the second re-decides
    the automatic links. Manual links are never touched."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with transaction.atomic():
        run = RematchRun.objects.select_for_update().get(pk=run.pk)
        if run.status == RematchRun.Status.DONE:
            return run
        if run.phase == RematchRun.Phase.PROFILES:
            return _profiles_rebuild(run, batch_size)
        batch = list(
            Identity.objects.filter(pk__gt=run.last_identity_id)
            .order_by("pk")
            .values_list("pk", "link_kind")[:batch_size]
        )
        counts = dict(run.counts)
        now = timezone.now()
        for pk, _ in batch:
            # Re-read under lock: a person may have linked it by hand since the batch was listed.
            identity = Identity.objects.select_for_update().select_related("person").get(pk=pk)
            if identity.link_kind == Identity.LinkKind.MANUAL:
                counts["manual_kept"] = counts.get("manual_kept", 0) + 1
                continue
            person = identity.person
            decision = _relink(identity, Profile.from_json(identity.profile), SYSTEM_ACTOR, now)
            counts[decision] = counts.get(decision, 0) + 1
            if identity.person_id != person.pk:
                person_refresh(person)
                person_refresh(identity.person)
                _retire_if_empty(person, into=identity.person, actor=SYSTEM_ACTOR)
                LinkEvent.objects.create(
                    kind=LinkEvent.Kind.REMATCH,
                    identity=identity,
                    person=identity.person,
                    other_person=person,
                    actor=SYSTEM_ACTOR,
                    detail={"decision": decision, "run": run.pk},
                )
        run.counts = counts
        if batch:
            run.last_identity_id = batch[-1][0]
        if len(batch) < batch_size:
            run.status, run.finished_at = RematchRun.Status.DONE, timezone.now()
        run.save()
        return run
