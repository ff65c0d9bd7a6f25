"""The MPI's reads: finding persons and identities by identifier or demographics, and the review queue."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from mpi.demographics import Demographics, Profile, profile_build
from mpi.identifiers import normalize_resident_id
from mpi.linkage import candidates_find
from mpi.matching import compare, thresholds
from mpi.models import Identifier, Identity, LinkEvent, Person, ReviewItem

# Identifier systems of national documents (FHIR Identifier.system). The
# defaults are the OIDs the headers of the national shared-document
# standard (WS/T 500) use for the resident identity number and the resident
# health card; a region may configure its own.
IDENTIFIER_SYSTEMS = {
    "resident_id": "urn:oid:2.16.156.10011.1.3",
    "health_card": "urn:oid:2.16.156.10011.1.19",
    "passport": "urn:platform:id:passport",
    "hk_macau_permit": "urn:platform:id:hk-macau-permit",
    "taiwan_permit": "urn:platform:id:taiwan-permit",
    "foreign_permanent_resident": "urn:platform:id:foreign-permanent-resident",
}
# The platform's own namespace for person (golden record) ids.
PERSON_SYSTEM = "urn:platform:person"


def identifier_systems() -> dict[str, str]:
    return {**IDENTIFIER_SYSTEMS, **getattr(settings, "MPI_IDENTIFIER_SYSTEMS", {})}


def identifier_kind_for_system(system: str) -> str | None:
    """The document kind of a FHIR identifier system (or None if it is an assigning authority's MRN system)."""
    for kind, uri in identifier_systems().items():
        if system in (uri, uri.removeprefix("urn:oid:")):
            return kind
    return None


# Assigning authorities that are neither OIDs nor URIs (an HL7 CX.4 namespace id such as "HOSP2")
# become URIs in this namespace when they appear as FHIR Identifier.system.
AUTHORITY_SYSTEM_PREFIX = "urn:platform:authority:"


def authority_of_system(system: str) -> str:
    """The assigning authority behind a FHIR identifier system: ``urn:oid:X`` and ``X`` name the same one."""
    for prefix in ("urn:oid:", AUTHORITY_SYSTEM_PREFIX):
        if system.startswith(prefix):
            return system[len(prefix) :]
    return system


def system_of_authority(authority: str) -> str:
    """The FHIR Identifier.system of an assigning authority (inverse of ``authority_of_system``)."""
    if re.fullmatch(r"[0-2](\.[0-9]+)+", authority):
        return f"urn:oid:{authority}"
    if re.match(r"^[a-z][a-z0-9+.-]*:", authority):
        return authority  # already a URI
    return AUTHORITY_SYSTEM_PREFIX + authority


def persons_by_identifier(system: str | None, value: str) -> QuerySet[Person]:
    """Active persons holding this identifier: a document (resident id, card, passport) or a source's MRN.

    Only *trusted* documents find a person: a mistyped resident id must not
    open someone else's record.
    """
    value = (value or "").strip()
    if not value:
        return Person.objects.none()
    q = Q()
    kind = identifier_kind_for_system(system) if system else None
    if kind:
        if kind == "resident_id":
            value = normalize_resident_id(value)
        q = Q(identities__identifiers__kind=kind, identities__identifiers__value=value.upper()) & Q(
            identities__identifiers__trusted=True, identities__identifiers__current=True
        )
    elif system == PERSON_SYSTEM:
        q = Q(uuid=value) if _is_uuid(value) else Q(pk__in=[])
    elif system:
        q = Q(identities__assigning_authority=authority_of_system(system), identities__local_id=value)
    else:
        q = Q(identities__local_id=value) | Q(
            identities__identifiers__value=value.upper(),
            identities__identifiers__trusted=True,
            identities__identifiers__current=True,
        )
    return Person.objects.filter(q, status=Person.Status.ACTIVE).distinct()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def identity_get(system: str, value: str) -> Identity | None:
    """The identity an assigning authority's local id names, if registered."""
    return (
        Identity.objects.select_related("person")
        .filter(assigning_authority=authority_of_system(system), local_id=value)
        .first()
    )


@dataclass
class CrossReference:
    """PIXm (ITI-83): every identifier the person behind one identifier is known by."""

    person: Person
    identities: list[Identity]
    documents: list[Identifier]


def pix_cross_reference(system: str, value: str) -> CrossReference | None:
    """Resolves an identifier to its person and lists the person's other identifiers (ITI-83)."""
    persons = list(persons_by_identifier(system, value)[:2])
    if len(persons) != 1:
        return None
    person = persons[0]
    identities = list(person.identities.order_by("assigning_authority", "local_id"))
    documents = list(
        Identifier.objects.filter(identity__person=person, trusted=True, current=True)
        .order_by("kind", "value")
        .distinct()
    )
    unique_docs = list({(d.kind, d.value): d for d in documents}.values())
    return CrossReference(person, identities, unique_docs)


def person_search(*, limit: int = 50, **criteria) -> list[Person]:
    """PDQm (ITI-78) search over active persons, by ``_person_matches``'s criteria. Names match the golden
    name or any identity's name, as typed (characters) or in Latin letters, by prefix, without regard to
    case or accents."""
    qs = _person_matches(**criteria)
    return list(qs.order_by("pk").prefetch_related(_identities_prefetch(), "merged_persons")[:limit])


def person_search_count(*, limit: int, **criteria) -> int:
    """How many active persons ``person_search`` with the same criteria finds, counted up to ``limit`` + 1
    (a criterion as broad as ``gender`` alone would otherwise count the whole index)."""
    return _person_matches(**criteria)[: limit + 1].count()


def _person_matches(
    *,
    identifier: tuple[str | None, str] | None = None,
    family: str | None = None,
    given: str | None = None,
    name: str | None = None,
    birthdate: dt.date | None = None,
    gender: str | None = None,
) -> QuerySet[Person]:
    qs = Person.objects.filter(status=Person.Status.ACTIVE)
    if identifier is not None:
        qs = qs.filter(pk__in=persons_by_identifier(*identifier).values("pk"))
    for text in (name, family, given):
        if text:
            folded = _fold(text)
            qs = qs.filter(
                Q(name__icontains=text)
                | Q(identities__name__icontains=text)
                | Q(identities__name_latin__contains=folded)
            )
    if birthdate:
        qs = qs.filter(Q(birth_date=birthdate) | Q(identities__birth_date=birthdate))
    if gender:
        qs = qs.filter(Q(sex=gender) | Q(identities__sex=gender))
    return qs.distinct()


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.lower())
    return " ".join("".join(c for c in plain if not unicodedata.combining(c)).split())


def _identities_prefetch() -> Prefetch:
    return Prefetch(
        "identities",
        queryset=Identity.objects.order_by("assigning_authority", "local_id").prefetch_related(
            Prefetch("identifiers", queryset=Identifier.objects.filter(current=True))
        ),
    )


@dataclass
class MatchResult:
    """One $match candidate (ITI-119): a person, the score, and a grade."""

    person: Person
    score: float
    grade: str  # certain | probable | possible | certainly-not
    evidence: dict


def person_match(
    demographics: Demographics,
    *,
    count: int = 10,
    only_certain: bool = False,
    local_ids: list[tuple[str, str]] | tuple = (),
) -> list[MatchResult]:
    """Scores persons against demographics without registering anything (PDQm $match, ITI-119).

    ``local_ids`` are (system, value) MRNs the query carries: the person an assigning authority's own id
    is linked to comes first and is certain, unless the demographics conflict with it (then probable).
    """
    profile = profile_build(demographics)
    found = candidates_find(profile, complete=True) if profile.has_name or profile.resident_id else []
    by_mrn = _persons_by_local_ids(profile, local_ids)
    results = []
    for person, comparison in by_mrn:
        grade = "probable" if comparison is not None and comparison.conflict else "certain"
        score = max(comparison.score if comparison else 0.0, thresholds()["auto_link"])
        if grade == "certain" or not only_certain:
            results.append(MatchResult(person, score, grade, comparison.evidence if comparison else {}))
    found = [c for c in found if c.person_id not in {p.pk for p, _ in by_mrn}]
    persons = Person.objects.in_bulk([c.person_id for c in found[: count * 2]])
    for c in found:
        band = c.comparison.band()
        grade = {"auto_link": "certain", "review": "probable"}.get(band, "possible")
        if band == "new" and c.comparison.score < 0:
            grade = "certainly-not"
        if only_certain and grade != "certain":
            continue
        person = persons.get(c.person_id)
        if person is None or person.status != Person.Status.ACTIVE:
            continue
        results.append(MatchResult(person, c.comparison.score, grade, c.comparison.evidence))
        if len(results) >= count:
            break
    results = results[:count]
    if only_certain and len(results) > 1:
        # ITI-119: onlyCertainMatches returns one certain match, or none when several are certain.
        return []
    return results


def _persons_by_local_ids(profile, local_ids) -> list[tuple[Person, object]]:
    """Active persons named by MRNs, each with the best comparison of the profile against its identities."""
    out: list[tuple[Person, object]] = []
    for system, value in local_ids:
        identity = identity_get(system, value)
        if identity is None:
            continue
        person = identity.person
        if person.status != Person.Status.ACTIVE:
            person = survivor_of(person) or person
        if person.status != Person.Status.ACTIVE or any(p.pk == person.pk for p, _ in out):
            continue
        comparisons = [
            compare(profile, Profile.from_json(p)) for p in person.identities.values_list("profile", flat=True)
        ]
        best = max(comparisons, key=lambda c: c.score) if comparisons and profile.has_name else None
        if best is not None and any(c.conflict for c in comparisons):
            best.conflict = True
        out.append((person, best))
    return out


def review_queue(*, institution_code: str | None = None, min_score: float | None = None) -> QuerySet[ReviewItem]:
    """Open possible matches, best first, optionally for one institution's identities."""
    qs = ReviewItem.objects.filter(status=ReviewItem.Status.OPEN).select_related("identity", "candidate")
    if institution_code:
        qs = qs.filter(identity__source__institution__code=institution_code)
    if min_score is not None:
        qs = qs.filter(score__gte=min_score)
    return qs.order_by("-score", "pk")


def person_history(person: Person) -> QuerySet[LinkEvent]:
    """Every MPI event touching the person, newest first."""
    return LinkEvent.objects.filter(Q(person=person) | Q(other_person=person)).select_related("identity")


# How far a chain of merges (A into B, B into C) is followed to its survivor.
MAX_MERGE_CHAIN = 20


def person_get(person_uuid: str) -> Person | None:
    """A person by its uuid, active or merged, with its identities and their current identifiers."""
    try:
        value = uuid.UUID(str(person_uuid))
    except ValueError:
        return None
    return Person.objects.filter(uuid=value).prefetch_related(_identities_prefetch(), "merged_persons").first()


def persons_in_bulk(pks: list[int]) -> dict[int, Person]:
    """Persons by primary key with identities and identifiers prefetched (one query per relation)."""
    return {
        p.pk: p for p in Person.objects.filter(pk__in=pks).prefetch_related(_identities_prefetch(), "merged_persons")
    }


def survivor_of(person: Person) -> Person | None:
    """The active person a merged one ended in (following merges of merges), or None if it is active."""
    current, steps = person, 0
    while current.status == Person.Status.MERGED and current.merged_into_id and steps < MAX_MERGE_CHAIN:
        current = Person.objects.get(pk=current.merged_into_id)
        steps += 1
    return current if current.pk != person.pk else None


def assigning_authority_known(system: str) -> bool:
    """Whether any identity was registered under the assigning authority this FHIR system names
    (one probe of the unique index on (assigning_authority, local_id))."""
    return Identity.objects.filter(assigning_authority=authority_of_system(system)).exists()


# --- source Patients: the identities behind a FHIR Patient id ---------------------------------------------


def _uuid_or_none(value: str) -> uuid.UUID | None:
    """Patient ids are uuids (identities' and persons'); any other FHIR id names no Patient."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def identity_by_uuid(fhir_id: str) -> Identity | None:
    """The identity a source Patient id names (ids are the identities' uuids), with its person."""
    key = _uuid_or_none(fhir_id)
    return Identity.objects.select_related("person").filter(uuid=key).first() if key else None


def identities_by_uuid(fhir_ids: set[str]) -> dict[str, Identity]:
    """Identities by the source Patient ids that name them (one query)."""
    keys = {k for k in (_uuid_or_none(i) for i in fhir_ids) if k}
    return {str(i.uuid): i for i in Identity.objects.filter(uuid__in=keys)} if keys else {}


def identity_by_local_id(authority: str, local_id: str) -> Identity | None:
    """The identity an assigning authority knows by this local id (MRN), with its person."""
    return Identity.objects.select_related("person").filter(assigning_authority=authority, local_id=local_id).first()


def person_uuid_known(fhir_id: str) -> bool:
    """Whether a FHIR Patient id is a person's (a golden Patient's), active or merged."""
    key = _uuid_or_none(fhir_id)
    return bool(key) and Person.objects.filter(uuid=key).exists()


def person_id_of_patient(fhir_id: str) -> int | None:
    """The person a Patient id stands for — a source Patient's (the identity's person) or a golden Patient's,
    a merged one followed to its survivor: what "the patient's record" means in this region."""
    identity = identity_by_uuid(fhir_id)
    if identity is not None:
        return identity.person_id
    key = _uuid_or_none(fhir_id)
    person = Person.objects.filter(uuid=key).first() if key else None
    if person is None:
        return None
    if person.status == Person.Status.MERGED:
        survivor = survivor_of(person)
        return survivor.pk if survivor else person.pk
    return person.pk


def identity_ids_of_patient(fhir_id: str) -> list[int]:
    """Every identity of the person a Patient id stands for (``person_id_of_patient``); empty if none."""
    person_id = person_id_of_patient(fhir_id)
    return identity_ids_of_person(person_id) if person_id is not None else []


def same_person(identity_a: int | None, identity_b: int | None) -> bool:
    """Whether two identities are linked to one person now (an identity that is not given matches any)."""
    if identity_a is None or identity_b is None or identity_a == identity_b:
        return True
    persons = dict(Identity.objects.filter(pk__in=[identity_a, identity_b]).values_list("pk", "person_id"))
    return persons.get(identity_a) == persons.get(identity_b)


def person_uuids_of_identities(identity_ids: set[int]) -> dict[int, uuid.UUID]:
    """identity pk -> the uuid of its person (the golden Patient id), for these identities (one query)."""
    if not identity_ids:
        return {}
    return dict(Identity.objects.filter(pk__in=identity_ids).values_list("pk", "person__uuid"))


def person_ids_of_identities(identity_ids: set[int]) -> dict[int, int]:
    """identity pk -> the pk of its person now (one query)."""
    if not identity_ids:
        return {}
    return dict(Identity.objects.filter(pk__in=identity_ids).values_list("pk", "person_id"))


def identities_by_pk(pks: set[int]) -> dict[int, Identity]:
    """Identities by primary key (one query)."""
    return Identity.objects.in_bulk(pks) if pks else {}


def identity_ids_of_person(person_id: int) -> list[int]:
    """The primary keys of every identity linked to this person now."""
    return list(Identity.objects.filter(person_id=person_id).values_list("pk", flat=True))
