"""The registry as an mCSD-style directory: Organization, Practitioner and Location.

Every authorised caller reads and searches (mCSD Find Matching Care Services, ITI-90); a source
system writes only its own institution, that institution's departments and practitioners; staff
write any (``registry.directory``). Searches page by key (a ``_cursor`` link), never by OFFSET.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.urls import re_path, reverse
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from healthplatform.fhirapi import search
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.resources import directory as fhir_directory
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.views.base import FHIRView
from registry import directory
from registry.models import Department, Institution, Practitioner, SourceSystem

_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}
_FHIR_CREATED = {(201, "application/fhir+json"): OpenApiTypes.OBJECT, **_FHIR_OBJECT}
_FHIR_BODY = {"application/fhir+json": OpenApiTypes.OBJECT}
_ID = r"(?P<id>[A-Za-z0-9\-.]{1,64})"  # FHIR ids (R4 datatypes.html#id)
# Result parameters every directory search takes besides its own.
_RESULT_PARAMETERS = frozenset({"_summary", "_cursor"})
_ETAG_RE = re.compile(r'^(?:W/)?"([^"]+)"$')
_COMMON_SEARCH_PARAMETERS = [
    OpenApiParameter("name", str, description="start of the name or of a word in it; name:contains anywhere"),
    OpenApiParameter("_count", int, description=f"page size, at most {search.MAX_COUNT}"),
    OpenApiParameter("_summary", str, enum=["count"], description="count: only Bundle.total"),
    OpenApiParameter("_cursor", str, description="where the page starts (take it from a next link)"),
]
_IF_MATCH = OpenApiParameter(
    "If-Match", str, location=OpenApiParameter.HEADER, description='W/"<versionId>": refuse (412) if changed'
)
_IF_NONE_EXIST = OpenApiParameter(
    "If-None-Exist", str, location=OpenApiParameter.HEADER, description="identifier=system|value: conditional create"
)


# --- HTTP <-> registry helpers ----------------------------------------------------------


def _writer(request):
    """Who writes: the source system of a feed's request, or the staff user."""
    return getattr(request.user, "source", None) or request.user


def _own_institution(request) -> Institution | None:
    source = getattr(request.user, "source", None)
    return source.institution if isinstance(source, SourceSystem) else None


def _version_headers(row) -> dict[str, str]:
    # ETag carries meta.versionId (R4 http.html#versioning); Last-Modified is meta.lastUpdated.
    return {"ETag": f'W/"{directory.row_version(row)}"', "Last-Modified": http_date(row.updated_at.timestamp())}


def _expected_version(request) -> str | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _ETAG_RE.match(header.strip())
    if not match:
        raise FHIRError.one(400, "invalid", 'If-Match: expected an ETag W/"<versionId>"', expression="If-Match")
    return match.group(1)


def _registry_write(write, parsed: fhir_directory.Parsed, resource_type: str):
    """Runs a directory write, telling its refusals the FHIR way."""
    try:
        return write()
    except directory.DirectoryForbidden as exc:
        raise FHIRError.one(403, "forbidden", str(exc)) from None
    except directory.VersionConflict as exc:
        # R4 http.html#concurrency: a stale If-Match is 412 Precondition Failed.
        raise FHIRError.one(412, "conflict", str(exc)) from None
    except directory.DuplicateEntry as exc:
        raise FHIRError.one(409, "duplicate", str(exc)) from None
    except ValidationError as exc:
        raise fhir_directory.registry_errors(exc, parsed, resource_type) from None
    except directory.RegistryError as exc:
        raise FHIRError.one(400, "business-rule", str(exc)) from None


def _written(request, resource: dict, row, *, status: int) -> Response:
    headers = _version_headers(row)
    if status == 201:
        # R4 http.html#create: Location names the new id and version.
        read = reverse(f"fhirapi:{resource['resourceType'].lower()}-read", kwargs={"id": resource["id"]})
        headers["Location"] = request.build_absolute_uri(f"{read}/_history/{resource['meta']['versionId']}")
    return Response(resource, status=status, headers=headers)


def _check_update_id(parsed: fhir_directory.Parsed, id: str, resource_type: str) -> None:
    # R4 http.html#update: no id in the body, or one other than the URL's, is a 400.
    if parsed.id != id:
        raise FHIRError.one(
            400,
            "invalid",
            f"{resource_type}.id: must be present and equal the id in the URL",
            expression=f"{resource_type}.id",
        )


# --- Search plumbing --------------------------------------------------------------------


class _Search:
    """One directory search request: its parameters, page size, cursor, and the Bundle it answers."""

    def __init__(self, request, supported: frozenset[str]):
        self.request = request
        self.params = search.search_parameters(
            request.query_params, supported | _RESULT_PARAMETERS, strict=search.strict_handling(request)
        )
        self.count = search.count(self.params.get("_count"))
        summary = self.params.get("_summary")
        if summary not in (None, "count", "false"):
            if search.strict_handling(request):
                raise invalid_parameter("_summary", "only count or false is supported", code="not-supported")
            summary = None  # lenient: the full resources are a valid answer
        # R4 search.html#count: _count=0 is answered like _summary=count.
        self.only_total = summary == "count" or self.count == 0
        self.cursor = self.params.get("_cursor")

    def active(self, name: str) -> bool | None:
        value = self.params.get(name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise invalid_parameter(name, "expected true or false")
        return value == "true"

    def _url(self, **override) -> str:
        applied = {k: v for k, v in self.params.values.items() if k != "_format"}
        applied.update(override)
        query = urlencode({k: v for k, v in applied.items() if v is not None})
        return self.request.build_absolute_uri(self.request.path) + ("?" + query if query else "")

    def total(self, total: int) -> Response:
        return Response(searchset([], self_url=self._url(), total=total))

    def page(self, rows: list, *, render, url_name: str, key) -> Response:
        """A searchset of ``rows`` (fetched ``count + 1``: one more means another page follows)."""
        more = len(rows) > self.count
        rows = rows[: self.count]
        entries = [
            SearchEntry(
                (resource := render(row)),
                self.request.build_absolute_uri(reverse(url_name, kwargs={"id": resource["id"]})),
            )
            for row in rows
        ]
        bundle = searchset(entries, self_url=self._url())
        if more:
            bundle["link"].append({"relation": "next", "url": self._url(_cursor=key(rows[-1]))})
        return Response(bundle)

    def empty(self) -> Response:
        return self.total(0) if self.only_total else Response(searchset([], self_url=self._url()))


def _reference_param(name: str, value: str, resource_type: str) -> str:
    """A reference search value: ``Organization/X``, an absolute URL ending so, or the bare id ``X``."""
    _, sep, tail = value.strip().rpartition(f"{resource_type}/")
    ref = tail if sep else value.strip()
    if not ref or "/" in ref:
        raise invalid_parameter(name, f"expected {resource_type}/{{id}} or an id")
    return ref


def _names(found: search.SearchParameters) -> dict:
    return {"name": found.get("name"), "name_contains": found.get("name:contains")}


# --- Organization -----------------------------------------------------------------------

ORGANIZATION_PARAMETERS = frozenset({"identifier", "name", "name:contains", "active", "type"})


def _organization_criteria(query: _Search) -> dict | None:
    """Search criteria of an Organization search; None when nothing can match."""
    params = query.params
    criteria: dict = {**_names(params), "active": query.active("active")}
    if (value := params.get("identifier")) is not None:
        system, code = search.token("identifier", value)
        code = code.upper()
        if system is None:
            criteria.update(codes=[code], licence_numbers=[code])
        elif system == fhir_directory.INSTITUTION_CODE_SYSTEM:
            criteria["codes"] = [code]
        elif system == fhir_directory.INSTITUTION_LICENCE_SYSTEM:
            criteria["licence_numbers"] = [code]
        else:
            return None
    if (value := params.get("type")) is not None:
        system, code = search.token("type", value)
        if system in (None, fhir_directory.INSTITUTION_KIND_SYSTEM) and code in Institution.Kind.values:
            criteria["kind"] = code
        elif system in (None, fhir_directory.INSTITUTION_LEVEL_SYSTEM) and code in Institution.Level.values:
            criteria["level"] = code
        elif (system, code) in {
            (None, "prov"),
            (fhir_directory.ORGANIZATION_TYPE_SYSTEM, "prov"),
            (None, "facility"),
            (fhir_directory.MCSD_TYPE_SYSTEM, "facility"),
        }:
            pass  # every institution is a healthcare provider and an mCSD facility
        else:
            return None
    return criteria


class OrganizationTypeView(FHIRView):
    """``/fhir/Organization``: search the region's institutions, or register one (staff)."""

    fhir_resource_type = "Organization"

    @extend_schema(
        operation_id="fhir_organization_search",
        summary="Search Organizations (institutions, mCSD ITI-90)",
        parameters=[
            OpenApiParameter("identifier", str, description="system|value: institution code or licence number"),
            OpenApiParameter("active", bool),
            OpenApiParameter("type", str, description="kind (hospital, clinic, pharmacy) or level (tertiary, ...)"),
            *_COMMON_SEARCH_PARAMETERS,
        ],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        query = _Search(request, ORGANIZATION_PARAMETERS)
        criteria = _organization_criteria(query)
        if criteria is None:
            return query.empty()
        qs = directory.institution_search(**criteria)
        if query.only_total:
            return query.total(qs.count())
        rows = directory.institution_page(qs, after=query.cursor, limit=query.count + 1)
        return query.page(
            rows,
            render=fhir_directory.organization_resource,
            url_name="fhirapi:organization-read",
            key=lambda i: i.code,
        )

    @extend_schema(
        operation_id="fhir_organization_create",
        summary="Register an institution (staff only)",
        parameters=[_IF_NONE_EXIST],
        request=_FHIR_BODY,
        responses=_FHIR_CREATED,
    )
    def post(self, request):
        parsed = fhir_directory.parse_organization(request.data)
        existing = _if_none_exist(
            request,
            lambda system, value: directory.institution_search(
                codes=[value.upper()] if system in (None, fhir_directory.INSTITUTION_CODE_SYSTEM) else [],
                licence_numbers=[value.upper()] if system in (None, fhir_directory.INSTITUTION_LICENCE_SYSTEM) else [],
            ),
        )
        if existing is not None:
            return _written(request, fhir_directory.organization_resource(existing), existing, status=200)
        institution = _registry_write(
            lambda: directory.directory_institution_create(writer=_writer(request), fields=parsed.fields),
            parsed,
            "Organization",
        )
        return _written(request, fhir_directory.organization_resource(institution), institution, status=201)


def _if_none_exist(request, find):
    """R4 http.html#ccreate: ``If-None-Exist: identifier=system|value``. The match if exactly one exists
    (nothing is created), None if none; more than one is 412."""
    header = request.headers.get("If-None-Exist")
    if header is None:
        return None
    criteria = QueryDict(header.strip().lstrip("?"))
    if set(criteria) != {"identifier"} or len(criteria.getlist("identifier")) != 1:
        raise FHIRError.one(
            400, "not-supported", "If-None-Exist: only identifier=system|value is supported", expression="If-None-Exist"
        )
    system, value = search.token("If-None-Exist", criteria["identifier"])
    matches = list(find(system, value)[:2])
    if len(matches) > 1:
        raise FHIRError.one(412, "duplicate", "If-None-Exist: more than one resource matches")
    return matches[0] if matches else None


class OrganizationInstanceView(FHIRView):
    """``/fhir/Organization/{id}``: read an institution, or update it (its own feed, or staff)."""

    fhir_resource_type = "Organization"

    def _institution(self, id: str) -> Institution:
        institution = Institution.objects.filter(code=id).first()
        if institution is None:
            raise FHIRError.one(404, "not-found", f"Organization/{id} is not known")
        return institution

    @extend_schema(operation_id="fhir_organization_read", summary="Read an Organization", responses=_FHIR_OBJECT)
    def get(self, request, id):
        institution = self._institution(id)
        return Response(fhir_directory.organization_resource(institution), headers=_version_headers(institution))

    @extend_schema(
        operation_id="fhir_organization_update",
        summary="Update an Organization (own institution, or staff)",
        parameters=[_IF_MATCH],
        request=_FHIR_BODY,
        responses=_FHIR_OBJECT,
    )
    def put(self, request, id):
        institution = self._institution(id)
        parsed = fhir_directory.parse_organization(request.data)
        _check_update_id(parsed, id, "Organization")
        expected = _expected_version(request)
        institution = _registry_write(
            lambda: directory.directory_institution_update(
                writer=_writer(request),
                institution=institution,
                fields=parsed.fields,
                expected_version=expected,
            ),
            parsed,
            "Organization",
        )
        return _written(request, fhir_directory.organization_resource(institution), institution, status=200)


# --- Practitioner -----------------------------------------------------------------------

PRACTITIONER_PARAMETERS = frozenset({"identifier", "name", "name:contains", "active", "organization"})


class PractitionerTypeView(FHIRView):
    """``/fhir/Practitioner``: search practitioners, or register one at the caller's institution."""

    fhir_resource_type = "Practitioner"

    @extend_schema(
        operation_id="fhir_practitioner_search",
        summary="Search Practitioners (mCSD ITI-90)",
        parameters=[
            OpenApiParameter("identifier", str, description="system|value: the licence number"),
            OpenApiParameter("active", bool),
            OpenApiParameter("organization", str, description="Organization/{id}: where they practise"),
            *_COMMON_SEARCH_PARAMETERS,
        ],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        query = _Search(request, PRACTITIONER_PARAMETERS)
        params = query.params
        criteria: dict = {**_names(params), "active": query.active("active")}
        if (value := params.get("identifier")) is not None:
            system, code = search.token("identifier", value)
            if system not in (None, fhir_directory.PRACTITIONER_LICENCE_SYSTEM):
                return query.empty()
            criteria["licence_number"] = code
        if (value := params.get("organization")) is not None:
            criteria["institution_code"] = _reference_param("organization", value, "Organization").upper()
        after = None
        if query.cursor is not None:
            if not query.cursor.isdigit():
                raise invalid_parameter("_cursor", "not a cursor of this search; follow the next link")
            after = int(query.cursor)
        qs = directory.practitioner_search(**criteria)
        if query.only_total:
            return query.total(qs.count())
        rows = directory.practitioner_page(qs, after=after, limit=query.count + 1)
        return query.page(
            rows, render=fhir_directory.practitioner_resource, url_name="fhirapi:practitioner-read", key=lambda p: p.pk
        )

    @extend_schema(
        operation_id="fhir_practitioner_create",
        summary="Register a Practitioner (at the caller's institution, or any for staff)",
        parameters=[_IF_NONE_EXIST],
        request=_FHIR_BODY,
        responses=_FHIR_CREATED,
    )
    def post(self, request):
        parsed = fhir_directory.parse_practitioner(request.data, default_institution=_own_institution(request))
        existing = _if_none_exist(
            request,
            lambda system, value: (
                directory.practitioner_search(licence_number=value)
                if system in (None, fhir_directory.PRACTITIONER_LICENCE_SYSTEM)
                else Practitioner.objects.none()
            ),
        )
        if existing is not None:
            return _written(request, fhir_directory.practitioner_resource(existing), existing, status=200)
        practitioner = _registry_write(
            lambda: directory.directory_practitioner_create(writer=_writer(request), fields=parsed.fields),
            parsed,
            "Practitioner",
        )
        return _written(request, fhir_directory.practitioner_resource(practitioner), practitioner, status=201)


class PractitionerInstanceView(FHIRView):
    """``/fhir/Practitioner/{id}``: read a practitioner, or update one (its institution's feed, or staff)."""

    fhir_resource_type = "Practitioner"

    def _practitioner(self, id: str) -> Practitioner:
        found = (
            Practitioner.objects.select_related("institution", "department__institution").filter(pk=int(id)).first()
            if id.isdigit() and len(id) < 19
            else None
        )
        if found is None:
            raise FHIRError.one(404, "not-found", f"Practitioner/{id} is not known")
        return found

    @extend_schema(operation_id="fhir_practitioner_read", summary="Read a Practitioner", responses=_FHIR_OBJECT)
    def get(self, request, id):
        practitioner = self._practitioner(id)
        return Response(fhir_directory.practitioner_resource(practitioner), headers=_version_headers(practitioner))

    @extend_schema(
        operation_id="fhir_practitioner_update",
        summary="Update a Practitioner (own institution's, or staff)",
        parameters=[_IF_MATCH],
        request=_FHIR_BODY,
        responses=_FHIR_OBJECT,
    )
    def put(self, request, id):
        practitioner = self._practitioner(id)
        parsed = fhir_directory.parse_practitioner(request.data, default_institution=practitioner.institution)
        _check_update_id(parsed, id, "Practitioner")
        expected = _expected_version(request)
        practitioner = _registry_write(
            lambda: directory.directory_practitioner_update(
                writer=_writer(request),
                practitioner=practitioner,
                fields=parsed.fields,
                expected_version=expected,
            ),
            parsed,
            "Practitioner",
        )
        practitioner = self._practitioner(id)  # its institution and department, as saved
        return _written(request, fhir_directory.practitioner_resource(practitioner), practitioner, status=200)


# --- Location ---------------------------------------------------------------------------

LOCATION_PARAMETERS = frozenset({"identifier", "name", "name:contains", "organization", "status"})


def _location_cursor(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    institution_code, _, department_code = value.partition("-")
    if not institution_code:
        raise invalid_parameter("_cursor", "not a cursor of this search; follow the next link")
    return institution_code, department_code


class LocationTypeView(FHIRView):
    """``/fhir/Location``: search sites and departments, or add a department."""

    fhir_resource_type = "Location"

    @extend_schema(
        operation_id="fhir_location_search",
        summary="Search Locations (institution sites and departments, mCSD ITI-90)",
        parameters=[
            OpenApiParameter("identifier", str, description="system|value: institution code or department code"),
            OpenApiParameter("organization", str, description="Organization/{id}: the managing organization"),
            OpenApiParameter("status", str, enum=["active", "inactive", "suspended"]),
            *_COMMON_SEARCH_PARAMETERS,
        ],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        query = _Search(request, LOCATION_PARAMETERS)
        params = query.params
        criteria = directory.SiteSearch(name=params.get("name"), name_contains=params.get("name:contains"))
        if (value := params.get("identifier")) is not None:
            system, code = search.token("identifier", value)
            if system in (None, fhir_directory.INSTITUTION_CODE_SYSTEM):
                criteria.institution_codes = [code.upper()]
            else:
                criteria.sites = False
            if system in (None, fhir_directory.DEPARTMENT_CODE_SYSTEM):
                criteria.department_codes = [code]
            else:
                criteria.departments = False
        if (value := params.get("organization")) is not None:
            criteria.institution_code = _reference_param("organization", value, "Organization").upper()
        if (value := params.get("status")) is not None:
            if value not in ("active", "inactive", "suspended"):
                raise invalid_parameter("status", "expected active, inactive or suspended", code="code-invalid")
            if value == "suspended":
                return query.empty()  # the registry has no suspended sites or departments
            criteria.active = value == "active"
        if query.only_total:
            return query.total(directory.site_count(criteria))
        rows = directory.site_page(criteria, after=_location_cursor(query.cursor), limit=query.count + 1)
        return query.page(
            rows,
            render=fhir_directory.location_resource,
            url_name="fhirapi:location-read",
            key=fhir_directory.location_id,
        )

    @extend_schema(
        operation_id="fhir_location_create",
        summary="Add a department (Location) to the caller's institution, or any for staff",
        parameters=[_IF_NONE_EXIST],
        request=_FHIR_BODY,
        responses=_FHIR_CREATED,
    )
    def post(self, request):
        parsed = fhir_directory.parse_location(request.data, default_institution=_own_institution(request))
        institution = parsed.fields.institution
        existing = _if_none_exist(
            request,
            # A department code is unique within its institution: the match is sought there.
            lambda system, value: (
                Department.objects.select_related("institution").filter(institution=institution, code=value)
                if system in (None, fhir_directory.DEPARTMENT_CODE_SYSTEM)
                else Department.objects.none()
            ),
        )
        if existing is not None:
            return _written(request, fhir_directory.department_location_resource(existing), existing, status=200)
        department = _registry_write(
            lambda: directory.directory_department_create(writer=_writer(request), fields=parsed.fields),
            parsed,
            "Location",
        )
        return _written(request, fhir_directory.department_location_resource(department), department, status=201)


class LocationInstanceView(FHIRView):
    """``/fhir/Location/{id}``: read a site or department; update a department."""

    fhir_resource_type = "Location"

    def _location(self, id: str) -> Institution | Department:
        institution_code, _, department_code = id.partition("-")
        if department_code:
            found = (
                Department.objects.select_related("institution")
                .filter(institution__code=institution_code, code=department_code)
                .first()
            )
        else:
            found = Institution.objects.filter(code=institution_code).first()
        if found is None:
            raise FHIRError.one(404, "not-found", f"Location/{id} is not known")
        return found

    @extend_schema(operation_id="fhir_location_read", summary="Read a Location", responses=_FHIR_OBJECT)
    def get(self, request, id):
        row = self._location(id)
        return Response(fhir_directory.location_resource(row), headers=_version_headers(row))

    @extend_schema(
        operation_id="fhir_location_update",
        summary="Update a department Location (own institution's, or staff)",
        parameters=[_IF_MATCH],
        request=_FHIR_BODY,
        responses=_FHIR_OBJECT,
    )
    def put(self, request, id):
        row = self._location(id)
        if isinstance(row, Institution):
            error = FHIRError.one(
                405, "not-supported", f"Location/{id} is the site of Organization/{id}: update the Organization"
            )
            error.headers["Allow"] = "GET, HEAD"
            raise error
        parsed = fhir_directory.parse_location(request.data, default_institution=row.institution)
        _check_update_id(parsed, id, "Location")
        expected = _expected_version(request)
        department = _registry_write(
            lambda: directory.directory_department_update(
                writer=_writer(request),
                department=row,
                fields=parsed.fields,
                expected_version=expected,
            ),
            parsed,
            "Location",
        )
        return _written(request, fhir_directory.department_location_resource(department), department, status=200)


class _CurrentVersionRead:
    """``GET /fhir/{type}/{id}/_history/{vid}`` (vread) of the current version, the one a create or update
    names in its Location header. The registry keeps no history: an earlier version is 404."""

    http_method_names = ["get", "head"]

    def current_version(self, request, id, vid):
        response = super().get(request, id)
        if response["ETag"] != f'W/"{vid}"':
            raise FHIRError.one(
                404, "not-found", f"{self.fhir_resource_type}/{id}: only the current version is kept in the directory"
            )
        return response


class OrganizationVersionView(_CurrentVersionRead, OrganizationInstanceView):
    @extend_schema(
        operation_id="fhir_organization_vread", summary="Read an Organization's current version", responses=_FHIR_OBJECT
    )
    def get(self, request, id, vid):
        return self.current_version(request, id, vid)


class PractitionerVersionView(_CurrentVersionRead, PractitionerInstanceView):
    @extend_schema(
        operation_id="fhir_practitioner_vread", summary="Read a Practitioner's current version", responses=_FHIR_OBJECT
    )
    def get(self, request, id, vid):
        return self.current_version(request, id, vid)


class LocationVersionView(_CurrentVersionRead, LocationInstanceView):
    @extend_schema(
        operation_id="fhir_location_vread", summary="Read a Location's current version", responses=_FHIR_OBJECT
    )
    def get(self, request, id, vid):
        return self.current_version(request, id, vid)


_VID = r"/_history/(?P<vid>[0-9]{1,20})"
urlpatterns: list = [
    re_path(rf"^Organization/{_ID}{_VID}$", OrganizationVersionView.as_view(), name="organization-vread"),
    re_path(rf"^Practitioner/{_ID}{_VID}$", PractitionerVersionView.as_view(), name="practitioner-vread"),
    re_path(rf"^Location/{_ID}{_VID}$", LocationVersionView.as_view(), name="location-vread"),
    re_path(r"^Organization$", OrganizationTypeView.as_view(), name="organization-search"),
    re_path(rf"^Organization/{_ID}$", OrganizationInstanceView.as_view(), name="organization-read"),
    re_path(r"^Practitioner$", PractitionerTypeView.as_view(), name="practitioner-search"),
    re_path(rf"^Practitioner/{_ID}$", PractitionerInstanceView.as_view(), name="practitioner-read"),
    re_path(r"^Location$", LocationTypeView.as_view(), name="location-search"),
    re_path(rf"^Location/{_ID}$", LocationInstanceView.as_view(), name="location-read"),
]
