"""Operational endpoints of the platform (not patient data)."""

import json

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views import defaults
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


def bad_request(request, exception=None):
    """Django's 400 (a request refused before any view ran, such as a Host header this platform does not
    serve): FHIR clients get it as an OperationOutcome, like every other FHIR error; the rest get Django's."""
    if not (request.path == "/fhir" or request.path.startswith("/fhir/")):
        return defaults.bad_request(request, exception)
    from healthplatform.fhirapi.media import FHIR_JSON
    from healthplatform.fhirapi.outcome import Issue, operation_outcome

    # The exception's text may echo request headers: the answer says what kind of problem it is, not that.
    issue = Issue("invalid", "the request is malformed (for example, its Host header is not one this server serves)")
    return HttpResponse(json.dumps(operation_outcome([issue])), status=400, content_type=FHIR_JSON)
