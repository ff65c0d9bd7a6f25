"""Operational endpoints of the platform (not patient data)."""

from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from healthplatform.health import platform_health


@require_GET
def healthz(request):
    """Liveness and database check for load balancers; 503 when the database does not answer."""
    try:
        report = platform_health()
    except DatabaseError as exc:
        return JsonResponse({"status": "error", "database": exc.__class__.__name__}, status=503)
    # Counts only; host and database name stay internal.
    return JsonResponse({"status": report["status"], "registry": report["registry"]})
