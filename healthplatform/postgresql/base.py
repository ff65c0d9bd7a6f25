"""Django's PostgreSQL backend, with psycopg's C loader for ``timestamptz``.

Django (5.2) loads every ``timestamptz`` through ``BaseTzLoader``, a Python subclass of psycopg's *pure-Python*
``TimestamptzLoader`` that parses the text and then replaces the zone: ~7 µs a value here, where psycopg's C
loader (psycopg-binary, which the platform installs) takes a fraction of that. A resource row carries three of
them; reading a person's record of 2,000 facts spent 40 ms of its 80 on dates alone (bench/viewer_speed.py).

Django sets every connection's session ``TimeZone`` to UTC when ``USE_TZ`` is on (``ensure_timezone``), and
the C loader gives its datetimes the session's zone (``datetime.timezone.utc`` for "UTC"), so it answers what
Django's loader answers. The C type can be neither subclassed nor given the ``timezone`` attribute Django's
``create_cursor`` compares, so ``create_cursor`` is Django's without that comparison. Where the database's
zone is not UTC (``DATABASES[...]["TIME_ZONE"]``) or the C implementation is missing, Django's own loader and
``create_cursor`` stay.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe
from psycopg import adapt

try:
    from psycopg_binary._psycopg import TimestamptzLoader as CTimestamptzLoader
except ImportError:  # pragma: no cover - psycopg-binary is a dependency
    CTimestamptzLoader = None


@lru_cache
def _adapters(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    fast = adapt.AdaptersMap(template)
    fast.register_loader("timestamptz", CTimestamptzLoader)
    return fast


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def _c_timestamps(self) -> bool:
        return CTimestamptzLoader is not None and self.timezone == dt.UTC

    def get_connection_params(self):
        params = super().get_connection_params()
        if self._c_timestamps and "context" in params:
            params["context"] = _adapters(params["context"])
        return params

    @async_unsafe
    def create_cursor(self, name=None):
        if not self._c_timestamps:
            return super().create_cursor(name)
        if not name:
            return self.connection.cursor()
        # Named (server-side) cursors as Django makes them (django/db/backends/postgresql/base.py, 5.2).
        if self.settings_dict["OPTIONS"].get("server_side_binding") is not True:
            return base.ServerSideCursor(
                self.connection, name=name, scrollable=False, withhold=self.connection.autocommit
            )
        return self.connection.cursor(name, scrollable=False, withhold=self.connection.autocommit)
