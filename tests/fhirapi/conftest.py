"""Fixtures of the FHIR API tests; the plain helpers are in ``tests.fhirapi.client``."""

import pytest
from django.core.cache import cache

from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.fhirapi.samples import patient_body


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


@pytest.fixture
def hosp(db):
    """A feed of HOSP-A with one registered Patient (``patient_id``); some modules have their own."""
    feed = register_feed(facility="HOSP-A")
    response = feed.client.post("/fhir/Patient", patient_body("A-1"), content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    feed.patient_id = response.json()["id"]
    return feed
