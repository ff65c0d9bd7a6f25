"""Writes to the registry. Each service validates, owns its transaction, and raises
``ValidationError`` (field → message) or ``RegistryError`` with an actionable message."""

from __future__ import annotations

import datetime as dt
import secrets

from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone

from registry.models import (
    CodeSystem,
    Concept,
    ConceptMapEntry,
    Department,
    Institution,
    Practitioner,
    SourceSystem,
)


class RegistryError(Exception):
    """A registry operation that cannot be done as asked."""


class SourceSystemAuthError(RegistryError):
    """Unknown client, wrong secret, or an inactive feed or institution."""


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
    return {
        "institutions": len(institutions),
        "departments": len(departments),
        "practitioners": len(practitioners),
        "source_systems": len(source_systems),
        "concept_map_entries": len(concept_map_entries),
    }
