"""rows_insert_chain writes what the ORM would, in one statement on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mpi.inserts import Rows, rows_insert_chain
from mpi.models import Identifier, Identity, LinkEvent, MatchKey, Person

pytestmark = pytest.mark.django_db


def _chain(n: str):
    person = Person(name=f"王小明{n}", sex="male", phone="13800138000")
    identity = Identity(
        assigning_authority="HOSP-A",
        local_id=f"MRN-{n}",
        received={"name": "王小明"},
        profile={"hanzi": "王小明"},
        flags=[{"code": "x"}],
        link_kind=Identity.LinkKind.NEW,
        link_evidence={"score": 1.5},
        linked_by="test",
        linked_at="2026-11-01T08:00:00+08:00",
        name="王小明",
    )
    identifiers = [Identifier(kind="passport", value=f"E{n}1"), Identifier(kind="health_card", value=f"C{n}2")]
    keys = [MatchKey(key=k) for k in (1, -2, 2**62)]
    event = LinkEvent(kind=LinkEvent.Kind.REGISTER, actor="test", detail={"decision": "new"})
    return person, identity, identifiers, keys, event


def test_a_new_person_with_its_identity_identifiers_keys_and_history_is_one_statement():
    person, identity, identifiers, keys, event = _chain("1")
    with CaptureQueriesContext(connection) as queries:
        rows_insert_chain(
            [
                Rows("person", [person]),
                Rows("identity", [identity], {"person_id": "person"}),
                Rows("identifiers", identifiers, {"identity_id": "identity"}),
                Rows("keys", keys, {"identity_id": "identity"}),
                Rows("event", [event], {"identity_id": "identity", "person_id": "person"}),
            ]
        )
    if connection.vendor == "postgresql":
        assert len(queries) == 1
    stored = Identity.objects.get(pk=identity.pk)
    assert stored.person_id == person.pk == Person.objects.get(name="王小明1").pk
    assert (stored.received, stored.profile, stored.flags, stored.link_evidence) == (
        {"name": "王小明"},
        {"hanzi": "王小明"},
        [{"code": "x"}],
        {"score": 1.5},
    )
    assert stored.created_at is not None and stored.uuid == identity.uuid
    assert sorted(stored.identifiers.values_list("kind", "value", "current")) == [
        ("health_card", "C12", True),
        ("passport", "E11", True),
    ]
    assert all(i.recorded_at is not None for i in stored.identifiers.all())
    assert sorted(stored.match_keys.values_list("key", flat=True)) == [-2, 1, 2**62]
    logged = LinkEvent.objects.get(identity=stored)
    assert (logged.person_id, logged.detail, logged.at is not None) == (person.pk, {"decision": "new"}, True)
    assert not identity._state.adding and identity.identifiers.count() == 2


def test_an_identity_linked_to_an_existing_person_and_empty_groups():
    existing = Person.objects.create(name="王小明")
    _, identity, _, keys, _ = _chain("2")
    identity.person_id = existing.pk
    rows_insert_chain(
        [
            Rows("person", []),
            Rows("identity", [identity]),
            Rows("identifiers", [], {"identity_id": "identity"}),
            Rows("keys", keys, {"identity_id": "identity"}),
        ]
    )
    assert Identity.objects.get(pk=identity.pk).person_id == existing.pk
    assert MatchKey.objects.filter(identity_id=identity.pk).count() == 3
    assert not Identifier.objects.filter(identity_id=identity.pk).exists()


def test_group_names_are_plain_words():
    with pytest.raises(ValueError, match="lower-case words"):
        Rows('person"; DROP TABLE mpi_person; --', [])
    with pytest.raises(ValueError, match="lower-case words"):
        Rows("keys", [], {"identity_id": "identity)"})


def test_nothing_to_write_writes_nothing():
    with CaptureQueriesContext(connection) as queries:
        rows_insert_chain([Rows("person", []), Rows("keys", [], {"identity_id": "person"})])
    assert len(queries) == 0
