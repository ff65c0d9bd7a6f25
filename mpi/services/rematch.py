"""Re-matching the whole index after a change of the normalisation rules or the thresholds.

A run goes in batches, one transaction each, so a stopped run resumes where it was: first every
identity's profile, identifiers and blocking keys are rebuilt from its demographics as received, then
every automatic link is re-decided. Manual links are never touched.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from mpi.demographics import Demographics, Profile, profile_build
from mpi.models import Identity, LinkEvent, RematchRun
from mpi.services.links import SYSTEM_ACTOR, person_refresh, retire_if_empty
from mpi.services.registration import identifiers_sync, identity_fields, keys_sync, relink


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
        identifiers_sync(identity, profile, now=now)
        keys_sync(identity, profile, fresh=False)
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
            decision = relink(identity, Profile.from_json(identity.profile), SYSTEM_ACTOR, now)
            counts[decision] = counts.get(decision, 0) + 1
            if identity.person_id != person.pk:
                person_refresh(person)
                person_refresh(identity.person)
                retire_if_empty(person, into=identity.person, actor=SYSTEM_ACTOR)
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
