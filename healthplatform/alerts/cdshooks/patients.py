"""Who a CDS Hooks request is about.

``context.patientId`` is, by the specification, "the FHIR Patient.id of the current patient" — on the hospital's
own FHIR server, which the platform does not know. What is accepted, in this order:

1. a platform Patient id: a source Patient's id (as the platform's FHIR API gave it to the hospital) or a golden
   Patient's id (a person merged since is followed to the survivor);
2. ``system|value``: an identifier — the calling institution's own MRN (``system`` names one of its assigning
   authorities, e.g. ``urn:platform:authority:HOSP-A``) or a national document the MPI trusts (the resident
   identity number ``urn:oid:2.16.156.10011.1.3``, the health card ``urn:oid:2.16.156.10011.1.19``, …) or
   the platform's person id (``urn:platform:person|<golden Patient id>``);
3. a bare value that is not a platform id: the hospital's Patient.id read as its own MRN, under each of its
   assigning authorities;
4. the prefetched Patient (``prefetch.patient``, the discovery's template ``Patient/{{context.patientId}}``):
   its identifiers, each as in 2.

Another institution's MRN names no one here (as in the FHIR API's conditional matches); a value that names two
persons is refused as ambiguous rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from healthplatform.access import Caller
from mpi import selectors as mpi
from mpi.models import Person

MAX_PREFETCH_IDENTIFIERS = 20


class PatientError(Exception):
    """``context.patientId`` names no one, or more than one person."""


@dataclass(frozen=True)
class Resident:
    person_id: int
    uuid: str  # the golden Patient id (the viewer's patient page)


def _by_identifier(caller: Caller, system: str, value: str) -> set[int]:
    system, value = system.strip(), value.strip()
    if not system or not value:
        return set()
    if system == mpi.PERSON_SYSTEM:
        person_id = mpi.person_id_of_patient(value)
        return {person_id} if person_id is not None else set()
    if mpi.identifier_kind_for_system(system):
        return set(mpi.persons_by_identifier(system, value).values_list("pk", flat=True)[:2])
    authority = mpi.authority_of_system(system)
    if caller.is_staff or authority in caller.authorities:
        identity = mpi.identity_by_local_id(authority, value)
        return {identity.person_id} if identity is not None else set()
    return set()


def _by_local_id(caller: Caller, value: str) -> set[int]:
    found = set()
    for authority in sorted(caller.authorities):
        identity = mpi.identity_by_local_id(authority, value)
        if identity is not None:
            found.add(identity.person_id)
    return found


def _prefetched(caller: Caller, patient) -> set[int]:
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return set()
    found: set[int] = set()
    identifiers = patient.get("identifier")
    for identifier in (identifiers if isinstance(identifiers, list) else [])[:MAX_PREFETCH_IDENTIFIERS]:
        if isinstance(identifier, dict):
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str):
                found |= _by_identifier(caller, system, value)
    return found


def _one(found: set[int], what: str) -> int | None:
    if len(found) > 1:
        raise PatientError(f"{what} names more than one resident; send the platform's Patient id")
    return next(iter(found), None)


def resident_of(caller: Caller, patient_id: str, prefetched_patient=None) -> Resident:
    """The person ``patient_id`` (and the prefetched Patient) names, as the module docstring says."""
    person_id = None
    if "|" in patient_id:
        system, _, value = patient_id.partition("|")
        person_id = _one(_by_identifier(caller, system, value), "context.patientId")
    else:
        person_id = mpi.person_id_of_patient(patient_id)
        if person_id is None:
            person_id = _one(_by_local_id(caller, patient_id), "context.patientId")
    if person_id is None:
        person_id = _one(_prefetched(caller, prefetched_patient), "prefetch.patient.identifier")
    if person_id is None:
        raise PatientError(
            "context.patientId names no resident the platform knows: send the platform's Patient id, your own "
            "MRN (system|value, or the value alone), or prefetch the Patient with its identifiers"
        )
    uuid = Person.objects.filter(pk=person_id).values_list("uuid", flat=True).first()
    return Resident(person_id=person_id, uuid=str(uuid))
