"""The PostgreSQL backend (healthplatform/postgresql): timestamps load through psycopg's C loader and come back
as Django's own loader gives them — aware, in UTC, to the microsecond — on plain and server-side cursors."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the backend is PostgreSQL's"),
]

MOMENTS = [
    dt.datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),  # Beijing: 00:00 UTC
]


def test_the_c_loader_is_in_use():
    from psycopg_binary._psycopg import TimestamptzLoader

    with connection.cursor() as cursor:
        assert cursor.cursor.adapters.get_loader(1184, 0) is TimestamptzLoader


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_timestamp_comes_back_aware_in_utc_and_exact(moment):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz", [moment])
        (loaded,) = cursor.fetchone()
    assert loaded == moment
    assert loaded.tzinfo is dt.UTC


def test_a_server_side_cursor_loads_the_same():
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("t1", last_login=MOMENTS[0])
    (user,) = list(get_user_model().objects.filter(username="t1").iterator(chunk_size=10))
    assert user.last_login == MOMENTS[0] and user.last_login.tzinfo is dt.UTC
