"""Finding residents for the viewer through the MPI's own searches (the PDQm search the FHIR API serves), and
the resident a viewer URL names."""

from __future__ import annotations

from dataclasses import dataclass

from mpi import selectors as mpi
from mpi.models import Person

# The most residents one search lists: a name and a birth date rarely find more than a handful; more means
# the clinician should search by a number.
MAX_RESULTS = 20


def residents_find(*, by: str, number: str = "", name: str = "", birth_date=None) -> list[Person]:
    """Active persons matching a health card number, a resident identity number, or a name and a birth date
    (identities and their current identifiers prefetched). Only trusted numbers find a person
    (``mpi.selectors.persons_by_identifier``); a name matches the golden name or any identity's, as typed or
    in pinyin (``mpi.selectors.person_search``)."""
    systems = mpi.identifier_systems()
    if by in ("health_card", "resident_id"):
        return mpi.person_search(identifier=(systems[by], number), limit=MAX_RESULTS + 1)
    return mpi.person_search(name=name, birthdate=birth_date, limit=MAX_RESULTS + 1)


@dataclass
class Resident:
    """The resident a viewer URL names: the active person, with identities prefetched; ``moved`` when the
    URL named a merged person or a source Patient (the page redirects to the person's own URL)."""

    person: Person
    moved: bool

    @property
    def identities(self):
        return list(self.person.identities.all())

    @property
    def uuid(self) -> str:
        return str(self.person.uuid)


def resident_get(patient_id: str) -> Resident | None:
    """The person a golden Patient id (a person's uuid; a merged one is followed to its survivor) or a source
    Patient id names, or None."""
    patient_id = str(patient_id)
    person = mpi.person_get(patient_id)
    moved = False
    if person is None:
        identity = mpi.identity_by_uuid(patient_id)
        if identity is None:
            return None
        person, moved = identity.person, True
    if person.status == Person.Status.MERGED:
        person, moved = (mpi.survivor_of(person) or person), True
    if moved:
        person = mpi.person_get(str(person.uuid))
    return Resident(person, moved)
