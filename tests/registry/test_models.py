"""Invariants of registry rows that ``clean()`` holds (what the admin's forms check before saving)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests.fhirapi.client import register_feed


@pytest.mark.parametrize(
    ("charset", "valid"), [("GB18030", True), ("GBK", True), ("UTF-8", True), ("", True), ("GB-CN-X", False)]
)
def test_a_source_systems_hl7_character_set_must_be_one_python_can_decode(db, charset, valid):
    source = register_feed().source
    source.hl7_charset = charset
    if valid:
        source.clean()
    else:
        with pytest.raises(ValidationError) as refused:
            source.clean()
        assert "hl7_charset" in refused.value.message_dict
