"""Decisions by a person: link, unlink, merge and unmerge, and the answers to review items (accept,
merge, reject).

Each is one transaction and leaves a ``LinkEvent``. The links they make are marked ``manual`` and no
automatic step moves such an identity again; an unlink, an unmerge and a rejected possible match record
do-not-link decisions that no automatic step crosses. ``person_merge`` also merges, ``automatic``, two
persons that one registration tied together (``mpi.services.registration``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from mpi.demographics import Demographics, Profile
from mpi.linkage import decide, dnl_crossed
from mpi.models import DoNotLink, Identity, LinkEvent, Person, ReviewItem
from mpi.services.links import (
    SYSTEM_ACTOR,
    active_locked,
    golden,
    move,
    person_for,
    person_refresh,
    retire_if_empty,
    review_open,
)


class MPIError(Exception):
    """An MPI operation that cannot be done; the message says why and what to do."""


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


def _dnl_add(identity_ids_a: Iterable[int], identity_ids_b: Iterable[int], *, actor: str, reason: str) -> int:
    pairs = {(min(a, b), max(a, b)) for a in identity_ids_a for b in identity_ids_b if a != b}
    DoNotLink.objects.bulk_create(
        [DoNotLink(identity_a_id=a, identity_b_id=b, actor=actor, reason=reason) for a, b in sorted(pairs)],
        ignore_conflicts=True,
    )
    return len(pairs)


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
        move(identity, person, kind=Identity.LinkKind.MANUAL, comparison=None, actor=actor, now=timezone.now())
        person_refresh(person)
        if old_person.pk != person.pk:
            person_refresh(old_person)
            retire_if_empty(old_person, into=person, actor=actor)
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
        new_person = person_for({"name": identity.name}, profile, Demographics.from_json(identity.received))
        move(identity, new_person, kind=Identity.LinkKind.MANUAL, comparison=None, actor=actor, now=now)
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
        target = active_locked(chosen.person_id) if chosen is not None else None
        if target is not None:
            move(
                identity, target, kind=Identity.LinkKind.AUTO, comparison=chosen.comparison, actor=SYSTEM_ACTOR, now=now
            )
            person_refresh(target)
            retire_if_empty(new_person, into=target, actor=SYSTEM_ACTOR)
            LinkEvent.objects.create(
                kind=LinkEvent.Kind.REMATCH,
                identity=identity,
                person=target,
                other_person=new_person,
                actor=SYSTEM_ACTOR,
                detail={"decision": "auto", "score": chosen.comparison.score},
            )
        review_open(identity, review)
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
        detail = {"identities": [_link_state(i) for i in moved], "survivor_before": golden(survivor)}
        for identity in moved:
            if automatic:
                identity.person, identity.linked_by, identity.linked_at = survivor, actor, now
                identity.save(update_fields=["person", "linked_by", "linked_at"])
            else:
                move(identity, survivor, kind=Identity.LinkKind.MANUAL, comparison=None, actor=actor, now=now)
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


# --- review decisions -------------------------------------------------------------


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
