"""The health archive: every clinical fact as a FHIR resource, with all its versions and its search index.

The big FHIR servers keep a resource as one JSON document per version and
extract, at write time, the values searches need into narrow typed rows; a
table per FHIR element is the known dead end (DESIGN.md, "FHIR storage").
Here: ``Resource`` is the current version (what reads and searches touch),
``ResourceVersion`` the append-only store of the versions it replaced (vread,
_history; a create writes no version row, an update moves the old version
there), and ``SearchToken`` / ``SearchReference`` the extracted index. What
every search filters on lives on ``Resource`` itself: the patient, the status,
the first business identifier and the clinically relevant time
(``effective_low/high``); tokens hold codes, categories and further identifiers.
Each row written costs: measured, the archive is bounded by rows and index
entries per resource, so there are as few of both as the searches allow.

Every clinical resource belongs to an MPI ``Identity`` (the patient as the
sending system knows them); reading by person goes through
``identity__person``, so merges and unmerges move facts without rewriting them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from mpi.models import uuid7


def new_fhir_id() -> str:
    """A new logical id: a time-ordered UUID, so the unique index grows at its end under heavy inserts."""
    return str(uuid7())


class Submission(models.Model):
    """One request or message, as received, that carried resources into the archive (provenance)."""

    class Kind(models.TextChoices):
        FHIR = "fhir", _("FHIR request")
        HL7V2 = "hl7v2", _("HL7 v2 message")

    uuid = models.UUIDField(default=uuid7, unique=True, editable=False)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    source = models.ForeignKey(
        "registry.SourceSystem", on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("source system")
    )
    actor = models.CharField(_("actor"), max_length=150)
    # "POST /fhir/", "PUT /fhir/Observation/…": what was asked, for the operator reading provenance.
    request_line = models.CharField(_("request"), max_length=300, blank=True)
    body = models.TextField(_("body as received"), blank=True)
    body_sha256 = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)

    class Meta:
        verbose_name = _("submission")

    def __str__(self) -> str:
        return f"{self.kind} {self.uuid}"


class Resource(models.Model):
    """The current version of one FHIR resource in the archive (a deleted one is kept, flagged)."""

    resource_type = models.CharField(_("resource type"), max_length=40)
    fhir_id = models.CharField(_("id"), max_length=64, default=new_fhir_id, editable=False)
    version_id = models.PositiveIntegerField(_("version"), default=1)
    # No separate foreign-key indexes: the composite indexes below start with these columns.
    identity = models.ForeignKey(
        "mpi.Identity",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("patient"),
        db_index=False,
    )
    source = models.ForeignKey(
        "registry.SourceSystem",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("source system"),
        db_index=False,
    )
    # The business identifier (the first Identifier): a resend of the same fact by the same source
    # updates this row instead of adding one, and the constraint below makes that hold under races.
    identifier_system = models.CharField(max_length=255, blank=True)
    identifier_value = models.CharField(max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=32, blank=True)
    # The clinically relevant time (Observation.effective[x], Condition.onset[x], …) as a range:
    # a date given to the day covers the whole day, a period its start and end.
    effective_low = models.DateTimeField(null=True, blank=True)
    effective_high = models.DateTimeField(null=True, blank=True)
    last_updated = models.DateTimeField(_("last updated"))
    deleted = models.BooleanField(_("deleted"), default=False)
    actor = models.CharField(_("actor"), max_length=150, blank=True)  # who wrote this version
    body = models.JSONField(_("resource"))
    submission = models.ForeignKey(
        Submission, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("clinical resource")
        constraints = [
            models.UniqueConstraint(fields=["resource_type", "fhir_id"], name="ehr_resource_type_id"),
            # The value right after the source: a Bundle's resend check asks for its few dozen business
            # identifiers of one source, and the index answers each with one descent; with the type and the
            # system before it, that check scanned every row of the source (measured: 10 ms per Bundle at
            # 80,000 resources, growing with the archive).
            models.UniqueConstraint(
                fields=["source", "identifier_value", "resource_type", "identifier_system"],
                condition=~Q(identifier_value=""),
                name="ehr_resource_business_identifier",
            ),
        ]
        indexes = [
            # Everything about one patient of one type, newest first: the viewer and patient-scoped searches.
            models.Index(fields=["identity", "resource_type", "-effective_low"], name="ehr_resource_patient_type"),
            models.Index(fields=["resource_type", "last_updated"], name="ehr_resource_type_updated"),
            # identifier=system|value searches and conditional creates on the business identifier; the value
            # first, so that a Bundle's few dozen identifiers over several types are one descent each.
            models.Index(fields=["identifier_value", "resource_type"], name="ehr_resource_identifier"),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.fhir_id}"

    def version_method(self) -> str:
        """How the current version came to be: created, updated or deleted."""
        if self.deleted:
            return ResourceVersion.Method.DELETE
        return ResourceVersion.Method.CREATE if self.version_id == 1 else ResourceVersion.Method.UPDATE

    def current_version(self) -> ResourceVersion:
        """The current version in the shape of a history row (not saved: it lives on this row until an update
        moves it to the history table)."""
        return ResourceVersion(
            resource=self,
            version_id=self.version_id,
            method=self.version_method(),
            body=self.body,
            last_updated=self.last_updated,
            actor=self.actor,
            submission_id=self.submission_id,
        )


class ResourceVersion(models.Model):
    """A version of a resource that a later version replaced, kept forever (vread, _history)."""

    class Method(models.TextChoices):
        CREATE = "create", _("create")
        UPDATE = "update", _("update")
        DELETE = "delete", _("delete")

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="versions", db_index=False)
    version_id = models.PositiveIntegerField(_("version"))
    method = models.CharField(max_length=8, choices=Method.choices)
    body = models.JSONField(_("resource"))
    last_updated = models.DateTimeField(_("last updated"))
    actor = models.CharField(_("actor"), max_length=150)
    submission = models.ForeignKey(
        Submission, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("resource version")
        constraints = [models.UniqueConstraint(fields=["resource", "version_id"], name="ehr_version_unique")]

    def __str__(self) -> str:
        return f"{self.resource_id}/_history/{self.version_id}"


class SearchToken(models.Model):
    """One token search value of a resource: a code, a category, an identifier after the first (system + code)."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+", db_index=False)
    resource_type = models.CharField(max_length=40)
    param = models.CharField(max_length=32)
    system = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=255)

    class Meta:
        indexes = [
            # code first: "Observation?code=718-7" narrows to one code's rows, then the resource ids join.
            models.Index(fields=["resource_type", "param", "code", "system", "resource"], name="ehr_token_lookup"),
            models.Index(fields=["resource"], name="ehr_token_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.param}={self.system}|{self.code}"


class SearchReference(models.Model):
    """One reference a resource makes (encounter, result, based-on…), for searches and _include/_revinclude."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+", db_index=False)
    resource_type = models.CharField(max_length=40)
    param = models.CharField(max_length=32)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)

    class Meta:
        indexes = [
            models.Index(fields=["target_type", "target_id", "resource_type", "param"], name="ehr_ref_target"),
            models.Index(fields=["resource"], name="ehr_ref_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.param}={self.target_type}/{self.target_id}"


class ConditionalKey(models.Model):
    """The criteria of a conditional create (If-None-Exist) that made a resource: two identical concurrent
    creates insert the same key, the database lets only one through, and the other answers with its resource."""

    resource_type = models.CharField(max_length=40)
    criteria_sha256 = models.CharField(max_length=64)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resource_type", "criteria_sha256"], name="ehr_conditional_unique")
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}?{self.criteria_sha256[:12]}"
