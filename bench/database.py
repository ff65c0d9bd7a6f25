"""The database a benchmark runs on: PostgreSQL named hp_bench*, created if missing, migrated (or, where the
benchmark allows it, the embedded SQLite of a temporary data folder)."""

from __future__ import annotations

import sys


def bench_database(*, sqlite: bool = False) -> None:
    """Refuses anything but a PostgreSQL database whose name starts with hp_bench (benchmarks empty it),
    creates it if it does not exist, and migrates it; ``sqlite`` also accepts the embedded database (the
    quality benchmarks, which measure no speed). Call after django.setup()."""
    from django.core.management import call_command
    from django.db import connection

    if sqlite and connection.vendor == "sqlite":
        call_command("migrate", verbosity=0)
        return
    if connection.vendor != "postgresql" or not connection.settings_dict["NAME"].startswith("hp_bench"):
        sys.exit("bench: set DATABASE_URL to a PostgreSQL database whose name starts with hp_bench (it is emptied)")
    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)
