"""The RESTful interactions on the archive's resource types (R4 http.html): read, vread, update, delete,
history, create, search — one set of views for every type, so every type behaves the same.

Versions travel as weak ETags (``W/"3"``); ``If-Match`` guards update and delete, ``If-None-Exist``
makes a create conditional, ``PUT Type?criteria`` is a conditional update.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from ehr import selectors as archive
from ehr.errors import ResourceError
from ehr.indexing import CLINICAL_TYPES
from ehr.models import Resource
from healthplatform.fhirapi import search
from healthplatform.fhirapi.authentication import caller_of
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.resources.bundle import history as history_bundle
from healthplatform.fhirapi.resources.clinical import rendered
from healthplatform.fhirapi.views.base import FHIRView
from healthplatform.fhirapi.views.smart import token_endpoint
from healthplatform.ingest.apply import Written, resource_create, resource_delete, resource_update
from healthplatform.ingest.entries import Received
from mpi.selectors import identity_ids_of_patient

_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}
_TYPE = OpenApiParameter(
    "type", str, OpenApiParameter.PATH, enum=list(CLINICAL_TYPES), description="a clinical resource type"
)
# History and vread serve source Patients too (urls.ARCHIVED).
_ARCHIVED_TYPE = OpenApiParameter(
    "type", str, OpenApiParameter.PATH, enum=["Patient", *CLINICAL_TYPES], description="an archived resource type"
)
# FHIR ids (R4 datatypes.html#id); urls.ID routes nothing else here.
_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, pattern=r"^[A-Za-z0-9\-.]{1,64}$")
_SEARCH = [
    OpenApiParameter("patient", str, description="Patient/<id> or <id>: every identity of that person"),
    OpenApiParameter("_id", str),
    OpenApiParameter("_lastUpdated", str, description="a FHIR date, optionally prefixed (eq, ge, lt, ...)"),
    OpenApiParameter("_count", int),
    OpenApiParameter("_sort", str),
    OpenApiParameter("_summary", str, enum=["count"]),
    OpenApiParameter("_cursor", str, description="the page cursor of a next link"),
]


def etag(version: int) -> str:
    return f'W/"{version}"'


def if_match_version(request) -> int | None:
    """The version an ``If-Match: W/"3"`` header names (None without the header)."""
    value = request.headers.get("If-Match")
    if not value:
        return None
    version = search.whole_number(value.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise FHIRError.one(400, "invalid", f'If-Match: expected W/"<versionId>", got {value[:40]!r}')
    return version


def resource_url(request, resource: Resource, *, version: bool = False) -> str:
    url = request.build_absolute_uri(f"{reverse('fhirapi:base')}{resource.resource_type}/{resource.fhir_id}")
    return f"{url}/_history/{resource.version_id}" if version else url


def with_version_headers(response: Response, resource: Resource) -> Response:
    response["ETag"] = etag(resource.version_id)
    response["Last-Modified"] = http_date(resource.last_updated.timestamp())
    return response


def received(request) -> Received:
    """The request as received, for the provenance of what it writes: its body as text in the charset it
    declared, as the parser read it (kept as bytes, a UTF-16 body was stored with its NUL bytes: a 500)."""
    charset = request.content_params.get("charset") or "utf-8"
    try:
        body = request.body.decode(charset, errors="replace")
    except LookupError:  # the parser read it as UTF-8 too
        body = request.body.decode("utf-8", errors="replace")
    return Received(request_line=f"{request.method} {request.path}", body=body)


def shown(request, resource_type: str) -> bool:
    """Whether a write's answer carries the resource: not under ``Prefer: return=minimal``, and never a type
    the caller's scopes do not let it read (scopes limit what is returned, not only what is asked)."""
    return "return=minimal" not in request.headers.get("Prefer", "") and caller_of(request).may_read(resource_type)


def write_response(request, written: Written) -> Response:
    """The answer to a create or update: the resource (or nothing, see ``shown``) with its version headers;
    201 and Location when it was created."""
    resource = written.resource
    status = 201 if written.outcome == "created" else 200
    response = Response(rendered(resource) if shown(request, resource.resource_type) else None, status=status)
    if written.outcome == "created":
        response["Location"] = resource_url(request, resource, version=True)
    return with_version_headers(response, resource)


def _body(request) -> dict:
    data = request.data
    if not isinstance(data, dict) or not data:
        raise FHIRError.one(400, "structure", "the request body must be a FHIR resource (a JSON object)")
    return data


def _get(resource_type: str, fhir_id: str) -> Resource:
    resource = archive.resource_get(resource_type, fhir_id)
    if resource is None:
        raise FHIRError.one(404, "not-found", f"{resource_type}/{fhir_id} is not known")
    return resource


def _search_pairs(request) -> list[tuple[str, str]]:
    return [(name, value) for name in request.query_params for value in request.query_params.getlist(name) if value]


class ArchiveView(FHIRView):
    """A view of one archived type named in the URL: the scope check reads the type from there."""

    def fhir_resource_type(self, request, **kwargs):
        return kwargs.get("type")


class ResourceTypeView(ArchiveView):
    """``GET /fhir/{type}?…`` (search) and ``POST /fhir/{type}`` (create, conditional with If-None-Exist)."""

    @extend_schema(
        operation_id="fhir_type_search",
        summary="Search a resource type",
        parameters=[_TYPE, *_SEARCH],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, type):
        return search_response(request, type, _search_pairs(request))

    @extend_schema(
        operation_id="fhir_type_create",
        summary="Create a resource",
        parameters=[_TYPE],
        request=OpenApiTypes.OBJECT,
        responses={(201, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def post(self, request, type):
        written = resource_create(
            caller=caller_of(request),
            resource_type=type,
            body=_body(request),
            if_none_exist=request.headers.get("If-None-Exist"),
            received=received(request),
        )
        return write_response(request, written)

    @extend_schema(exclude=True)
    def put(self, request, type):
        """Conditional update: ``PUT /fhir/{type}?criteria`` (R4 http.html#cond-update)."""
        pairs = _search_pairs(request)
        if not pairs:
            raise FHIRError.one(405, "not-supported", "PUT on a type needs search criteria (conditional update)")
        written = resource_update(
            caller=caller_of(request),
            resource_type=type,
            body=_body(request),
            criteria=urlencode(pairs),
            if_match=if_match_version(request),
            received=received(request),
        )
        return write_response(request, written)


class ResourceInstanceView(ArchiveView):
    """``GET``/``PUT``/``DELETE /fhir/{type}/{id}``: read, update, logical delete."""

    @extend_schema(operation_id="fhir_read", summary="Read a resource", parameters=[_TYPE, _ID], responses=_FHIR_OBJECT)
    def get(self, request, type, id):
        resource = _get(type, id)
        if resource.deleted:
            raise FHIRError.one(410, "deleted", f"{type}/{id} was deleted (version {resource.version_id})")
        return with_version_headers(Response(rendered(resource)), resource)

    @extend_schema(
        operation_id="fhir_update",
        summary="Update a resource",
        parameters=[_TYPE, _ID],
        request=OpenApiTypes.OBJECT,
        responses=_FHIR_OBJECT,
    )
    def put(self, request, type, id):
        written = resource_update(
            caller=caller_of(request),
            resource_type=type,
            body=_body(request),
            fhir_id=id,
            if_match=if_match_version(request),
            received=received(request),
        )
        return write_response(request, written)

    @extend_schema(
        operation_id="fhir_delete",
        summary="Delete a resource (logical)",
        parameters=[_TYPE, _ID],
        responses=_FHIR_OBJECT,
    )
    def delete(self, request, type, id):
        written = resource_delete(
            caller=caller_of(request),
            resource_type=type,
            fhir_id=id,
            if_match=if_match_version(request),
            received=received(request),
        )
        response = Response(None, status=204 if written.outcome != "unchanged" else 200)
        response["ETag"] = etag(written.resource.version_id)
        return response


class ResourceHistoryView(ArchiveView):
    """``GET /fhir/{type}/{id}/_history``: every version, newest first (a history Bundle)."""

    @extend_schema(
        operation_id="fhir_history",
        summary="History of a resource",
        parameters=[_ARCHIVED_TYPE, _ID, OpenApiParameter("_count", int), OpenApiParameter("_before_version", int)],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, type, id):
        resource = _get(type, id)
        count = search.count(request.query_params.get("_count"))
        before = request.query_params.get("_before_version")
        versions = archive.resource_history(
            resource, count=count + 1, before=search.whole_number(before) if before else None
        )
        more, versions = len(versions) > count, versions[:count]
        url = resource_url(request, resource)
        entries = []
        for v in versions:
            method = {"create": "POST", "update": "PUT", "delete": "DELETE"}[v.method]
            entry = {
                "fullUrl": url,
                "request": {"method": method, "url": f"{type}/{id}" if method != "POST" else type},
                "response": {
                    "status": "201" if method == "POST" else "200",
                    "etag": etag(v.version_id),
                    "lastModified": v.last_updated.isoformat(),
                },
            }
            if v.method != "delete":
                entry["resource"] = rendered(resource, body=v.body)
            entries.append(entry)
        last = versions[-1].version_id if more and versions else None
        bundle = history_bundle(request, entries, url, count=count, next_before=last)
        return Response(bundle)


class ResourceVersionView(ArchiveView):
    """``GET /fhir/{type}/{id}/_history/{vid}``: one version (vread)."""

    @extend_schema(
        operation_id="fhir_vread",
        summary="Read one version of a resource",
        parameters=[_ARCHIVED_TYPE, _ID, OpenApiParameter("vid", int, OpenApiParameter.PATH)],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, type, id, vid):
        resource = _get(type, id)
        version = archive.resource_version(resource, int(vid))
        if version is None:
            raise FHIRError.one(404, "not-found", f"{type}/{id} has no version {vid}")
        if version.method == "delete":
            raise FHIRError.one(410, "deleted", f"version {vid} of {type}/{id} is its deletion")
        response = Response(rendered(resource, body=version.body))
        response["ETag"] = etag(version.version_id)
        response["Last-Modified"] = http_date(version.last_updated.timestamp())
        return response


def _includes_authorise(caller, query) -> None:
    """An ``_include`` of a named target type or a ``_revinclude`` of a source type the token may not read
    is refused like the search of that type itself (403); an unnamed target is left out by the search."""
    asked = [("_include", target) for _, _, target in query.includes if target]
    asked += [("_revinclude", source) for source, _ in query.revincludes]
    for name, resource_type in asked:
        if not caller.may_read(resource_type):
            raise FHIRError.one(
                403,
                "forbidden",
                f"{name}: the access token's scopes do not allow read of {resource_type}: it needs "
                f"system/{resource_type}.read (or system/*.read)",
                expression=name,
            )


def search_response(request, resource_type: str, pairs: list[tuple[str, str]]) -> Response:
    """A searchset of one page, with a ``next`` link carrying the keyset cursor.

    A parameter this server does not support is refused (400, naming it), as is a modifier or chain it does
    not support: ignoring it would widen the result (``Observation?patient.identifier=…`` answering every
    patient's results). Under ``Prefer: handling=lenient`` it is ignored instead, said so in an
    OperationOutcome entry, and left out of the self link (R4 search.html#errors).
    """
    for name, value in pairs:
        if name == "_count":
            # Checked here as well as in the archive, whose check lets "²" through to int() (a 500).
            search.count(value)
    caller = caller_of(request)
    try:
        query = archive.query_parse(
            resource_type, pairs, resolve_patient=identity_ids_of_patient, strict=search.strict_handling(request)
        )
        _includes_authorise(caller, query)
        query.include_types = caller.readable(archive.SPECS)
        page = archive.resources_search(query, with_total=request.query_params.get("_total") == "accurate")
    except ResourceError as exc:
        raise FHIRError.one(exc.status, exc.code, exc.message, expression=exc.expression) from None
    applied = [(k, v) for k, v in pairs if k not in query.ignored]
    path = request.build_absolute_uri(request.path)
    self_url = f"{path}?{urlencode(applied)}" if applied else path
    if query.summary_count:
        return Response(searchset([], self_url=self_url, total=page.total))
    entries = [SearchEntry(rendered(r), resource_url(request, r)) for r in page.matches]
    entries += [SearchEntry(rendered(r), resource_url(request, r), mode="include") for r in page.included]
    bundle = searchset(entries, self_url=self_url, total=page.total)
    if page.next_cursor:
        kept = [(k, v) for k, v in applied if k != "_cursor"]
        bundle["link"].append(
            {"relation": "next", "url": f"{path}?{urlencode([*kept, ('_cursor', page.next_cursor)])}"}
        )
    if query.ignored:
        # Lenient handling: say which parameters were not applied (R4 search.html#errors).
        bundle.setdefault("entry", []).append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-supported",
                            "diagnostics": f"{name}: ignored",
                            "details": {"text": f"{name}: not a supported search parameter; ignored"},
                        }
                        for name in query.ignored
                    ],
                },
                "search": {"mode": "outcome"},
            }
        )
    return Response(bundle)


# --- Patient: source Patients are MPI identities; the golden Patient is the person ------------------------

from healthplatform.fhirapi.views.patient import PatientReadView, PatientSearchView  # noqa: E402


class PatientTypeView(PatientSearchView):
    """``GET /fhir/Patient?…`` (PDQm search over persons) and ``POST /fhir/Patient`` (a source system's Patient:
    its MPI identity, registered and linked; a resend of the same MRN updates it — create is conditional on
    the MRN by nature)."""

    @extend_schema(
        operation_id="fhir_patient_create",
        summary="Create (register) a source Patient",
        request=OpenApiTypes.OBJECT,
        responses={(201, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def post(self, request):
        return ResourceTypeView.post(self, request, "Patient")

    @extend_schema(exclude=True)
    def put(self, request):
        return ResourceTypeView.put(self, request, "Patient")


class PatientInstanceView(PatientReadView):
    """``GET /fhir/Patient/{id}``: a source Patient (an identity) or a golden Patient (a person);
    ``PUT``: update a source Patient (re-registered with the MPI)."""

    @extend_schema(
        operation_id="fhir_patient_read",
        summary="Read a Patient (a source Patient, or the golden record of a person)",
        parameters=[_ID],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, id):
        from healthplatform.fhirapi.resources.clinical import identity_patient
        from mpi.selectors import identity_by_uuid

        identity = identity_by_uuid(id)
        if identity is None:
            return super().get(request, id)
        stored = archive.resource_get("Patient", id)
        if stored is not None:
            return with_version_headers(Response(rendered(stored)), stored)
        return Response(identity_patient(identity))

    @extend_schema(
        operation_id="fhir_patient_update",
        summary="Update a source Patient",
        request=OpenApiTypes.OBJECT,
        responses=_FHIR_OBJECT,
    )
    def put(self, request, id):
        return ResourceInstanceView.put(self, request, "Patient", id)


class PatientEverythingView(FHIRView):
    """``GET /fhir/Patient/{id}/$everything`` (R4 patient-operation-everything): the whole person across
    institutions — the golden Patient, every source Patient, and every fact of every linked identity — in
    pages of ``_count`` with a ``next`` link. Works on a source Patient id and on the golden one."""

    fhir_resource_type = "Patient"

    @extend_schema(
        operation_id="fhir_patient_everything",
        summary="Everything about a person ($everything)",
        parameters=[_ID, OpenApiParameter("_count", int), OpenApiParameter("_cursor", str)],
        responses=_FHIR_OBJECT,
    )
    def get(self, request, id):
        from emr.fhir import document_reference_resource
        from healthplatform.fhirapi.resources.clinical import identity_patient
        from healthplatform.fhirapi.resources.patient import patient_resource
        from healthplatform.record import person_record

        count = archive.DEFAULT_COUNT
        if raw_count := request.query_params.get("_count"):
            asked = search.whole_number(raw_count)
            if asked is None:
                raise invalid_parameter("_count", "expected a non-negative integer")
            count = min(asked, archive.MAX_COUNT) or 1
        cursor = request.query_params.get("_cursor")
        after = search.whole_number(cursor) if cursor is not None else None
        if cursor is not None and after is None:
            raise FHIRError.one(400, "invalid", "_cursor: not a page link this server made", expression="_cursor")
        page = person_record(caller=caller_of(request), patient_id=id, count=count, after=after)
        if page is None:
            raise FHIRError.one(404, "not-found", f"Patient/{id} is not known")
        entries: list[SearchEntry] = []
        if page.first:
            person = page.person
            entries.append(
                SearchEntry(patient_resource(person), request.build_absolute_uri(f"/fhir/Patient/{person.uuid}"))
            )
            for identity in page.identities:
                stored = page.source_patients.get(identity.pk)
                body = rendered(stored, person_uuid=person.uuid) if stored else identity_patient(identity)
                entries.append(SearchEntry(body, request.build_absolute_uri(f"/fhir/Patient/{identity.uuid}")))
            for entry in page.documents:
                url = request.build_absolute_uri(f"/fhir/DocumentReference/{entry.uuid}")
                entries.append(SearchEntry(document_reference_resource(entry), url))
        entries += [SearchEntry(rendered(r), resource_url(request, r)) for r in page.facts]
        bundle = searchset(entries, self_url=request.build_absolute_uri())
        if page.next_after is not None:
            query = urlencode({"_count": count, "_cursor": page.next_after})
            bundle["link"].append({"relation": "next", "url": f"{request.build_absolute_uri(request.path)}?{query}"})
        return Response(bundle)


class MetadataView(FHIRView):
    """``GET /fhir/metadata``: the CapabilityStatement. Open to every caller (R4 http.html#capabilities:
    clients read it before they have a token)."""

    authentication_classes: list = []
    permission_classes: list = []
    fhir_resource_type = None

    @extend_schema(operation_id="fhir_metadata", summary="CapabilityStatement", responses=_FHIR_OBJECT)
    def get(self, request):
        from healthplatform.fhirapi.resources.capability import capability_statement

        base = request.build_absolute_uri(reverse("fhirapi:base"))
        return Response(capability_statement(base, token_endpoint(request)))
