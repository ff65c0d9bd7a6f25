"""One access log line per FHIR request, on the ``healthplatform.access`` logger.

Who (source system client id or username), method, path without the query
string, status, elapsed milliseconds, how many resources went out, and whose
records they were: the residents' golden Patient ids (``Person.uuid``) as the
audit of reads recorded them (``read_audit``; the first ``MAX_PERSONS`` and how
many in all). Never identifiers, names or bodies: search parameters live in the
query string, which is left out, and nothing of the response but a count is
read. The line is for operators; the audit (``healthplatform.audit``) is the
record of who read what.
"""

from __future__ import annotations

import logging

from healthplatform.fhirapi.authentication import client_name

logger = logging.getLogger("healthplatform.access")

# A path is what the client typed; keep a runaway one from flooding the log.
MAX_PATH = 200
# A search can answer hundreds of residents: the line names the first ones and counts them all.
MAX_PERSONS = 20


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


def persons_named(persons) -> str:
    """The golden Patient ids of the residents read, comma-separated: the first ``MAX_PERSONS``, then "+N" for
    the others; "-" for none."""
    if not persons:
        return "-"
    shown = ",".join(str(p) for p in persons[:MAX_PERSONS])
    more = len(persons) - MAX_PERSONS
    return f"{shown},+{more}" if more > 0 else shown


def access_log(request, response, elapsed_ms: float) -> None:
    # ``_user`` is set once DRF has authenticated; reading ``request.user`` here
    # would authenticate late (and could raise) for a request that failed early.
    user = getattr(request, "_user", None)
    client = client_name(user)
    count = resources_returned(getattr(response, "data", None))
    persons = list(getattr(response, "persons_read", ()))
    # As received: a POST [type]/_search is answered as a GET search (healthplatform.fhirapi.search_post).
    method, path = getattr(request, "fhir_received", None) or (request.method, request.path)
    path = path[:MAX_PATH]
    logger.info(
        "fhir client=%s method=%s path=%s status=%s ms=%.1f resources=%d persons=%d read=%s",
        client,
        method,
        path,
        response.status_code,
        elapsed_ms,
        count,
        len(persons),
        persons_named(persons),
        extra={
            "client": client,
            "method": method,
            "path": path,
            "status": response.status_code,
            "elapsed_ms": round(elapsed_ms, 1),
            "resources": count,
            "persons": len(persons),
            "persons_read": [str(p) for p in persons[:MAX_PERSONS]],
        },
    )
