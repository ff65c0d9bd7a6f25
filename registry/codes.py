"""Formats of the national codes the registry holds, with their check characters, and the identifier
systems that name those codes and the registry's own code lists wherever they leave the registry
(FHIR resources, conditional references, the synthetic region's feeds).

- Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters;
  1 registration authority, 1 organisation category, 6 administrative division
  (GB/T 2260), 9 organisation code (GB 11714, with its own check character),
  1 check character over the first 17 (modulus 31).
- Medical institution practising licence registration number
  (医疗机构执业许可证登记号): 22 characters; the 9-character organisation
  code, the 6-digit division, a 2-digit ownership code, and a 5-character
  institution category code (a letter and four characters, e.g. ``A1001``).
- Drug trade licence (药品经营许可证) of a pharmacy: a province abbreviation,
  two letters of category, and 7 to 9 digits.
- Practitioner registration: physician practising certificate (医师执业证书)
  15 digits; nurse practising certificate (护士执业证书) 12 digits; pharmacist
  and technician registrations 8-20 letters or digits.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

# Identifier systems. Fixed once published: stored resources and every feed's conditional
# references (Organization?identifier=…, Practitioner?identifier=…) name them.
INSTITUTION_CODE_SYSTEM = "urn:platform:institution-code"  # unified social credit code, GB 32100
PRACTITIONER_LICENCE_SYSTEM = "urn:platform:practitioner-licence"  # practising certificate / registration
INSTITUTION_LICENCE_SYSTEM = "urn:platform:institution-licence"  # 医疗机构执业许可证登记号 / drug trade licence
DEPARTMENT_CODE_SYSTEM = "urn:platform:department-code"  # subject code, unique within its institution
# The registry's own code lists (Institution.Kind, Institution.Level, Practitioner.Role).
INSTITUTION_KIND_SYSTEM = "urn:platform:institution-kind"
INSTITUTION_LEVEL_SYSTEM = "urn:platform:institution-level"
PRACTITIONER_ROLE_SYSTEM = "urn:platform:practitioner-role"

# GB 32100-2015 table 1: the 31 characters a credit code may contain (no I, O, S, V, Z).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 11714-1997: weights of the 8 body characters of an organisation code.
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# Positions 9-16 (the organisation code body) use the same 31 characters.
_USCC_RE = re.compile(rf"^[{USCC_ALPHABET}]{{2}}\d{{6}}[{USCC_ALPHABET}]{{8}}[0-9X][{USCC_ALPHABET}]$")
_MEDICAL_LICENCE_RE = re.compile(r"^[0-9A-HJ-NP-RTUWXY]{8}[0-9X]\d{6}\d{2}[A-Z][0-9A-Z]{4}$")
_DRUG_TRADE_LICENCE_RE = re.compile(r"^[\u4e00-\u9fff][A-Z]{2}\d{7,9}$")
_DIVISION_RE = re.compile(r"^[1-8]\d{5}$")
PRACTITIONER_LICENCE_PATTERNS = {
    "physician": (re.compile(r"^\d{15}$"), _("a physician practising certificate number has 15 digits")),
    "nurse": (re.compile(r"^\d{12}$"), _("a nurse practising certificate number has 12 digits")),
    "pharmacist": (
        re.compile(r"^[0-9A-Z]{8,20}$"),
        _("a pharmacist registration has 8-20 letters or digits"),
    ),
    "technician": (
        re.compile(r"^[0-9A-Z]{8,20}$"),
        _("a technician registration has 8-20 letters or digits"),
    ),
}


def org_code_check_char(body: str) -> str:
    """The GB 11714 check character of an 8-character organisation code body."""
    total = sum(int(ch, 36) * w for ch, w in zip(body, ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character over the first 17 characters of a credit code."""
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(value: str) -> None:
    """Rejects a unified social credit code whose format or check characters are wrong."""
    if not _USCC_RE.match(value or ""):
        raise ValidationError(
            _("An institution code is an 18-character unified social credit code (GB 32100)."), code="format"
        )
    if org_code_check_char(value[8:16]) != value[16]:
        raise ValidationError(
            _("The organisation code inside the institution code has a wrong check character."), code="check"
        )
    if uscc_check_char(value[:17]) != value[17]:
        raise ValidationError(_("The institution code has a wrong check character."), code="check")


def validate_division_code(value: str) -> None:
    """A 6-digit administrative division code (GB/T 2260)."""
    if not _DIVISION_RE.match(value or ""):
        raise ValidationError(_("A division code has 6 digits (GB/T 2260), e.g. 440106."), code="format")


def validate_institution_licence(value: str, kind: str) -> None:
    """A medical institution licence number, or a drug trade licence for a pharmacy."""
    if kind == "pharmacy":
        if not _DRUG_TRADE_LICENCE_RE.match(value or ""):
            raise ValidationError(
                _("A pharmacy licence is a drug trade licence number, e.g. 粤AA1234567."), code="format"
            )
    elif not _MEDICAL_LICENCE_RE.match(value or ""):
        raise ValidationError(
            _(
                "A practising licence registration number has 22 characters: organisation code (9), "
                "division (6), ownership (2), category (5), e.g. 45560372944010611A1001."
            ),
            code="format",
        )


def validate_practitioner_licence(value: str, role: str) -> None:
    """The registration number format of the practitioner's role."""
    pattern, message = PRACTITIONER_LICENCE_PATTERNS[role]
    if not pattern.match(value or ""):
        raise ValidationError(message, code="format")


# Terminologies the alerts read (healthplatform.alerts): the ATC classification (drugs by ingredient, level 5, and
# their groups at levels 1-4), the region's drug dictionary (products, each with its ATC ingredients) and the
# allergen classes (青霉素类, 碘造影剂, …, each a set of ATC groups).
ATC_SYSTEM = "http://www.whocc.no/atc"
LOINC_SYSTEM = "http://loinc.org"
DRUG_DICTIONARY_SYSTEM = "urn:platform:drug"
ALLERGEN_CLASS_SYSTEM = "urn:platform:allergen-class"
# The platform's list of imaging and other examinations (检查项目), for the duplicate-test rule.
EXAM_SYSTEM = "urn:platform:exam"

# An ATC code of any level: A, A10, A10B, A10BA, A10BA02.
validate_atc_group = RegexValidator(
    r"^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$", _("An ATC code of any level, e.g. J01C.")
)
