"""Applying entries to the stores: a transaction (all or nothing), a batch (each entry on its own), and the
single requests, which are transactions of one entry — so a write is authorised, validated and resolved the
same way whichever route it came by.

Transaction processing follows R4 http.html#trules: entries are applied in the order DELETE, POST, PUT
whatever order they came in (reads last, by the door); ``urn:uuid`` fullUrls of created entries are replaced
by the ids the server gave them everywhere in the Bundle; conditional references are resolved to the one
resource they match. Patients go first: each is its system's MPI identity, and the facts of the Bundle are
about them. A whole hospital's history of one person (thousands of entries) is one batch of bulk statements in
one database transaction.

Who may do what is decided here, once, for every entry (``healthplatform.access``): the caller's scopes for
the type; what it may change (only what its own source system wrote; a source Patient only under its own
assigning authority); conditional matching only among its own source's resources; references only to what it
may refer to (``references``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction

from ehr import selectors as archive
from ehr.errors import ResourceError, WriteRace, lost_race
from ehr.indexing import SPECS, business_identifier, values_at
from ehr.models import Resource
from ehr.selectors import identifier_criteria
from ehr.services import WriteItem, items_resolve, resources_write, submission_record, submissions_record_many
from healthplatform.access import Caller
from healthplatform.alerts.evaluate import ORDER_TYPES
from healthplatform.alerts.services import EVIDENCE_TYPES, alerts_recheck_after_commit, orders_raise_after_commit
from healthplatform.errors import Issue, PlatformError
from healthplatform.ingest.documents import binary_content, document_write
from healthplatform.ingest.entries import DOCUMENT_TYPES, Entry, Received, bundle_entries
from healthplatform.ingest.patients import patient_identity, patient_item, patients_archived
from healthplatform.ingest.references import references_check, references_rewrite
from healthplatform.ingest.terminology import CodeTranslation
from healthplatform.ingest.validation import resource_validated
from healthplatform.unavailable import is_unavailable, unavailable_logged
from mpi import selectors as mpi
from mpi.services import registration_confirmed
from registry.models import SourceSystem

logger = logging.getLogger(__name__)

T = TypeVar("T")
# The most GET entries one Bundle may carry: each is a whole search or read, answered in one response.
MAX_READS = 1_000

# R4 http.html#trules: DELETE, then POST, then PUT (GET and HEAD last, answered by the door).
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}


@dataclass
class Written:
    """What one entry did: ``outcome`` is created, updated, unchanged, existing (a conditional create or a
    resend that found the stored resource), deleted, or absent (a Bundle's DELETE of nothing)."""

    entry: Entry
    outcome: str
    resource: Resource | None = None  # the archive's row
    document: object | None = None  # the document store's DocumentEntry (DocumentReference and Binary entries)


@dataclass
class EntryResult:
    """A Bundle entry's answer: what it wrote, why it was refused, or (a GET entry) what the door read."""

    entry: Entry | None
    written: Written | None = None
    error: PlatformError | None = None
    read: dict | None = None


# What the door gives for reading a GET entry of a Bundle (None: the door reads nothing, GET is refused).
Reader = Callable[[Entry], dict]


@dataclass
class Run:
    """The state of one attempt at applying entries: what the Bundle's entries became and what was resolved."""

    caller: Caller
    submission: object | None
    local: dict[str, str] = field(default_factory=dict)  # fullUrl or conditional reference -> "Type/id"
    patients: dict[str, object] = field(default_factory=dict)  # a Patient reference -> its Identity
    literals: list = field(default_factory=list)  # literal references waiting for references_check
    checked: set[str] = field(default_factory=set)  # literal references already noted
    # (node, key, value before): the rewrites made in the entries' resources, undone if the attempt fails, so
    # that a run again after a lost race starts from the resources as received.
    rewrites: list[tuple[dict, str, object]] = field(default_factory=list)
    codes: CodeTranslation | None = None  # the writer's local codes translated, its unmapped ones counted
    # (type, criteria) -> the resources ``identifier=system|value`` criteria match, looked up for all the
    # entries at once (``_targets_prefetch``).
    targets: dict[tuple[str, str], list] = field(default_factory=dict)
    # id(entry) -> its own submission, when the entries are several requests' (``transactions_apply``).
    entry_submissions: dict[int, object] = field(default_factory=dict)
    # time.monotonic() past which a transaction Bundle stops and is rolled back (None: no budget).
    deadline: float | None = None

    def in_time(self) -> None:
        """Refuses the transaction once its time budget is spent: rolled back whole, answered 503 (the web
        worker's timeout would otherwise kill it with no answer at all)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _past_budget("Bundle", "the transaction was rolled back: nothing of it is written")

    @property
    def caller_source_id(self) -> int | None:
        return self.caller.source.pk if self.caller.source is not None else None

    def patient(self, reference: str, *, path: str):
        """The identity a fact's patient reference names, the caller's own patient (resolved once per run)."""
        ref = self.local.get(reference, reference)
        identity = self.patients.get(ref)
        if identity is None:
            identity = self.patients[ref] = patient_identity(self.caller, ref, path=path)
        self.patients[reference] = identity
        return identity

    def rewrite(self, node: dict, key: str, value) -> None:
        self.rewrites.append((node, key, node[key]))
        node[key] = value

    def codes_translate(self, body: dict) -> bool:
        """A source system's fact: its local codes gain their standard codings (undone with the other rewrites,
        so a run again after a lost race translates the resource as received). Staff write no local codes.
        Returns whether the writer is a source system (its facts are translated)."""
        if self.caller.source is None:
            return False
        if self.codes is None:
            self.codes = CodeTranslation.of(self.caller.source.pk)
        self.codes.resource(body, self.rewrite)
        return True

    def undo(self) -> None:
        for node, key, before in reversed(self.rewrites):
            node[key] = before
        self.rewrites.clear()


# --- the guard ------------------------------------------------------------------------------


def _entry_authorise(caller: Caller, e: Entry) -> None:
    """What the caller may ask of this type at all (its scopes), and what no caller may ask."""
    if e.method in ("POST", "PUT") and (not isinstance(e.resource, dict) or not e.resource):
        raise PlatformError.one(
            400, "structure", f"{e.resource_path}: expected a FHIR resource (a JSON object)", expression=e.resource_path
        )
    if not caller.may(e.resource_type, "write"):
        raise PlatformError.one(
            403,
            "forbidden",
            f"{e.path}: the token has no scope to write {e.resource_type} (it needs system/{e.resource_type}.write)",
            expression=None if e.single else e.path,
        )
    if e.resource_type in DOCUMENT_TYPES and e.method != "POST":
        raise PlatformError.one(
            400 if not e.single else 405,
            "not-supported",
            f"{e.path}.request.method: documents are provided with POST "
            "(a correction is a new document that replaces the old one)",
            expression=None if e.single else f"{e.path}.request.method",
        )
    if e.resource_type == "Patient" and e.method == "DELETE":
        raise PlatformError.one(
            405,
            "not-supported",
            "a Patient is an MPI identity: it is unlinked or merged, not deleted",
            expression=e.url_path,
        )


def _change_authorise(run: Run, e: Entry, target: Resource) -> None:
    """May the caller update or delete ``target``? A source Patient: only under the caller's own assigning
    authorities. Anything else: only what the caller's very source system wrote."""
    caller = run.caller
    name = f"{target.resource_type}/{target.fhir_id}"
    if target.resource_type == "Patient":
        identity = mpi.identity_by_uuid(target.fhir_id)
        if identity is not None and not caller.owns_identity(identity):
            raise PlatformError.one(
                403, "forbidden", f"{name} is registered by another institution", expression=e.url_path
            )
        return
    if not caller.may_change(target.source_id):
        who = "another source system" if target.source_id is not None else "platform staff"
        raise PlatformError.one(403, "forbidden", f"{name} was written by {who}", expression=e.url_path)


def _id_check(e: Entry, target: Resource | None) -> None:
    """R4 http.html#update: the resource's id is the one in the URL (a single PUT must carry it)."""
    body_id = e.resource.get("id")
    where = f"{e.resource_path}.id"
    if e.fhir_id is not None:
        if body_id != e.fhir_id and (e.single or body_id is not None):
            raise PlatformError.one(
                400, "invalid", f"{where}: must be {e.fhir_id!r}, the id in the URL", expression=where
            )
    elif target is not None and body_id not in (None, target.fhir_id):
        raise PlatformError.one(
            400, "invalid", f"{where}: differs from the resource the criteria match", expression=where
        )


def _target(run: Run, e: Entry) -> Resource | None:
    """The resource a PUT or DELETE names (by id, or by criteria among the caller's own source's resources);
    None for a conditional PUT that matches nothing (it then creates) or a Bundle's DELETE of nothing."""
    if e.fhir_id:
        target = archive.resource_get(e.resource_type, e.fhir_id)
        if target is None and (e.method == "PUT" or e.single):
            advice = "; create it with POST" if e.method == "PUT" else ""
            raise PlatformError.one(
                404, "not-found", f"{e.resource_type}/{e.fhir_id} is not known{advice}", expression=e.url_path
            )
        return target
    if not e.criteria:
        raise PlatformError.one(
            400, "invalid", f"{e.url_path or e.path}: {e.method} needs Type/id or Type?criteria", expression=e.url_path
        )
    try:
        matches = run.targets.get((e.resource_type, e.criteria))
        if matches is None:
            matches = archive.conditional_matches(e.resource_type, e.criteria, source_id=run.caller_source_id)
    except ResourceError as exc:
        raise PlatformError.one(exc.status, exc.code, exc.message, expression=e.url_path or exc.expression) from None
    if len(matches) > 1:
        raise PlatformError.one(
            412,
            "multiple-matches",
            f"{len(matches)} {e.resource_type} resources of yours match {e.criteria}",
            expression=e.url_path,
        )
    return matches[0] if matches else None


def _targets_prefetch(run: Run, entries: list[Entry]) -> None:
    """The targets of every conditional update or delete on ``identifier=system|value`` (the usual form) of
    the entries, two statements per resource type (an ORU's dozen OBX: 2 instead of 24)."""
    wanted: dict[str, dict[tuple[str, str], str]] = {}
    for e in entries:
        if e.method in ("PUT", "DELETE") and not e.fhir_id and e.criteria and e.resource_type != "Patient":
            pair = identifier_criteria(e.criteria)
            if pair is not None:
                wanted.setdefault(e.resource_type, {})[pair] = e.criteria
    for resource_type, criteria in wanted.items():
        found = archive.identifier_matches_many(resource_type, set(criteria), source_id=run.caller_source_id)
        for pair, text in criteria.items():
            run.targets[(resource_type, text)] = found.get(pair, [])


def _patient_criteria_check(e: Entry) -> None:
    """``PUT Patient?identifier=<system>|<mrn>``: the criteria name an MRN the Patient itself carries."""
    found = identifier_criteria(e.criteria or "")
    identifiers = e.resource.get("identifier") if isinstance(e.resource.get("identifier"), list) else []
    carried = {(i.get("system"), i.get("value")) for i in identifiers if isinstance(i, dict)}
    if found is None or found not in carried:
        raise PlatformError.one(
            400,
            "invalid",
            f"{e.url_path or 'Patient'}: a conditional update of a Patient is Patient?identifier=<system>|<mrn>, "
            "naming an MRN the Patient carries",
            expression=e.url_path,
        )


def _same_person_kept(e: Entry, target: Resource, item: WriteItem) -> None:
    """An update cannot move a fact to another patient (one of the same person's identities is fine)."""
    if not mpi.same_person(target.identity_id, item.identity_id):
        where = f"{e.resource_path}.{SPECS[e.resource_type].patient}"
        raise PlatformError.one(
            422, "processing", f"{where}: an update cannot move a fact to another patient", expression=where
        )


# --- building the items ------------------------------------------------------------------


def _clinical_item(run: Run, e: Entry) -> WriteItem:
    """A clinical resource's archive item: validated, its patient resolved and checked. References other than
    the patient are rewritten later, once every entry of a Bundle has its id."""
    path = e.resource_path
    resource_validated(e.resource_type, e.resource, path=path)
    element = SPECS[e.resource_type].patient
    subject = next(iter(values_at(e.resource, element)), None)
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference:
        raise PlatformError.one(
            400, "required", f"{path}.{element}: a reference to the Patient is required", expression=f"{path}.{element}"
        )
    identity = run.patient(reference, path=f"{path}.{element}")
    item = WriteItem(e.resource_type, e.resource, identity_id=identity.pk, path=path)
    if run.codes_translate(e.resource):
        # A resend is compared with the stored fact as translated by today's maps (one stored before a map
        # changed lacks the coding this one gained): the same content sent again stays a resend, not a 409.
        item.stored_as = run.codes.translated
    return item


def _apply(run: Run, entries: list[Entry]) -> list[Written]:
    """Applies write entries in one database transaction (the caller's); returns what each did, in order."""
    caller = run.caller
    for e in entries:
        _entry_authorise(caller, e)
    order = sorted(
        range(len(entries)),
        key=lambda i: (_ORDER[entries[i].method], entries[i].resource_type != "Patient", entries[i].index),
    )
    items: list[WriteItem] = []
    state: dict[int, WriteItem | None] = {}
    _targets_prefetch(run, entries)
    # Patients first: the MPI decides each one's identity, and the facts below are about them.
    for i in order:
        e = entries[i]
        if e.resource_type == "Patient" and e.method in ("POST", "PUT"):
            # A source Patient is its MRN: by id, the stored Patient of that identity; by criteria, the MRN the
            # criteria name, which the Patient must carry (its registration finds the identity, no search).
            target = None
            if e.method == "PUT" and e.fhir_id:
                target = _target(run, e)
            elif e.method == "PUT":
                _patient_criteria_check(e)
            if e.method == "PUT":
                _id_check(e, target)
            if target is not None:
                _change_authorise(run, e, target)
            item = patient_item(run, _without_refer_links(e.resource), path=e.resource_path, target=target)
            if e.full_url:
                run.local[e.full_url] = f"Patient/{item.fhir_id}"
            state[i] = item
            items.append(item)
    patients_archived(items)
    clinical: list[int] = []
    binaries: dict[str, bytes] = {}
    for i in order:
        e = entries[i]
        if e.resource_type == "Binary":
            binaries[e.full_url or f"#{e.index}"] = binary_content(e.resource, path=e.resource_path)
            continue
        if e.resource_type in ("Patient", "DocumentReference"):
            continue
        if e.method == "DELETE":
            target = _target(run, e)
            state[i] = None
            if target is not None:
                _change_authorise(run, e, target)
                state[i] = WriteItem(
                    e.resource_type, None, method="delete", target=target, if_match=e.if_match, path=e.resource_path
                )
                items.append(state[i])
            continue
        run.in_time()
        item = _clinical_item(run, e)
        if e.method == "POST":
            item.if_none_exist = e.if_none_exist
        else:
            target = _target(run, e)
            _id_check(e, target)
            if target is not None:
                _change_authorise(run, e, target)
                _same_person_kept(e, target, item)
                item.method, item.target, item.fhir_id = "update", target, target.fhir_id
                item.extra["resolved"] = True
            else:
                # A conditional update that matches nothing creates — conditionally on the same criteria, so
                # that two concurrent identical ones make one resource (the database decides).
                item.if_none_exist = e.criteria
                item.extra["conditional_update"] = True
            item.if_match = e.if_match
        state[i] = item
        clinical.append(i)
        items.append(item)
    _plain_creates_distinct(entries, state, clinical)
    items_resolve([state[i] for i in clinical], source=caller.source)
    _one_change_per_resource(entries, state)
    for i in clinical:
        if entries[i].full_url:
            run.local[entries[i].full_url] = f"{entries[i].resource_type}/{state[i].fhir_id}"
    # Documents next: their ids are what a SubmissionSet List (ITI-65) refers to.
    documents: dict[int, tuple] = {}
    used: dict[str, tuple] = {}
    for i in order:
        e = entries[i]
        if e.resource_type == "DocumentReference":
            contents = e.resource.get("content") if isinstance(e.resource.get("content"), list) else []
            attachments = [c.get("attachment") for c in contents if isinstance(c, dict)]
            urls = [a.get("url") for a in attachments if isinstance(a, dict)]
            documents[i] = document_write(run, e.resource, path=e.resource_path, binaries=binaries)
            used.update({u: documents[i] for u in urls if isinstance(u, str) and u in binaries})
            if e.full_url:
                run.local[e.full_url] = f"DocumentReference/{documents[i][0].uuid}"
    for i in order:
        e = entries[i]
        if e.resource_type == "Binary":
            documents[i] = used.get(e.full_url or f"#{e.index}")
            if documents[i] is None:
                raise PlatformError.one(
                    400,
                    "invalid",
                    f"{e.path}: no DocumentReference of this Bundle uses this Binary (attachment.url)",
                    expression=e.path,
                )
            if e.full_url:
                run.local[e.full_url] = f"Binary/{documents[i][0].uuid}"
    # Every written resource's references, the Patients' included (identifier.assigner, generalPractitioner):
    # R4 http.html#trules resolves urn:uuid and conditional references in every entry of a transaction.
    for i in order:
        item = state.get(i)
        if item is not None and item.body is not None:
            references_rewrite(run, item.body, path=entries[i].resource_path)
    references_check(run)
    run.in_time()
    if run.entry_submissions:
        for i, item in state.items():
            if item is not None:
                item.submission = run.entry_submissions[id(entries[i])]
    resources_write(items=items, source=caller.source, actor=caller.actor, submission=run.submission)
    _unchanged_registrations_confirmed(items)
    if run.codes is not None:
        # After the archive's writes, near the transaction's end: the counts' row locks, which a concurrent
        # writer of the same codes waits on, are then held only until the commit.
        run.codes.unmapped_count()
    written = []
    for i, e in enumerate(entries):
        if i in documents:
            entry, created = documents[i]
            written.append(Written(e, "created" if created else "existing", document=entry))
            continue
        item = state.get(i)
        if item is None:
            written.append(Written(e, "absent"))
            continue
        if item.extra.get("conditional_update") and item.outcome == "existing":
            # A concurrent conditional update created the resource first: run again, as an update of it.
            raise WriteRace()
        written.append(Written(e, item.outcome, resource=item.resource))
    return written


def _unchanged_registrations_confirmed(items: list[WriteItem]) -> None:
    """A Patient the MPI answered "unchanged" from its unlocked read, whose archived Patient this request changed
    nonetheless: the identity is read again under its lock. Another request's change committed meanwhile (new
    demographics, which that request also wrote to the archived Patient) would otherwise be overwritten in the
    archive by this request's older Patient while the MPI kept the newer: the request runs again instead, and
    then registers its demographics as the change they are. (Rare: an unchanged registration usually leaves its
    Patient unchanged, and takes no lock.)"""
    for item in items:
        if item.resource_type != "Patient" or item.outcome != "updated" or item.extra.get("decision") != "unchanged":
            continue
        if not registration_confirmed(item.extra["identity"]):
            raise WriteRace()


def _plain_creates_distinct(entries: list[Entry], state: dict, clinical: list[int]) -> None:
    """Two creates of one request carrying the same business identifier would be one resource (the archive
    keeps one per identifier and source): refused, naming the second. (The same conditional create twice is
    one resource, as R4 has it.)"""
    seen: dict[tuple[str, str, str], int] = {}
    for i in clinical:
        item = state[i]
        if item.method != "create" or item.if_none_exist:
            continue
        system, value = business_identifier(item.resource_type, item.body)
        if not value:
            continue
        key = (item.resource_type, system, value)
        if key in seen:
            where = f"{entries[i].resource_path}.identifier[0]"
            raise PlatformError.one(
                400,
                "invalid",
                f"{where}: {entries[seen[key]].path} creates a {item.resource_type} with the same business "
                "identifier; send each resource once",
                expression=where,
            )
        seen[key] = i


def _one_change_per_resource(entries: list[Entry], state: dict) -> None:
    """R4 http.html#trules: a transaction that changes one resource twice (DELETE and PUT, two PUTs, a DELETE and
    the POST of its business identifier) cannot say which change wins: refused, naming the second entry."""
    seen: dict[int, int] = {}
    for i in sorted(state):
        item = state[i]
        if item is None or item.target is None or item.method not in ("update", "delete"):
            continue
        if item.target.pk in seen:
            e = entries[i]
            raise PlatformError.one(
                400,
                "invalid",
                f"{e.path}: {entries[seen[item.target.pk]].path} changes "
                f"{item.resource_type}/{item.target.fhir_id} too; change a resource once per transaction",
                expression=e.path,
            )
        seen[item.target.pk] = i


def _without_refer_links(body: dict) -> dict:
    """A source Patient as stored: without the ``refer`` link to the golden Patient, which the platform adds
    itself on every read (it follows merges); a client that PUTs back what it read sends it."""
    links = body.get("link")
    if not isinstance(links, list) or not any(isinstance(x, dict) and x.get("type") == "refer" for x in links):
        return body
    kept = [x for x in links if not (isinstance(x, dict) and x.get("type") == "refer")]
    out = {k: v for k, v in body.items() if k != "link"}
    if kept:
        out["link"] = kept
    return out


# --- transactions, batches and single requests ------------------------------------------------


def _refusal(exc: ResourceError) -> PlatformError:
    return PlatformError.one(exc.status, exc.code, exc.message, expression=exc.expression)


# How many times a request that lost a race runs in all. The second run sees the winner's commit (its resource
# found, its version the one If-Match is compared with); a third covers a deadlock broken twice in a crowd.
RACE_ATTEMPTS = 3


def race_retried(work: Callable[[], T]) -> T:
    """Runs ``work`` in one database transaction. A concurrent writer that won a race rolls it back, and it runs
    again, then finding the winner's resources: so the loser gets the answer R4 gives it against the winner's
    commit (200 for a conditional create that finds it, 412 for an update on a stale If-Match), never a 500.

    Every write route passes here (single requests, Bundle entries, HL7 v2 messages), so a lost race is
    recognised here whichever statement lost it (``ehr.errors.lost_race``: a unique key another writer took, by
    COPY, bulk insert or the MPI's insert; a deadlock or serialization failure the server broke), not only as
    the ``WriteRace`` the archive raises."""
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return work()
        except ResourceError as exc:
            if not isinstance(exc, WriteRace):
                raise _refusal(exc) from None
            if attempt == RACE_ATTEMPTS:
                raise _refusal(exc) from None
        except PlatformError:
            raise
        except Exception as exc:
            if not lost_race(exc):
                raise
            if attempt == RACE_ATTEMPTS:
                raise _refusal(WriteRace()) from None
    raise AssertionError("unreachable")


def _attempt(
    caller: Caller,
    entries: list[Entry],
    submission_of: Callable[[], object],
    then: Callable[[], None] | None = None,
    deadline: float | None = None,
) -> Callable[[], list]:
    """One attempt at applying ``entries`` (and then ``then``, inside the same transaction)."""

    def work() -> list[Written]:
        run = Run(caller, submission_of(), deadline=deadline)
        try:
            written = _apply(run, entries) if entries else []
            if then is not None:
                then()
            _orders_alerted(written)
            return written
        except BaseException:
            run.undo()
            raise

    return work


def _orders_alerted(written: list[Written]) -> None:
    """An order or prescription a feed wrote is checked by the alerts once it is committed (the alert is raised
    for the ordering institution); one deleted has its alerts withdrawn."""
    pks: list[int] = []
    # A fact an alert may rest on corrected or deleted (an allergy refuted, the other prescription stopped): the
    # person's alerts already raised are evaluated again, and those that no longer hold withdrawn. An allergy
    # recorded or changed: the person's open prescriptions are checked against it.
    changed: set[int] = set()
    allergies: set[int] = set()
    for w in written:
        resource = w.resource
        if resource is None:
            continue
        if resource.resource_type in ORDER_TYPES and w.outcome in ("created", "updated", "deleted"):
            pks.append(resource.pk)
        if resource.identity_id is None:
            continue
        if resource.resource_type in EVIDENCE_TYPES and w.outcome in ("updated", "deleted"):
            changed.add(resource.identity_id)
        if resource.resource_type == "AllergyIntolerance" and w.outcome in ("created", "updated"):
            allergies.add(resource.identity_id)
    if pks:
        orders_raise_after_commit(pks)
    if changed or allergies:
        alerts_recheck_after_commit(sorted(changed), sorted(allergies))


def _submission(caller: Caller, received: Received):
    received.submission = submission_record(
        source=caller.source,
        actor=caller.actor,
        request_line=received.request_line,
        body=received.body,
        kind=received.kind,
    )
    return received.submission


def transaction_apply(
    *,
    caller: Caller,
    entries: list[Entry],
    received: Received,
    then: Callable[[], None] | None = None,
    deadline: float | None = None,
) -> list[Written]:
    """All entries or none, in one database transaction with the request kept as received; ``then`` runs last
    inside it (a transaction's reads), and its refusal refuses everything. Past ``deadline`` (time.monotonic())
    it stops, rolled back, with a 503."""
    return race_retried(_attempt(caller, entries, lambda: _submission(caller, received), then, deadline))


def _deadline() -> float:
    """When a Bundle received now has spent its time budget (``FHIR_BUNDLE_TIME_BUDGET_SECONDS``)."""
    return time.monotonic() + settings.FHIR_BUNDLE_TIME_BUDGET_SECONDS


def _past_budget(where: str, what: str) -> PlatformError:
    budget = settings.FHIR_BUNDLE_TIME_BUDGET_SECONDS
    return PlatformError.one(
        503,
        "timeout",
        f"{where}: not processed, the Bundle ran past the server's time budget of {budget:g} s ({what}); "
        "send it again, in smaller Bundles",
        expression=where,
    )


def transactions_apply(*, caller: Caller, bundles: list[tuple[dict, Received]]) -> list[list[Written]]:
    """Several transaction Bundles of one caller written in one database transaction, each keeping its own
    submission (what it wrote points to it, ``Received.submission`` names it): what a feed's backlog of small
    transactions costs once instead of once each — an HL7 v2 message is a Bundle of three or four resources,
    and its savepoint, submission, lookups of conditional targets and inserts per table were most of its cost
    (bench/hl7v2_process.py). Guarded exactly as each Bundle alone (the same ``_apply``).

    All or none: any refusal refuses them all (the ``PlatformError`` of the first found), and the caller
    applies each on its own to learn which was refused. Write entries only, no documents; the Bundles' fullUrls
    must be distinct across them. Returns each Bundle's ``Written`` in its entries' order."""
    groups: list[list[Entry]] = []
    for bundle, _received in bundles:
        kind, entries = bundle_entries(bundle)
        if kind != "transaction":
            raise ValueError("transactions_apply takes transaction Bundles")
        for e in entries:
            if isinstance(e, PlatformError):
                raise e
            if e.is_read or e.resource_type in DOCUMENT_TYPES:
                raise ValueError("transactions_apply takes archive writes only")
        groups.append(entries)
    everything = [e for entries in groups for e in entries]
    _full_urls_unique(everything)

    def work() -> list[Written]:
        made = submissions_record_many(
            source=caller.source,
            actor=caller.actor,
            request_lines=[received.request_line for _, received in bundles],
            kind=bundles[0][1].kind,
        )
        run = Run(caller, None)
        for (_, received), entries, submission in zip(bundles, groups, made, strict=True):
            received.submission = submission
            run.entry_submissions.update({id(e): submission for e in entries})
        try:
            written = _apply(run, everything)
            _orders_alerted(written)
            return written
        except BaseException:
            run.undo()
            raise

    written = iter(race_retried(work))
    return [[next(written) for _ in entries] for entries in groups]


def _full_urls_unique(entries: list) -> None:
    """bdl-7: a fullUrl is unique within a Bundle (a transaction's references could not say which entry)."""
    seen: set[str] = set()
    for e in entries:
        if isinstance(e, Entry) and e.full_url:
            if e.full_url in seen:
                where = f"{e.path}.fullUrl"
                raise PlatformError.one(
                    400, "invalid", f"{where}: another entry of this Bundle has the same fullUrl", expression=where
                )
            seen.add(e.full_url)


def bundle_apply(
    *, caller: Caller, bundle, received: Received, read: Reader | None = None, then: Callable[[], None] | None = None
) -> tuple[str, list]:
    """A transaction or batch Bundle: its type and one ``EntryResult`` per entry, in the Bundle's order.

    A transaction is all or nothing (any refused entry refuses the Bundle: ``PlatformError``); its GET
    entries are read after its writes committed. A batch applies each entry on its own and answers a refused
    entry in its place. ``read`` answers a GET entry (the FHIR API reads it as the very GET it names); without
    one, a GET entry is refused. ``then`` (a transaction only) runs after its writes, inside its database
    transaction: its refusal (any exception) refuses the whole (an HL7 v2 ADT^A40's MPI merge).
    """
    if then is not None and (bundle or {}).get("type") != "transaction":
        raise ValueError("then runs inside a transaction Bundle's database transaction")
    deadline = _deadline()
    kind, entries = bundle_entries(bundle)
    _full_urls_unique(entries)
    reads = [e for e in entries if isinstance(e, Entry) and e.is_read]
    if len(reads) > MAX_READS:
        raise PlatformError.one(
            413,
            "too-costly",
            f"Bundle.entry: at most {MAX_READS:,} GET entries per Bundle (this one has {len(reads):,})",
            expression="Bundle.entry",
        )
    if reads and read is None:
        raise _no_reads(reads[0])
    if kind == "transaction":
        for e in entries:
            if isinstance(e, PlatformError):
                raise e
        answers: dict[int, dict] = {}

        def read_all() -> None:
            if then is not None:
                then()
            # After the writes and inside their transaction (R4 http.html#trules: GET last, seeing the writes); a
            # read that fails fails the transaction, as any of its interactions would.
            answers.clear()
            for e in reads:
                answers[e.index] = answer = read(e)
                _read_succeeded(e, answer)

        writes = [e for e in entries if not e.is_read]
        written = iter(
            transaction_apply(caller=caller, entries=writes, received=received, then=read_all, deadline=deadline)
        )
        return kind, [
            EntryResult(e, read=answers[e.index]) if e.is_read else EntryResult(e, written=next(written))
            for e in entries
        ]
    return kind, batch_apply(caller=caller, entries=entries, received=received, read=read, deadline=deadline)


def _read_succeeded(e: Entry, answer: dict) -> None:
    status = str((answer.get("response") or {}).get("status") or "500")
    code = int(status.split()[0]) if status.split()[0].isdigit() else 500
    if code < 400:
        return
    outcome = (answer.get("response") or {}).get("outcome") or {}
    issues = [
        Issue(
            i.get("code", "processing"),
            f"{e.path} (GET {e.url}): {i.get('diagnostics') or (i.get('details') or {}).get('text') or status}",
            tuple(i.get("expression") or ()),
        )
        for i in outcome.get("issue") or []
        if isinstance(i, dict)
    ]
    raise PlatformError(code, issues or [Issue("processing", f"{e.path} (GET {e.url}): {status}", (e.path,))])


def _no_reads(e: Entry) -> PlatformError:
    where = f"{e.path}.request.method"
    return PlatformError.one(400, "not-supported", f"{where}: this route takes writes only", expression=where)


def batch_apply(
    *, caller: Caller, entries: list, received: Received, read: Reader | None = None, deadline: float | None = None
) -> list:
    """Each entry on its own (its own transaction): a refused one answers its refusal, the others still happen.
    The request is kept once, as the provenance of every entry it wrote: stored before the first entry, in a
    transaction of its own (an entry's transaction that rolls back must not take it along).

    Past ``deadline`` (time.monotonic()) no further entry is started: each one left is answered in its place
    as not processed (503, issue type timeout), so the batch-response still says of every entry whether it was
    written — R4 http.html#brules leaves each entry's outcome to the server, and the client resends those."""
    submission = None
    if any(isinstance(e, Entry) and not e.is_read for e in entries):
        with transaction.atomic():
            submission = _submission(caller, received)

    def submission_of():
        return submission

    # An entry's unexpected failure is answered in its place too (issue 18, attack): raised out of the loop it
    # made the whole batch a 500 while the entries before it stayed written, which the client could not know.
    results, connection_lost = [], False
    for e in entries:
        if isinstance(e, PlatformError):
            results.append(EntryResult(None, error=e))
            continue
        if connection_lost:
            results.append(EntryResult(e, error=_unavailable(e.path, "the batch stopped before this entry")))
            continue
        if deadline is not None and time.monotonic() > deadline:
            results.append(EntryResult(e, error=_past_budget(e.path, "the batch stopped before this entry")))
            continue
        try:
            if e.is_read:
                if read is None:
                    raise _no_reads(e)
                results.append(EntryResult(e, read=read(e)))
            else:
                results.append(EntryResult(e, written=race_retried(_attempt(caller, [e], submission_of))[0]))
        except PlatformError as exc:
            results.append(EntryResult(e, error=exc))
        except Exception as exc:
            if is_unavailable(exc):
                # This entry rolled back; when the connection itself is gone, no later one can be written.
                unavailable_logged(exc, f"batch entry {e.path}")
                connection_lost = not connection.is_usable()
                results.append(EntryResult(e, error=_unavailable(e.path, "this entry was rolled back")))
                continue
            logger.exception("batch entry %s failed unexpectedly; answered 500 in its place", e.path)
            message = f"{e.path}: internal error, this entry was not written; the platform's operators have the details"
            results.append(EntryResult(e, error=PlatformError.one(500, "exception", message, expression=e.path)))
    return results


def _unavailable(where: str, what: str) -> PlatformError:
    return PlatformError.one(
        503,
        "transient",
        f"{where}: not processed, the database connection was lost ({what}); send it again",
        expression=where,
    )


def resource_create(*, caller: Caller, resource_type: str, body: dict, if_none_exist: str | None, received: Received):
    """``POST [type]`` (R4 http.html#create; conditional with ``If-None-Exist``). A source Patient is
    registered with the MPI: a resend of the same MRN updates it (its create is conditional on the MRN)."""
    entry = Entry(
        "POST",
        resource_type,
        resource=body,
        if_none_exist=if_none_exist if resource_type != "Patient" else None,
        single=True,
    )
    return transaction_apply(caller=caller, entries=[entry], received=received)[0]


def resource_update(
    *,
    caller: Caller,
    resource_type: str,
    body: dict,
    fhir_id: str | None = None,
    criteria: str | None = None,
    if_match: int | None = None,
    received: Received,
) -> Written:
    """``PUT [type]/[id]`` (R4 http.html#update, ``If-Match`` guarding the version) or ``PUT [type]?criteria``
    (#cond-update: no match creates, one match updates it, several are 412)."""
    entry = Entry(
        "PUT", resource_type, fhir_id=fhir_id, criteria=criteria, resource=body, if_match=if_match, single=True
    )
    return transaction_apply(caller=caller, entries=[entry], received=received)[0]


def resource_delete(
    *, caller: Caller, resource_type: str, fhir_id: str, if_match: int | None = None, received: Received
) -> Written:
    """``DELETE [type]/[id]`` (R4 http.html#delete): a logical delete, every version kept."""
    entry = Entry("DELETE", resource_type, fhir_id=fhir_id, if_match=if_match, single=True)
    return transaction_apply(caller=caller, entries=[entry], received=received)[0]


def bundle_apply_as_source(*, source_id: int, bundle: dict) -> dict:
    """A Bundle applied as a registered source system outside any HTTP request (a Celery task, a feed worker):
    its entries' statuses and locations as plain data, or the refusal."""
    source = SourceSystem.objects.select_related("institution").get(pk=source_id)
    caller = Caller(source, source.client_id)
    received = Received(request_line="TASK ingest.bundle_apply", body=json.dumps(bundle, ensure_ascii=False))
    try:
        kind, results = bundle_apply(caller=caller, bundle=bundle, received=received)
    except PlatformError as exc:
        return {"status": exc.status, "issues": [i.message for i in exc.issues]}
    answers = []
    for result in results:
        if result.error is not None:
            answers.append({"status": result.error.status, "issues": [i.message for i in result.error.issues]})
            continue
        written = result.written
        row = written.resource or written.document
        kind_of = written.entry.resource_type
        location = None
        if row is not None:
            location = f"{kind_of}/{getattr(row, 'fhir_id', None) or row.uuid}"
        answers.append({"outcome": written.outcome, "location": location})
    return {"status": 200, "type": kind, "entries": answers}
