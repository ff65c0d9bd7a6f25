"""The audit store: one row per read of one person's record, whoever read it and through whichever door."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AccessEvent(models.Model):
    """One read of one resident's record (IHE BALP "patient privacy" audit): who, when, from which institution
    and client, through which door, what was read, and the stated reason when one was needed."""

    class Door(models.TextChoices):
        VIEWER = "viewer", _("clinician viewer")
        FHIR = "fhir", _("FHIR API")
        CDS_HOOKS = "cds-hooks", _("CDS Hooks")
        ADMIN = "admin", _("admin")

    class Reason(models.TextChoices):
        # Why a clinician opened a resident their institution does not know (break-the-glass).
        EMERGENCY = "emergency", _("emergency (急诊抢救)")
        REFERRAL = "referral", _("referral (转诊)")
        CONSULTATION = "consultation", _("consultation (会诊)")

    person = models.ForeignKey("mpi.Person", on_delete=models.PROTECT, related_name="+", verbose_name=_("person"))
    at = models.DateTimeField(_("when"), auto_now_add=True)
    door = models.CharField(_("through"), max_length=12, choices=Door.choices)
    actor = models.CharField(_("who"), max_length=150)
    institution = models.ForeignKey(
        "registry.Institution",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("institution"),
    )
    source = models.ForeignKey(
        "registry.SourceSystem",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("client (source system)"),
    )
    # How it was read, as a FHIR restful-interaction code (read, vread, history-instance, search-type, operation;
    # a page of the viewer or the admin is a "read", a list page a "search-type"): the AuditEvent's subtype and
    # action (BALP: R for a read, E for a query).
    action = models.CharField(_("action"), max_length=16, default="read")
    # What was read: "viewer patient page", "Observation search", "Patient/$everything", "DocumentReference read".
    what = models.CharField(_("what was read"), max_length=200)
    # The request as the reader sent it (method, path, query string): BALP's entity[query] of a search, the
    # resource of a read. It may hold what the reader searched by (a name, an identity number): the audit is as
    # protected as the record, and this column is never written to a log.
    query = models.TextField(_("request"), blank=True)
    reason = models.CharField(_("stated reason"), max_length=16, blank=True, choices=Reason.choices)
    reason_text = models.CharField(_("reason (as stated)"), max_length=300, blank=True)
    break_glass = models.BooleanField(
        _("outside own institution"),
        default=False,
        help_text=_("The reader's institution did not know this resident: the read needed a stated reason."),
    )
    client_address = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    class Meta:
        verbose_name = _("record access")
        verbose_name_plural = _("record accesses")
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["person", "-at"], name="audit_access_person"),
            models.Index(fields=["actor", "-at"], name="audit_access_actor"),
            # The admin's list, newest first, and its date hierarchy, over every person.
            models.Index(fields=["-at"], name="audit_access_at"),
        ]

    def __str__(self):
        return f"{self.actor} read {self.what} ({self.at:%Y-%m-%d %H:%M})"
