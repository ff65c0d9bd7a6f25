"""Registrations of the same residents from two connections at once (PostgreSQL: real row and advisory locks)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections

from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.models import Identity
from mpi.services import RegistrationRequest, identity_register_batch

pytestmark = pytest.mark.django_db(transaction=True)


def residents(n: int) -> list[Demographics]:
    out = []
    for i in range(n):
        birth = dt.date(1960, 1, 1) + dt.timedelta(days=400 * i)
        rid = make_resident_id("440106", birth, 2 * i + 1) if i % 4 == 0 else None  # most without a number
        out.append(Demographics(name=f"周{'一二三四五六七八九十'[i % 10]}{'明华强军平'[i // 10 % 5]}",
                                sex="male", birth_date=birth, phone=f"1380000{i:04d}", resident_id=rid))  # fmt: skip
    return out


def test_two_overlapping_batches_at_once_link_every_resident_once():
    if connection.vendor != "postgresql":
        pytest.skip("row and advisory lock contention needs PostgreSQL (SQLite serialises all writers)")
    people = residents(40)
    # The same residents, registered by two hospitals, in opposite orders: the worst case for lock order.
    batch_a = [RegistrationRequest("HA", f"A{i}", d) for i, d in enumerate(people)]
    batch_b = [RegistrationRequest("HB", f"B{i}", d) for i, d in reversed(list(enumerate(people)))]
    errors = []

    def run(batch):
        try:
            identity_register_batch(batch, actor="test")
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(b,)) for b in (batch_a, batch_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert Identity.objects.count() == 80
    # Each resident's two registrations end up under one person, and residents stay apart.
    for i in range(40):
        pair = Identity.objects.filter(local_id__in=[f"A{i}", f"B{i}"]).values_list("person_id", flat=True)
        assert len(set(pair)) == 1, i
    assert Identity.objects.values("person").distinct().count() == 40
