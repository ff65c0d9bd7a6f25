"""Writes to the health archive: create, update and delete FHIR resources, a whole batch in one go.

Every write is batch-first (``resources_write``): a FHIR transaction of
thousands of entries costs a handful of bulk statements, not thousands of
commits (DESIGN.md, "Writes are bounded by commits"). A single create or
update is a batch of one.

Rules the archive keeps, whoever calls it:
- a resend of the same fact (same source system, type and business
  identifier) updates the stored resource; it never adds a second one, and the
  database enforces that under concurrent writers;
- a conditional create (``If-None-Exist``) that finds its resource makes
  nothing, and two identical concurrent ones make one resource (a unique key on
  the criteria, not a check in code);
- every version is kept; an update that changes nothing makes no version;
- ``If-Match`` on a stale version is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ehr.bulk import objects_insert, rows_insert
from ehr.errors import ResourceError, WriteRace, lost_race
from ehr.indexing import business_identifier, extract
from ehr.models import (
    ConditionalKey,
    Resource,
    ResourceVersion,
    SearchReference,
    SearchToken,
    Submission,
    new_fhir_id,
)
from ehr.selectors import conditional_matches, criteria_pairs, identifier_criteria, in_list
from mpi.selectors import same_person


@dataclass
class WriteItem:
    """One resource to write. ``method`` is create, update or delete; update and delete name ``target``."""

    resource_type: str
    body: dict | None
    method: str = "create"
    identity_id: int | None = None
    target: Resource | None = None
    if_match: int | None = None  # the version the client last saw (ETag), for update and delete
    if_none_exist: str | None = None  # conditional create criteria (a query string)
    fhir_id: str | None = None  # a fixed id for a create (Patient resources carry their identity's uuid)
    path: str = ""  # where the resource sits in the request (``Bundle.entry[3].resource``), for errors
    # The stored body as the writer's corridor would write it now (a copy: its local codes translated by today's
    # code maps), for comparing a resend: the same fact sent again after a map changed is still the same fact.
    stored_as: Callable[[dict], dict] | None = None
    # The request it came in, when not the batch's (several HL7 v2 messages written in one transaction).
    submission: Submission | None = None
    # Results, filled in by resources_write.
    resource: Resource | None = None
    outcome: str = ""  # created, updated, unchanged, existing, deleted
    extra: dict = field(default_factory=dict)


def submission_record(
    *, source, actor: str, request_line: str, body: bytes | str, kind: str = Submission.Kind.FHIR
) -> Submission:
    """Keeps the request as received: every version written from it points here. An HL7 v2 message's body
    stays in the intake's inbox row (which names this submission), not copied here."""
    raw = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return Submission.objects.create(
        kind=kind,
        source=source,
        actor=actor[:150],
        request_line=request_line[:300],
        body=raw,
        body_sha256=hashlib.sha256(raw.encode()).hexdigest(),
    )


def submissions_record_many(*, source, actor: str, request_lines: list[str], kind: str) -> list[Submission]:
    """One submission per request line, bodiless (the HL7 v2 inbox keeps each message's body), in one
    insert: the provenance of several messages written in one transaction."""
    empty, now = hashlib.sha256(b"").hexdigest(), timezone.now()
    made = [
        Submission(
            kind=kind,
            source=source,
            actor=actor[:150],
            request_line=line[:300],
            body="",
            body_sha256=empty,
            received_at=now,  # auto_now_add is the ORM's save; the bulk insert takes the value as it is
        )
        for line in request_lines
    ]
    objects_insert(made)
    return made


def criteria_normalize(criteria: str) -> str:
    """A conditional create's criteria in one canonical spelling (parameters sorted), for its unique key."""
    pairs = sorted(criteria_pairs(criteria))
    return urlencode(pairs)


def _criteria_hash(resource_type: str, criteria: str, source_id: int | None) -> str:
    # Per source: conditional criteria are scoped to the writer's own source, so two hospitals' identical
    # criteria are two keys (one's conditional create never answers with, or blocks, the other's resource).
    text = f"{source_id if source_id is not None else '-'}:{resource_type}?{criteria_normalize(criteria)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(body: dict, fhir_id: str, version: int, now) -> dict:
    """The body as stored: our id and meta.versionId/lastUpdated, everything else as received."""
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    stamped = {"resourceType": body["resourceType"], "id": fhir_id}
    stamped["meta"] = {"versionId": str(version), "lastUpdated": now.isoformat(timespec="milliseconds"), **meta}
    stamped.update({k: v for k, v in body.items() if k not in ("resourceType", "id", "meta")})
    return stamped


def _content(body: dict | None) -> dict:
    """What a resend is compared on: the body without id and meta."""
    return {k: v for k, v in (body or {}).items() if k not in ("id", "meta")}


def _extracted(item: WriteItem):
    """The item's search values, extracted once when it is written (its references rewritten by then)."""
    if "extracted" not in item.extra:
        item.extra["extracted"] = extract(item.resource_type, item.body)
    return item.extra["extracted"]


TOKEN_COLUMNS = ["resource_id", "resource_type", "param", "system", "code"]
REFERENCE_COLUMNS = ["resource_id", "resource_type", "param", "target_type", "target_id"]


def _columns(resource: Resource, x, tokens: list, references: list) -> None:
    """Sets the indexed columns from the extracted values ``x`` and adds the token and reference rows, as
    (resource, values…) until the resource has its primary key."""
    resource.status = x.status
    resource.effective_low, resource.effective_high = x.effective
    resource.identifier_system, resource.identifier_value = x.identifier
    tokens += [(resource, resource.resource_type, p, s, c) for p, s, c in x.tokens]
    references += [(resource, resource.resource_type, p, t, i) for p, t, i in x.references]


def _index_insert(model, columns: list[str], rows: list[tuple]) -> None:
    rows_insert(model, columns, [(row[0].pk, *row[1:]) for row in rows])


def resources_write(*, items: list[WriteItem], source, actor: str, submission: Submission | None) -> list[WriteItem]:
    """Writes a batch atomically: all items or none (a ``ResourceError`` rolls the whole batch back, and
    inside a caller's transaction any exception from here dooms that whole transaction: the caller leaves it
    and, for ``WriteRace``, runs its request again).

    Creates are resolved first (``items_resolve``) unless the caller already did so to rewrite references.
    A concurrent writer that wins a race on a business identifier or a conditional key raises ``WriteRace``:
    the caller runs its whole request again, which then finds the winner's row.
    """
    try:
        # No savepoint of its own inside a caller's transaction: a lost race is answered by running the
        # caller's whole request again, so the rest of that transaction is rolled back anyway (and the
        # SAVEPOINT/RELEASE pair cost two statements on every write).
        with transaction.atomic(savepoint=False):
            return _write(items, source, actor, submission)
    except WriteRace:
        raise
    except Exception as exc:
        # Whichever statement lost (a COPY, a bulk insert, an update waiting on another writer's row): a key a
        # concurrent writer took, or a deadlock the server broke, is a lost race; anything else is not hidden.
        if isinstance(exc, IntegrityError) or lost_race(exc):
            raise WriteRace() from None
        raise


def items_resolve(items: list[WriteItem], *, source) -> None:
    """Decides what each create will do before anything is written, so that references to it can be rewritten:
    a conditional create that finds its resource is ``existing``; a create carrying a business identifier this
    source already stored is a resend of that resource (``_write`` settles it once references are rewritten:
    the same content answers the stored resource, other content is refused — a POST never overwrites); any
    other create gets its new id now.

    Conditional criteria match only the source's own resources (``source`` None: a staff writer, any source's):
    a hospital cannot find, and so cannot answer with or update, another's resource by its identifier.
    Identifier criteria (``identifier=system|value``, what hospital systems send) and the resend check are
    answered for the whole batch by one query on the archive and one on the secondary identifiers (the rows a
    resend may revive are then locked); other criteria run as searches. Call inside the transaction that writes.
    """
    pending = [i for i in items if i.method == "create" and not i.extra.get("resolved")]
    source_id = source.pk if source is not None else None
    # The source's own rows only (its business identifiers are unique per source: the index
    # ehr_resource_business_identifier starts with the source); a staff writer's criteria look at every row.
    scope = {"source_id": {source_id}} if source_id is not None else {}
    by_identifier: dict[tuple[str, str, str], list[WriteItem]] = {}
    for item in pending:
        if not item.if_none_exist:
            continue
        found = _if_none_exist_identifier(item)
        if found:
            by_identifier.setdefault((item.resource_type, *found), []).append(item)
            continue
        matches = conditional_matches(item.resource_type, item.if_none_exist, source_id=source_id)
        _conditional_settle(item, matches)
    wanted: dict[tuple[str, str, str], WriteItem] = {}
    for item in pending:
        if item.body is None:
            continue
        system, value = business_identifier(item.resource_type, item.body)
        if value:
            wanted[(item.resource_type, system, value)] = item
    if by_identifier or wanted:
        keys = by_identifier.keys() | wanted.keys()
        # The first identifier is a column of the resource (one indexed query for both questions); later
        # identifiers are token rows, looked up for the criteria only. Plain rows, not model instances: a
        # new feed's Bundle matches nothing, and the ORM's compilation of these two queries cost more CPU
        # than the rest of the check (bench/fhir_speed.py, issue 4).
        rows = {
            pk: (resource_type, system, value, row_source, deleted)
            for pk, resource_type, system, value, row_source, deleted in _rows_where(
                Resource,
                "id, resource_type, identifier_system, identifier_value, source_id, deleted",
                resource_type={k[0] for k in keys},
                identifier_value={k[2] for k in keys},
                **scope,
            )
        }
        hits: dict[tuple[str, str, str], set[int]] = {}
        for pk, (resource_type, system, value, _, _) in rows.items():
            if (resource_type, system, value) in by_identifier:
                hits.setdefault((resource_type, system, value), set()).add(pk)
        if by_identifier:
            tokens = _rows_where(
                SearchToken,
                "resource_type, system, code, resource_id",
                param={"identifier"},
                resource_type={k[0] for k in by_identifier},
                code={k[2] for k in by_identifier},
            )
            for resource_type, system, code, resource_id in tokens:
                if (resource_type, system, code) in by_identifier:
                    hits.setdefault((resource_type, system, code), set()).add(resource_id)
        found = Resource.objects.in_bulk({pk for pks in hits.values() for pk in pks}) if hits else {}
        if scope:  # a later identifier's token row may be another source's resource
            found = {pk: r for pk, r in found.items() if r.source_id == source_id}
        for key, waiting in by_identifier.items():
            matches = [found[pk] for pk in sorted(hits.get(key, ())) if pk in found and not found[pk].deleted]
            for item in waiting:
                _conditional_settle(item, matches)
        resent = {
            pk: item
            for pk, (resource_type, system, value, row_source, _) in rows.items()
            if row_source == source_id
            and (item := wanted.get((resource_type, system, value))) is not None
            and item.outcome != "existing"
        }
        # A resend concerns the source's own row: only those rows are locked (and read again under the lock),
        # never another source's row that shares an identifier value.
        for row in Resource.objects.select_for_update().filter(pk__in=resent) if resent else ():
            item = resent[row.pk]
            item.method, item.target, item.fhir_id = "update", row, row.fhir_id
            item.extra["resend"] = True
    for item in pending:
        if item.outcome != "existing" and item.method == "create":
            item.fhir_id = item.fhir_id or new_fhir_id()
        item.extra["resolved"] = True


def resources_lock(*, pks: list[int], skip_locked: bool = False) -> list[Resource]:
    """The resources with these primary keys, read again and locked for the caller's transaction (in key order);
    ``skip_locked``: without the ones another transaction holds (PostgreSQL; SQLite locks the whole database)."""
    if not pks:
        return []
    return list(Resource.objects.filter(pk__in=pks).order_by("pk").select_for_update(skip_locked=skip_locked))


def _rows_where(model, columns: str, **values: set) -> list[tuple]:
    """``SELECT columns FROM model's table WHERE column IN values AND …`` as plain tuples."""
    where, params = [], []
    for column, wanted in values.items():
        where.append(f"{column} IN {in_list(wanted)}")
        params += sorted(wanted)
    # Only column names written in this module and the model's table are formatted in; values are parameters.
    sql = f"SELECT {columns} FROM {model._meta.db_table} WHERE {' AND '.join(where)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _if_none_exist_identifier(item: WriteItem) -> tuple[str, str] | None:
    """The (system, value) of the item's If-None-Exist when it is ``identifier=system|value``, parsed once."""
    if "criteria_identifier" not in item.extra:
        item.extra["criteria_identifier"] = identifier_criteria(item.if_none_exist) if item.if_none_exist else None
    return item.extra["criteria_identifier"]


def _resend_refuse(item: WriteItem, stored: Resource, how: str) -> None:
    """A plain create (POST) carrying a business identifier the source already stored, ``how`` it differs:
    refused, never applied (R4 http.html#create: create makes a new resource; and the archive keeps one
    resource per business identifier and source, so it cannot make a second)."""
    where = f"{item.path or item.resource_type}.identifier[0]"
    name = f"{stored.resource_type}/{stored.fhir_id}"
    raise ResourceError(
        f"{where}: {name} of this source already carries this business identifier, {how}; a POST "
        f"creates and never overwrites: change it with PUT {name} (or PUT {stored.resource_type}?identifier=…), "
        "or send the create with If-None-Exist to leave the stored one as it is",
        status=409,
        code="duplicate",
        expression=where,
    )


def _conditional_settle(item: WriteItem, matches: list[Resource]) -> None:
    if len(matches) > 1:
        raise ResourceError(
            f"If-None-Exist {item.if_none_exist} matches {len(matches)} {item.resource_type} resources",
            status=412,
            code="duplicate",
        )
    if matches:
        item.resource, item.outcome, item.fhir_id = matches[0], "existing", matches[0].fhir_id


def _write(items: list[WriteItem], source, actor: str, submission: Submission | None) -> list[WriteItem]:
    now = timezone.now()
    source_id = source.pk if source is not None else None
    items_resolve(items, source=source)
    _targets_locked(items)

    creates: list[Resource] = []
    archived: list[ResourceVersion] = []
    tokens: list[tuple] = []
    references: list[tuple] = []
    reindexed: list[int] = []
    seen_criteria: dict[tuple, WriteItem] = {}
    actor = actor[:150]
    for item in items:
        if item.outcome == "existing":
            continue
        if item.method == "create":
            if item.if_none_exist:
                # Identifier criteria compare as (system, value); others by their canonical hash.
                found = _if_none_exist_identifier(item)
                key = (item.resource_type, found or _criteria_hash(item.resource_type, item.if_none_exist, source_id))
                if key in seen_criteria:  # the same conditional create twice in one batch: one resource
                    item.resource, item.outcome = seen_criteria[key].resource, "existing"
                    continue
                seen_criteria[key] = item
            body = _stamp(item.body, item.fhir_id, 1, now)
            resource = Resource(
                resource_type=item.resource_type,
                fhir_id=item.fhir_id,
                version_id=1,
                identity_id=item.identity_id,
                source_id=source_id,
                last_updated=now,
                actor=actor,
                body=body,
                submission=item.submission or submission,
            )
            _columns(resource, _extracted(item), tokens, references)
            creates.append(resource)
            item.resource, item.outcome = resource, "created"
            continue
        resource = item.target
        if resource is None:
            raise ResourceError(f"{item.method} without a target resource", status=500, code="exception")
        if item.extra.get("resend") and not resource.deleted:
            stored = item.stored_as(resource.body) if item.stored_as is not None else resource.body
            if _content(stored) != _content(item.body):
                _resend_refuse(item, resource, "with other content")
            item.resource, item.outcome = resource, "existing"  # the same fact sent again: nothing changes
            continue
        if item.extra.get("resend") and not same_person(resource.identity_id, item.identity_id):
            # Brought back about another person, the deleted fact's history would become that person's.
            _resend_refuse(item, resource, "(deleted) about another patient")
        if item.if_match is not None and item.if_match != resource.version_id:
            raise ResourceError(
                f"{resource.resource_type}/{resource.fhir_id} is at version {resource.version_id}, "
                f"not {item.if_match} (If-Match)",
                status=412,
                code="conflict",
            )
        if item.method == "delete" and resource.deleted:
            item.resource, item.outcome = resource, "unchanged"
            continue
        if item.method != "delete" and not resource.deleted and _content(resource.body) == _content(item.body):
            item.resource, item.outcome = resource, "unchanged"
            continue
        # The version being replaced moves to the history table as it was.
        archived.append(resource.current_version())
        reindexed.append(resource.pk)
        if item.method == "delete":
            resource.deleted = True  # a deleted resource leaves every search; its body stays for history
            item.outcome = "deleted"
        else:
            resource.body = _stamp(item.body, resource.fhir_id, resource.version_id + 1, now)
            resource.deleted = False
            if item.identity_id is not None:
                resource.identity_id = item.identity_id
            _columns(resource, _extracted(item), tokens, references)
            # A create whose business identifier names a deleted resource of the source brings it back.
            item.outcome = "created" if item.extra.get("resend") else "updated"
        resource.version_id += 1
        resource.last_updated, resource.actor, resource.submission = now, actor, item.submission or submission
        resource.save()
        item.resource = resource

    if reindexed:
        SearchToken.objects.filter(resource_id__in=reindexed).delete()
        SearchReference.objects.filter(resource_id__in=reindexed).delete()
    objects_insert(creates)
    keyed = {
        _criteria_hash(item.resource_type, item.if_none_exist, source_id): item
        for item in seen_criteria.values()
        # Criteria on the resource's own business identifier: the unique constraint on (source, type,
        # identifier) already lets only one of two concurrent creates through; no key row is needed.
        if _if_none_exist_identifier(item) != _extracted(item).identifier
    }
    if keyed:
        _stale_keys_drop(keyed, source_id)
        ConditionalKey.objects.bulk_create(
            ConditionalKey(resource_type=item.resource_type, criteria_sha256=criteria_hash, resource=item.resource)
            for criteria_hash, item in keyed.items()
        )
    objects_insert(archived)
    _index_insert(SearchToken, TOKEN_COLUMNS, tokens)
    _index_insert(SearchReference, REFERENCE_COLUMNS, references)
    return items


def _targets_locked(items: list[WriteItem]) -> None:
    """The resources the batch changes, locked in key order and read again under the lock: the version If-Match
    is compared with, and the one an update builds on, is then the latest committed, and concurrent writers of
    the same resources queue on their rows instead of each updating the version it read (a lost update, caught
    only by the history's unique key) or locking them in their own orders (a deadlock)."""
    changing = {item.target.pk: item for item in items if item.target is not None and item.method != "create"}
    if not changing:
        return
    for row in resources_lock(pks=list(changing)):
        changing[row.pk].target = row


def _stale_keys_drop(keyed: dict[str, WriteItem], source_id: int | None) -> None:
    """Removes the keys of earlier conditional creates whose resources no longer match their criteria (the
    resource changed since). A key whose criteria match again *now* (this statement sees what a concurrent
    writer committed since our search) means we lost a race: the request runs again and finds that resource."""
    for old in ConditionalKey.objects.filter(criteria_sha256__in=list(keyed)):
        mine = keyed[old.criteria_sha256]
        if conditional_matches(mine.resource_type, mine.if_none_exist, source_id=source_id):
            raise WriteRace()
        old.delete()
