"""The exception handler of the FHIR views: every error leaves as an OperationOutcome.

DRF's own errors (authentication, content negotiation, parsing) keep their
status; a pydantic validation error from ``fhir.resources`` becomes a 400 that
names each offending element by its FHIRPath (taken from the error's ``loc``);
anything unexpected becomes a 500 OperationOutcome, logged with its traceback.
"""

from __future__ import annotations

import logging

import pydantic
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from healthplatform.fhirapi.outcome import FHIRError, Issue, operation_outcome
from healthplatform.ingest.validation import validation_issues
from healthplatform.unavailable import MESSAGE, RETRY_AFTER_SECONDS, is_unavailable, unavailable_logged

logger = logging.getLogger(__name__)


# DRF exception -> (FHIR issue type, message used instead of DRF's translated default, or None to keep DRF's).
_DRF_ISSUES: list[tuple[type[drf.APIException], str, str | None]] = [
    (
        drf.NotAuthenticated,
        "login",
        "authentication required: HTTP Basic with a registered source system's client id and secret, "
        "or a logged-in staff session",
    ),
    (drf.AuthenticationFailed, "login", None),
    (drf.PermissionDenied, "forbidden", None),
    (drf.NotAcceptable, "not-supported", None),
    (drf.UnsupportedMediaType, "not-supported", "Content-Type: a request body is FHIR JSON (application/fhir+json)"),
    (drf.MethodNotAllowed, "not-supported", "this HTTP method is not supported on this endpoint"),
    (drf.ParseError, "structure", None),
    (drf.NotFound, "not-found", None),
    (drf.Throttled, "throttled", None),
    (drf.ValidationError, "invalid", None),
]


def _detail_text(detail) -> str:
    """DRF's error detail (a string, or a list/dict of them for a serializer's errors) as one line."""
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_detail_text(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_detail_text(d) for d in detail)
    return str(detail)


def fhir_exception_handler(exc: Exception, context: dict) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, FHIRError):
        status, issues, headers = exc.status, exc.issues, dict(exc.headers)
    elif isinstance(exc, pydantic.ValidationError):
        status, issues = 400, validation_issues(exc.title.rsplit(".", 1)[-1], exc)
    elif isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        status, issues = 413, [Issue("too-costly", f"the request body is larger than {limit:,} bytes; split it")]
    elif is_unavailable(exc):
        unavailable_logged(exc, type(context.get("view")).__name__)
        status, issues = 503, [Issue("transient", MESSAGE)]
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif isinstance(exc, Http404):
        status, issues = 404, [Issue("not-found", "not found")]
    elif isinstance(exc, DjangoPermissionDenied):
        status, issues = 403, [Issue("forbidden", "forbidden")]
    elif isinstance(exc, drf.APIException):
        code, message = "processing", None
        for cls, issue_code, text in _DRF_ISSUES:
            if isinstance(exc, cls):
                code, message = issue_code, text
                break
        status = exc.status_code
        issues = [Issue(code, message or _detail_text(exc.detail))]
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
    else:
        view = context.get("view")
        logger.exception("unhandled error in FHIR view %s", type(view).__name__ if view else "?")
        status, issues = 500, [Issue("exception", "internal error; the platform's operators have the details")]
    set_rollback()
    return Response(operation_outcome(issues), status=status, headers=headers)
