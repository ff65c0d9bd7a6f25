"""The registry: who takes part in the region's record, and how their codes translate."""

from __future__ import annotations

import codecs
import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from registry.codes import (
    validate_atc_group,
    validate_division_code,
    validate_institution_licence,
    validate_practitioner_licence,
    validate_uscc,
)


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True


class Institution(TimestampedModel):
    """A hospital, community health centre or station, or pharmacy of the region."""

    class Level(models.TextChoices):
        TERTIARY = "tertiary", _("tertiary (三级)")
        SECONDARY = "secondary", _("secondary (二级)")
        COMMUNITY = "community", _("community (社区/一级)")
        UNRATED = "unrated", _("unrated (未定级)")

    class Kind(models.TextChoices):
        HOSPITAL = "hospital", _("hospital")
        CLINIC = "clinic", _("clinic / community health service")
        PHARMACY = "pharmacy", _("pharmacy")

    code = models.CharField(
        _("institution code"),
        max_length=18,
        unique=True,
        validators=[validate_uscc],
        help_text=_("Unified social credit code (统一社会信用代码, GB 32100), 18 characters."),
    )
    name = models.CharField(_("name"), max_length=200)
    level = models.CharField(_("level"), max_length=16, choices=Level.choices)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    division_code = models.CharField(
        _("division code"), max_length=6, validators=[validate_division_code], help_text=_("GB/T 2260")
    )
    district = models.CharField(_("district / subdistrict"), max_length=100)
    address = models.CharField(_("address"), max_length=200, blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    licence_number = models.CharField(
        _("licence number"),
        max_length=22,
        unique=True,
        help_text=_(
            "Practising licence registration number (医疗机构执业许可证登记号); drug trade licence for a pharmacy."
        ),
    )
    licence_valid_from = models.DateField(_("licence valid from"))
    licence_valid_until = models.DateField(_("licence valid until"))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(licence_valid_until__gte=F("licence_valid_from")),
                name="institution_licence_period_ordered",
            ),
            models.CheckConstraint(
                condition=~Q(kind="pharmacy") | Q(level="unrated"), name="institution_pharmacy_unrated"
            ),
        ]
        indexes = [models.Index(fields=["kind", "level"]), models.Index(fields=["division_code"])]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.licence_number and self.kind:
            try:
                validate_institution_licence(self.licence_number, self.kind)
            except ValidationError as exc:
                errors["licence_number"] = exc.messages
            else:
                if self.kind != self.Kind.PHARMACY and self.code and self.licence_number[:9] != self.code[8:17]:
                    errors["licence_number"] = [
                        _("The licence number must begin with the organisation code in the institution code.")
                    ]
        if self.kind == self.Kind.PHARMACY and self.level and self.level != self.Level.UNRATED:
            errors["level"] = [_("Pharmacies are not graded: use 'unrated'.")]
        if self.licence_valid_from and self.licence_valid_until and self.licence_valid_until < self.licence_valid_from:
            errors["licence_valid_until"] = [_("The licence cannot expire before it starts.")]
        if errors:
            raise ValidationError(errors)

    def licence_valid_on(self, day: dt.date) -> bool:
        """Whether the institution may practise on ``day``."""
        return self.active and self.licence_valid_from <= day <= self.licence_valid_until


class Department(TimestampedModel):
    """A clinical or technical department (科室) of one institution."""

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="departments", verbose_name=_("institution")
    )
    code = models.CharField(
        _("code"),
        max_length=10,
        validators=[
            RegexValidator(
                r"^\d{2}(\.\d{2})?[0-9A-Z]*$",
                _("Use the diagnosis and treatment subject code, e.g. 03 or 03.01."),
            )
        ],
        help_text=_("Subject code of the 医疗机构诊疗科目名录, with an optional local suffix."),
    )
    name = models.CharField(_("name"), max_length=100)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["institution__name", "code"]
        constraints = [models.UniqueConstraint(fields=["institution", "code"], name="department_code_unique")]

    def __str__(self):
        return f"{self.institution.name} · {self.name}"


class Practitioner(TimestampedModel):
    """A physician, nurse, pharmacist or technician registered to practise at an institution."""

    class Role(models.TextChoices):
        PHYSICIAN = "physician", _("physician")
        NURSE = "nurse", _("nurse")
        PHARMACIST = "pharmacist", _("pharmacist")
        TECHNICIAN = "technician", _("technician")

    licence_number = models.CharField(_("licence / registration number"), max_length=20)
    name = models.CharField(_("name"), max_length=60)
    name_pinyin = models.CharField(_("name (pinyin)"), max_length=120, blank=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="practitioners", verbose_name=_("institution")
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="practitioners",
        verbose_name=_("department"),
    )
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    # The clinician's login to the viewer: what they may read follows from this practitioner's institution,
    # and only while the registration is valid (Practitioner.valid_on).
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="practitioner",
        verbose_name=_("viewer login"),
    )

    class Meta:
        verbose_name = _("practitioner")
        verbose_name_plural = _("practitioners")
        ordering = ["name"]
        constraints = [
            # Each role has its own national register; a number is unique within it.
            models.UniqueConstraint(fields=["role", "licence_number"], name="practitioner_licence_unique"),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=F("valid_from")),
                name="practitioner_validity_ordered",
            ),
        ]
        indexes = [models.Index(fields=["licence_number"])]

    def __str__(self):
        return f"{self.name} ({self.get_role_display()})"

    def clean(self):
        errors = {}
        if self.role and self.licence_number:
            try:
                validate_practitioner_licence(self.licence_number, self.role)
            except ValidationError as exc:
                errors["licence_number"] = exc.messages
        if self.department_id and self.institution_id and self.department.institution_id != self.institution_id:
            errors["department"] = [_("The department belongs to another institution.")]
        if self.institution_id and self.valid_from and not self.institution.licence_valid_on(self.valid_from):
            errors["valid_from"] = [
                _("The institution is inactive or its licence does not cover this day: renew the licence first.")
            ]
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            errors["valid_until"] = [_("The registration cannot end before it starts.")]
        if errors:
            raise ValidationError(errors)

    def valid_on(self, day: dt.date) -> bool:
        """Whether the registration covers ``day``."""
        return self.active and self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)


class SourceSystem(TimestampedModel):
    """A feed: one system of one institution that sends HL7 v2 or FHIR to the platform."""

    class Kind(models.TextChoices):
        HIS = "HIS", _("HIS (hospital information system)")
        LIS = "LIS", _("LIS (laboratory)")
        PACS = "PACS", _("PACS / RIS (imaging)")
        EMR = "EMR", _("EMR (electronic medical record)")

    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="source_systems", verbose_name=_("institution")
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=100)
    # MSH-3 and MSH-4 (HD.1 namespace id) of the messages this feed sends.
    sending_application = models.CharField(_("HL7 sending application (MSH-3)"), max_length=64)
    sending_facility = models.CharField(_("HL7 sending facility (MSH-4)"), max_length=64)
    client_id = models.CharField(_("client id"), max_length=64, unique=True, editable=False)
    # Only a hash is kept (Django's password hasher); the secret is shown once.
    secret_hash = models.CharField(_("secret hash"), max_length=256, editable=False)
    secret_rotated_at = models.DateTimeField(_("secret rotated"), null=True, editable=False)
    active = models.BooleanField(_("active"), default=True)
    # Chinese HIS often leave MSH-18 empty and send GBK / GB18030: the sender's own default, else the region's.
    hl7_charset = models.CharField(
        _("HL7 v2 character set when MSH-18 is empty"),
        max_length=20,
        blank=True,
        help_text=_("e.g. “GB18030” or “UTF-8”; empty: the region's default (HL7_DEFAULT_CHARSET)."),
    )
    # What this feed may do through the FHIR API, whatever its token asks for (SMART system scopes).
    fhir_scopes = models.CharField(
        _("FHIR scopes allowed"),
        max_length=1000,
        blank=True,
        help_text=_(
            "SMART system scopes, separated by spaces, e.g. “system/Observation.* system/Patient.read”; "
            "empty: every scope. Applies at once, also to tokens already issued and to HTTP Basic."
        ),
    )

    class Meta:
        verbose_name = _("source system")
        verbose_name_plural = _("source systems")
        ordering = ["institution__name", "kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility"], name="source_system_hl7_sender_unique"
            )
        ]

    def __str__(self):
        return f"{self.institution.name} · {self.kind} · {self.name}"

    def clean(self):
        unknown = sorted(set(self.fhir_scopes.split()) - set(settings.FHIR_SCOPES))
        if unknown:
            raise ValidationError({"fhir_scopes": _("Unknown scopes: %(scopes)s") % {"scopes": ", ".join(unknown)}})
        if self.hl7_charset:
            try:
                codecs.lookup(self.hl7_charset.replace(" ", ""))
            except LookupError:
                raise ValidationError(
                    {"hl7_charset": _("Unknown character set: write e.g. GB18030, GBK or UTF-8.")}
                ) from None


class CodeSystem(TimestampedModel):
    """A terminology: a standard one (ICD-10, LOINC, ...) or one source system's local codes."""

    url = models.CharField(
        _("canonical URL"),
        max_length=200,
        unique=True,
        help_text=_("FHIR CodeSystem.url, e.g. http://loinc.org"),
    )
    name = models.CharField(_("name"), max_length=100)
    version = models.CharField(_("version"), max_length=40, blank=True)
    oid = models.CharField(
        _("OID"),
        max_length=64,
        blank=True,
        validators=[
            RegexValidator(r"^[0-2](\.(0|[1-9]\d*))+$", _("An OID is dotted numbers, e.g. 2.16.840.1.113883.6.1."))
        ],
    )
    # The identifier HL7 v2 senders put in CWE-3 (name of coding system), e.g. LN, I10.
    hl7_v2_name = models.CharField(_("HL7 v2 coding system name"), max_length=20, blank=True)
    # A local code system belongs to one feed: its codings are translated to standard ones on write
    # (healthplatform.ingest), and its unmapped codes are counted. A standard terminology has none.
    source_system = models.ForeignKey(
        "SourceSystem",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="local_code_systems",
        verbose_name=_("local codes of"),
        help_text=_("Set for a source system's own local codes; empty for a standard terminology."),
    )
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("code system")
        verbose_name_plural = _("code systems")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} {self.version}".strip()


class Concept(TimestampedModel):
    """One code of a code system, with its Chinese and English display."""

    code_system = models.ForeignKey(
        CodeSystem, on_delete=models.CASCADE, related_name="concepts", verbose_name=_("code system")
    )
    code = models.CharField(_("code"), max_length=64)
    display = models.CharField(_("display"), max_length=255)
    display_en = models.CharField(_("display (English)"), max_length=255, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("concept")
        verbose_name_plural = _("concepts")
        ordering = ["code_system__name", "code"]
        constraints = [models.UniqueConstraint(fields=["code_system", "code"], name="concept_code_unique")]

    def __str__(self):
        return f"{self.code} {self.display}"


class ConceptMapEntry(TimestampedModel):
    """A local code of one source system, mapped to a standard concept (FHIR ConceptMap element)."""

    class Equivalence(models.TextChoices):
        # FHIR R4 ConceptMapEquivalence, the values a mapping clerk needs.
        EQUIVALENT = "equivalent", _("equivalent")
        WIDER = "wider", _("wider (the target is broader)")
        NARROWER = "narrower", _("narrower (the target is more specific)")
        INEXACT = "inexact", _("inexact")

    source_system = models.ForeignKey(
        SourceSystem, on_delete=models.CASCADE, related_name="concept_maps", verbose_name=_("source system")
    )
    local_system = models.CharField(
        _("local code system"),
        max_length=200,
        blank=True,
        help_text=_("What the sender puts in CWE-3 or Coding.system; blank when it sends none."),
    )
    local_code = models.CharField(_("local code"), max_length=64)
    local_display = models.CharField(_("local display"), max_length=255, blank=True)
    concept = models.ForeignKey(
        Concept, on_delete=models.PROTECT, related_name="mapped_from", verbose_name=_("standard concept")
    )
    equivalence = models.CharField(
        _("equivalence"), max_length=16, choices=Equivalence.choices, default=Equivalence.EQUIVALENT
    )

    class Meta:
        verbose_name = _("concept map entry")
        verbose_name_plural = _("concept map entries")
        ordering = ["source_system", "local_system", "local_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "local_system", "local_code"], name="concept_map_local_code_unique"
            )
        ]

    def __str__(self):
        return f"{self.local_code} → {self.concept.code}"


class DrugIngredient(TimestampedModel):
    """One active ingredient of a drug of the drug dictionary: the drug's concept and the ingredient's ATC level-5
    concept (a combination product has one row per ingredient)."""

    drug = models.ForeignKey(
        Concept, on_delete=models.CASCADE, related_name="ingredients", verbose_name=_("drug (dictionary concept)")
    )
    ingredient = models.ForeignKey(
        Concept, on_delete=models.PROTECT, related_name="in_drugs", verbose_name=_("ingredient (ATC level 5)")
    )

    class Meta:
        verbose_name = _("drug ingredient")
        verbose_name_plural = _("drug ingredients")
        constraints = [models.UniqueConstraint(fields=["drug", "ingredient"], name="drug_ingredient_unique")]

    def __str__(self):
        return f"{self.drug.code} ∋ {self.ingredient.code}"

    def clean(self):
        if self.ingredient_id and len(self.ingredient.code) != 7:
            raise ValidationError(
                {"ingredient": _("An ingredient is an ATC level-5 code (7 characters, e.g. J01CA04).")}
            )


class DrugClassMember(TimestampedModel):
    """What an allergen or drug class (青霉素类, 头孢菌素类, 碘造影剂, …) takes in: every drug whose ATC code
    begins with ``atc_prefix`` (an ATC group of any level, e.g. J01C for the penicillins)."""

    drug_class = models.ForeignKey(
        Concept, on_delete=models.CASCADE, related_name="class_members", verbose_name=_("class (concept)")
    )
    atc_prefix = models.CharField(
        _("ATC group"),
        max_length=7,
        validators=[validate_atc_group],
    )

    class Meta:
        verbose_name = _("drug class member")
        verbose_name_plural = _("drug class members")
        constraints = [models.UniqueConstraint(fields=["drug_class", "atc_prefix"], name="drug_class_member_unique")]

    def __str__(self):
        return f"{self.drug_class.code} ⊇ {self.atc_prefix}"


class UnmappedCode(models.Model):
    """A local code a source system sent that no concept map translates yet: stored as sent, counted here for the
    terminology team."""

    source_system = models.ForeignKey(
        SourceSystem, on_delete=models.CASCADE, related_name="unmapped_codes", verbose_name=_("source system")
    )
    system = models.CharField(_("local code system"), max_length=200, blank=True)
    code = models.CharField(_("local code"), max_length=64)
    display = models.CharField(_("display as sent"), max_length=255, blank=True)
    count = models.PositiveBigIntegerField(_("times received"), default=0)
    first_seen = models.DateTimeField(_("first seen"), auto_now_add=True)
    last_seen = models.DateTimeField(_("last seen"), auto_now=True)

    class Meta:
        verbose_name = _("unmapped local code")
        verbose_name_plural = _("unmapped local codes")
        ordering = ["-count"]
        constraints = [models.UniqueConstraint(fields=["source_system", "system", "code"], name="unmapped_code_unique")]

    def __str__(self):
        return f"{self.system}|{self.code} ×{self.count}"
