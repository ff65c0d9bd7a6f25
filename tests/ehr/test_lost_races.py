"""What the write corridor counts as a lost race (``ehr.errors.lost_race``), whichever statement lost it."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from ehr.errors import lost_race
from registry.models import Institution
from tests.registry.factories import InstitutionFactory


@pytest.mark.django_db
def test_a_unique_violation_from_the_drivers_own_cursor_is_a_lost_race():
    # A COPY (ehr.bulk) runs on psycopg's cursor, below Django's error wrapping: its unique violation arrives as
    # psycopg's own exception, which an ``except IntegrityError`` never sees.
    if connection.vendor != "postgresql":
        pytest.skip("psycopg's own cursor is PostgreSQL's")
    taken = InstitutionFactory()
    table = Institution._meta.db_table
    with pytest.raises(Exception) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.cursor.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE id = %s", [taken.pk])  # noqa: S608
    assert not isinstance(raised.value, IntegrityError)
    assert lost_race(raised.value)


@pytest.mark.django_db
def test_a_unique_violation_through_the_orm_is_a_lost_race_and_a_plain_error_is_not():
    again = InstitutionFactory()
    again.pk = None
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        again.save()
    assert lost_race(raised.value)
    assert not lost_race(ValueError("not a database error"))
