"""Reads of the registry: what the intake, API and viewer ask of it."""

from __future__ import annotations

import copy
import datetime as dt
import time
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet

from registry.codes import INSTITUTION_CODE_SYSTEM, INSTITUTION_LICENCE_SYSTEM, PRACTITIONER_LICENCE_SYSTEM
from registry.models import (
    CodeSystem,
    Concept,
    ConceptMapEntry,
    Department,
    Institution,
    Practitioner,
    SourceSystem,
)


def registry_summary() -> dict[str, int]:
    """How many of each registry entry there are (health checks, the seed report)."""
    return {
        "institutions": Institution.objects.count(),
        "practitioners": Practitioner.objects.count(),
        "source_systems": SourceSystem.objects.count(),
        "concepts": Concept.objects.count(),
    }


def institution_list(
    *, kind: str | None = None, level: str | None = None, licensed_on: dt.date | None = None
) -> QuerySet[Institution]:
    """Institutions, optionally of one kind or level, or only those licensed on a day."""
    qs = Institution.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    if level:
        qs = qs.filter(level=level)
    if licensed_on:
        qs = qs.filter(active=True, licence_valid_from__lte=licensed_on, licence_valid_until__gte=licensed_on)
    return qs


def institution_get_by_code(*, code: str) -> Institution | None:
    """The institution with this unified social credit code."""
    return Institution.objects.filter(code=code.strip().upper()).first()


def practitioner_get_by_licence(*, licence_number: str, role: str | None = None) -> QuerySet[Practitioner]:
    """Practitioners with this registration number (one per role register)."""
    qs = Practitioner.objects.select_related("institution", "department").filter(
        licence_number=licence_number.strip().upper()
    )
    return qs.filter(role=role) if role else qs


def practitioner_id_by_licence(licence_number: str) -> int | None:
    """The id of the practitioner holding this registration number, the active one first (one per role
    register may hold it). One indexed statement: every Bundle's conditional Practitioner reference asks, and
    the ORM's compiled query took 2.7 times the CPU of this one (270 against 100 µs, measured)."""
    table = Practitioner._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE licence_number = %s ORDER BY active DESC, id LIMIT 1",  # noqa: S608
            [licence_number],
        )
        row = cursor.fetchone()
    return row[0] if row else None


# --- The directory (IHE mCSD): its searches, paged by key (no OFFSET) ---------------------


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


# --- Feeds and terminology -----------------------------------------------------------------


def source_system_for_hl7_sender(*, sending_application: str, sending_facility: str) -> SourceSystem | None:
    """The active feed an HL7 v2 message comes from, by MSH-3 and MSH-4."""
    return (
        SourceSystem.objects.select_related("institution")
        .filter(
            sending_application=sending_application,
            sending_facility=sending_facility,
            active=True,
            institution__active=True,
        )
        .first()
    )


# The source systems this process has read, by client id: (their row and their institution's row as plain
# values, the SourceSystem with its institution). Every FHIR request names its source system; rebuilding the
# two model instances through the ORM cost ~1 ms of CPU per request (bench/fhir_speed.py, issue 4), reading
# the rows as values ~0.1 ms. The rows are read on every call, so any change to either (deactivation, a
# rotated secret, a new scope list) reaches the very next request.
_SOURCES: dict[str, tuple[tuple, SourceSystem]] = {}
_SOURCES_MAX = 10_000


def _source_rows_sql() -> str:
    s, i = SourceSystem._meta, Institution._meta
    columns = [f"s.{f.column}" for f in s.concrete_fields] + [f"i.{f.column}" for f in i.concrete_fields]
    return (
        f"SELECT {', '.join(columns)} FROM {s.db_table} s "  # noqa: S608 (the models' own tables and columns)
        f"JOIN {i.db_table} i ON i.{i.pk.column} = s.{s.get_field('institution').column} WHERE s.client_id = %s"
    )


def source_system_by_client_id(client_id: str) -> SourceSystem | None:
    """The source system of ``client_id`` with its institution, as stored now; None if there is none.
    Each call returns its own instances (copies of this process's, ~20 us), so a request that changes one
    changes nothing another request sees."""
    with connection.cursor() as cursor:
        cursor.execute(_source_rows_sql(), [client_id])
        row = cursor.fetchone()
    if row is None:
        _SOURCES.pop(client_id, None)
        return None
    held = _SOURCES.get(client_id)
    if held is None or held[0] != row:
        source = SourceSystem.objects.select_related("institution").filter(client_id=client_id).first()
        if source is None:
            return None
        if len(_SOURCES) >= _SOURCES_MAX:
            _SOURCES.clear()
        held = _SOURCES[client_id] = (row, source)
    # Model.__getstate__ copies the instance's state and its cache of related objects; the institution in
    # that cache is copied too.
    source = copy.copy(held[1])
    source._state.fields_cache["institution"] = copy.copy(held[1].institution)
    return source


def concept_translate(*, source_system: SourceSystem, local_code: str, local_system: str = "") -> Concept | None:
    """The standard concept a feed's local code maps to.

    A mapping made without a local code system also serves codes that arrive
    with one, because many senders fill CWE-3 inconsistently; an exact
    system match wins.
    """
    entries = (
        ConceptMapEntry.objects.select_related("concept__code_system")
        .filter(source_system=source_system, local_code=local_code)
        .filter(Q(local_system=local_system) | Q(local_system=""))
        .order_by("-local_system")
    )
    entry = entries.first()
    return entry.concept if entry else None


def source_ids_with_code_maps() -> list[int]:
    """The source systems that have concept map entries (whose stored facts a re-translation reads)."""
    return sorted(set(ConceptMapEntry.objects.values_list("source_system_id", flat=True).distinct()))


def code_system_by_url(*, url: str) -> CodeSystem | None:
    """A code system by its canonical URL."""
    return CodeSystem.objects.filter(url=url).first()


def source_system_ids_of_institution(institution_id: int) -> list[int]:
    """The primary keys of every source system of one institution (what its feeds wrote may refer to each other)."""
    return list(SourceSystem.objects.filter(institution_id=institution_id).values_list("pk", flat=True))


@dataclass(frozen=True)
class SourceInstitution:
    """The institution a source system belongs to, as a fact's evidence names it."""

    institution_id: int
    code: str
    name: str
    level: str
    source_name: str


def source_institutions() -> dict[int, SourceInstitution]:
    """source system pk -> its institution, for every source system (hundreds of rows; kept for a minute, and
    forgotten at once when the directory changes in this process)."""

    def find():
        rows = SourceSystem.objects.values_list(
            "pk", "institution_id", "institution__code", "institution__name", "institution__level", "name"
        )
        return {pk: SourceInstitution(iid, code, name, level, sname) for pk, iid, code, name, level, sname in rows}

    return _remembered(("source-institutions",), find)


# --- the directory as the target of references from clinical writes ---------------------------------------


def organization_code_by_identifier(system: str, value: str) -> str | None:
    """The code (the FHIR id) of the one institution an Organization identifier names, by its unified social
    credit code or its practising licence; None when none or several do."""
    field = {INSTITUTION_CODE_SYSTEM: "code", INSTITUTION_LICENCE_SYSTEM: "licence_number"}.get(system)
    if field is None:
        return None

    def find() -> str | None:
        codes = list(Institution.objects.filter(**{field: value}).values_list("code", flat=True)[:2])
        return codes[0] if len(codes) == 1 else None

    return _remembered(("Organization", system, value), find)


def practitioner_id_by_identifier(system: str, value: str) -> int | None:
    """The id of the practitioner a Practitioner identifier (their registration number) names, the active
    holder first."""
    if system != PRACTITIONER_LICENCE_SYSTEM:
        return None
    return _remembered(("Practitioner", system, value), lambda: practitioner_id_by_licence(value))


def institution_codes_existing(codes: set[str]) -> set[str]:
    """Which of these institution codes (Organization ids) the registry holds."""
    return set(Institution.objects.filter(code__in=codes).values_list("code", flat=True)) if codes else set()


def practitioner_ids_existing(ids: set[int]) -> set[int]:
    """Which of these practitioner primary keys (Practitioner ids) the registry holds."""
    return set(Practitioner.objects.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()


def department_keys_existing(keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (institution code, department code) pairs (department Location ids) the registry holds."""
    if not keys:
        return set()
    rows = Department.objects.filter(
        institution__code__in={k[0] for k in keys}, code__in={k[1] for k in keys}
    ).values_list("institution__code", "code")
    return set(rows) & keys


# Found references, kept per process for a minute: every Bundle of a hospital names the same few dozen
# practitioners and organisations, and the registry changes by the day. Only hits are kept, so a practitioner
# registered a moment ago resolves at once; a deactivated one may still be named for up to a minute. A change
# saved in this process clears them at once (registry.apps connects the signals).
RESOLVED_SECONDS = 60.0
_RESOLVED: dict[tuple, tuple[float, object]] = {}


def _remembered(key: tuple, find):
    now = time.monotonic()
    hit = _RESOLVED.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = find()
    if found is not None:
        if len(_RESOLVED) > 100_000:
            _RESOLVED.clear()
        _RESOLVED[key] = (now + RESOLVED_SECONDS, found)
    return found


def resolved_forget(**kwargs) -> None:
    """Forgets the remembered directory references (a signal receiver: the registry changed)."""
    _RESOLVED.clear()
