"""The RESTful interactions on the archive's resource types (R4 http.html): read, vread, update, delete,
history, create, search — one set of views for every type, so every type behaves the same.

Versions travel as weak ETags (``W/"3"``); ``If-Match`` guards update and delete, ``If-None-Exist``
makes a create conditional, ``PUT Type?criteria`` is a conditional update.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.db import transaction
from django.urls import reverse
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from ehr import selectors as archive
from ehr.errors import ResourceError, WriteRace
from ehr.indexing import CLINICAL_TYPES
from ehr.models import Resource
from ehr.services import resources_write, submission_record
from healthplatform.fhirapi import search
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.resources.bundle import history as history_bundle
from healthplatform.fhirapi.resources.clinical import (
    clinical_item,
    error_from,
    identities_for_patient,
    patient_item,
    references_rewrite,
    rendered,
    writer_of,
)
from healthplatform.fhirapi.views.base import FHIRView

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


def write_response(request, item, *, created_status: int = 201) -> Response:
    """The answer to a create or update: the resource (or nothing, ``Prefer: return=minimal``) with its
    version headers; 201 and Location when it was created."""
    resource = item.resource
    status = created_status if item.outcome == "created" else 200
    minimal = "return=minimal" in request.headers.get("Prefer", "")
    response = Response(None if minimal else rendered(resource), status=status)
    if item.outcome == "created":
        response["Location"] = resource_url(request, resource, version=True)
    return with_version_headers(response, resource)


def run_write(request, build, *, request_line: str) -> list:
    """Builds the items (``build(writer)``) and writes them in one transaction; a lost race on a business
    identifier or a conditional create runs the whole request again, once."""
    writer = writer_of(request)
    for attempt in range(2):
        try:
            with transaction.atomic():
                submission = submission_record(
                    source=writer.source, actor=writer.actor, request_line=request_line, body=request.body
                )
                items = build(writer)
                return resources_write(items=items, source=writer.source, actor=writer.actor, submission=submission)
        except WriteRace as exc:
            if attempt:
                raise error_from(exc) from None
        except ResourceError as exc:
            raise error_from(exc) from None
    raise AssertionError("unreachable")


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


def _item_for(writer, resource_type: str, body: dict, *, path: str):
    if resource_type == "Patient":
        return patient_item(writer, body, path=path, method="create")
    return clinical_item(writer, resource_type, body, path=path)


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
        body = _body(request)
        criteria = request.headers.get("If-None-Exist")

        def build(writer):
            item = _item_for(writer, type, body, path=type)
            references_rewrite(item.body, {}, path=type)
            item.if_none_exist = criteria if type != "Patient" else None
            return [item]

        item = run_write(request, build, request_line=f"POST {request.path}")[0]
        return write_response(request, item)

    @extend_schema(exclude=True)
    def put(self, request, type):
        """Conditional update: ``PUT /fhir/{type}?criteria`` (R4 http.html#cond-update)."""
        pairs = _search_pairs(request)
        if not pairs:
            raise FHIRError.one(405, "not-supported", "PUT on a type needs search criteria (conditional update)")
        body = _body(request)
        try:
            matches = archive.conditional_matches(type, urlencode(pairs)) if type != "Patient" else []
        except ResourceError as exc:
            raise error_from(exc) from None
        if len(matches) > 1:
            raise FHIRError.one(412, "multiple-matches", f"{len(matches)} {type} resources match the criteria")
        if matches and body.get("id") not in (None, matches[0].fhir_id):
            raise FHIRError.one(400, "invalid", f"{type}.id: differs from the resource the criteria match")
        target = matches[0] if matches else None
        return _update(request, type, body, target, criteria=urlencode(pairs) if type != "Patient" else None)


def _update(request, type: str, body: dict, target: Resource | None, *, criteria: str | None = None) -> Response:
    """An update of ``target``; without a target, a conditional update that creates — conditionally on the same
    criteria, so that two concurrent identical conditional updates make one resource (the database decides),
    the second then updating the first's."""
    version = if_match_version(request)

    def build(writer):
        if type == "Patient":
            item = patient_item(writer, body, path=type, method="update", target=target)
        else:
            item = clinical_item(writer, type, body, path=type)
        references_rewrite(item.body, {}, path=type)
        if type != "Patient" and target is not None:
            if target.identity_id and not _same_person(target.identity_id, item.identity_id):
                raise FHIRError.one(
                    422, "processing", f"{type}.subject: an update cannot move a fact to another patient"
                )
            item.method, item.target, item.fhir_id = "update", target, target.fhir_id
            item.extra["resolved"] = True
        if target is not None and writer.source is not None and target.source_id not in (None, writer.source.pk):
            raise FHIRError.one(403, "forbidden", f"{type}/{target.fhir_id} was written by another source system")
        item.if_match = version
        if target is None and criteria:
            item.if_none_exist = criteria
        return [item]

    item = run_write(request, build, request_line=f"PUT {request.path}")[0]
    if item.outcome == "existing":  # a concurrent conditional update created it first: update that one
        return _update(request, type, body, item.resource)
    return write_response(request, item)


def _same_person(identity_a: int, identity_b: int | None) -> bool:
    from mpi.models import Identity

    if identity_b is None or identity_a == identity_b:
        return True
    persons = set(Identity.objects.filter(pk__in=[identity_a, identity_b]).values_list("person_id", flat=True))
    return len(persons) == 1


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
        body = _body(request)
        if body.get("id") != id:
            raise FHIRError.one(
                400, "invalid", f"{type}.id: must be {id!r}, the id in the URL", expression=f"{type}.id"
            )
        target = archive.resource_get(type, id)
        if target is None:
            # Update-as-create is not offered (CapabilityStatement updateCreate=false): ids are ours.
            raise FHIRError.one(404, "not-found", f"{type}/{id} is not known; create it with POST")
        return _update(request, type, body, target)

    @extend_schema(
        operation_id="fhir_delete",
        summary="Delete a resource (logical)",
        parameters=[_TYPE, _ID],
        responses=_FHIR_OBJECT,
    )
    def delete(self, request, type, id):
        target = _get(type, id)
        if type == "Patient":
            raise FHIRError.one(
                405, "not-supported", "a Patient is an MPI identity: it is unlinked or merged, not deleted"
            )
        version = if_match_version(request)

        def build(writer):
            from ehr.services import WriteItem

            if writer.source is not None and target.source_id not in (None, writer.source.pk):
                raise FHIRError.one(403, "forbidden", f"{type}/{id} was written by another source system")
            return [WriteItem(type, None, method="delete", target=target, if_match=version)]

        item = run_write(request, build, request_line=f"DELETE {request.path}")[0]
        response = Response(None, status=204 if item.outcome != "unchanged" else 200)
        response["ETag"] = etag(item.resource.version_id)
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


def search_response(request, resource_type: str, pairs: list[tuple[str, str]]) -> Response:
    """A searchset of one page, with a ``next`` link carrying the keyset cursor."""
    for name, value in pairs:
        if name == "_count":
            # Checked here as well as in the archive, whose check lets "²" through to int() (a 500).
            search.count(value)
    try:
        query = archive.query_parse(
            resource_type, pairs, resolve_patient=identities_for_patient, strict=search.strict_handling(request)
        )
        page = archive.resources_search(query, with_total=request.query_params.get("_total") == "accurate")
    except ResourceError as exc:
        raise error_from(exc) from None
    if query.summary_count:
        return Response(searchset([], self_url=request.build_absolute_uri(), total=page.total))
    entries = [SearchEntry(rendered(r), resource_url(request, r)) for r in page.matches]
    entries += [SearchEntry(rendered(r), resource_url(request, r), mode="include") for r in page.included]
    bundle = searchset(entries, self_url=request.build_absolute_uri(), total=page.total)
    if page.next_cursor:
        kept = [(k, v) for k, v in pairs if k != "_cursor"]
        path = request.build_absolute_uri(request.path)
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
        from healthplatform.fhirapi.resources.clinical import identity_by_fhir_id, identity_patient

        identity = identity_by_fhir_id(id)
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
        from healthplatform.fhirapi.resources.clinical import identities_for_patient, identity_patient
        from healthplatform.fhirapi.resources.patient import patient_resource
        from mpi import selectors as mpi_selectors
        from mpi.models import Identity

        identity_ids = identities_for_patient(id)
        if not identity_ids:
            raise FHIRError.one(404, "not-found", f"Patient/{id} is not known")
        count = archive.DEFAULT_COUNT
        if raw_count := request.query_params.get("_count"):
            asked = search.whole_number(raw_count)
            if asked is None:
                raise invalid_parameter("_count", "expected a non-negative integer")
            count = min(asked, archive.MAX_COUNT) or 1
        cursor = request.query_params.get("_cursor")
        after_pk = search.whole_number(cursor) if cursor is not None else None
        if cursor is not None and after_pk is None:
            raise FHIRError.one(400, "invalid", "_cursor: not a page link this server made", expression="_cursor")
        entries: list[SearchEntry] = []
        if cursor is None:
            identities = list(Identity.objects.filter(pk__in=identity_ids).select_related("person"))
            person = mpi_selectors.persons_in_bulk([identities[0].person_id])[identities[0].person_id]
            entries.append(
                SearchEntry(patient_resource(person), request.build_absolute_uri(f"/fhir/Patient/{person.uuid}"))
            )
            stored = {
                r.fhir_id: r
                for r in Resource.objects.filter(resource_type="Patient", fhir_id__in=[str(i.uuid) for i in identities])
            }
            for identity in identities:
                body = (
                    rendered(stored[str(identity.uuid)]) if str(identity.uuid) in stored else identity_patient(identity)
                )
                entries.append(SearchEntry(body, request.build_absolute_uri(f"/fhir/Patient/{identity.uuid}")))
            # The person's shared documents (emr) come on the first page: a person has tens, not thousands.
            from emr.fhir import document_reference_resource
            from emr.models import DocumentEntry

            documents = DocumentEntry.objects.filter(identity_id__in=identity_ids).select_related("identity")
            for entry in documents.order_by("-date", "-pk")[:1000]:
                url = request.build_absolute_uri(f"/fhir/DocumentReference/{entry.uuid}")
                entries.append(SearchEntry(document_reference_resource(entry), url))
        rows, next_pk = archive.everything_page(identity_ids, count=count, after_pk=after_pk)
        entries += [SearchEntry(rendered(r), resource_url(request, r)) for r in rows if r.resource_type != "Patient"]
        bundle = searchset(entries, self_url=request.build_absolute_uri())
        if next_pk is not None:
            url = request.build_absolute_uri(request.path) + "?" + urlencode({"_count": count, "_cursor": next_pk})
            bundle["link"].append({"relation": "next", "url": url})
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
        return Response(capability_statement(base, request.build_absolute_uri("/oauth/token")))
