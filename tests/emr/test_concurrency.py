"""The same document sent twice at once (a resend racing the original) is stored once (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from emr.models import DocumentEntry, DocumentVersion
from emr.services import document_store
from tests.emr.factories import PDF, reference

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_concurrent_sends_of_one_document_store_it_once(patient, source, document_folder):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent inserts need PostgreSQL (SQLite serialises all writers)")
    start = threading.Barrier(4)
    results, errors = [], []

    def send():
        try:
            start.wait()
            ref = reference(business_id="DS-RACE-1")
            results.append(document_store(identity=patient, source=source, reference=ref, content=PDF, actor="feed"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len({entry.pk for entry, _created in results}) == 1
    assert sorted(created for _entry, created in results) == [False, False, False, True]
    assert DocumentEntry.objects.count() == 1 and DocumentVersion.objects.count() == 1
    # The losers removed the files they wrote before the database said no.
    assert [p for p in document_folder.rglob("*") if p.is_file()] == [document_folder / results[0][0].content_name]
