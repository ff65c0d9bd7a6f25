"""The base of every FHIR view: FHIR JSON in and out, attribution, OperationOutcome errors, the audit of reads
and the access log."""

from __future__ import annotations

import logging
import time

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from healthplatform.fhirapi.access_log import access_log
from healthplatform.fhirapi.authentication import (
    SourceSystemBasicAuthentication,
    SourceSystemBearerAuthentication,
    StaffSessionAuthentication,
)
from healthplatform.fhirapi.exceptions import fhir_exception_handler
from healthplatform.fhirapi.media import FHIR_JSON_CONTENT_TYPE, PARSERS, FHIRContentNegotiation, FHIRJSONRenderer
from healthplatform.fhirapi.outcome import FHIRError
from healthplatform.fhirapi.permissions import HasFHIRScope, IsAttributable
from healthplatform.fhirapi.read_audit import read_recorded

logger = logging.getLogger(__name__)


def _no_nul_in_query(request) -> None:
    """A search (or conditional) parameter carrying U+0000 is refused, naming it: FHIR strings exclude it (R4
    datatypes.html#string) and PostgreSQL cannot compare with it (it was a 500). Once, here, for every route."""
    for name, values in request.query_params.lists():
        if "\x00" in name or any("\x00" in v for v in values):
            where = name.replace("\x00", "") or "query"
            raise FHIRError.one(
                400, "invalid", f"{where}: a parameter may not contain the NUL character (U+0000)", expression=where
            )


class FHIRView(APIView):
    """A FHIR endpoint. Subclasses implement ``get``/``post`` by calling selectors and services."""

    renderer_classes = [FHIRJSONRenderer]
    parser_classes = PARSERS
    content_negotiation_class = FHIRContentNegotiation
    # Bearer first: its WWW-Authenticate challenge is the one a 401 carries (OAuth2 is the way in; Basic is legacy).
    authentication_classes = [
        SourceSystemBearerAuthentication,
        SourceSystemBasicAuthentication,
        StaffSessionAuthentication,
    ]
    permission_classes = [IsAttributable, HasFHIRScope]
    # No OPTIONS: DRF would answer it with its own (non-FHIR) metadata; FHIR's is CapabilityStatement (/metadata).
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]

    def get_exception_handler(self):
        return fhir_exception_handler

    def initial(self, request, *args, **kwargs):
        # Who is asking is settled before anything else (DRF negotiates content
        # first), so every answer, a 406 included, is attributed in the log.
        self.perform_authentication(request)
        self.check_permissions(request)
        # A request the middleware before routing refused (healthplatform.fhirapi.search_post), now attributed.
        if (refused := getattr(request, "fhir_refused", None)) is not None:
            raise refused
        _no_nul_in_query(request)
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response.content_type = FHIR_JSON_CONTENT_TYPE
        if response.status_code == 405:
            # A view that refuses a method it defines (DetectedIssue's POST, Patient's DELETE, PUT on a type
            # without criteria) would be listed by DRF's Allow: a 405's Allow never names the method refused
            # (RFC 9110 §15.5.6).
            refused = {request.method, "HEAD"} if request.method == "GET" else {request.method}
            response["Allow"] = ", ".join(m for m in self.allowed_methods if m not in refused)
        return response

    def dispatch(self, request, *args, **kwargs):
        started = time.perf_counter()
        response = self._audited(super().dispatch(request, *args, **kwargs))
        access_log(self.request, response, (time.perf_counter() - started) * 1000)
        return response

    def _audited(self, response):
        """The answer once its read is in the audit (``read_audit``); ``response.persons_read`` names whose
        records it carries, for the access log.

        A read is answered only once it is recorded: who read a resident's record is part of that record
        (attributable reads), so when the audit cannot be written the data does not go out and the client gets
        a 500 OperationOutcome instead — never the other way round.
        """
        try:
            response.persons_read = read_recorded(self.request, self, response)
        except Exception:
            logger.exception(
                "the audit could not record a read (%s %s): not answered", self.request.method, type(self).__name__
            )
            error = FHIRError.one(
                500, "exception", "the read could not be recorded in the audit, so it is not answered"
            )
            response = self.finalize_response(self.request, self.handle_exception(error), *self.args, **self.kwargs)
            response.persons_read = []
        return response


@extend_schema(exclude=True)
class UnknownEndpointView(FHIRView):
    """Anything under /fhir/ that no endpoint serves: 404 as an OperationOutcome, not an HTML page."""

    def _not_supported(self, request, *args, **kwargs):
        raise FHIRError.one(404, "not-supported", "this FHIR endpoint or resource type is not served (yet)")

    get = post = put = patch = delete = _not_supported


@extend_schema(exclude=True)
class NoTypeInteractionView(FHIRView):
    """The type-level URL of a type served only by id (``Binary``: documents come in as DocumentReference, ITI-65,
    and are read as ``Binary/{id}``): the route exists, so every method is 405 with an (empty) ``Allow`` (RFC 9110
    §15.5.6 and §10.2.1), not the 404 of a URL that names nothing."""

    def fhir_resource_type(self, request, **kwargs):
        return kwargs.get("type")
