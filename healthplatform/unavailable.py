"""A request whose database connection is lost or refused is answered 503 with ``Retry-After``, never 500.

A connection killed mid-write (a PostgreSQL restart or failover, an operator's ``pg_terminate_backend``, a
proxy's idle timeout), a server that refuses connections, a statement cancelled by ``statement_timeout``:
the request's transaction is rolled back with the connection, so nothing of it is stored, and the same request
sent again a few seconds later is the right thing for the client to do (RFC 9110 §15.6.4). A 500 would say the
server failed at this request for good. Django's and psycopg's own classes alike: the archive's COPY writes run
on psycopg's cursor directly (``ehr.bulk``).

The FHIR API's exception handler answers these as an OperationOutcome (``healthplatform.fhirapi.exceptions``);
this middleware answers every other view's (the viewer, the admin, CDS Hooks, ``/hl7v2``).
"""

from __future__ import annotations

import logging

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse

logger = logging.getLogger(__name__)

UNAVAILABLE = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# The SQLSTATE classes of a refusal that passes (PostgreSQL Appendix A): connection exception, transaction
# rollback (deadlock, serialization), insufficient resources, object not in prerequisite state (lock not
# available), operator intervention (shutdown, cancel, statement timeout).
_TRANSIENT_CLASSES = ("08", "40", "53", "55", "57")
# SQLite's transient refusals (its OperationalError also says "no such table", which is a fault, not a wait).
_SQLITE_TRANSIENT = ("database is locked", "disk I/O error", "unable to open database")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or refused for now (send again), not that the
    statement is wrong: a lost connection (no SQLSTATE: the client saw it), a transient SQLSTATE class, an
    interface error (a closed connection), SQLite's lock."""
    if not isinstance(exc, UNAVAILABLE):
        return False
    cause = exc.__cause__ if isinstance(exc.__cause__, BaseException) else exc
    if isinstance(cause, (InterfaceError, psycopg.InterfaceError)):
        return True
    if isinstance(cause, psycopg.Error):
        sqlstate = cause.sqlstate
        return sqlstate is None or sqlstate[:2] in _TRANSIENT_CLASSES
    return any(text in str(cause) for text in _SQLITE_TRANSIENT)


RETRY_AFTER_SECONDS = 5
MESSAGE = (
    "the database is unavailable or the request's connection to it was lost; nothing of this request was stored: "
    "send it again"
)


def unavailable_logged(exc: BaseException, where: str) -> None:
    """The class and SQLSTATE only: a driver's message may quote the statement's data."""
    cause = exc.__cause__ or exc
    logger.warning(
        "database unavailable in %s: %s (SQLSTATE %s); answered 503",
        where,
        type(cause).__name__,
        getattr(cause, "sqlstate", None) or "-",
    )


class DatabaseUnavailableMiddleware:
    """``process_exception``: a lost or refused database connection becomes a 503 with ``Retry-After``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_unavailable(exception):
            return None
        unavailable_logged(exception, request.path[:200])
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
