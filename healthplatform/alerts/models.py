"""The alert rules as data (edited in the admin, seeded with defaults by the migrations), the alerts raised on
orders and the overrides clinicians record.

Rules: ``RetestWindow`` (duplicate test: a standard code and its minimum retest interval), ``Recognition``
(mutual recognition of results, 检查检验结果互认: whose results count), ``CrossReactivity`` (an allergen group
that warns against another drug group), ``AlertPolicy`` (the rest: look-back, severities). What a rule decides
is in ``healthplatform.alerts.rules``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from registry.codes import validate_atc_group as ATC_GROUP


class Severity(models.TextChoices):
    # CDS Hooks 2.0 Card.indicator; FHIR DetectedIssue.severity low / moderate / high.
    INFO = "info", _("info")
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")


class Kind(models.TextChoices):
    DUPLICATE_TEST = "duplicate-test", _("duplicate test")
    DRUG_ALLERGY = "drug-allergy", _("drug–allergy")
    DUPLICATE_MEDICATION = "duplicate-medication", _("duplicate medication")


class RetestWindow(models.Model):
    """A laboratory test or an examination, by its standard code, and how soon a repeat is flagged: a result of
    it younger than ``window_days`` from a recognised institution makes an order of it a duplicate."""

    class Category(models.TextChoices):
        LABORATORY = "laboratory", _("laboratory test (检验)")
        IMAGING = "imaging", _("imaging / examination (检查)")

    category = models.CharField(_("category"), max_length=16, choices=Category.choices)
    system = models.CharField(_("code system"), max_length=200, help_text=_("LOINC for laboratory tests."))
    code = models.CharField(_("code"), max_length=64)
    display = models.CharField(_("display"), max_length=255)
    display_en = models.CharField(_("display (English)"), max_length=255, blank=True)
    # Imaging: DICOM modality (CT, MR, DX, US, …) and the body part examined, for the list an administrator keeps.
    modality = models.CharField(_("modality"), max_length=16, blank=True)
    body_part = models.CharField(_("body part"), max_length=64, blank=True)
    window_days = models.PositiveIntegerField(_("window (days)"), validators=[MinValueValidator(1)])
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices, default=Severity.WARNING)
    basis = models.CharField(
        _("basis"), max_length=255, blank=True, help_text=_("Where the window comes from (a guideline, a list).")
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("duplicate-test window")
        verbose_name_plural = _("duplicate-test windows")
        ordering = ["category", "code"]
        constraints = [models.UniqueConstraint(fields=["system", "code"], name="alerts_test_window_code")]

    def __str__(self):
        return f"{self.display} ({self.code}): {self.window_days} d"


class Recognition(models.Model):
    """Whether results from an institution, or from every institution of a level, count for the duplicate-test
    rule — for one test or for all. The most specific row decides (institution before level, one test before
    all tests); with no row, a result is not recognised."""

    institution = models.ForeignKey(
        "registry.Institution", on_delete=models.CASCADE, null=True, blank=True, verbose_name=_("institution")
    )
    level = models.CharField(
        _("institution level"),
        max_length=16,
        blank=True,
        choices=[
            ("tertiary", _("tertiary (三级)")),
            ("secondary", _("secondary (二级)")),
            ("community", _("community (社区/一级)")),
            ("unrated", _("unrated (未定级)")),
        ],
    )
    test = models.ForeignKey(
        RetestWindow, on_delete=models.CASCADE, null=True, blank=True, verbose_name=_("test (empty: every test)")
    )
    recognised = models.BooleanField(_("results recognised"), default=True)
    note = models.CharField(_("note"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("mutual recognition rule")
        verbose_name_plural = _("mutual recognition rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(institution__isnull=False, level="") | Q(institution__isnull=True) & ~Q(level=""),
                name="alerts_recognition_institution_or_level",
            ),
            models.UniqueConstraint(
                fields=["institution", "level", "test"], name="alerts_recognition_unique", nulls_distinct=False
            ),
        ]

    def __str__(self):
        who = self.institution.name if self.institution_id else self.get_level_display()
        what = self.test.display if self.test_id else _("every test")
        return f"{who} · {what}: {'✓' if self.recognised else '✗'}"

    def clean(self):
        if bool(self.institution_id) == bool(self.level):
            raise ValidationError(_("Name either an institution or a level, not both."))


class CrossReactivity(models.Model):
    """An allergy to one drug group that warns against another (penicillins → cephalosporins)."""

    allergen_group = models.CharField(_("allergen ATC group"), max_length=7, validators=[ATC_GROUP])
    drug_group = models.CharField(_("drug ATC group"), max_length=7, validators=[ATC_GROUP])
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices, default=Severity.WARNING)
    note = models.CharField(_("note"), max_length=255, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("cross-reactivity")
        verbose_name_plural = _("cross-reactivities")
        constraints = [
            models.UniqueConstraint(fields=["allergen_group", "drug_group"], name="alerts_cross_reactivity_unique")
        ]

    def __str__(self):
        return f"{self.allergen_group} → {self.drug_group} ({self.severity})"


class AlertPolicy(models.Model):
    """The settings of the rules that are not per test or per group (one row)."""

    medication_lookback_days = models.PositiveIntegerField(
        _("duplicate medication look-back (days)"), default=90, validators=[MinValueValidator(1)]
    )
    same_ingredient_severity = models.CharField(
        _("same ingredient at two institutions"), max_length=8, choices=Severity.choices, default=Severity.WARNING
    )
    same_class_severity = models.CharField(
        _("same ATC level-4 class at two institutions"), max_length=8, choices=Severity.choices, default=Severity.INFO
    )
    allergy_severity = models.CharField(
        _("drug matches an allergy"), max_length=8, choices=Severity.choices, default=Severity.CRITICAL
    )
    uncoded_allergy_severity = models.CharField(
        _("allergy recorded as free text"), max_length=8, choices=Severity.choices, default=Severity.WARNING
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("alert policy")
        verbose_name_plural = _("alert policy")

    def __str__(self):
        return str(_("alert policy"))

    @classmethod
    def current(cls) -> AlertPolicy:
        return cls.objects.order_by("pk").first() or cls()


class Alert(models.Model):
    """An alert raised on an order an institution sent (a MedicationRequest or ServiceRequest written by its feed),
    kept so that it can be read as a FHIR DetectedIssue and in the viewer. ``key`` is its stable id: the rule,
    the order and the facts it rests on."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        OVERRIDDEN = "overridden", _("overridden")
        WITHDRAWN = "withdrawn", _("withdrawn (the facts changed)")

    uuid = models.UUIDField(_("id"), unique=True, editable=False)
    key = models.CharField(_("stable id"), max_length=64, unique=True)
    person = models.ForeignKey("mpi.Person", on_delete=models.PROTECT, related_name="+", verbose_name=_("person"))
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices)
    summary = models.CharField(_("summary"), max_length=140)
    detail = models.TextField(_("detail"), blank=True)
    order = models.CharField(_("order"), max_length=120, help_text=_("The order it was raised on, Type/id."))
    institution = models.ForeignKey(
        "registry.Institution", on_delete=models.PROTECT, related_name="+", verbose_name=_("ordering institution")
    )
    evidence = models.JSONField(_("evidence"), default=list)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE)
    raised_at = models.DateTimeField(_("raised"), auto_now_add=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-raised_at"]
        indexes = [models.Index(fields=["person", "-raised_at"], name="alerts_alert_person")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.summary}"


class Override(models.Model):
    """A clinician's or a hospital system's decision to go on despite an alert: with a reason and who decided.
    The alert with this stable id is not shown again for the same order."""

    alert_key = models.CharField(_("alert stable id"), max_length=64)
    order = models.CharField(_("order"), max_length=120, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=12, choices=[("overridden", _("overridden")), ("accepted", _("accepted"))]
    )
    reason_code = models.CharField(_("reason code"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    actor = models.CharField(_("by"), max_length=150)
    institution = models.ForeignKey(
        "registry.Institution", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("alert override")
        verbose_name_plural = _("alert overrides")
        ordering = ["-at"]
        indexes = [models.Index(fields=["alert_key"], name="alerts_override_key")]

    def __str__(self):
        return f"{self.alert_key} {self.outcome} by {self.actor}"
