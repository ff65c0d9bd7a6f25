"""Writes to the registry. Each service validates, owns its transaction, and raises
``ValidationError`` (field → message) or a ``RegistryError`` (``registry.errors``) with an actionable
message.

Two kinds of writer: the platform's own (the admin, the seed, bulk import), which register anything,
and the directory's (IHE mCSD, the ``directory_*`` services at the end), where a source system writes
only for its own institution and every write checks the version the writer read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from registry.errors import DirectoryForbidden, DuplicateEntry, RegistryError, SourceSystemAuthError, VersionConflict
from registry.models import (
    CodeSystem,
    Concept,
    ConceptMapEntry,
    Department,
    Institution,
    Practitioner,
    SourceSystem,
    UnmappedCode,
)
from registry.terminology import CodeMap, code_maps_forget


def _validated_save(obj):
    obj.full_clean()
    obj.save()
    return obj


@transaction.atomic
def institution_create(
    *,
    code: str,
    name: str,
    level: str,
    kind: str,
    division_code: str,
    district: str,
    licence_number: str,
    licence_valid_from: dt.date,
    licence_valid_until: dt.date,
    address: str = "",
    phone: str = "",
) -> Institution:
    """Registers an institution after checking its code, licence and grading."""
    return _validated_save(
        Institution(
            code=code.strip().upper(),
            name=name.strip(),
            level=level,
            kind=kind,
            division_code=division_code,
            district=district.strip(),
            address=address.strip(),
            phone=phone.strip(),
            licence_number=licence_number.strip().upper(),
            licence_valid_from=licence_valid_from,
            licence_valid_until=licence_valid_until,
        )
    )


_INSTITUTION_EDITABLE = {
    "name",
    "level",
    "district",
    "address",
    "phone",
    "licence_number",
    "licence_valid_from",
    "licence_valid_until",
    "active",
}


@transaction.atomic
def institution_update(*, institution: Institution, **changes) -> Institution:
    """Changes an institution's details; the institution code and kind are its identity and stay."""
    unknown = set(changes) - _INSTITUTION_EDITABLE
    if unknown:
        raise RegistryError(f"these institution fields cannot be changed here: {', '.join(sorted(unknown))}")
    for field, value in changes.items():
        setattr(institution, field, value)
    return _validated_save(institution)


@transaction.atomic
def department_create(*, institution: Institution, code: str, name: str) -> Department:
    """Adds a department to an institution."""
    return _validated_save(Department(institution=institution, code=code.strip(), name=name.strip()))


@transaction.atomic
def practitioner_register(
    *,
    licence_number: str,
    name: str,
    role: str,
    institution: Institution,
    valid_from: dt.date,
    valid_until: dt.date | None = None,
    department: Department | None = None,
    name_pinyin: str = "",
) -> Practitioner:
    """Registers a practitioner at an institution whose licence covers the start date."""
    return _validated_save(
        Practitioner(
            licence_number=licence_number.strip().upper(),
            name=name.strip(),
            name_pinyin=name_pinyin.strip(),
            role=role,
            institution=institution,
            department=department,
            valid_from=valid_from,
            valid_until=valid_until,
        )
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


@transaction.atomic
def source_system_register(
    *,
    institution: Institution,
    kind: str,
    name: str,
    sending_application: str,
    sending_facility: str,
    active: bool = True,
    fhir_scopes: str = "",
    hl7_charset: str = "",
) -> tuple[SourceSystem, str]:
    """Registers a feed; returns it with its client secret, which is not stored and shown only now."""
    secret = _new_secret()
    source = _validated_save(
        SourceSystem(
            institution=institution,
            kind=kind,
            name=name.strip(),
            sending_application=sending_application.strip(),
            sending_facility=sending_facility.strip(),
            client_id=f"ss-{secrets.token_hex(8)}",
            secret_hash=make_password(secret),
            secret_rotated_at=timezone.now(),
            active=active,
            fhir_scopes=" ".join(fhir_scopes.split()),
            hl7_charset=hl7_charset.strip(),
        )
    )
    return source, secret


@transaction.atomic
def source_system_rotate_secret(*, source_system: SourceSystem) -> str:
    """Replaces a feed's secret (the old one stops working at once); returns the new one."""
    secret = _new_secret()
    source_system.secret_hash = make_password(secret)
    source_system.secret_rotated_at = timezone.now()
    source_system.save(update_fields=["secret_hash", "secret_rotated_at", "updated_at"])
    return secret


def source_system_authenticate(*, client_id: str, secret: str) -> SourceSystem:
    """The feed these credentials belong to; ``SourceSystemAuthError`` if they do not hold."""
    source = SourceSystem.objects.select_related("institution").filter(client_id=client_id).first()
    # check_password runs the hasher even for an unknown client, so timing does
    # not tell which client ids exist.
    valid = check_password(secret, source.secret_hash if source else "!")
    if source is None or not valid:
        raise SourceSystemAuthError("unknown client id or wrong secret")
    if not source.active or not source.institution.active:
        raise SourceSystemAuthError("this source system or its institution is deactivated")
    return source


@transaction.atomic
def code_system_ensure(*, url: str, name: str, version: str = "", oid: str = "", hl7_v2_name: str = "") -> CodeSystem:
    """The code system with this canonical URL, created if new (its other fields updated if given)."""
    code_system = CodeSystem.objects.filter(url=url).first() or CodeSystem(url=url)
    code_system.name = name
    code_system.version = version or code_system.version
    code_system.oid = oid or code_system.oid
    code_system.hl7_v2_name = hl7_v2_name or code_system.hl7_v2_name
    return _validated_save(code_system)


@transaction.atomic
def concept_upsert(*, code_system: CodeSystem, code: str, display: str, display_en: str = "") -> Concept:
    """Creates a concept, or updates the display of an existing code."""
    concept = Concept.objects.filter(code_system=code_system, code=code).first() or Concept(
        code_system=code_system, code=code
    )
    concept.display = display
    concept.display_en = display_en or concept.display_en
    return _validated_save(concept)


@transaction.atomic
def concept_map_entry_set(
    *,
    source_system: SourceSystem,
    local_code: str,
    concept: Concept,
    local_system: str = "",
    local_display: str = "",
    equivalence: str = ConceptMapEntry.Equivalence.EQUIVALENT,
) -> ConceptMapEntry:
    """Maps one local code of a feed to a standard concept, replacing an earlier mapping of that code."""
    entry = ConceptMapEntry.objects.select_for_update().filter(
        source_system=source_system, local_system=local_system, local_code=local_code
    ).first() or ConceptMapEntry(source_system=source_system, local_system=local_system, local_code=local_code)
    entry.local_display = local_display
    entry.concept = concept
    entry.equivalence = equivalence
    return _validated_save(entry)


# Rows per statement of the unmapped-code count (seven parameters each: far below every backend's limit).
UNMAPPED_ROWS_PER_STATEMENT = 1000


def unmapped_codes_count(*, source_id: int, counts: dict[tuple[str, str], tuple[int, str]]) -> None:
    """Adds what one write received of a source system's unmapped local codes to their counts:
    ``counts`` is (local system, code) → (occurrences, display as sent).

    One ``INSERT … ON CONFLICT … DO UPDATE SET count = count + EXCLUDED.count`` (SQLite and PostgreSQL alike;
    ``bulk_create(update_conflicts=True)`` can only overwrite a count, not add to it), inside the caller's
    transaction, so that a write refused or rolled back counts nothing. Two writers counting one code at once
    both count (the second waits on the first's row and adds to it); rows go in key order, so two writers'
    statements take their row locks in the same order and cannot deadlock each other. The display first sent
    is kept (a later one only fills a blank one).
    """
    if not counts:
        return
    table = connection.ops.quote_name(UnmappedCode._meta.db_table)
    count = connection.ops.quote_name("count")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    # Keys as the columns hold them; truncation can make two keys one, and one statement may not touch a row
    # twice: their occurrences are added up.
    merged: dict[tuple[str, str], list] = {}
    for (system, code), (occurrences, display) in counts.items():
        held = merged.setdefault((system[:200], code[:64]), [0, display[:255]])
        held[0] += occurrences
    rows = [
        (source_id, system, code, display, occurrences, now, now)
        for (system, code), (occurrences, display) in sorted(merged.items())
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UNMAPPED_ROWS_PER_STATEMENT):
            chunk = rows[start : start + UNMAPPED_ROWS_PER_STATEMENT]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            # Only the table's and columns' names (quoted by the backend) are formatted in; values are parameters.
            sql = (
                f"INSERT INTO {table} (source_system_id, system, code, display, {count}, first_seen, last_seen) "  # noqa: S608
                f"VALUES {values} ON CONFLICT (source_system_id, system, code) DO UPDATE SET "
                f"{count} = {table}.{count} + EXCLUDED.{count}, last_seen = EXCLUDED.last_seen, "
                f"display = CASE WHEN {table}.display = '' THEN EXCLUDED.display ELSE {table}.display END"
            )
            cursor.execute(sql, [value for row in chunk for value in row])


@transaction.atomic
def unmapped_codes_clear_mapped(*, code_map: CodeMap) -> int:
    """Removes the source system's unmapped-code rows that its code map now translates (after a re-translation
    of its stored facts); returns how many."""
    rows = UnmappedCode.objects.filter(source_system_id=code_map.source_id).values_list("pk", "system", "code")
    mapped = [pk for pk, system, code in rows if code_map.translate(system, code) is not None]
    if mapped:
        UnmappedCode.objects.filter(pk__in=mapped).delete()
    return len(mapped)


def _bind_and_check(obj, *relations: str) -> None:
    """Validates one row of a bulk import like a single write, minus the per-row queries.

    Objects made before their parents were saved carry the parent object but
    no id yet: the id is copied so ``clean`` and bulk_create see it. Foreign
    keys and uniqueness are left to the database's constraints: checking them
    here costs a query per row and field (measured: 683 rows/s on PostgreSQL).
    """
    for name in relations:
        related = getattr(obj, name, None)
        if related is not None:
            setattr(obj, name, related)  # sets the id and keeps the cached object
    obj.full_clean(exclude=list(relations), validate_unique=False, validate_constraints=False)


@transaction.atomic
def registry_bulk_import(
    *,
    institutions: list[Institution],
    departments: list[Department] = (),
    practitioners: list[Practitioner] = (),
    source_systems: list[SourceSystem] = (),
    concept_map_entries: list[ConceptMapEntry] = (),
) -> dict[str, int]:
    """Loads a whole region's registry in one transaction (the synthetic region, a migration).

    Every row passes the same field and ``clean`` checks as a single write;
    uniqueness is left to the database's constraints, so a clash rolls back
    the whole import. Source systems get a client id and an unusable secret:
    an administrator issues the secret by rotating it.
    """
    for inst in institutions:
        _bind_and_check(inst)
    Institution.objects.bulk_create(institutions, batch_size=500)
    for dept in departments:
        _bind_and_check(dept, "institution")
    Department.objects.bulk_create(departments, batch_size=1000)
    for prac in practitioners:
        _bind_and_check(prac, "institution", "department")
    Practitioner.objects.bulk_create(practitioners, batch_size=1000)
    for source in source_systems:
        source.client_id = source.client_id or f"ss-{secrets.token_hex(8)}"
        source.secret_hash = make_password(None)
        _bind_and_check(source, "institution")
    SourceSystem.objects.bulk_create(source_systems, batch_size=1000)
    for entry in concept_map_entries:
        _bind_and_check(entry, "source_system", "concept")
    ConceptMapEntry.objects.bulk_create(concept_map_entries, batch_size=1000)
    code_maps_forget()  # bulk_create sends no post_save
    return {
        "institutions": len(institutions),
        "departments": len(departments),
        "practitioners": len(practitioners),
        "source_systems": len(source_systems),
        "concept_map_entries": len(concept_map_entries),
    }


# --- The directory (IHE mCSD): writes by source systems and staff ---------------------------
# Ownership: a source system writes only for its own institution (the institution itself, its
# departments, its practitioners); a staff user writes any entry. A row's version is derived from
# ``updated_at``, which every save (services, admin, bulk import) moves, so optimistic locking needs no
# column of its own. Nothing here knows FHIR: the FHIR API parses resources into these arguments.

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_Row = TypeVar("_Row", Institution, Department, Practitioner)


def row_version(row: Institution | Department | Practitioner) -> str:
    """The version of a directory row: its last save as microseconds since 1970 (FHIR ``meta.versionId``)."""
    return str((row.updated_at - _EPOCH) // dt.timedelta(microseconds=1))


# --- Directory: who may write -------------------------------------------------------


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


# --- Directory: institutions (FHIR Organization) -------------------------------------


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


# --- Directory: departments (FHIR Location) ------------------------------------------


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


# --- Directory: practitioners (FHIR Practitioner) ------------------------------------


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
