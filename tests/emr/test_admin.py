"""Admin pages of the document store: read-only list and detail, no content in the list."""

from __future__ import annotations

import pytest

from emr.services import document_store, document_update
from tests.emr.factories import PDF, reference

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(patient, source):
    stored = [
        document_store(identity=patient, source=source, reference=reference(), content=PDF, actor="feed")[0]
        for _ in range(4)
    ]
    document_update(entry=stored[0], reference=dict(stored[0].resource, description="更正"), actor="feed")
    return stored


def test_list_shows_documents_in_a_constant_number_of_queries(admin_client_zh, entries, django_assert_max_num_queries):
    # 12 for the page, and the audit's record of the residents listed (one lookup, one INSERT in a savepoint).
    with django_assert_max_num_queries(15):
        response = admin_client_zh.get("/admin/emr/documententry/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("出院小结") >= 3
    assert "%PDF" not in page


def test_list_filters_by_status_and_class(admin_client_zh, entries):
    response = admin_client_zh.get("/admin/emr/documententry/", {"status": "current", "class_code": "lab-report"})
    assert response.status_code == 200


def test_detail_shows_metadata_and_every_version_and_offers_no_changes(admin_client_zh, entries):
    entry = entries[0]
    response = admin_client_zh.get(f"/admin/emr/documententry/{entry.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert entry.sha256 in page and "更正" in page
    assert page.count("&quot;versionId&quot;") == 3  # current JSON + versions 1 and 2
    assert admin_client_zh.get("/admin/emr/documententry/add/").status_code == 403
    assert admin_client_zh.post(f"/admin/emr/documententry/{entry.pk}/delete/").status_code == 403
