"""A search parameter carrying U+0000 is answered 400 naming it, on every search route (PostgreSQL cannot
compare with it: it was a 500 that schemathesis found)."""

from __future__ import annotations

import pytest

from ehr.indexing import SPECS
from tests.fhirapi.client import FHIR_JSON, register_feed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("resource_type", sorted(SPECS))
def test_a_nul_in_a_search_parameter_is_400_naming_it(resource_type):
    feed = register_feed()
    response = feed.client.get(f"/fhir/{resource_type}?_id=a%00b", HTTP_ACCEPT=FHIR_JSON)
    assert response.status_code == 400, response.content
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["_id"] and "NUL" in issue["diagnostics"]
    assert feed.client.get(f"/fhir/{resource_type}?_id%00=x", HTTP_ACCEPT=FHIR_JSON).status_code == 400
