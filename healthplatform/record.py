"""The read corridor: one person's record across every identity linked to them, for whoever may read it.

What ``Patient/$everything`` answers, what the clinician viewer and the alerts read: the person (the golden
record) with every identity through which an institution knows them, the source Patients as those
institutions sent them, the person's shared documents, and their facts from the archive — the last in keyset
pages. The person is found from a source Patient id or a golden Patient id, following merges; what the
caller's scopes do not let it read is not read at all (``Caller.may_read``). A page costs a fixed number of
queries, however many identities, documents and facts the person has (tests/record).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ehr import selectors as archive
from ehr.models import Resource
from emr import selectors as documents
from healthplatform.access import Caller
from mpi import selectors as mpi
from mpi.models import Identity, Person

# The most documents a record's first page carries: a person has tens, not thousands.
MAX_DOCUMENTS = 1000


@dataclass
class RecordPage:
    """One page of a person's record. The first page (``first``) also carries the person, their identities,
    source Patients and documents; every page carries facts, and ``next_after`` when more follow."""

    person_id: int
    first: bool
    person: Person | None = None  # identities, identifiers and merged persons prefetched
    identities: list[Identity] = field(default_factory=list)
    source_patients: dict[int, Resource] = field(default_factory=dict)  # identity pk -> archived Patient
    documents: list = field(default_factory=list)  # emr DocumentEntry rows, newest first
    facts: list[archive.FactRow] = field(default_factory=list)
    next_after: int | None = None


def person_record(
    *,
    caller: Caller,
    patient_id: str = "",
    person: Person | None = None,
    count: int,
    after: int | None = None,
    types: frozenset[str] | None = None,
) -> RecordPage | None:
    """A page of the record of the person ``patient_id`` stands for (a source or golden Patient id), or None
    when it names no one; or of ``person``, an active person already read with their identities and
    identifiers prefetched (``mpi.selectors.person_get``: the viewer found them to decide the access, and the
    record need not find them again; their identities are checked against the MPI's now, one query, and read
    again when they changed). ``after`` is the previous page's ``next_after``; ``types`` limits the
    facts."""
    if person is not None and person.status == Person.Status.MERGED:
        raise ValueError("person_record: a merged person has no record of their own; read their survivor's")
    if person is not None and after is None:
        # The identities are read again (one query): one unlinked since the caller read the person is another
        # resident's now, and its facts are not this person's record. When they changed, the person is read
        # again too, as when no person is given.
        current = set(mpi.identity_ids_of_person(person.pk))
        if current != {i.pk for i in person.identities.all()}:
            person = mpi.persons_in_bulk([person.pk])[person.pk]
    person_id = person.pk if person is not None else mpi.person_id_of_patient(patient_id)
    if person_id is None:
        return None
    readable = caller.readable(types if types is not None else archive.SPECS)
    page = RecordPage(person_id=person_id, first=after is None)
    if page.first:
        page.person = person if person is not None else mpi.persons_in_bulk([person_id])[person_id]
        page.identities = list(page.person.identities.all())
        identity_ids = [i.pk for i in page.identities]
        page.source_patients = archive.source_patients(identity_ids) if "Patient" in readable else {}
        if caller.may_read("DocumentReference"):
            page.documents = documents.documents_of_identities(identity_ids, limit=MAX_DOCUMENTS)
    else:
        identity_ids = mpi.identity_ids_of_person(person_id)
    page.facts, page.next_after = archive.everything_page(
        identity_ids, count=count, after_pk=after, types=readable - {"Patient"}
    )
    return page


def person_documents(*, caller: Caller, patient_id: str, **filters):
    """The person's documents (ITI-67 Find Document References) over every linked identity: an emr page,
    or None when the Patient id names no one."""
    person_id = mpi.person_id_of_patient(patient_id)
    if person_id is None:
        return None
    return documents.documents_for_person_id(person_id, **filters)


@dataclass
class PersonFacts:
    """A person's facts of the types asked for (the alerts' read)."""

    person_id: int
    facts: list[archive.FactRow]


def person_facts(
    *, caller: Caller, person_id: int, since: dict[str, object], record: RecordPage | None = None
) -> PersonFacts:
    """The facts of the person ``person_id`` of the types ``since`` names, each from its cutoff on (None: all),
    over every linked identity, newest first — those of the types the caller may read. One query; none when
    ``record`` is this caller's whole record of the person already read (a first page with no next one: the
    patient page reads it, and its alerts need not read the same rows again)."""
    readable = caller.readable(since)
    wanted = {t: c for t, c in since.items() if t in readable}
    if record is not None and record.first and record.next_after is None and record.person_id == person_id:
        floor = dt.datetime.min.replace(tzinfo=dt.UTC)
        facts = [
            row
            for row in record.facts
            if row.resource_type in wanted
            and (
                wanted[row.resource_type] is None
                or row.effective_low is None
                or row.effective_low >= wanted[row.resource_type]
            )
        ]
        # As facts_since orders them: newest first, the undated first (PostgreSQL's DESC puts NULLs first).
        facts.sort(key=lambda row: (row.effective_low is None, row.effective_low or floor, row.pk), reverse=True)
        return PersonFacts(person_id=person_id, facts=facts)
    return PersonFacts(person_id=person_id, facts=archive.facts_since(person_id, wanted))
