"""The registry as a directory (IHE mCSD): writes by source systems and staff, with who-may-write-what,
and the keyset reads the directory's searches page through.

Ownership: a source system writes only for its own institution (the institution
itself, its departments, its practitioners); a staff user writes any entry. A
row's version is derived from ``updated_at``, which every save (services,
admin, bulk import) moves, so optimistic locking needs no column of its own.

Nothing here knows FHIR: the FHIR API parses resources into these arguments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from registry.models import Department, Institution, Practitioner, SourceSystem
from registry.services import RegistryError, department_create, institution_create, practitioner_register

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_Row = TypeVar("_Row", Institution, Department, Practitioner)


class DirectoryForbidden(RegistryError):
    """The writer may not change this directory entry (it belongs to another institution)."""


class VersionConflict(RegistryError):
    """The entry changed since the version the writer read (optimistic locking, HTTP If-Match)."""


class DuplicateEntry(RegistryError):
    """The entry already exists (same institution code, department code, or licence number in the role)."""


def row_version(row: Institution | Department | Practitioner) -> str:
    """The version of a directory row: its last save as microseconds since 1970 (FHIR ``meta.versionId``)."""
    return str((row.updated_at - _EPOCH) // dt.timedelta(microseconds=1))


# --- Who may write -------------------------------------------------------------------


def _writer_institution_id(writer) -> int | None:
    """The institution a writer is confined to; None for a staff user (writes any)."""
    if isinstance(writer, SourceSystem):
        return writer.institution_id
    if getattr(writer, "is_staff", False) and getattr(writer, "is_active", False):
        return None
    raise DirectoryForbidden("only a source system or a staff user writes to the directory")


def _check_owner(writer, institution_id: int, what: str) -> None:
    own = _writer_institution_id(writer)
    if own is not None and own != institution_id:
        raise DirectoryForbidden(f"a source system writes only its own institution's {what}")


def _check_version(row, expected_version: str | None) -> None:
    if expected_version is not None and expected_version != row_version(row):
        raise VersionConflict(
            f"the entry changed since version {expected_version} (now {row_version(row)}): read it again"
        )


def _save(row) -> None:
    row.full_clean()
    try:
        # A savepoint, so a clash the check above could not see (a concurrent
        # write) leaves the caller's transaction usable.
        with transaction.atomic():
            row.save()
    except IntegrityError as exc:
        raise DuplicateEntry("the entry already exists (a concurrent write registered it first)") from exc


def _unique_clash(exc: ValidationError) -> bool:
    """Whether a model validation failed on a uniqueness check (a duplicate, not a wrong value)."""
    groups = exc.error_dict.values() if hasattr(exc, "error_dict") else [exc.error_list]
    return any(error.code in ("unique", "unique_together") for group in groups for error in group)


def _create(service: Callable[..., _Row], fields, *, duplicate: str) -> _Row:
    """Registers a row through the registry's own ``service``, which takes a write's fields by name
    (all but ``active``: a service registers an active row, deactivated here in the same transaction).
    A uniqueness clash, seen by validation or by the database, is a DuplicateEntry saying ``duplicate``."""
    arguments = {f.name: getattr(fields, f.name) for f in dataclasses.fields(fields) if f.name != "active"}
    try:
        with transaction.atomic():
            row = service(**arguments)
            if not fields.active:
                row.active = False
                row.save(update_fields=["active", "updated_at"])
    except ValidationError as exc:
        if _unique_clash(exc):
            raise DuplicateEntry(duplicate) from exc
        raise
    except IntegrityError as exc:
        raise DuplicateEntry(duplicate) from exc
    return row


def _locked(queryset: QuerySet[_Row], row: _Row, expected_version: str | None) -> _Row:
    """The row read again under a row lock (the caller's transaction), refused if it changed since the
    version the writer read."""
    row = queryset.select_for_update().get(pk=row.pk)
    _check_version(row, expected_version)
    return row


def _save_or_duplicate(row, message: str) -> None:
    try:
        _save(row)
    except ValidationError as exc:
        if _unique_clash(exc):
            raise DuplicateEntry(message) from exc
        raise


# --- Institutions (FHIR Organization) -------------------------------------------------


@dataclass
class InstitutionFields:
    """What a directory write says about an institution."""

    code: str
    name: str
    level: str
    kind: str
    division_code: str
    district: str
    licence_number: str
    licence_valid_from: dt.date
    licence_valid_until: dt.date
    address: str = ""
    phone: str = ""
    active: bool = True


def directory_institution_create(*, writer, fields: InstitutionFields) -> Institution:
    """Registers an institution. Only staff do: a source system's own institution exists already."""
    if _writer_institution_id(writer) is not None:
        raise DirectoryForbidden("a source system cannot register an institution; ask the platform administrators")
    return _create(
        institution_create,
        fields,
        duplicate="an institution with this code or licence number is registered already",
    )


@transaction.atomic
def directory_institution_update(
    *, writer, institution: Institution, fields: InstitutionFields, expected_version: str | None = None
) -> Institution:
    """Replaces an institution's details (FHIR update). The code and kind are its identity and stay;
    a source system may not (de)activate its institution: that cuts off every feed of it, an
    administrator's decision."""
    _check_owner(writer, institution.pk, "entry")
    institution = _locked(Institution.objects, institution, expected_version)
    errors = {}
    if fields.code.strip().upper() != institution.code:
        errors["code"] = ["The institution code is the institution's identity and cannot change."]
    if fields.kind != institution.kind:
        errors["kind"] = ["The kind of institution cannot change; register the new institution instead."]
    if errors:
        raise ValidationError(errors)
    if fields.active != institution.active and _writer_institution_id(writer) is not None:
        raise DirectoryForbidden("only the platform administrators activate or deactivate an institution")
    institution.name = fields.name.strip()
    institution.level = fields.level
    institution.division_code = fields.division_code
    institution.district = fields.district.strip()
    institution.address = fields.address.strip()
    institution.phone = fields.phone.strip()
    institution.licence_number = fields.licence_number.strip().upper()
    institution.licence_valid_from = fields.licence_valid_from
    institution.licence_valid_until = fields.licence_valid_until
    institution.active = fields.active
    _save_or_duplicate(institution, "an institution with this licence number is registered already")
    return institution


# --- Departments (FHIR Location) ------------------------------------------------------


@dataclass
class DepartmentFields:
    """What a directory write says about a department."""

    institution: Institution
    code: str
    name: str
    active: bool = True


def directory_department_create(*, writer, fields: DepartmentFields) -> Department:
    """Adds a department to an institution the writer may write for."""
    _check_owner(writer, fields.institution.pk, "departments")
    return _create(
        department_create,
        fields,
        duplicate="the institution has a department with this code already",
    )


@transaction.atomic
def directory_department_update(
    *, writer, department: Department, fields: DepartmentFields, expected_version: str | None = None
) -> Department:
    """Renames or (de)activates a department. Its institution and code are its identity (and its id)."""
    _check_owner(writer, department.institution_id, "departments")
    department = _locked(Department.objects.select_related("institution"), department, expected_version)
    errors = {}
    if fields.institution.pk != department.institution_id:
        errors["institution"] = ["A department cannot move to another institution."]
    if fields.code.strip() != department.code:
        errors["code"] = ["The department code is the department's identity and cannot change."]
    if errors:
        raise ValidationError(errors)
    department.name = fields.name.strip()
    department.active = fields.active
    _save(department)
    return department


# --- Practitioners (FHIR Practitioner) ------------------------------------------------


@dataclass
class PractitionerFields:
    """What a directory write says about a practitioner."""

    institution: Institution
    licence_number: str
    name: str
    role: str
    valid_from: dt.date
    valid_until: dt.date | None = None
    department: Department | None = None
    name_pinyin: str = ""
    active: bool = True


_DUPLICATE_LICENCE = "a practitioner with this licence number is registered in this role already"


def directory_practitioner_create(*, writer, fields: PractitionerFields) -> Practitioner:
    """Registers a practitioner at an institution the writer may write for."""
    _check_owner(writer, fields.institution.pk, "practitioners")
    return _create(
        practitioner_register,
        fields,
        duplicate=_DUPLICATE_LICENCE,
    )


@transaction.atomic
def directory_practitioner_update(
    *, writer, practitioner: Practitioner, fields: PractitionerFields, expected_version: str | None = None
) -> Practitioner:
    """Replaces a practitioner's registration. A source system may neither touch another institution's
    practitioner nor move its own to another institution."""
    _check_owner(writer, practitioner.institution_id, "practitioners")
    _check_owner(writer, fields.institution.pk, "practitioners")
    practitioner = _locked(Practitioner.objects, practitioner, expected_version)
    practitioner.institution = fields.institution
    practitioner.department = fields.department
    practitioner.licence_number = fields.licence_number.strip().upper()
    practitioner.role = fields.role
    practitioner.name = fields.name.strip()
    practitioner.name_pinyin = fields.name_pinyin.strip()
    practitioner.valid_from = fields.valid_from
    practitioner.valid_until = fields.valid_until
    practitioner.active = fields.active
    _save_or_duplicate(practitioner, _DUPLICATE_LICENCE)
    return practitioner


# --- Reads: the directory's searches, paged by key (no OFFSET) -------------------------


def _name_filter(fields: tuple[str, ...], text: str | None, contains: str | None) -> Q:
    """FHIR string search (R4 search.html#string): ``name`` matches the start of the name or of any
    word in it, case-insensitively; ``name:contains`` anywhere."""
    q = Q()
    if text:
        starts = Q()
        for field in fields:
            starts |= Q(**{f"{field}__istartswith": text}) | Q(**{f"{field}__icontains": f" {text}"})
        q &= starts
    if contains:
        anywhere = Q()
        for field in fields:
            anywhere |= Q(**{f"{field}__icontains": contains})
        q &= anywhere
    return q


def institution_search(
    *,
    codes: list[str] | None = None,
    licence_numbers: list[str] | None = None,
    name: str | None = None,
    name_contains: str | None = None,
    active: bool | None = None,
    kind: str | None = None,
    level: str | None = None,
) -> QuerySet[Institution]:
    """Institutions matching every criterion given, in code order (the directory's keyset).

    ``codes`` and ``licence_numbers`` given together match either (one identifier searched in any system).
    """
    qs = Institution.objects.all()
    if codes is not None or licence_numbers is not None:
        qs = qs.filter(Q(code__in=codes or []) | Q(licence_number__in=licence_numbers or []))
    qs = qs.filter(_name_filter(("name",), name, name_contains))
    if active is not None:
        qs = qs.filter(active=active)
    if kind:
        qs = qs.filter(kind=kind)
    if level:
        qs = qs.filter(level=level)
    return qs.order_by("code")


def institution_page(qs: QuerySet[Institution], *, after: str | None, limit: int) -> list[Institution]:
    """Up to ``limit`` institutions of a search that come after the code ``after``."""
    if after:
        qs = qs.filter(code__gt=after)
    return list(qs[:limit])


def practitioner_search(
    *,
    licence_number: str | None = None,
    name: str | None = None,
    name_contains: str | None = None,
    active: bool | None = None,
    institution_code: str | None = None,
) -> QuerySet[Practitioner]:
    """Practitioners matching every criterion given (name: the Chinese name or its pinyin), in id order."""
    qs = Practitioner.objects.select_related("institution", "department__institution")
    if licence_number is not None:
        qs = qs.filter(licence_number=licence_number.strip().upper())
    qs = qs.filter(_name_filter(("name", "name_pinyin"), name, name_contains))
    if active is not None:
        qs = qs.filter(active=active)
    if institution_code is not None:
        qs = qs.filter(institution__code=institution_code)
    return qs.order_by("pk")


def practitioner_page(qs: QuerySet[Practitioner], *, after: int | None, limit: int) -> list[Practitioner]:
    """Up to ``limit`` practitioners of a search whose primary key is above ``after``."""
    if after is not None:
        qs = qs.filter(pk__gt=after)
    return list(qs[:limit])


@dataclass
class SiteSearch:
    """Criteria of a Location search: sites (an institution's own premises) and departments together."""

    institution_codes: list[str] | None = None  # site identifiers
    department_codes: list[str] | None = None  # department identifiers
    name: str | None = None
    name_contains: str | None = None
    institution_code: str | None = None  # the managing organization
    active: bool | None = None
    sites: bool = True
    departments: bool = True


def _site_queryset(criteria: SiteSearch) -> QuerySet[Institution]:
    qs = Institution.objects.all()
    if criteria.institution_codes is not None:
        qs = qs.filter(code__in=criteria.institution_codes)
    qs = qs.filter(_name_filter(("name",), criteria.name, criteria.name_contains))
    if criteria.institution_code is not None:
        qs = qs.filter(code=criteria.institution_code)
    if criteria.active is not None:
        qs = qs.filter(active=criteria.active)
    return qs.order_by("code")


def _department_queryset(criteria: SiteSearch) -> QuerySet[Department]:
    qs = Department.objects.select_related("institution")
    if criteria.department_codes is not None:
        qs = qs.filter(code__in=criteria.department_codes)
    qs = qs.filter(_name_filter(("name",), criteria.name, criteria.name_contains))
    if criteria.institution_code is not None:
        qs = qs.filter(institution__code=criteria.institution_code)
    if criteria.active is not None:
        qs = qs.filter(active=criteria.active)
    return qs.order_by("institution__code", "code")


def site_count(criteria: SiteSearch) -> int:
    """How many sites and departments match (``_summary=count``)."""
    total = _site_queryset(criteria).count() if criteria.sites else 0
    return total + (_department_queryset(criteria).count() if criteria.departments else 0)


def site_page(criteria: SiteSearch, *, after: tuple[str, str] | None, limit: int) -> list[Institution | Department]:
    """Up to ``limit`` sites and departments after the key ``after``, in the order (institution code,
    department code), a site first (its department code is ""): each institution's premises, then its
    departments. Two keyset queries merged; neither skips rows with OFFSET.

    The merge compares institution codes only (upper-case letters and digits of one length sort the
    same in every collation); departments keep the database's order, the order its ``>`` follows
    (a collation such as en_US ignores the "." of "04.01", Python does not).
    """
    rows: list[tuple[tuple[str, int], Institution | Department]] = []
    if criteria.sites:
        sites = _site_queryset(criteria)
        if after:
            sites = sites.filter(code__gt=after[0])
        rows += [((s.code, 0), s) for s in sites[:limit]]
    if criteria.departments:
        departments = _department_queryset(criteria)
        if after:
            departments = departments.filter(
                Q(institution__code__gt=after[0]) | Q(institution__code=after[0], code__gt=after[1])
            )
        rows += [((d.institution.code, 1), d) for d in departments[:limit]]
    rows.sort(key=lambda kv: kv[0])  # stable: departments stay in the database's order
    return [row for _, row in rows[:limit]]
