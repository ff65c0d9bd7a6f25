"""Deployment checks (``manage.py check --deploy``) for what the platform needs of its database server."""

from __future__ import annotations

from django.core.checks import Warning, register
from django.db import DatabaseError, connection


@register(deploy=True)
def autovacuum_on(app_configs=None, **kwargs) -> list:
    """The archive's lookups (the resend check, conditional creates, MPI candidates) are planned from table
    statistics; with autovacuum off nothing refreshes them as the tables grow, and the write path slows as
    the archive fills (measured with bench/fhir_speed.py on such a server)."""
    if connection.vendor != "postgresql":
        return []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            on = cursor.fetchone()[0] == "on"
    except DatabaseError:
        return []  # an unreachable database is reported by the checks that need it
    if on:
        return []
    return [
        Warning(
            "autovacuum is off on the PostgreSQL server",
            hint="Turn it on (autovacuum = on), or run VACUUM ANALYZE on a schedule: without fresh statistics "
            "the archive's write path slows as its tables grow.",
            id="healthplatform.W001",
        )
    ]
