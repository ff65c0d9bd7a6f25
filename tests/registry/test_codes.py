"""National code formats: credit codes (with both check characters) and licence numbers."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from registry.codes import (
    USCC_ALPHABET,
    org_code_check_char,
    uscc_check_char,
    validate_institution_licence,
    validate_practitioner_licence,
    validate_uscc,
)

# Credit codes published by their holders (public registrations).
REAL_CODES = ["91110000710925462X", "91440300708461136T", "914403001922038216", "91350100M000100Y43"]


@pytest.mark.parametrize("code", REAL_CODES)
def test_published_credit_codes_are_valid(code):
    validate_uscc(code)


@pytest.mark.parametrize("code", REAL_CODES)
def test_a_changed_last_character_is_rejected(code):
    wrong = code[:17] + USCC_ALPHABET[(USCC_ALPHABET.index(code[17]) + 1) % 31]
    with pytest.raises(ValidationError) as err:
        validate_uscc(wrong)
    assert err.value.code == "check"


bodies = st.text(alphabet=USCC_ALPHABET, min_size=8, max_size=8)


@given(bodies, st.sampled_from(["12", "91", "52"]), st.integers(min_value=1, max_value=17))
def test_codes_built_with_both_checks_validate_and_any_change_fails(body, prefix, position):
    first17 = f"{prefix}440106{body}{org_code_check_char(body)}"
    code = first17 + uscc_check_char(first17)
    validate_uscc(code)
    replacement = USCC_ALPHABET[(USCC_ALPHABET.index(code[position]) + 7) % 31]
    altered = code[:position] + replacement + code[position + 1 :]
    if altered[2:8].isdigit() and altered[16] in "0123456789X":
        with pytest.raises(ValidationError):
            validate_uscc(altered)


@pytest.mark.parametrize(
    ("value", "kind", "ok"),
    [
        ("45527627344010611A1000", "hospital", True),
        ("45527627344010611A100", "hospital", False),
        ("粤CB1200012", "pharmacy", True),
        ("45527627344010611A1000", "pharmacy", False),
        ("GD-12345", "clinic", False),
    ],
)
def test_institution_licence_formats(value, kind, ok):
    if ok:
        validate_institution_licence(value, kind)
    else:
        with pytest.raises(ValidationError):
            validate_institution_licence(value, kind)


@pytest.mark.parametrize(
    ("value", "role", "ok"),
    [
        ("120224400000001", "physician", True),
        ("12022440000001", "physician", False),
        ("202044000123", "nurse", True),
        ("2020440001234", "nurse", False),
        ("ZY442020000001", "pharmacist", True),
        ("zy-1", "technician", False),
    ],
)
def test_practitioner_licence_formats_by_role(value, role, ok):
    if ok:
        validate_practitioner_licence(value, role)
    else:
        with pytest.raises(ValidationError):
            validate_practitioner_licence(value, role)
