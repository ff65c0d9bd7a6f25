"""Reading documents by person and identity: across linked identities, through merges and unmerges, in keyset pages."""

from __future__ import annotations

import datetime as dt

import pytest

from emr.models import DocumentEntry
from emr.selectors import documents_for_identity, documents_for_person
from emr.services import DocumentError, document_retire, document_store
from mpi.services import person_merge, person_unmerge
from tests.emr import factories
from tests.emr.factories import reference

pytestmark = pytest.mark.django_db


def store(identity, source, **kw):
    entry, _ = document_store(
        identity=identity, source=source, reference=reference(**kw), content=factories.PDF, actor="feed"
    )
    return entry


def uuids(page) -> set:
    return {e.uuid for e in page.entries}


def test_reading_by_person_spans_every_identity_linked_to_them(patient, source):
    elsewhere = factories.identity("H-OTHER", "X-9", resident_number=11)
    assert elsewhere.person_id == patient.person_id
    here, there = store(patient, source), store(elsewhere, factories.source_system())

    assert uuids(documents_for_person(patient.person)) == {here.uuid, there.uuid}
    assert uuids(documents_for_identity(patient)) == {here.uuid}


def test_reading_by_person_follows_merge_and_unmerge_without_rewriting_documents(patient, source):
    other = factories.identity("H-OTHER", "Y-1", name="李娜", birth="1990-01-01")
    survivor, duplicate = patient.person, other.person
    assert survivor.pk != duplicate.pk
    mine, theirs = store(patient, source), store(other, source)
    before = list(DocumentEntry.objects.order_by("pk").values())

    merge = person_merge(survivor=survivor, duplicate=duplicate, actor="admin:root", reason="same resident")
    assert uuids(documents_for_person(survivor)) == {mine.uuid, theirs.uuid}
    assert documents_for_person(duplicate).entries == []

    person_unmerge(merge=merge, actor="admin:root", reason="not the same")
    assert uuids(documents_for_person(survivor)) == {mine.uuid}
    assert uuids(documents_for_person(duplicate)) == {theirs.uuid}
    assert list(DocumentEntry.objects.order_by("pk").values()) == before


def test_keyset_paging_returns_every_document_once_newest_first(patient, source):
    # Several documents share a date, so the id must break ties for no row to be lost or repeated.
    dates = [f"2024-0{1 + i // 3}-0{1 + i % 2}T08:00:00+08:00" for i in range(11)]
    stored = {store(patient, source, date=d).uuid for d in dates}

    seen, cursor, pages = [], None, 0
    while True:
        page = documents_for_person(patient.person, limit=3, after=cursor)
        seen.extend(page.entries)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 4
    assert [e.uuid for e in seen if e.uuid in stored] == [e.uuid for e in seen] and len(seen) == 11
    assert {e.uuid for e in seen} == stored
    keys = [(e.date, e.pk) for e in seen]
    assert keys == sorted(keys, reverse=True)


def test_a_cursor_not_made_by_the_server_is_refused(patient):
    with pytest.raises(DocumentError, match="cursor"):
        documents_for_person(patient.person, after="not-a-cursor")


def test_filters_by_status_type_class_date_and_institution(patient, source):
    discharge = store(patient, source, loinc="18842-5", date="2024-01-10T10:00:00+08:00")
    lab = store(patient, source, loinc="11502-2", date="2024-02-10T10:00:00+08:00")
    other_source = factories.source_system()
    rx = store(patient, other_source, loinc="57833-6", date="2024-03-10T10:00:00+08:00")
    document_retire(entry=rx, actor="admin:root", reason="wrong patient")
    person = patient.person

    assert uuids(documents_for_person(person, status="current")) == {discharge.uuid, lab.uuid}
    assert uuids(documents_for_person(person, status=["entered-in-error"])) == {rx.uuid}
    assert uuids(documents_for_person(person, type=("http://loinc.org", "11502-2"))) == {lab.uuid}
    assert uuids(documents_for_person(person, type=(None, "18842-5"))) == {discharge.uuid}
    assert uuids(documents_for_person(person, document_class="prescription")) == {rx.uuid}
    assert uuids(documents_for_person(person, date_from=dt.date(2024, 2, 1), date_to=dt.date(2024, 2, 10))) == {
        lab.uuid
    }
    assert uuids(documents_for_person(person, author_institution=other_source.institution)) == {rx.uuid}


def test_reading_a_person_page_takes_a_constant_number_of_queries(patient, source, django_assert_num_queries):
    for _ in range(5):
        store(patient, source)
    with django_assert_num_queries(1):
        page = documents_for_person(patient.person, limit=10)
        assert [e.author_institution.name for e in page.entries]
