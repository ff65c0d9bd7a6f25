"""Deployment checks (``manage.py check --deploy``): what the platform needs of its database server, and no
account of the local demo left in the database."""

from __future__ import annotations

from django.core.checks import Error, Warning, register
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


@register(deploy=True)
def no_demo_accounts(app_configs=None, **kwargs) -> list:
    """The local demo's administrator (its password in a file of the development run) must not survive into
    production; production already refuses its logins (healthplatform.demo_accounts), this says so."""
    from healthplatform.demo_accounts import DEMO_GROUP, demo_accounts_active

    try:
        names = list(demo_accounts_active().values_list("username", flat=True)[:10])
    except DatabaseError:
        return []
    if not names:
        return []
    return [
        Error(
            f"accounts of the local demo are active in this database: {', '.join(names)}",
            hint=f"Delete them (or deactivate them) in the admin: members of the group {DEMO_GROUP!r} cannot log "
            "in with PLATFORM_ENV=production. Create real administrators with createsuperuser.",
            id="healthplatform.E001",
        )
    ]
