"""The shared EMR document store: DocumentReference metadata, its version history, and where the content lies."""

from __future__ import annotations

import base64

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from emr.codes import DocumentClass
from mpi.models import uuid7


class DocumentEntry(models.Model):
    """One shared document: the current state of its DocumentReference and the content file it points to."""

    # DocumentReference.status (R4 document-reference-status): superseded only through a replacement.
    class Status(models.TextChoices):
        CURRENT = "current", pgettext_lazy("document status", "current")
        SUPERSEDED = "superseded", _("superseded")
        ENTERED_IN_ERROR = "entered-in-error", _("entered in error")

    # The public FHIR id (DocumentReference.id, and Binary.id of the content).
    uuid = models.UUIDField(_("document id"), default=uuid7, unique=True, editable=False)
    identity = models.ForeignKey(
        "mpi.Identity", on_delete=models.PROTECT, related_name="documents", verbose_name=_("identity")
    )
    source = models.ForeignKey(
        "registry.SourceSystem", on_delete=models.PROTECT, related_name="documents", verbose_name=_("source system")
    )
    author_institution = models.ForeignKey(
        "registry.Institution",
        on_delete=models.PROTECT,
        related_name="authored_documents",
        verbose_name=_("author institution"),
    )
    # DocumentReference.masterIdentifier: the sender's business id of the document.
    master_identifier_system = models.CharField(_("document id system"), max_length=255)
    master_identifier_value = models.CharField(_("document business id"), max_length=255)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.CURRENT)
    # DocumentReference.type (first coding, LOINC preferred) and the platform's class (category).
    type_system = models.CharField(_("type system"), max_length=255, blank=True)
    type_code = models.CharField(_("type code"), max_length=64, blank=True)
    type_display = models.CharField(_("type"), max_length=255, blank=True)
    class_code = models.CharField(_("document class"), max_length=32, choices=DocumentClass.choices)
    title = models.CharField(_("title"), max_length=300, blank=True)
    # DocumentReference.date, else context.period.start, else when it was stored: the search and sort date.
    date = models.DateTimeField(_("date"))
    # The content: a name in the document storage (emr.storage.document_storage), never served by URL.
    content_name = models.CharField(_("content file"), max_length=255, editable=False)
    content_type = models.CharField(_("MIME type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    # FHIR R4 Attachment.hash is the base64 SHA-1; kept (hex) to render it without reading the file.
    sha1 = models.CharField(_("SHA-1"), max_length=40)
    # The replacement side of relatesTo "replaces" (FHIR R4 only records the new document's side).
    replaced_by = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaces",
        verbose_name=_("replaced by"),
    )
    version_id = models.PositiveIntegerField(_("version"), default=1)
    # The current version's DocumentReference JSON (the same as its newest DocumentVersion).
    resource = models.JSONField(_("DocumentReference"))
    created_at = models.DateTimeField(_("stored"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        constraints = [
            # The business id is unique per sender, enforced in the database so two concurrent
            # sends of one document cannot both be stored (a check in code alone races).
            models.UniqueConstraint(
                fields=["source", "master_identifier_system", "master_identifier_value"],
                name="emr_document_unique_master_identifier",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["current", "superseded", "entered-in-error"]), name="emr_document_status"
            ),
            models.CheckConstraint(
                condition=~Q(status="superseded") | Q(replaced_by__isnull=False),
                name="emr_document_superseded_has_replacement",
            ),
        ]
        indexes = [
            # A person's or identity's documents, newest first, with the keyset tie-breaker.
            models.Index(fields=["identity", "-date", "-id"], name="emr_document_identity_date"),
            models.Index(fields=["type_code", "type_system"], name="emr_document_type"),
            models.Index(fields=["class_code"], name="emr_document_class"),
            models.Index(fields=["status"], name="emr_document_status_idx"),
            models.Index(fields=["master_identifier_value"], name="emr_document_master_id"),
        ]

    def __str__(self) -> str:
        return self.title or f"{self.get_class_code_display()} {self.uuid.hex[-8:]}"

    @property
    def hash_base64(self) -> str:
        """Attachment.hash as FHIR R4 wants it: the base64 of the SHA-1 of the content."""
        return base64.b64encode(bytes.fromhex(self.sha1)).decode("ascii")


class DocumentVersion(models.Model):
    """One version of a document's DocumentReference JSON, with who made it and how (append-only history)."""

    class Method(models.TextChoices):
        CREATE = "create", _("stored")
        UPDATE = "update", pgettext_lazy("document history", "updated")
        SUPERSEDE = "supersede", _("superseded by a replacement")
        RETIRE = "retire", _("entered in error")

    entry = models.ForeignKey(
        DocumentEntry, on_delete=models.CASCADE, related_name="versions", verbose_name=_("document")
    )
    version_id = models.PositiveIntegerField(_("version"))
    resource = models.JSONField(_("DocumentReference"))
    recorded_at = models.DateTimeField(_("recorded"))
    actor = models.CharField(_("actor"), max_length=150)
    method = models.CharField(_("method"), max_length=10, choices=Method.choices)
    reason = models.TextField(_("reason"), blank=True)
    # The request or HL7 v2 message that carried this version (provenance, as for archive facts).
    submission = models.ForeignKey(
        "ehr.Submission",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        verbose_name=_("submission"),
    )

    class Meta:
        verbose_name = _("document version")
        verbose_name_plural = _("document versions")
        ordering = ["entry", "version_id"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "version_id"], name="emr_document_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_id}/_history/{self.version_id}"
