"""The viewer's tests share one small region built through the FHIR API (tests/viewer/scenario.py)."""

import pytest

from tests.viewer.scenario import PASSWORD, region_build


@pytest.fixture
def region(db, documents_folder):
    return region_build()


@pytest.fixture
def doctor(client, region):
    """A logged-in clinician of hospital A (through the real login form)."""
    response = client.post("/viewer/login/", {"username": "doctor_a", "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client
