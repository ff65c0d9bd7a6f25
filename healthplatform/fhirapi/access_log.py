"""One access log line per FHIR request, on the ``healthplatform.access`` logger.

Who (source system client id or username), method, path without the query
string, status, elapsed milliseconds and how many resources went out. Never
identifiers, names or bodies: search parameters live in the query string,
which is left out, and nothing of the response but a count is read.
"""

from __future__ import annotations

import logging

from healthplatform.fhirapi.authentication import client_name

logger = logging.getLogger("healthplatform.access")

# A path is what the client typed; keep a runaway one from flooding the log.
MAX_PATH = 200


def resources_returned(data) -> int:
    """Resources in a response body: a Bundle's entries, 0 for an OperationOutcome, else 1."""
    if not isinstance(data, dict):
        return 0
    kind = data.get("resourceType")
    if kind == "Bundle":
        return len(data.get("entry") or ())
    if kind in (None, "OperationOutcome"):
        return 0
    return 1


def access_log(request, response, elapsed_ms: float) -> None:
    # ``_user`` is set once DRF has authenticated; reading ``request.user`` here
    # would authenticate late (and could raise) for a request that failed early.
    user = getattr(request, "_user", None)
    client = client_name(user)
    count = resources_returned(getattr(response, "data", None))
    logger.info(
        "fhir client=%s method=%s path=%s status=%s ms=%.1f resources=%d",
        client,
        request.method,
        request.path[:MAX_PATH],
        response.status_code,
        elapsed_ms,
        count,
        extra={
            "client": client,
            "method": request.method,
            "path": request.path[:MAX_PATH],
            "status": response.status_code,
            "elapsed_ms": round(elapsed_ms, 1),
            "resources": count,
        },
    )
