"""The registry as an mCSD-style directory: Organization, Practitioner and Location.

Every authorised caller reads and searches (mCSD Find Matching Care Services, ITI-90); a source
system writes only its own institution, that institution's departments and practitioners; staff
write any (the ``directory_*`` services of ``registry.services``). Searches (``registry.selectors``)
page by key (a ``_cursor`` link), never by OFFSET.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from operator import attrgetter
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import QueryDict
from django.urls import re_path, reverse
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response

from healthplatform.fhirapi import search
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.resources import directory as fhir_directory
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.views.base import FHIRView
from registry import codes, errors, selectors, services
from registry.models import Department, Institution, Practitioner, SourceSystem

_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}
_FHIR_CREATED = {(201, "application/fhir+json"): OpenApiTypes.OBJECT, **_FHIR_OBJECT}
_FHIR_BODY = {"application/fhir+json": OpenApiTypes.OBJECT}
_ID = r"(?P<id>[A-Za-z0-9\-.]{1,64})"  # FHIR ids (R4 datatypes.html#id)
_VID = r"/_history/(?P<vid>[0-9]{1,20})"
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
    return {"ETag": f'W/"{services.row_version(row)}"', "Last-Modified": http_date(row.updated_at.timestamp())}


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
    except errors.DirectoryForbidden as exc:
        raise FHIRError.one(403, "forbidden", str(exc)) from None
    except errors.VersionConflict as exc:
        # R4 http.html#concurrency: a stale If-Match is 412 Precondition Failed.
        raise FHIRError.one(412, "conflict", str(exc)) from None
    except errors.DuplicateEntry as exc:
        raise FHIRError.one(409, "duplicate", str(exc)) from None
    except ValidationError as exc:
        raise fhir_directory.registry_errors(exc, parsed, resource_type) from None
    except errors.RegistryError as exc:
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
        # R4 search.html#count: _count=0 is answered like _summary=count.
        self.only_total = search.summary_count(self.params, strict=search.strict_handling(request)) or self.count == 0
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


def _article(resource_type: str) -> str:
    return f"an {resource_type}" if resource_type[0] in "AEIOU" else f"a {resource_type}"


# --- One resource type of the directory -------------------------------------------------


class DirectoryEntry:
    """What the directory endpoints know of one resource type. A subclass per type declares how its rows
    are found, searched, rendered, parsed and written (the way NetBox declares its API views); the views
    below turn that into read, search, create, update and vread, the same for every type, and each type's
    three views (at the end of this module) name their entry.

    Besides the attributes, a subclass defines ``lookup(id)`` (the row with this FHIR id, or None),
    ``criteria(query)`` (a search's criteria; None when nothing can match), ``parse(data, *,
    default_institution)`` (the resource as a write's fields; without a named institution
    ``default_institution``'s) and ``existing(system, value, fields)`` (what ``If-None-Exist:
    identifier=system|value`` matches, a queryset).
    """

    resource_type: str
    search_parameters: frozenset[str]
    render: Callable[[Any], dict]  # a row as its FHIR resource
    search: Callable[..., QuerySet]  # the registry's search: criteria -> queryset in key order
    page_after: Callable[..., list]  # its keyset page: (queryset, *, after, limit) -> rows
    create: Callable[..., Any]  # the registry's create service: (*, writer, fields) -> row
    update: Callable[..., Any]  # its update service: (*, writer, <row_keyword>=row, fields, expected_version)
    row_keyword: str  # the keyword the update service takes the row by
    key: Callable[[Any], Any]  # the cursor of the page after a row
    # What the OpenAPI description says of the endpoints (besides the views' docstrings).
    filters: list[OpenApiParameter]  # the search parameters besides the common ones
    search_summary: str
    create_summary: str
    update_summary: str

    def count(self, criteria) -> int:
        return self.search(**criteria).count()

    def page(self, criteria, *, cursor: str | None, limit: int) -> list:
        """Up to ``limit`` rows after the cursor (taken from a next link)."""
        return self.page_after(self.search(**criteria), after=self.after(cursor), limit=limit)

    def after(self, cursor: str | None):
        """The key a cursor stands for."""
        return cursor

    def owner(self, row) -> Institution:
        """The institution a row belongs to (what an update defaults to)."""
        return row.institution

    def check_writable(self, row, id: str) -> None:
        """Refuses an update this endpoint does not take (raises a FHIRError)."""

    def saved(self, row):
        """The row as rendered after an update."""
        return row


# --- The views, the same for every type -------------------------------------------------


class DirectoryTypeView(FHIRView):
    """``/fhir/{type}``: search (mCSD ITI-90), or create. A subclass names its ``entry``."""

    entry: DirectoryEntry

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.fhir_resource_type = cls.entry.resource_type
        name = cls.fhir_resource_type.lower()
        extend_schema_view(
            get=extend_schema(
                operation_id=f"fhir_{name}_search",
                summary=cls.entry.search_summary,
                parameters=[*cls.entry.filters, *_COMMON_SEARCH_PARAMETERS],
                responses=_FHIR_OBJECT,
            ),
            post=extend_schema(
                operation_id=f"fhir_{name}_create",
                summary=cls.entry.create_summary,
                parameters=[_IF_NONE_EXIST],
                request=_FHIR_BODY,
                responses=_FHIR_CREATED,
            ),
        )(cls)

    def get(self, request):
        entry = self.entry
        query = _Search(request, entry.search_parameters)
        criteria = entry.criteria(query)
        if criteria is None:
            return query.empty()
        if query.only_total:
            return query.total(entry.count(criteria))
        rows = entry.page(criteria, cursor=query.cursor, limit=query.count + 1)
        return query.page(
            rows, render=entry.render, url_name=f"fhirapi:{entry.resource_type.lower()}-read", key=entry.key
        )

    def post(self, request):
        entry = self.entry
        parsed = entry.parse(request.data, default_institution=_own_institution(request))
        existing = _if_none_exist(request, lambda system, value: entry.existing(system, value, parsed.fields))
        if existing is not None:
            return _written(request, entry.render(existing), existing, status=200)
        row = _registry_write(
            lambda: entry.create(writer=_writer(request), fields=parsed.fields), parsed, entry.resource_type
        )
        return _written(request, entry.render(row), row, status=201)


class DirectoryInstanceView(FHIRView):
    """``/fhir/{type}/{id}``: read, or update (If-Match). A subclass names its ``entry``."""

    entry: DirectoryEntry

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.fhir_resource_type = cls.entry.resource_type
        name = cls.fhir_resource_type.lower()
        schemas = {
            "get": extend_schema(
                operation_id=f"fhir_{name}_read",
                summary=f"Read {_article(cls.fhir_resource_type)}",
                responses=_FHIR_OBJECT,
            )
        }
        if "put" in cls.http_method_names:  # not on the vread subclasses (_CurrentVersionRead): GET only
            schemas["put"] = extend_schema(
                operation_id=f"fhir_{name}_update",
                summary=cls.entry.update_summary,
                parameters=[_IF_MATCH],
                request=_FHIR_BODY,
                responses=_FHIR_OBJECT,
            )
        extend_schema_view(**schemas)(cls)

    def _row(self, id: str):
        row = self.entry.lookup(id)
        if row is None:
            raise FHIRError.one(404, "not-found", f"{self.entry.resource_type}/{id} is not known")
        return row

    def get(self, request, id):
        row = self._row(id)
        return Response(self.entry.render(row), headers=_version_headers(row))

    def put(self, request, id):
        entry = self.entry
        row = self._row(id)
        entry.check_writable(row, id)
        parsed = entry.parse(request.data, default_institution=entry.owner(row))
        _check_update_id(parsed, id, entry.resource_type)
        expected = _expected_version(request)
        row = _registry_write(
            lambda: entry.update(
                writer=_writer(request),
                **{entry.row_keyword: row},
                fields=parsed.fields,
                expected_version=expected,
            ),
            parsed,
            entry.resource_type,
        )
        row = entry.saved(row)
        return _written(request, entry.render(row), row, status=200)


class _CurrentVersionRead:
    """``GET /fhir/{type}/{id}/_history/{vid}`` (vread) of the current version, the one a create or update
    names in its Location header. The registry keeps no history: an earlier version is 404."""

    http_method_names = ["get", "head"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        type_ = cls.fhir_resource_type
        extend_schema_view(
            get=extend_schema(
                operation_id=f"fhir_{type_.lower()}_vread",
                summary=f"Read {_article(type_)}'s current version",
                # The OpenAPI description is this rule, the same for every type, not the view's docstring.
                description=inspect.cleandoc(_CurrentVersionRead.__doc__),
                responses=_FHIR_OBJECT,
            )
        )(cls)

    def get(self, request, id, vid):
        response = super().get(request, id)
        if response["ETag"] != f'W/"{vid}"':
            raise FHIRError.one(
                404, "not-found", f"{self.fhir_resource_type}/{id}: only the current version is kept in the directory"
            )
        return response


# --- Organization -----------------------------------------------------------------------


def _organization_criteria(query: _Search) -> dict | None:
    """Search criteria of an Organization search; None when nothing can match."""
    params = query.params
    criteria: dict = {**_names(params), "active": query.active("active")}
    if (value := params.get("identifier")) is not None:
        system, code = search.token("identifier", value)
        code = code.upper()
        if system is None:
            criteria.update(codes=[code], licence_numbers=[code])
        elif system == codes.INSTITUTION_CODE_SYSTEM:
            criteria["codes"] = [code]
        elif system == codes.INSTITUTION_LICENCE_SYSTEM:
            criteria["licence_numbers"] = [code]
        else:
            return None
    if (value := params.get("type")) is not None:
        system, code = search.token("type", value)
        if system in (None, codes.INSTITUTION_KIND_SYSTEM) and code in Institution.Kind.values:
            criteria["kind"] = code
        elif system in (None, codes.INSTITUTION_LEVEL_SYSTEM) and code in Institution.Level.values:
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


class Organizations(DirectoryEntry):
    """Institutions as Organization: staff register them; a feed updates its own."""

    resource_type = "Organization"
    search_parameters = frozenset({"identifier", "name", "name:contains", "active", "type"})
    render = staticmethod(fhir_directory.organization_resource)
    search = staticmethod(selectors.institution_search)
    page_after = staticmethod(selectors.institution_page)
    create = staticmethod(services.directory_institution_create)
    update = staticmethod(services.directory_institution_update)
    row_keyword = "institution"
    key = staticmethod(attrgetter("code"))
    criteria = staticmethod(_organization_criteria)

    filters = [
        OpenApiParameter("identifier", str, description="system|value: institution code or licence number"),
        OpenApiParameter("active", bool),
        OpenApiParameter("type", str, description="kind (hospital, clinic, pharmacy) or level (tertiary, ...)"),
    ]
    search_summary = "Search Organizations (institutions, mCSD ITI-90)"
    create_summary = "Register an institution (staff only)"
    update_summary = "Update an Organization (own institution, or staff)"

    def lookup(self, id):
        return Institution.objects.filter(code=id).first()

    def parse(self, data, *, default_institution):
        return fhir_directory.parse_organization(data)

    def existing(self, system, value, fields):
        return selectors.institution_search(
            codes=[value.upper()] if system in (None, codes.INSTITUTION_CODE_SYSTEM) else [],
            licence_numbers=[value.upper()] if system in (None, codes.INSTITUTION_LICENCE_SYSTEM) else [],
        )

    def owner(self, institution):
        return institution


# --- Practitioner -----------------------------------------------------------------------


def _practitioner_cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise invalid_parameter("_cursor", "not a cursor of this search; follow the next link")
    return int(value)


class Practitioners(DirectoryEntry):
    """Practitioners: a feed registers and updates its institution's; staff any."""

    resource_type = "Practitioner"
    search_parameters = frozenset({"identifier", "name", "name:contains", "active", "organization"})
    render = staticmethod(fhir_directory.practitioner_resource)
    search = staticmethod(selectors.practitioner_search)
    page_after = staticmethod(selectors.practitioner_page)
    create = staticmethod(services.directory_practitioner_create)
    update = staticmethod(services.directory_practitioner_update)
    row_keyword = "practitioner"
    key = staticmethod(attrgetter("pk"))
    parse = staticmethod(fhir_directory.parse_practitioner)
    after = staticmethod(_practitioner_cursor)

    filters = [
        OpenApiParameter("identifier", str, description="system|value: the licence number"),
        OpenApiParameter("active", bool),
        OpenApiParameter("organization", str, description="Organization/{id}: where they practise"),
    ]
    search_summary = "Search Practitioners (mCSD ITI-90)"
    create_summary = "Register a Practitioner (at the caller's institution, or any for staff)"
    update_summary = "Update a Practitioner (own institution's, or staff)"

    def lookup(self, id):
        if not (id.isdigit() and len(id) < 19):
            return None
        return Practitioner.objects.select_related("institution", "department__institution").filter(pk=int(id)).first()

    def criteria(self, query):
        params = query.params
        criteria: dict = {**_names(params), "active": query.active("active")}
        if (value := params.get("identifier")) is not None:
            system, code = search.token("identifier", value)
            if system not in (None, codes.PRACTITIONER_LICENCE_SYSTEM):
                return None
            criteria["licence_number"] = code
        if (value := params.get("organization")) is not None:
            criteria["institution_code"] = _reference_param("organization", value, "Organization").upper()
        _practitioner_cursor(query.cursor)  # a malformed cursor is a 400 even when only the total is asked
        return criteria

    def existing(self, system, value, fields):
        if system in (None, codes.PRACTITIONER_LICENCE_SYSTEM):
            return self.search(licence_number=value)
        return Practitioner.objects.none()

    def saved(self, practitioner):
        return self.lookup(str(practitioner.pk))  # its institution and department, as saved


# --- Location ---------------------------------------------------------------------------


def _location_cursor(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    institution_code, _, department_code = value.partition("-")
    if not institution_code:
        raise invalid_parameter("_cursor", "not a cursor of this search; follow the next link")
    return institution_code, department_code


class Locations(DirectoryEntry):
    """Institutions' sites and their departments as Location; only a department is written here."""

    resource_type = "Location"
    search_parameters = frozenset({"identifier", "name", "name:contains", "organization", "status"})
    render = staticmethod(fhir_directory.location_resource)
    parse = staticmethod(fhir_directory.parse_location)
    create = staticmethod(services.directory_department_create)
    update = staticmethod(services.directory_department_update)
    row_keyword = "department"
    key = staticmethod(fhir_directory.location_id)

    filters = [
        OpenApiParameter("identifier", str, description="system|value: institution code or department code"),
        OpenApiParameter("organization", str, description="Organization/{id}: the managing organization"),
        OpenApiParameter("status", str, enum=["active", "inactive", "suspended"]),
    ]
    search_summary = "Search Locations (institution sites and departments, mCSD ITI-90)"
    create_summary = "Add a department (Location) to the caller's institution, or any for staff"
    update_summary = "Update a department Location (own institution's, or staff)"

    def lookup(self, id):
        institution_code, _, department_code = id.partition("-")
        if not department_code:
            return Institution.objects.filter(code=institution_code).first()
        return (
            Department.objects.select_related("institution")
            .filter(institution__code=institution_code, code=department_code)
            .first()
        )

    def criteria(self, query):
        params = query.params
        criteria = selectors.SiteSearch(name=params.get("name"), name_contains=params.get("name:contains"))
        if (value := params.get("identifier")) is not None:
            system, code = search.token("identifier", value)
            if system in (None, codes.INSTITUTION_CODE_SYSTEM):
                criteria.institution_codes = [code.upper()]
            else:
                criteria.sites = False
            if system in (None, codes.DEPARTMENT_CODE_SYSTEM):
                criteria.department_codes = [code]
            else:
                criteria.departments = False
        if (value := params.get("organization")) is not None:
            criteria.institution_code = _reference_param("organization", value, "Organization").upper()
        if (value := params.get("status")) is not None:
            if value not in ("active", "inactive", "suspended"):
                raise invalid_parameter("status", "expected active, inactive or suspended", code="code-invalid")
            if value == "suspended":
                return None  # the registry has no suspended sites or departments
            criteria.active = value == "active"
        return criteria

    def count(self, criteria):
        return selectors.site_count(criteria)

    def page(self, criteria, *, cursor, limit):
        return selectors.site_page(criteria, after=_location_cursor(cursor), limit=limit)

    def existing(self, system, value, fields):
        # A department code is unique within its institution: the match is sought there.
        if system in (None, codes.DEPARTMENT_CODE_SYSTEM):
            return Department.objects.select_related("institution").filter(institution=fields.institution, code=value)
        return Department.objects.none()

    def check_writable(self, row, id):
        if isinstance(row, Institution):
            error = FHIRError.one(
                405, "not-supported", f"Location/{id} is the site of Organization/{id}: update the Organization"
            )
            error.headers["Allow"] = "GET, HEAD"
            raise error


# --- The endpoints: three views a type, each naming its entry -----------------------------


class OrganizationTypeView(DirectoryTypeView):
    """``/fhir/Organization``: search the region's institutions, or register one (staff)."""

    entry = Organizations()


class OrganizationInstanceView(DirectoryInstanceView):
    """``/fhir/Organization/{id}``: read an institution, or update it (its own feed, or staff)."""

    entry = Organizations()


class OrganizationVersionView(_CurrentVersionRead, OrganizationInstanceView):
    """``/fhir/Organization/{id}/_history/{vid}``: an institution's current version (vread)."""


class PractitionerTypeView(DirectoryTypeView):
    """``/fhir/Practitioner``: search practitioners, or register one at the caller's institution."""

    entry = Practitioners()


class PractitionerInstanceView(DirectoryInstanceView):
    """``/fhir/Practitioner/{id}``: read a practitioner, or update one (its institution's feed, or staff)."""

    entry = Practitioners()


class PractitionerVersionView(_CurrentVersionRead, PractitionerInstanceView):
    """``/fhir/Practitioner/{id}/_history/{vid}``: a practitioner's current version (vread)."""


class LocationTypeView(DirectoryTypeView):
    """``/fhir/Location``: search sites and departments, or add a department."""

    entry = Locations()


class LocationInstanceView(DirectoryInstanceView):
    """``/fhir/Location/{id}``: read a site or department; update a department."""

    entry = Locations()


class LocationVersionView(_CurrentVersionRead, LocationInstanceView):
    """``/fhir/Location/{id}/_history/{vid}``: a site's or department's current version (vread)."""


def _urls(
    type_view: type[DirectoryTypeView],
    instance_view: type[DirectoryInstanceView],
    version_view: type[DirectoryInstanceView],
) -> list:
    """One resource type's search/create, read/update and vread views at their URLs."""
    name = type_view.entry.resource_type
    return [
        re_path(rf"^{name}/{_ID}{_VID}$", version_view.as_view(), name=f"{name.lower()}-vread"),
        re_path(rf"^{name}$", type_view.as_view(), name=f"{name.lower()}-search"),
        re_path(rf"^{name}/{_ID}$", instance_view.as_view(), name=f"{name.lower()}-read"),
    ]


urlpatterns: list = [
    *_urls(OrganizationTypeView, OrganizationInstanceView, OrganizationVersionView),
    *_urls(PractitionerTypeView, PractitionerInstanceView, PractitionerVersionView),
    *_urls(LocationTypeView, LocationInstanceView, LocationVersionView),
]
