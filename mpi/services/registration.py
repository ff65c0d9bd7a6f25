"""Registering how an institution knows a resident: the identity, its identifiers and blocking keys, and
its link to a person as ``mpi.linkage`` decides it (an identifier or a corroborated score links; otherwise
a new person, with review items for the possible matches; a record that corroborates with two persons
merges them).

``identity_register`` registers one record in its own transaction, ``identity_register_batch`` many in
one. A registration of a known local id is an update: it re-checks an automatic link and leaves a manual
one alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg import errors as psycopg_errors

from mpi.demographics import Demographics, DemographicsError, Profile, blocking_keys, key_hash, profile_build
from mpi.inserts import Rows, rows_insert_chain
from mpi.linkage import Candidate, decide, person_verdict, second_links
from mpi.models import Identifier, Identity, LinkEvent, MatchKey, Person, ReviewItem
from mpi.services.links import (
    CONTACT_FIELDS,
    IDENTITY_FIELDS,
    SYSTEM_ACTOR,
    active_locked,
    contact_change_record,
    golden_absorbed,
    golden_values,
    move,
    person_for,
    person_refresh,
    reporter,
    retire_if_empty,
    review_open,
)
from mpi.services.manual import person_merge

# The name the log lines carried before mpi/services.py became a package: filters and alerts may use it.
logger = logging.getLogger("mpi.services")


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


def identifiers_sync(identity: Identity, profile: Profile, *, now, fresh: bool = False) -> None:
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


def keys_sync(identity: Identity, profile: Profile, *, fresh: bool) -> None:
    """Replaces the identity's blocking keys with the profile's (``fresh``: it has none yet)."""
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


def identity_register(
    *,
    assigning_authority: str,
    local_id: str,
    demographics: Demographics,
    source=None,
    actor: str = SYSTEM_ACTOR,
    today: dt.date | None = None,
    savepoint: bool = True,
) -> Registration:
    """Registers (or updates) how ``assigning_authority`` knows a resident and links it to a person.

    A new identity is linked by a trusted identifier that agrees (after a
    sanity check of name and birth date), or by a corroborated score in the
    auto-link band; a score in the review band makes a new person and review
    items; anything else makes a new person. An update re-checks an automatic
    link and leaves a manual one alone.

    A concurrent registration of the same local id that wins the insert makes ours an update, run again in
    a savepoint of its own; ``savepoint=False`` is for a caller that runs its whole transaction again after
    an ``IntegrityError`` (the write corridor: the pair of statements was a tenth of an HL7 v2 message's).
    """
    authority, local_id, profile = _checked(assigning_authority, local_id, demographics, today)
    return _register_one(authority, local_id, demographics, profile, source, actor, savepoint=savepoint)


def _register_one(authority, local_id, demographics, profile, source, actor, *, savepoint=True) -> Registration:
    known = _known(authority, local_id)
    if known is not None and (unchanged := _unchanged(known, demographics, profile)) is not None:
        return unchanged
    if not savepoint:
        with transaction.atomic(savepoint=False):
            return _register(authority, local_id, demographics, profile, source, actor, absent=known is None)
    return _register_retrying(authority, local_id, demographics, profile, source, actor, absent=known is None)


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


def _register_retrying(authority, local_id, demographics, profile, source, actor, *, absent=False) -> Registration:
    try:
        with transaction.atomic():
            return _register(authority, local_id, demographics, profile, source, actor, absent=absent)
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
                results.append(_register_one(*c[:2], r.demographics, c[2], r.source, actor))
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


def _known(authority: str, local_id: str) -> Identity | None:
    """The identity of this local id as committed now, read without a lock (one indexed statement)."""
    sql = f"SELECT * FROM {Identity._meta.db_table} WHERE assigning_authority = %s AND local_id = %s"  # noqa: S608
    return next(iter(Identity.objects.raw(sql, [authority, local_id])), None)


def _unchanged(identity: Identity, demographics: Demographics, profile: Profile) -> Registration | None:
    """The registration of a known identity sent again as it is registered, answered without a lock or a write:
    most of a hospital feed's messages carry their patient (every HL7 v2 message has its PID), unchanged since
    the first. Locks and the advisory locks on identifiers serialise *changes*; an unchanged identity changes
    nothing, so nothing needs them (a concurrent change by another transaction is that change, as it would
    be had it committed a moment later). None when it differs: the full registration."""
    if identity.received == demographics.as_json() and identity.profile == profile.as_json():
        return Registration(identity, "unchanged", False, identity.link_score, identity.link_evidence)
    return None


def registration_confirmed(identity: Identity) -> bool:
    """Does the identity still hold what an "unchanged" registration (the unlocked read, ``_unchanged``) found?
    Read again under its row lock, for a caller about to write something derived from that registration (the
    write corridor changing the archived source Patient): a change another transaction committed since the
    read would otherwise be overwritten in the archive while the MPI kept it."""
    found = Identity.objects.select_for_update().filter(pk=identity.pk).values_list("received", "profile").first()
    return found is not None and found == (identity.received, identity.profile)


def _register(authority, local_id, demographics, profile, source, actor, *, absent: bool = False) -> Registration:
    """``absent``: the identity was not there a moment ago (``_known``): it is inserted without being looked for
    again — if a concurrent registration inserted it meanwhile, the insert's IntegrityError says so."""
    _serialize_lock([profile])
    now = timezone.now()
    received = demographics.as_json()
    fields = identity_fields(profile, demographics)
    flags = [f.as_json() for f in profile.flags]
    identity = None if absent else _identity_locked(authority, local_id)
    if identity is not None:
        return _update(identity, demographics, profile, received, fields, flags, source, actor, now)

    by = reporter(authority, source)
    replaced: dict | None = {}
    for _ in range(3):
        chosen, review = decide(None, profile, authority=authority)
        bridges: list[Candidate] = []
        if chosen is not None and review:
            bridges, ambiguous = second_links(profile, chosen, review, authority)
            if ambiguous:
                chosen, review = None, [chosen, *review]
            bridged = {c.person_id for c in bridges}
            review = [c for c in review if c.person_id not in bridged]
        # The person is locked; if a merge took it meanwhile (no row), decide again on what is now.
        if chosen is None:
            break
        replaced = _person_absorb(chosen.person_id, by, profile, fields, demographics, now)
        if replaced is not None:
            break
    else:
        chosen = None
    if chosen is not None:
        person = None
        kind = Identity.LinkKind.IDENTIFIER if chosen.comparison.identifier_agrees else Identity.LinkKind.AUTO
        score, evidence = chosen.comparison.score, chosen.comparison.evidence
    else:
        contributed = golden_values(profile, fields["name"], demographics)
        person = Person(**contributed, provenance=golden_absorbed({}, contributed, by, now)[1])
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
    if replaced:
        contact_change_record(identity.person_id, identity, replaced, by, actor=actor)
    if bridges or review:
        _bridge(identity, bridges, actor)
        items = review_open(identity, review) if review else []
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


def _person_absorb(
    person_id: int, by: dict, profile: Profile, fields: dict, received: Demographics, now
) -> dict | None:
    """Updates the golden record for a newly registered identity that joins it, by the survivorship rules
    (``links.golden_absorbed``: that identity is now the most recent, so its contact details win; a trusted
    authority's name and birth date stand) without reading the other identities. The person is locked first.
    Returns the contact fields it replaced, or None if the person is no longer active (merged meanwhile)."""
    before = (
        Person.objects.select_for_update()
        .filter(pk=person_id, status=Person.Status.ACTIVE)
        .values(*IDENTITY_FIELDS, *CONTACT_FIELDS, "provenance")
        .first()
    )
    if before is None:
        return None
    values, provenance, replaced = golden_absorbed(before, golden_values(profile, fields["name"], received), by, now)
    if values:
        Person.objects.filter(pk=person_id).update(**values, provenance=provenance, updated_at=now)
    return replaced


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
    identifiers_sync(identity, profile, now=now)
    keys_sync(identity, profile, fresh=False)
    person = identity.person
    decision = (
        "kept_manual" if identity.link_kind == Identity.LinkKind.MANUAL else relink(identity, profile, actor, now)
    )
    person_refresh(identity.person)
    if identity.person_id != person.pk:
        person_refresh(person)
        retire_if_empty(person, into=identity.person, actor=actor)
    LinkEvent.objects.create(
        kind=LinkEvent.Kind.UPDATE,
        identity=identity,
        person=identity.person,
        other_person=person if identity.person_id != person.pk else None,
        actor=actor,
        detail={"decision": decision, **previous},
    )
    return Registration(identity, decision, False, identity.link_score, identity.link_evidence)


def relink(identity: Identity, profile: Profile, actor: str, now) -> str:
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
    target = active_locked(chosen.person_id) if chosen is not None else None
    if target is not None:
        kind = Identity.LinkKind.IDENTIFIER if chosen.comparison.identifier_agrees else Identity.LinkKind.AUTO
        move(identity, target, kind=kind, comparison=chosen.comparison, actor=actor, now=now)
        decision = str(kind)
    elif siblings:
        # It no longer belongs with its person, and nobody else is sure: a new person, and reviewers decide.
        move(
            identity,
            person_for({"name": identity.name}, profile, Demographics.from_json(identity.received)),
            kind=Identity.LinkKind.NEW,
            comparison=None,
            actor=actor,
            now=now,
        )
        decision = "new"
    else:
        decision = "kept"
    items = review_open(identity, [c for c in review if c.person_id != identity.person_id])
    return "review" if items and decision in ("new", "kept") else decision
