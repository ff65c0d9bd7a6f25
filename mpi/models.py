"""The master patient index: persons, the identities institutions know them by, and every decision linking them."""

from __future__ import annotations

import os
import time
import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): new rows land at the end of the index, which stays compact."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    return uuid.UUID(int=value | (rand & ((1 << 62) - 1)))


SEX_CHOICES = [("male", _("male")), ("female", _("female"))]


class Person(models.Model):
    """One resident: the golden record that every identity of theirs is linked to."""

    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("person status", "active")
        MERGED = "merged", _("merged into another person")

    uuid = models.UUIDField(_("person id"), default=uuid7, unique=True, editable=False)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_persons",
        verbose_name=_("merged into"),
    )
    # Golden demographics: survivorship over the linked identities (services.person_refresh).
    name = models.CharField(pgettext_lazy("person", "name"), max_length=200, blank=True)
    sex = models.CharField(_("sex"), max_length=8, blank=True, choices=SEX_CHOICES)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    resident_id = models.CharField(_("resident identity number"), max_length=18, blank=True, db_index=True)
    health_card = models.CharField(_("health card number"), max_length=24, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    # Per golden field, who reported its value and since when ({"authority", "institution", "institution_name",
    # "since"}); a contact field also keeps the value it replaced ("previous"). See mpi/services/links.py.
    provenance = models.JSONField(_("provenance of the golden record"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("person")
        verbose_name_plural = _("persons")
        constraints = [
            models.CheckConstraint(
                condition=Q(status="merged", merged_into__isnull=False) | Q(status="active", merged_into__isnull=True),
                name="mpi_person_merged_has_target",
            ),
        ]

    def __str__(self) -> str:
        # The last hex digits: a UUIDv7 starts with its timestamp, so the first ones repeat.
        return f"{self.name or '—'} ({self.uuid.hex[-8:]})"


class Identity(models.Model):
    """How one source knows a resident: an assigning authority's local id (MRN) and the demographics it sent."""

    class LinkKind(models.TextChoices):
        IDENTIFIER = "identifier", _("identifier agreed")
        AUTO = "auto", _("automatic (score)")
        NEW = "new", _("new person")
        MANUAL = "manual", _("manual decision")

    uuid = models.UUIDField(_("identity id"), default=uuid7, unique=True, editable=False)
    # The namespace of local_id: an OID, or the sender's MSH-4 / institution code (HL7 CX.4).
    assigning_authority = models.CharField(_("assigning authority"), max_length=64)
    local_id = models.CharField(_("local id (MRN)"), max_length=64)
    source = models.ForeignKey(
        "registry.SourceSystem", on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("source system")
    )
    # Demographics exactly as received (mpi.demographics.Demographics.as_json).
    received = models.JSONField(_("demographics as received"), default=dict)
    # Normalised form the matcher compares (mpi.demographics.Profile.as_json).
    profile = models.JSONField(default=dict)
    flags = models.JSONField(_("flags"), default=list, blank=True)
    # Display columns (also searched by PDQm).
    name = models.CharField(pgettext_lazy("person", "name"), max_length=200, blank=True)
    name_latin = models.CharField(_("name (Latin)"), max_length=200, blank=True)
    sex = models.CharField(_("sex"), max_length=8, blank=True, choices=SEX_CHOICES)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    # The link to the person: how and why it was made.
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="identities", verbose_name=_("person"))
    link_kind = models.CharField(_("link"), max_length=10, choices=LinkKind.choices)
    link_score = models.FloatField(_("score"), null=True, blank=True)
    link_evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    linked_by = models.CharField(_("linked by"), max_length=150)
    linked_at = models.DateTimeField(_("linked at"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(fields=["assigning_authority", "local_id"], name="mpi_identity_unique_local_id"),
        ]

    def __str__(self) -> str:
        return f"{self.assigning_authority}|{self.local_id}"


class Identifier(models.Model):
    """One identifier an identity carried (resident id, health card, passport, MRN…), current or superseded."""

    class Kind(models.TextChoices):
        RESIDENT_ID = "resident_id", _("resident identity number")
        HEALTH_CARD = "health_card", _("resident health card")
        PASSPORT = "passport", _("passport")
        HK_MACAU_PERMIT = "hk_macau_permit", _("Hong Kong/Macau permit")
        TAIWAN_PERMIT = "taiwan_permit", _("Taiwan permit")
        FOREIGN_PR = "foreign_permanent_resident", _("foreign permanent resident ID")

    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    value = models.CharField(_("value"), max_length=64)
    # Trusted: passed every check (a resident id: GB 11643 and consistent with the record).
    trusted = models.BooleanField(_("trusted"), default=False)
    flag = models.CharField(_("flag"), max_length=64, blank=True)
    current = models.BooleanField(_("current"), default=True)
    recorded_at = models.DateTimeField(_("recorded"), auto_now_add=True)
    superseded_at = models.DateTimeField(_("superseded"), null=True, blank=True)

    class Meta:
        verbose_name = _("identifier")
        verbose_name_plural = _("identifiers")
        indexes = [models.Index(fields=["kind", "value"], name="mpi_identifier_lookup")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class MatchKey(models.Model):
    """A blocking key of an identity (64-bit hash of e.g. ``dob:1980-05-03``): how candidates are found."""

    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="match_keys")
    key = models.BigIntegerField(db_index=True)

    class Meta:
        verbose_name = _("match key")

    def __str__(self) -> str:
        return f"{self.identity_id}:{self.key}"


class LinkEvent(models.Model):
    """One entry of the MPI's history: a registration, link, unlink, merge or unmerge, with who and why."""

    class Kind(models.TextChoices):
        REGISTER = "register", _("registered")
        UPDATE = "update", pgettext_lazy("history", "updated")
        LINK = "link", _("linked")
        UNLINK = "unlink", _("unlinked")
        MERGE = "merge", _("merged")
        UNMERGE = "unmerge", _("unmerged")
        REVIEW = "review", _("review decided")
        REMATCH = "rematch", _("re-matched")
        CONTACT = "contact", _("contact details changed")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    identity = models.ForeignKey(
        Identity, on_delete=models.PROTECT, null=True, blank=True, related_name="events", verbose_name=_("identity")
    )
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="events", verbose_name=_("person"))
    other_person = models.ForeignKey(
        Person, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("other person")
    )
    actor = models.CharField(_("actor"), max_length=150)
    reason = models.TextField(_("reason"), blank=True)
    # What changed, enough to undo it (an unmerge reads the merge's detail).
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    undone_by = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="undoes", verbose_name=_("undone by")
    )
    at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("history entry")
        verbose_name_plural = _("history")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M}"


class ReviewItem(models.Model):
    """A possible match a person must decide: this identity may be the same resident as that person."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        ACCEPTED = "accepted", _("accepted (linked)")
        REJECTED = "rejected", _("rejected (not the same)")
        OBSOLETE = "obsolete", _("obsolete")

    identity = models.ForeignKey(
        Identity, on_delete=models.CASCADE, related_name="review_items", verbose_name=_("identity")
    )
    candidate = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="review_items", verbose_name=_("candidate person")
    )
    score = models.FloatField(_("score"))
    evidence = models.JSONField(_("evidence"), default=dict)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    decided_by = models.CharField(_("decided by"), max_length=150, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("possible match")
        verbose_name_plural = _("possible matches (review queue)")
        constraints = [
            models.UniqueConstraint(
                fields=["identity", "candidate"], condition=Q(status="open"), name="mpi_review_one_open_per_pair"
            ),
        ]
        indexes = [models.Index(fields=["status", "-score"], name="mpi_review_queue")]

    def __str__(self) -> str:
        return f"{self.identity} ~ {self.candidate} ({self.score:.1f})"


class DoNotLink(models.Model):
    """A decision that two identities belong to different residents: no link or merge may cross it."""

    identity_a = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+", verbose_name=_("identity"))
    identity_b = models.ForeignKey(
        Identity, on_delete=models.CASCADE, related_name="+", verbose_name=_("other identity")
    )
    actor = models.CharField(_("decided by"), max_length=150)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("do-not-link decision")
        verbose_name_plural = _("do-not-link decisions")
        constraints = [
            models.UniqueConstraint(fields=["identity_a", "identity_b"], name="mpi_dnl_unique_pair"),
            # Stored once per pair, smaller id first, so one lookup finds it.
            models.CheckConstraint(condition=Q(identity_a__lt=models.F("identity_b")), name="mpi_dnl_ordered"),
        ]
        indexes = [models.Index(fields=["identity_b"], name="mpi_dnl_b")]

    def __str__(self) -> str:
        return f"{self.identity_a_id} ≠ {self.identity_b_id}"


class RematchRun(models.Model):
    """One re-match of the whole index after a rule or threshold change; resumable from ``last_identity_id``."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")

    class Phase(models.TextChoices):
        # First every identity's profile and blocking keys are rebuilt from the demographics as received
        # (the normalisation rules may have changed), then every automatic link is re-decided.
        PROFILES = "profiles", _("rebuilding profiles")
        LINKS = "links", _("re-deciding links")

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.PROFILES)
    thresholds = models.JSONField(default=dict)
    last_identity_id = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict)
    actor = models.CharField(max_length=150)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("re-match run")

    def __str__(self) -> str:
        return f"rematch {self.pk} ({self.status})"
