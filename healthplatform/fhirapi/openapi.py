"""The OpenAPI description's FHIR-wide parts that no single view declares."""

from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import BasePermission

# Every FHIR endpoint may answer an error with an OperationOutcome (R4 http.html#Status): 4xx for what the
# client can fix (bad parameter, unknown id, wrong version, missing scope, oversized body), 5xx otherwise.
_OUTCOME = {
    "description": "OperationOutcome naming what is wrong (the element or parameter in issue.expression)",
    "content": {"application/fhir+json": {"schema": {"type": "object"}}},
}


def operation_outcomes(result, generator, request, public):
    """drf-spectacular postprocessing hook: declares the 4XX and 5XX OperationOutcome answers on every
    operation under /fhir/, so that clients and schemathesis know them."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/fhir/"):
            continue
        for method, operation in operations.items():
            if not (isinstance(operation, dict) and "responses" in operation):
                continue
            responses = operation["responses"]
            ok = responses.get("200") or responses.get("201")
            # R4 http.html: a create answers 201, or 200 when a conditional create or resend found the
            # resource; an update 200, or 201 when a conditional update created; a delete 204 (or 200).
            if method in ("post", "put") and ok:
                responses.setdefault("200", ok)
                responses.setdefault("201", ok)
            if method == "delete":
                responses.setdefault("204", {"description": "deleted"})
            responses.setdefault("4XX", _OUTCOME)
            responses.setdefault("5XX", _OUTCOME)
    return result


class SchemaReadable(BasePermission):
    """Who may read ``/api/schema/`` and ``/api/docs/``: anyone when ``API_SCHEMA_PUBLIC`` (the laptop's
    default), else an authenticated caller of the API (a source system or a staff session). The description
    lists every operation and parameter of a region's clinical API; a production region need not hand it to
    any passer-by."""

    def has_permission(self, request, view) -> bool:
        return settings.API_SCHEMA_PUBLIC or bool(request.user and request.user.is_authenticated)
