"""The API's description (/api/schema/) and its page (/api/docs/): only for the API's callers unless
API_SCHEMA_PUBLIC (production's default is not public), and a page that needs nothing from the internet
(issue 18, "Throttling and sessions")."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_schema(settings):
    settings.API_SCHEMA_PUBLIC = False


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_an_anonymous_caller_cannot_read_the_description_in_production(production_schema, url):
    response = Client().get(url)
    assert response.status_code in (401, 403)
    assert b"/fhir/Patient" not in response.content


def test_a_source_system_reads_the_description(production_schema, feed):
    response = feed.client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200 and "/fhir/Patient" in response.json()["paths"]


def test_a_staff_user_gets_a_swagger_page_whose_assets_are_served_locally(production_schema, admin_client):
    page = admin_client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "/api/schema/" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assets = [s for s in sources if "drf_spectacular_sidecar" in s]
    assert assets
    for asset in assets:  # each one is there to be served from this server's static files
        from django.contrib.staticfiles import finders

        assert finders.find(asset.split("/static/", 1)[1]), asset
