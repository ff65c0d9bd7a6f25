"""Reads of the health archive: one resource, its versions, and FHIR searches with keyset paging.

A search is parsed into a ``Query`` (``query_parse``) and run by ``resources_search``. Patient-scoped
searches (``patient=``/``subject=``) span every identity linked to the person *now*, so a merge or an
unmerge in the MPI changes what a search returns without touching a single fact.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from ehr.errors import ResourceError
from ehr.indexing import SPECS, date_range, reference_target
from ehr.models import Resource, ResourceVersion, SearchReference, SearchToken, Submission

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
# Parameters every type serves besides its own (R4 "Parameters for all resources" and the patient scope).
COMMON_PARAMETERS = ("_id", "_lastUpdated", "patient", "subject")
RESULT_PARAMETERS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_format", "_cursor")
MAX_COUNT = 1000
DEFAULT_COUNT = 50


@dataclass
class Query:
    """A parsed search: every constraint is ANDed; the values of one parameter are ORed (R4 search §2.1.1.4)."""

    resource_type: str
    identity_ids: list[int] | None = None  # None: not patient-scoped
    ids: list[str] = field(default_factory=list)
    statuses: list[tuple[list[str], bool]] = field(default_factory=list)  # (codes, negated): the status column
    tokens: list[tuple[str, list[tuple[str | None, str]], str]] = field(default_factory=list)  # param, values, modifier
    references: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    dates: list[tuple[str, str, dt.datetime, dt.datetime]] = field(default_factory=list)  # column, prefix, low, high
    sort: str = "_id"  # "_id", "date" or "-date"
    count: int = DEFAULT_COUNT
    cursor: tuple | None = None
    summary_count: bool = False
    includes: list[tuple[str, str, str]] = field(default_factory=list)  # (source type, param, target type)
    revincludes: list[tuple[str, str]] = field(default_factory=list)  # (source type, param)
    ignored: list[str] = field(default_factory=list)
    # Conditional matching only: the writer's source system (its own resources only); None for any source.
    source_id: int | None = None
    # The types _include/_revinclude may add (the caller's readable types); None for any type.
    include_types: frozenset[str] | None = None


def _split_values(value: str) -> list[str]:
    # A comma separates values; "\," is a literal comma (R4 search §2.1.1.7).
    parts, current, escaped = [], "", False
    for ch in value:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p != ""]


def _token(param: str, value: str) -> tuple[str | None, str]:
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code  # "|code": no system; "system|code": that system
    return None, value


def _date(param: str, value: str) -> tuple[str, dt.datetime, dt.datetime]:
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    found = date_range(text)
    if found is None:
        raise ResourceError(
            f"{param}: '{value}' is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with a time zone), "
            f"optionally prefixed with one of {', '.join(DATE_PREFIXES)}",
            expression=param,
        )
    return prefix, *found


def _patient_identities(param: str, value: str, resolve) -> list[int]:
    ref = value if "/" in value else f"Patient/{value}"
    target = reference_target({"reference": ref})
    if target is None or target[0] != "Patient":
        raise ResourceError(f"{param}: expected a Patient reference (Patient/<id>), got '{value}'", expression=param)
    return resolve(target[1])


def query_parse(resource_type: str, pairs: list[tuple[str, str]], *, resolve_patient, strict: bool) -> Query:
    """A search request's parameters as a ``Query``. ``resolve_patient(id)`` gives the identity ids a Patient id
    stands for (all identities of its person). Unknown parameters are refused when ``strict``
    (Prefer: handling=strict), else ignored and reported in ``Query.ignored``."""
    spec = SPECS[resource_type]
    q = Query(resource_type)
    for name, value in pairs:
        base, _, modifier = name.partition(":")
        if name in ("_format", "_total"):
            continue
        if name == "_count":
            if not (value.isascii() and value.isdigit() and len(value) <= 18):
                raise ResourceError(f"_count: expected a whole number, got '{value}'", expression="_count")
            q.count = min(int(value), MAX_COUNT)
        elif name == "_sort":
            if value not in ("date", "-date", "_id", spec.date_param, f"-{spec.date_param}"):
                raise ResourceError(
                    f"_sort: {resource_type} sorts by date, -date or _id, not '{value}'", expression="_sort"
                )
            q.sort = value.replace(spec.date_param, "date") if value != "_id" else "_id"
        elif name == "_summary":
            # false: the whole resources, which is what a search answers anyway (as the Patient and
            # directory searches take it); the other summaries (true, text, data) are not served.
            if value not in ("count", "false"):
                raise ResourceError("_summary: only _summary=count (or false) is supported", expression="_summary")
            q.summary_count = value == "count"
        elif name == "_cursor":
            q.cursor = _cursor_decode(value)
        elif name == "_include":
            q.includes.append(_include_parse(name, value, resource_type, reverse=False))
        elif name == "_revinclude":
            q.revincludes.append(_include_parse(name, value, resource_type, reverse=True))
        elif name == "_id":
            q.ids += _split_values(value)
        elif name == "_lastUpdated":
            q.dates.append(("last_updated", *_date(name, value)))
        elif base in ("patient", "subject") and base in (spec.patient, "patient", "subject") and spec.patient:
            ids: list[int] = []
            for v in _split_values(value):
                ids += _patient_identities(name, v, resolve_patient)
            q.identity_ids = ids if q.identity_ids is None else [i for i in q.identity_ids if i in ids]
        elif base == spec.date_param or (base == "date" and spec.date_param != "date"):
            q.dates.append(("effective", *_date(name, value)))
        elif base == spec.status_param:
            if modifier not in ("", "not"):
                raise ResourceError(f"{name}: the :{modifier} modifier is not supported", expression=name)
            q.statuses.append(([_token(name, v)[1] for v in _split_values(value)], modifier == "not"))
        elif base in spec.tokens:
            if modifier not in ("", "not"):
                raise ResourceError(f"{name}: the :{modifier} modifier is not supported", expression=name)
            q.tokens.append((base, [_token(name, v) for v in _split_values(value)], modifier))
        elif base in spec.references:
            targets = []
            for v in _split_values(value):
                target = reference_target({"reference": v})
                if target is None:
                    raise ResourceError(f"{name}: expected a reference Type/id, got '{v}'", expression=name)
                targets.append(target)
            q.references.append((base, targets))
        elif strict:
            raise ResourceError(
                f"{name}: not a search parameter of {resource_type} here "
                f"(supported: {', '.join(sorted(search_parameters(resource_type)))})",
                code="not-supported",
                expression=name,
            )
        else:
            q.ignored.append(name)
    return q


def search_parameters(resource_type: str) -> dict[str, str]:
    """The search parameters a type serves, with their FHIR type (for the CapabilityStatement)."""
    spec = SPECS[resource_type]
    params = {"_id": "token", "_lastUpdated": "date", spec.date_param: "date"}
    if spec.patient:
        params.update({"patient": "reference", spec.patient: "reference"})
    params.update({p: "token" for p in spec.tokens})
    params.update({p: "reference" for p in spec.references})
    return params


def _include_parse(name: str, value: str, resource_type: str, *, reverse: bool) -> tuple:
    parts = value.split(":")
    if len(parts) not in (2, 3) or parts[0] not in SPECS:
        raise ResourceError(f"{name}: expected SourceType:param[:TargetType], got '{value}'", expression=name)
    source, param = parts[0], parts[1]
    if param not in SPECS[source].references:
        raise ResourceError(f"{name}: {source} has no reference parameter '{param}' here", expression=name)
    if reverse:
        return source, param
    if source != resource_type:
        raise ResourceError(f"{name}: must start with {resource_type}", expression=name)
    return source, param, parts[2] if len(parts) == 3 else ""


def _cursor_encode(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def _cursor_decode(value: str) -> tuple:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
        if not isinstance(data, list) or len(data) != 3:
            raise ValueError
        sort, value, pk = data
        if sort not in ("_id", "date", "-date") or not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError
        if value is not None:
            dt.datetime.fromisoformat(value)  # TypeError for anything but text
        return tuple(data)
    except (ValueError, TypeError):
        raise ResourceError("_cursor: not a page link this server made", expression="_cursor") from None


def _date_q(column: str, prefix: str, low: dt.datetime, high: dt.datetime) -> Q:
    """R4 search.html#prefix: the resource's range [lo, hi] against the search value's range [low, high].

    eq: the search range contains the resource's; gt: the range above the search value overlaps the
    resource's; ge: gt or eq; lt, le likewise below; ne: not eq; sa: the resource's starts after the search
    range; eb: ends before it.
    """
    lo, hi = (f"{column}_low", f"{column}_high") if column == "effective" else (column, column)
    within = Q(**{f"{lo}__gte": low, f"{hi}__lte": high})
    if prefix == "eq":
        return within
    if prefix == "ne":
        return ~within & Q(**{f"{lo}__isnull": False})
    if prefix == "gt":
        return Q(**{f"{hi}__gt": high})
    if prefix == "lt":
        return Q(**{f"{lo}__lt": low})
    if prefix == "ge":
        return Q(**{f"{hi}__gt": high}) | within
    if prefix == "le":
        return Q(**{f"{lo}__lt": low}) | within
    if prefix == "sa":
        return Q(**{f"{lo}__gt": high})
    return Q(**{f"{hi}__lt": low})  # eb


def _filtered(q: Query) -> QuerySet[Resource]:
    qs = Resource.objects.filter(resource_type=q.resource_type, deleted=False)
    if q.source_id is not None:
        qs = qs.filter(source_id=q.source_id)
    if q.identity_ids is not None:
        qs = qs.filter(identity_id__in=q.identity_ids)
    if q.ids:
        qs = qs.filter(fhir_id__in=q.ids)
    for codes, negated in q.statuses:
        qs = qs.exclude(status__in=codes) if negated else qs.filter(status__in=codes)
    for param, values, modifier in q.tokens:
        match = Q()
        for system, code in values:
            one = Q(code=code)
            if system is not None:
                one &= Q(system=system)
            match |= one
        tokens = SearchToken.objects.filter(
            match, resource_id=OuterRef("pk"), resource_type=q.resource_type, param=param
        )
        found = Exists(tokens)
        if param == "identifier":
            # The first identifier is a column of the resource; later ones are token rows.
            column = Q()
            for system, code in values:
                column |= Q(identifier_value=code, **({"identifier_system": system} if system is not None else {}))
            found = column | found
        qs = qs.exclude(found) if modifier == "not" else qs.filter(found)
    for param, targets in q.references:
        match = Q()
        for target_type, target_id in targets:
            match |= Q(target_type=target_type, target_id=target_id)
        qs = qs.filter(Exists(SearchReference.objects.filter(match, resource_id=OuterRef("pk"), param=param)))
    for column, prefix, low, high in q.dates:
        qs = qs.filter(_date_q(column, prefix, low, high))
    return qs


@dataclass
class Page:
    """One page of a search: the matches, what _include/_revinclude add, and the cursor of the next page."""

    matches: list[Resource]
    included: list[Resource]
    next_cursor: str | None
    total: int | None = None


def resources_search(q: Query, *, with_total: bool = False) -> Page:
    """Runs a search: one page of ``q.count`` matches after ``q.cursor``, keyset-ordered (no OFFSET)."""
    qs = _filtered(q)
    if q.summary_count:
        return Page([], [], None, qs.count())
    if q.sort == "_id":
        order = [F("pk").asc()]
        if q.cursor:
            qs = qs.filter(pk__gt=q.cursor[2])
    else:
        desc = q.sort.startswith("-")
        order = [
            F("effective_low").desc(nulls_last=True) if desc else F("effective_low").asc(nulls_last=True),
            F("pk").desc() if desc else F("pk").asc(),
        ]
        if q.cursor:
            qs = qs.filter(_after(q.cursor, desc))
    rows = list(qs.order_by(*order)[: q.count + 1])
    more = len(rows) > q.count
    rows = rows[: q.count]
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = _cursor_encode([q.sort, last.effective_low.isoformat() if last.effective_low else None, last.pk])
    total = _filtered(q).count() if with_total else None
    return Page(rows, _included(q, rows), cursor, total)


def _after(cursor: tuple, desc: bool) -> Q:
    _, value, pk = cursor
    if value is None:  # nulls come last either way
        return Q(effective_low__isnull=True) & (Q(pk__lt=pk) if desc else Q(pk__gt=pk))
    at = dt.datetime.fromisoformat(value)
    if desc:
        return Q(effective_low__lt=at) | Q(effective_low=at, pk__lt=pk) | Q(effective_low__isnull=True)
    return Q(effective_low__gt=at) | Q(effective_low=at, pk__gt=pk) | Q(effective_low__isnull=True)


# The most resources _include and _revinclude add to one page: a page of encounters with their observations fits;
# more is refused (narrow the page with _count) rather than answered as megabytes.
MAX_INCLUDED = 5000


def _included(q: Query, rows: list[Resource]) -> list[Resource]:
    if not rows or not (q.includes or q.revincludes):
        return []
    pks = [r.pk for r in rows]
    wanted = Q()
    any_wanted = False
    for _, param, target_type in q.includes:
        refs = SearchReference.objects.filter(resource_id__in=pks, param=param)
        if target_type:
            refs = refs.filter(target_type=target_type)
        for t, i in refs.values_list("target_type", "target_id"):
            if q.include_types is None or t in q.include_types:
                wanted |= Q(resource_type=t, fhir_id=i)
                any_wanted = True
    out: dict[int, Resource] = {}
    if any_wanted:
        for r in Resource.objects.filter(wanted, deleted=False)[: MAX_INCLUDED + 1]:
            out[r.pk] = r
        _included_bounded(out, "_include")
    for source_type, param in q.revincludes:
        if q.include_types is not None and source_type not in q.include_types:
            continue
        ids = [r.fhir_id for r in rows]
        refs = SearchReference.objects.filter(
            target_type=q.resource_type, target_id__in=ids, resource_type=source_type, param=param
        )
        for r in Resource.objects.filter(pk__in=refs.values("resource_id"), deleted=False)[: MAX_INCLUDED + 1]:
            out[r.pk] = r
        _included_bounded(out, "_revinclude")
    seen = set(pks)
    return [r for pk, r in out.items() if pk not in seen]


def _included_bounded(found: dict, name: str) -> None:
    if len(found) > MAX_INCLUDED:
        raise ResourceError(
            f"{name}: more than {MAX_INCLUDED:,} resources would be included in one page; ask for fewer matches "
            "per page (_count)",
            code="too-costly",
            expression=name,
        )


def resource_get(resource_type: str, fhir_id: str) -> Resource | None:
    """The resource of that type and id (a deleted one too: the caller answers 410 Gone)."""
    found = _resources_where("resource_type = %s AND fhir_id = %s", [resource_type, fhir_id])
    return found[0] if found else None


def resources_by_ids(resource_type: str, fhir_ids: list[str]) -> dict[str, Resource]:
    """The resources of that type with these ids (deleted ones too), by id, in one statement."""
    if not fhir_ids:
        return {}
    found = _resources_where(f"resource_type = %s AND fhir_id IN {in_list(fhir_ids)}", [resource_type, *fhir_ids])
    return {r.fhir_id: r for r in found}


def in_list(values) -> str:
    """``(%s, %s, …)``: the placeholders of an ``IN`` list of these values."""
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _resources_where(where: str, params: list) -> list[Resource]:
    """Resources chosen by a condition written in this module, as model instances, without the ORM's query
    compilation: the write corridor asks for single resources by key several times a message (an HL7 v2
    message writes three or four resources), and compiling the query cost five times its execution."""
    return list(Resource.objects.raw(f"SELECT * FROM ehr_resource WHERE {where}", params))  # noqa: S608


def resource_version(resource: Resource, version_id: int) -> ResourceVersion | None:
    if version_id == resource.version_id:
        return resource.current_version()
    return ResourceVersion.objects.filter(resource=resource, version_id=version_id).first()


def resource_history(resource: Resource, *, count: int = DEFAULT_COUNT, before: int | None = None) -> list:
    """Versions newest first, ``count`` of them, older than ``before`` (a version id) when paging."""
    out = []
    if before is None or before > resource.version_id:
        out.append(resource.current_version())
    qs = ResourceVersion.objects.filter(resource=resource)
    if before is not None:
        qs = qs.filter(version_id__lt=before)
    out += list(qs.order_by("-version_id")[: max(count - len(out), 0)])
    return out[:count]


def resources_of_identities(identity_ids: list[int], *, types: tuple[str, ...] | None = None) -> QuerySet[Resource]:
    """Every current resource about these identities (``Patient/$everything``), oldest first by id."""
    qs = Resource.objects.filter(identity_id__in=identity_ids, deleted=False)
    if types:
        qs = qs.filter(resource_type__in=types)
    return qs.order_by("pk")


def conditional_matches(resource_type: str, criteria: str, *, source_id: int | None) -> list[Resource]:
    """The resources a conditional create's, update's or delete's criteria (or a conditional reference's)
    match, at most two (more is an error): only those the source system ``source_id`` wrote — business
    identifiers are scoped to the writer's own source — or any source's when ``source_id`` is None (a staff
    writer)."""
    pairs = criteria_pairs(criteria)
    if not pairs:
        raise ResourceError("conditional criteria are empty", expression="If-None-Exist")
    results = sorted({name for name, _ in pairs if name in RESULT_PARAMETERS and name != "_format"})
    if results:
        # _summary=count or _count=1 would change what "matches" means (no match, or only the first).
        raise ResourceError(
            f"conditional criteria take search parameters only, not {', '.join(results)}",
            code="not-supported",
            expression="criteria",
        )

    def no_patient(fhir_id: str) -> list[int]:
        raise ResourceError("patient is not a conditional criterion here; use identifier", expression="criteria")

    found = identifier_criteria(criteria)
    if found is not None:
        return _identifier_matches(resource_type, *found, source_id=source_id)
    q = query_parse(resource_type, pairs, resolve_patient=no_patient, strict=True)
    q.count, q.source_id = 2, source_id
    return resources_search(q).matches


def criteria_pairs(criteria: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of conditional criteria — an ``If-None-Exist``, a conditional update's or
    delete's URL, a conditional reference — decoded; every reading of criteria goes through here. A decoded
    ``%00`` is refused: no FHIR string holds U+0000, and PostgreSQL cannot compare a text with it (a 500)."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        raise ResourceError("conditional criteria may not contain the NUL character (U+0000)", expression="criteria")
    return pairs


def identifier_criteria(criteria: str) -> tuple[str, str] | None:
    """(system, value) when conditional criteria are exactly ``identifier=system|value``, the usual form (None
    for any other, a refused one too: the caller's general path then says why)."""
    try:
        pairs = criteria_pairs(criteria)
    except ResourceError:
        return None
    if len(pairs) == 1 and pairs[0][0] == "identifier" and "|" in pairs[0][1]:
        system, _, value = pairs[0][1].partition("|")
        if system and value and "," not in value:
            return system, value
    return None


def _identifier_matches(resource_type: str, system: str, value: str, *, source_id: int | None) -> list[Resource]:
    """``identifier=system|value`` as indexed lookups — the first identifier is a column of the resource (the
    business identifier's unique index), later ones are token rows — instead of the search's OR of the column
    and an EXISTS, which leaves the planner no index to start from."""
    return identifier_matches_many(resource_type, {(system, value)}, source_id=source_id)[(system, value)]


def identifier_matches_many(
    resource_type: str, pairs: set[tuple[str, str]], *, source_id: int | None
) -> dict[tuple[str, str], list[Resource]]:
    """The resources each ``(system, value)`` business identifier of ``resource_type`` names (at most two, by
    id: more than one is the caller's error to report), for many at once — what a transaction of conditional
    updates (an HL7 v2 result's OBX, a feed's Bundle) asks — in one statement whatever their number: the
    first identifier is a column of the resource (the business identifier's index), later ones are token rows,
    each followed to its resource by primary key. The token branch is a ``LATERAL`` subquery kept apart by
    ``OFFSET 0``, so that it is always an index lookup per token row: as a join or ``IN (subquery)`` the planner
    chose a scan of every resource on a freshly filled archive (6 ms a lookup, bench/hl7v2_process.py)."""
    if not pairs:
        return {}
    systems, values = sorted({s for s, _ in pairs}), sorted({v for _, v in pairs})
    scope, scope_params = ("AND r.source_id = %s", [source_id]) if source_id is not None else ("", [])
    in_systems, in_values = in_list(systems), in_list(values)
    if connection.vendor == "postgresql":
        tokens = f"""ehr_searchtoken t CROSS JOIN LATERAL (
            SELECT * FROM ehr_resource r WHERE r.id = t.resource_id AND NOT r.deleted {scope} OFFSET 0) r"""  # noqa: S608
    else:  # SQLite has no LATERAL; its planner follows the join by primary key
        tokens = f"ehr_searchtoken t JOIN ehr_resource r ON r.id = t.resource_id AND NOT r.deleted {scope}"
    sql = f"""
        SELECT r.*, r.identifier_system AS matched_system, r.identifier_value AS matched_value FROM ehr_resource r
        WHERE r.resource_type = %s AND NOT r.deleted AND r.identifier_value IN {in_values}
          AND r.identifier_system IN {in_systems} {scope}
        UNION ALL
        SELECT r.*, t.system, t.code FROM {tokens}
        WHERE t.resource_type = %s AND t.param = 'identifier' AND t.code IN {in_values} AND t.system IN {in_systems}
    """  # noqa: S608 - only this module's text is formatted in; values are parameters
    params = [resource_type, *values, *systems, *scope_params, *scope_params, resource_type, *values, *systems]
    found: dict[tuple[str, str], dict[int, Resource]] = {pair: {} for pair in pairs}
    for row in Resource.objects.raw(sql, params):
        pair = (row.matched_system, row.matched_value)
        if pair in found:
            found[pair].setdefault(row.pk, row)
    return {pair: [rows[pk] for pk in sorted(rows)][:2] for pair, rows in found.items()}


class FactRow:
    """A current archived resource as a person's record reads it: the columns of ``Resource`` under the same
    names, without the model instance (a record of thousands of facts builds thousands of them: this costs a
    twentieth of a model instance). The JSON body arrives as text and is decoded by orjson when first read,
    and ``code`` (the body's ``code`` element, read apart by the record read) without decoding the body: the
    patient page groups 1,400 results by their code and reads in full only the rows it shows and charts —
    decoding, and then freeing, every body was a fifth of the page."""

    _fields = (
        "pk",
        "resource_type",
        "fhir_id",
        "version_id",
        "identity_id",
        "source_id",
        "status",
        "effective_low",
        "effective_high",
        "last_updated",
        "body",
        "submission_id",
    )
    __slots__ = (*(f for f in _fields if f != "body"), "_body", "_body_text", "_code_text")

    def __init__(self, *values, code_text: str | None = None):
        (
            self.pk,
            self.resource_type,
            self.fhir_id,
            self.version_id,
            self.identity_id,
            self.source_id,
            self.status,
            self.effective_low,
            self.effective_high,
            self.last_updated,
            body,
            self.submission_id,
        ) = values
        self._body, self._body_text = (body, None) if isinstance(body, dict) else (None, body)
        self._code_text = code_text

    @property
    def id(self) -> int:
        return self.pk

    @property
    def body(self) -> dict:
        if self._body is None:
            self._body = orjson.loads(self._body_text) if self._body_text else {}
            self._body_text = None
        return self._body

    @property
    def code(self):
        """The body's ``code`` element (None when it has none)."""
        if self._body is None and self._code_text is not None:
            try:
                return orjson.loads(self._code_text)
            except orjson.JSONDecodeError:  # ->> of a bare string is that string's text, not JSON
                pass
        body = self.body
        return body.get("code") if isinstance(body, dict) else None

    def __repr__(self) -> str:
        return f"<FactRow {self.resource_type}/{self.fhir_id} pk={self.pk}>"


def _fact_rows(qs: QuerySet[Resource], *, with_code: bool = False) -> list[FactRow]:
    """The rows of ``qs`` as FactRows, the JSON bodies as text (decoded when read); ``with_code``: each body's
    ``code`` element read apart."""
    fields = [f if f != "body" else "body_text" for f in FactRow._fields]
    qs = qs.annotate(body_text=Cast("body", TextField()))
    if not with_code:
        return [FactRow(*row) for row in qs.values_list(*fields)]
    rows = qs.annotate(code_text=KT("body__code")).values_list(*fields, "code_text")
    return [FactRow(*row[:-1], code_text=row[-1]) for row in rows]


def everything_page(
    identity_ids: list[int], *, count: int, after_pk: int | None, types: frozenset[str] | None = None
) -> tuple[list[FactRow], int | None]:
    """One page of a person's facts (``Patient/$everything``): every current resource of these identities
    but their source Patients, by id, limited to ``types`` when given; and the last id of the page when there
    are more (the keyset of the next page)."""
    qs = resources_of_identities(identity_ids).exclude(resource_type="Patient")
    if types is not None:
        qs = qs.filter(resource_type__in=sorted(types))
    if after_pk is not None:
        qs = qs.filter(pk__gt=after_pk)
    rows = _fact_rows(qs[: count + 1], with_code=True)
    more = len(rows) > count
    rows = rows[:count]
    return rows, (rows[-1].pk if more and rows else None)


def facts_since(person_id: int, since: dict[str, object]) -> list[FactRow]:
    """The current facts of the identities linked to the person ``person_id`` of the types ``since`` names, each
    type's only from its cutoff on (``effective_low`` at or after it, or no time at all; None: all of them),
    newest first: what the alert rules look at (recent results, medications of the look-back period, every
    allergy) out of a record of thousands of facts. One query (the identities joined)."""
    if not since:
        return []
    if connection.vendor == "postgresql":
        return _facts_since_sql(person_id, since)
    wanted = Q()
    for resource_type, cutoff in sorted(since.items()):
        clause = Q(resource_type=resource_type)
        if cutoff is not None:
            clause &= Q(effective_low__gte=cutoff) | Q(effective_low__isnull=True)
        wanted |= clause
    qs = Resource.objects.filter(wanted, identity__person_id=person_id, deleted=False)
    return _fact_rows(qs.order_by("-effective_low", "-pk"))


def _facts_since_sql(person_id: int, since: dict[str, object]) -> list[FactRow]:
    """``facts_since`` on PostgreSQL as one statement written out: the alerts read it for every evaluation, and
    building the ORM's query (six type clauses, each with its cutoff) cost a quarter of its 10 ms. The same rows
    in the same order as the ORM's query below, which SQLite runs (tests/alerts/test_record_read.py compares
    either with the in-memory filter of a record already read, on each database in CI)."""
    # The types and their cutoffs joined as a VALUES list, so that each (identity, type) is one range of the
    # index (identity_id, resource_type, effective_low DESC), whatever the statistics say: written as ORed
    # type clauses, the planner on a freshly filled archive of a million resources chose a bitmap of every
    # Observation in the region, 97 ms instead of 1 (EXPLAIN ANALYZE on bench/viewer_speed.py's database).
    # Each cutoff as the ORM prepares it for effective_low: a naive one (or a day) read in the current time
    # zone, not as a timestamp the session's UTC would read 8 hours later.
    field = Resource._meta.get_field("effective_low")
    wanted = [
        (t, None if c is None else field.get_db_prep_value(c, connection, prepared=False))
        for t, c in sorted(since.items())
    ]
    values = ", ".join(["(%s, %s::timestamptz)"] * len(wanted))
    params = [value for pair in wanted for value in pair]
    columns = ", ".join(
        {"pk": "r.id", "body": "CAST(r.body AS text)"}.get(name, f"r.{name}") for name in FactRow._fields
    )
    # Only the FactRow's column names and fixed clauses are in the text; every value is a parameter.
    sql = (
        f"SELECT {columns} FROM mpi_identity i CROSS JOIN (VALUES {values}) AS w (resource_type, since)"  # noqa: S608
        " JOIN ehr_resource r ON r.identity_id = i.id AND r.resource_type = w.resource_type"
        " WHERE i.person_id = %s AND NOT r.deleted"
        " AND (w.since IS NULL OR r.effective_low >= w.since OR r.effective_low IS NULL)"
        " ORDER BY r.effective_low DESC, r.id DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, person_id])
        rows = cursor.fetchall()
    return [FactRow(*row) for row in rows]


def submission_uuids(pks: set[int]) -> dict[int, str]:
    """Submission pk -> its uuid (the provenance an alert's evidence names)."""
    if not pks:
        return {}
    return {pk: str(u) for pk, u in Submission.objects.filter(pk__in=pks).values_list("pk", "uuid")}


def source_patients(identity_ids: list[int]) -> dict[int, Resource]:
    """identity pk -> its source Patient as the archive stores it (those written through the FHIR API)."""
    rows = Resource.objects.filter(resource_type="Patient", identity_id__in=identity_ids)
    return {r.identity_id: r for r in rows}


def facts_after(*, source_ids: list[int], after: int, limit: int) -> list[tuple[int, int, dict]]:
    """The next ``limit`` live facts (every archived type but the source Patients) of these source systems after
    primary key ``after``, in key order: (pk, source id, body) — a pass over the archive in batches."""
    return list(
        Resource.objects.filter(pk__gt=after, source_id__in=source_ids, deleted=False)
        .exclude(resource_type="Patient")
        .order_by("pk")
        .values_list("pk", "source_id", "body")[:limit]
    )
