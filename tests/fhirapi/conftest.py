"""Fixtures of the FHIR API tests; the plain helpers are in ``tests.fhirapi.client``."""

import pytest
from django.core.cache import cache

from tests.fhirapi.client import register_feed


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Cached credential checks (HTTP Basic) must not leak from one test into another.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def feed(db):
    """A registered source system (an HIS at a new institution): ``source``, ``secret`` and ``client``."""
    return register_feed()
