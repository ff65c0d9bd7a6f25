"""Platform health: what an operator (or a load balancer) asks first when something is wrong."""

from __future__ import annotations

import os
import socket

from django.conf import settings
from django.db import connection

from registry.selectors import registry_summary


def platform_health() -> dict:
    """Checks the database with a real round trip and reports what this process sees.

    Called by ``/healthz`` in the web process and by the ``health_check`` task
    in a worker, so the two answers can be compared: same database, same data.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {
        "status": "ok",
        "host": socket.gethostname(),
        "process": os.getpid(),
        "database": {"vendor": connection.vendor, "name": str(connection.settings_dict["NAME"])},
        "tasks": "in-process" if settings.CELERY_TASK_ALWAYS_EAGER else "broker",
        "registry": registry_summary(),
    }
