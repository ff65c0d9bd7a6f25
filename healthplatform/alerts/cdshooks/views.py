"""HTTP of the CDS services: ``GET /cds-services`` (discovery), ``POST /cds-services/{id}`` (a hook call) and
``POST /cds-services/{id}/feedback``.

Callers authenticate as on the FHIR API (``healthplatform.fhirapi.authentication``: an OAuth2 bearer token from
``/oauth/token``, HTTP Basic for legacy clients, a staff session); discovery needs none (it lists services, no
one's data); a hook call and its feedback need scopes that read every type the rules read (403 otherwise). Every
answer is JSON; an error is ``{"error": "..."}`` with its status (the specification defines
only the codes). Each hook call is a read of the resident's record, recorded in the audit (door ``cds-hooks``).
"""

from __future__ import annotations

import logging
import time

import orjson
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions as drf
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from healthplatform.alerts.cdshooks import hooks
from healthplatform.alerts.cdshooks.feedback import feedback_parse, feedback_record
from healthplatform.audit.services import reads_record
from healthplatform.client_address import client_address
from healthplatform.fhirapi.authentication import (
    SourceSystemBasicAuthentication,
    SourceSystemBearerAuthentication,
    StaffSessionAuthentication,
    caller_of,
)
from healthplatform.fhirapi.permissions import IsAttributable

logger = logging.getLogger("healthplatform.access")
MAX_DEPTH = 64
_JSON = "application/json"
# The OpenAPI description (/api/schema/): JSON objects, shaped as CDS Hooks 2.0 says (its own discovery is
# GET /cds-services); an error is {"error": "..."}.
_ERRORS = {(status, _JSON): OpenApiTypes.OBJECT for status in (400, 401, 403, 404, 413, 429)}
_SERVICE_ID = OpenApiParameter(
    "service_id", str, OpenApiParameter.PATH, enum=list(hooks.SERVICES), description="a CDS service id"
)


def _posted(operation_id: str, summary: str):
    """The OpenAPI description of a POST to a service: a JSON object in, a JSON object or an error out."""
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        tags=["cds-hooks"],
        parameters=[_SERVICE_ID],
        request={_JSON: OpenApiTypes.OBJECT},
        responses={(200, _JSON): OpenApiTypes.OBJECT, **_ERRORS},
    )


class _JSONOnly(BaseContentNegotiation):
    """JSON whatever the Accept header says: a CDS client gets the specification's JSON or nothing."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return Response({"error": message}, status=status, headers=headers)


def cds_exception_handler(exc, context):
    """Every refusal as ``{"error": ...}``; authentication failures keep their ``WWW-Authenticate`` challenge."""
    if isinstance(exc, hooks.HookError):
        return _error(exc.status, exc.message)
    if isinstance(exc, RequestDataTooBig):
        return _error(413, "the request body is too large")
    if isinstance(exc, drf.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if isinstance(exc, drf.NotAuthenticated):
            detail = "authentication required: an OAuth2 bearer token (/oauth/token) or HTTP Basic of a source system"
        set_rollback()
        return _error(exc.status_code, detail, headers)
    return None


def _json_body(request):
    """The request body as JSON (400 when it is not), without NUL characters (a text column cannot hold them)."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise hooks.bad("the request body is not JSON") from None
    stack = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise hooks.bad("the request body is nested too deeply")
        if isinstance(node, str):
            if "\x00" in node:
                raise hooks.bad("the request body has a NUL character in a string")
        elif isinstance(node, dict):
            stack.extend((k, depth + 1) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return body


def _service(service_id: str) -> hooks.Service:
    service = hooks.SERVICES.get(service_id)
    if service is None:
        raise hooks.HookError(404, f"no CDS service {service_id[:80]!r} here: see GET /cds-services")
    return service


class CDSView(APIView):
    renderer_classes = [JSONRenderer]
    parser_classes = []  # the body is read as JSON here (_json_body), whatever its Content-Type
    content_negotiation_class = _JSONOnly
    # Bearer first: its challenge is the one a 401 carries, as on the FHIR API.
    authentication_classes = [
        SourceSystemBearerAuthentication,
        SourceSystemBasicAuthentication,
        StaffSessionAuthentication,
    ]
    permission_classes = [IsAttributable]
    http_method_names = ["get", "post", "head"]

    def get_exception_handler(self):
        return cds_exception_handler

    def initial(self, request, *args, **kwargs):
        # Who asks is settled first, so that an unauthenticated request is a 401 whatever else is wrong with it.
        self.perform_authentication(request)
        self.check_permissions(request)
        super().initial(request, *args, **kwargs)

    @staticmethod
    def reads_the_rules_facts(caller) -> None:
        """403 unless ``caller`` may read every type the rules read: a hook call's cards rest on them (fewer
        alerts than the record holds would read as "nothing to warn about"), and feedback on those cards
        silences them for the caller's institution — neither is for a token that could not get the cards."""
        missing = [t for t in hooks.RULE_TYPES if not caller.may_read(t)]
        if missing:
            raise hooks.HookError(
                403,
                "the alerts read the record's " + ", ".join(missing) + ": the token's scopes (and the source "
                "system's allow-list) must grant reading them (system/*.read)",
            )

    def dispatch(self, request, *args, **kwargs):
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        # The access log line: who, what, how it went; never the patient or the cards' text.
        user = getattr(self.request, "_user", None)
        logger.info(
            "cds-hooks client=%s method=%s path=%s status=%s ms=%.1f cards=%s",
            user.get_username() if user is not None and user.is_authenticated else "-",
            request.method,
            request.path[:200],
            response.status_code,
            (time.perf_counter() - started) * 1000,
            len((getattr(response, "data", None) or {}).get("cards", ()))
            if isinstance(getattr(response, "data", None), dict)
            else 0,
        )
        return response


class DiscoveryView(CDSView):
    """``GET /cds-services``: the services (§ "Discovery")."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="cds_discovery",
        summary="CDS Hooks discovery",
        tags=["cds-hooks"],
        responses={(200, _JSON): OpenApiTypes.OBJECT},
    )
    def get(self, request):
        return Response(hooks.discovery())


class ServiceView(CDSView):
    """``POST /cds-services/{id}``: a hook call, answered with cards."""

    @_posted("cds_service_call", "Call a CDS service (patient-view, order-select, order-sign)")
    def post(self, request, service_id):
        service = _service(service_id)
        caller = caller_of(request)
        self.reads_the_rules_facts(caller)
        call = hooks.call_parse(service, _json_body(request))
        person = hooks.resident(caller, call)
        answer = hooks.answer(request, caller, call, person, now=timezone.now())
        reads_record(
            caller=caller,
            person_ids=[person.person_id],
            door="cds-hooks",
            what=f"CDS Hooks {service.hook}",
            client_address=client_address(request),
        )
        return Response(answer)


class FeedbackView(CDSView):
    """``POST /cds-services/{id}/feedback``: what the clinician did with the cards (§ "Feedback")."""

    @_posted("cds_feedback", "Feedback on a CDS service's cards")
    def post(self, request, service_id):
        _service(service_id)
        caller = caller_of(request)
        self.reads_the_rules_facts(caller)
        items = feedback_parse(_json_body(request))
        return Response({"recorded": feedback_record(caller=caller, items=items)})


@extend_schema(exclude=True)
class UnknownView(CDSView):
    """Anything else under ``/cds-services``: 404 in JSON, never an HTML page."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def _unknown(self, request, *args, **kwargs):
        raise hooks.HookError(404, "not a CDS Hooks endpoint: see GET /cds-services")

    get = post = _unknown
