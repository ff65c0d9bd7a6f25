"""DocumentReference and Binary endpoints (IHE MHD ITI-67 Find Document References, ITI-68 Retrieve
Document; ITI-65 Provide Document Bundle is a transaction to the FHIR base, see views/bundle.py)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from emr import selectors as documents
from emr.codes import DOCUMENT_CLASS_SYSTEM
from emr.errors import DocumentError
from emr.fhir import binary_resource, document_reference_resource
from healthplatform.content_security import document_response
from healthplatform.fhirapi import search
from healthplatform.fhirapi.authentication import caller_of
from healthplatform.fhirapi.media import FHIRJSONRenderer, _accepts_json
from healthplatform.fhirapi.outcome import FHIRError
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.resources.bundle import history as history_bundle
from healthplatform.fhirapi.resources.documents import search_dates
from healthplatform.fhirapi.views.base import FHIRView
from healthplatform.fhirapi.views.resources import received, shown
from healthplatform.ingest.apply import resource_create
from healthplatform.ingest.documents import document_error
from healthplatform.record import person_documents

_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}
ITI67_PARAMETERS = frozenset({"patient", "status", "type", "category", "date", "_cursor"})


def _document_url(request, entry) -> str:
    return request.build_absolute_uri(f"/fhir/DocumentReference/{entry.uuid}")


def _get(id: str):
    entry = documents.document_get(id)
    if entry is None:
        raise FHIRError.one(404, "not-found", f"DocumentReference/{id} is not known")
    return entry


class DocumentReferenceTypeView(FHIRView):
    """``GET /fhir/DocumentReference?patient=…`` (ITI-67) and ``POST`` of one DocumentReference with its
    content inline (``attachment.data``)."""

    fhir_resource_type = "DocumentReference"

    @extend_schema(
        operation_id="fhir_document_search",
        summary="Find Document References (MHD ITI-67)",
        parameters=[OpenApiParameter(p, str) for p in ("patient", "status", "type", "category", "date")]
        + [OpenApiParameter("_count", int)],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        query = request.query_params
        # date is read separately (ITI-67 sends it twice, ge and le); every other parameter takes one value.
        others = query.copy()
        others.pop("date", None)
        params = search.search_parameters(others, ITI67_PARAMETERS - {"date"}, strict=search.strict_handling(request))
        patient = params.get("patient")
        if not patient:
            raise FHIRError.one(
                400, "required", "patient: ITI-67 searches one patient's documents", expression="patient"
            )
        filters: dict = {"limit": search.count(query.get("_count")) or 1}
        if status := params.get("status"):
            filters["status"] = status.split(",")
        if value := params.get("type"):
            filters["type"] = search.token("type", value)
        if value := params.get("category"):
            system, code = search.token("category", value)
            if system not in (None, DOCUMENT_CLASS_SYSTEM):
                raise FHIRError.one(
                    400, "invalid", f"category: the classes are coded in {DOCUMENT_CLASS_SYSTEM}", expression="category"
                )
            filters["document_class"] = code
        low, high = search_dates(query.getlist("date"))
        filters.update(date_from=low, date_to=high)
        if cursor := params.get("_cursor"):
            filters["after"] = cursor
        try:
            page = person_documents(caller=caller_of(request), patient_id=patient.rsplit("/", 1)[-1], **filters)
        except DocumentError as exc:
            raise document_error(exc) from None
        entries = (
            [SearchEntry(document_reference_resource(e), _document_url(request, e)) for e in page.entries]
            if page
            else []
        )
        next_cursor = page.next_cursor if page else None
        # What was applied: under lenient handling an ignored parameter is left out of the links.
        applied = [(k, v) for k in query for v in query.getlist(k) if k not in params.ignored]
        path = request.build_absolute_uri(request.path)
        bundle = searchset(entries, self_url=f"{path}?{urlencode(applied)}" if applied else path)
        if next_cursor:
            kept = [(k, v) for k, v in applied if k != "_cursor"]
            url = f"{path}?{urlencode([*kept, ('_cursor', next_cursor)])}"
            bundle["link"].append({"relation": "next", "url": url})
        return Response(bundle)

    @extend_schema(
        operation_id="fhir_document_create",
        summary="Store a document (content inline)",
        request=OpenApiTypes.OBJECT,
        responses={(201, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def post(self, request):
        written = resource_create(
            caller=caller_of(request),
            resource_type="DocumentReference",
            body=request.data,
            if_none_exist=None,
            received=received(request),
        )
        entry = written.document
        body = document_reference_resource(entry) if shown(request, "DocumentReference") else None
        response = Response(body, status=201 if written.outcome == "created" else 200)
        response["Location"] = f"{_document_url(request, entry)}/_history/{entry.version_id}"
        response["ETag"] = f'W/"{entry.version_id}"'
        return response


class DocumentReferenceInstanceView(FHIRView):
    """``GET /fhir/DocumentReference/{id}``."""

    fhir_resource_type = "DocumentReference"

    @extend_schema(operation_id="fhir_document_read", summary="Read a DocumentReference", responses=_FHIR_OBJECT)
    def get(self, request, id):
        entry = _get(id)
        response = Response(document_reference_resource(entry))
        response["ETag"] = f'W/"{entry.version_id}"'
        return response


class DocumentReferenceHistoryView(FHIRView):
    """``GET /fhir/DocumentReference/{id}/_history``: every version of the DocumentReference, newest first
    (stored, then each status change the store made: superseded by a replacement, entered in error)."""

    fhir_resource_type = "DocumentReference"

    @extend_schema(
        operation_id="fhir_document_history",
        summary="History of a DocumentReference",
        parameters=[OpenApiParameter("_count", int), OpenApiParameter("_before_version", int)],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, id):
        entry = _get(id)
        count = search.count(request.query_params.get("_count"))
        versions = documents.document_versions(entry).order_by("-version_id")
        before = search.whole_number(request.query_params.get("_before_version") or "")
        if before is not None:  # like the archive's history: a value that is not a version number is ignored
            versions = versions.filter(version_id__lt=before)
        versions = list(versions[: count + 1])
        more, versions = len(versions) > count, versions[:count]
        url = _document_url(request, entry)
        entries = []
        for version in versions:
            # Stored by a POST; every later version is a change the store made (superseded, entered in error).
            method = "POST" if version.method == "create" else "PUT"
            entries.append(
                {
                    "fullUrl": url,
                    "resource": document_reference_resource(entry, version),
                    "request": {
                        "method": method,
                        "url": "DocumentReference" if method == "POST" else f"DocumentReference/{entry.uuid}",
                    },
                    "response": {
                        "status": "201" if method == "POST" else "200",
                        "etag": f'W/"{version.version_id}"',
                        "lastModified": version.recorded_at.isoformat(),
                    },
                }
            )
        last = versions[-1].version_id if more and versions else None
        bundle = history_bundle(request, entries, url, count=count, next_before=last)
        return Response(bundle)


class DocumentReferenceVersionView(FHIRView):
    """``GET /fhir/DocumentReference/{id}/_history/{vid}``: one version (vread)."""

    fhir_resource_type = "DocumentReference"

    @extend_schema(
        operation_id="fhir_document_vread",
        summary="Read one version of a DocumentReference",
        parameters=[OpenApiParameter("vid", int, OpenApiParameter.PATH)],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, id, vid):
        entry = _get(id)
        version = documents.document_version(entry, vid)
        if version is None:
            raise FHIRError.one(404, "not-found", f"DocumentReference/{id} has no version {vid}")
        response = Response(document_reference_resource(entry, version))
        response["ETag"] = f'W/"{version.version_id}"'
        return response


class _AnyNegotiation(BaseContentNegotiation):
    """ITI-68 serves the document's own bytes: any Accept is fine (FHIR JSON asks for the Binary resource)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class BinaryView(FHIRView):
    """``GET /fhir/Binary/{id}`` (ITI-68 Retrieve Document): the document's bytes with its MIME type, or the
    FHIR Binary resource when the client asks for FHIR JSON."""

    fhir_resource_type = "Binary"
    content_negotiation_class = _AnyNegotiation
    renderer_classes = [FHIRJSONRenderer]

    @extend_schema(
        operation_id="fhir_binary_read",
        summary="Retrieve Document (MHD ITI-68)",
        # The document's own bytes with its own MIME type (text/plain, application/pdf, ...), or the Binary
        # resource when the client's Accept asks for FHIR JSON.
        responses={(200, "*/*"): OpenApiTypes.BINARY, (200, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def get(self, request, id):
        entry = _get(id)
        accept = request.headers.get("Accept", "")
        if accept and _accepts_json(accept) and "*/*" not in accept:
            return Response(binary_resource(entry))
        handle, content_type, size = documents.document_content(entry)
        # The hospital's bytes, never a page of ours: inline only what runs nothing (healthplatform.content_security).
        response = document_response(handle, content_type, size, filename=f"{entry.uuid}")
        response["ETag"] = f'W/"{entry.version_id}"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, HttpResponseBase) and not isinstance(response, Response):
            return response
        return super().finalize_response(request, response, *args, **kwargs)
