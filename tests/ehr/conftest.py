"""Fixtures of the archive's own tests: a source system that writes, and a patient it writes about."""

import pytest

from tests.ehr.factories import patient, source_system


@pytest.fixture
def hospital(db):
    """A hospital's registered feed (a source system of a new institution)."""
    return source_system()


@pytest.fixture
def who(db):
    """A registered identity with a person of their own."""
    return patient()
