"""The audit of reads as FHIR AuditEvents (IHE BALP): ``GET /fhir/AuditEvent?patient=…`` and
``GET /fhir/AuditEvent/{id}``, for the platform's staff only.

Who read a resident's record, from which institution and client, is the region's record, not one
institution's: a source system sees no AuditEvent, whatever its scopes (403), and a clinician reads "who has
viewed this record" on the resident's page in the viewer. Reading the audit is not itself recorded as a read of
the resident's record (it carries no clinical data and would make every audit read an access event of its own).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from healthplatform.audit.balp import audit_event
from healthplatform.audit.selectors import access_event_get, access_events
from healthplatform.fhirapi import search
from healthplatform.fhirapi.authentication import caller_of
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.permissions import HasFHIRScope, IsAttributable
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.views.base import FHIRView
from mpi.selectors import person_id_of_patient

_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}
AUDIT_PARAMETERS = frozenset({"patient", "_cursor"})


class IsStaff(BasePermission):
    """The platform's staff (an admin session): the only readers of the audit through the API."""

    message = (
        "AuditEvent: the audit of reads is read by the platform's staff only (a source system's scopes do not "
        "grant it); clinicians see who viewed a record in the viewer"
    )

    def has_permission(self, request, view) -> bool:
        return caller_of(request).is_staff


class AuditEventView(FHIRView):
    fhir_resource_type = "AuditEvent"
    permission_classes = [IsAttributable, HasFHIRScope, IsStaff]

    def base_url(self, request) -> str:
        return request.build_absolute_uri(reverse("fhirapi:base"))


class AuditEventSearchView(AuditEventView):
    """``GET /fhir/AuditEvent?patient=<golden or source Patient id>``: the reads of that resident's record (and of
    the records merged into theirs), newest first, in pages of ``_count`` with a ``next`` link."""

    @extend_schema(
        operation_id="fhir_audit_event_search",
        summary="Reads of a resident's record as AuditEvents (IHE BALP); staff only",
        parameters=[
            OpenApiParameter("patient", str, required=True, description="Patient/<id> or <id>, golden or source"),
            OpenApiParameter("_count", int),
            OpenApiParameter("_cursor", str, description="the page cursor of a next link"),
        ],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        params = search.search_parameters(
            request.query_params, AUDIT_PARAMETERS, strict=search.strict_handling(request)
        )
        patient = params.get("patient")
        if not patient:
            raise FHIRError.one(
                400, "required", "patient: the audit is searched one resident at a time", expression="patient"
            )
        count = search.count(params.get("_count"))
        before = None
        if (cursor := params.get("_cursor")) is not None:
            before = search.whole_number(cursor)
            if before is None:
                raise invalid_parameter("_cursor", "not a page link this server made")
        person_id = person_id_of_patient(patient.rsplit("/", 1)[-1])
        events = access_events(person_id, count=count + 1, before=before) if person_id is not None and count else []
        more, events = len(events) > count, events[:count]
        base = self.base_url(request)
        entries = [SearchEntry(audit_event(e, base_url=base), f"{base}AuditEvent/{e.pk}") for e in events]
        applied = [(k, v) for k, v in params.values.items() if k != "_format"]
        path = request.build_absolute_uri(request.path)
        bundle = searchset(entries, self_url=f"{path}?{urlencode(applied)}" if applied else path)
        if more and events:
            kept = [(k, v) for k, v in applied if k != "_cursor"]
            bundle["link"].append(
                {"relation": "next", "url": f"{path}?{urlencode([*kept, ('_cursor', events[-1].pk)])}"}
            )
        return Response(bundle)


class AuditEventReadView(AuditEventView):
    """``GET /fhir/AuditEvent/{id}``: one read of a resident's record."""

    @extend_schema(
        operation_id="fhir_audit_event_read", summary="Read an AuditEvent; staff only", responses=_FHIR_OBJECT
    )
    def get(self, request, id):
        pk = search.whole_number(id)
        event = access_event_get(pk) if pk is not None else None
        if event is None:
            raise FHIRError.one(404, "not-found", f"AuditEvent/{id} is not known")
        return Response(audit_event(event, base_url=self.base_url(request)))
