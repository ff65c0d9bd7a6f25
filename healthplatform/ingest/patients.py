"""Source Patients and the patient of every fact: FHIR Patient -> MPI identity, and patient references.

A source system's Patient *is* its MPI identity: its MRN is the Patient identifier under one of the writer's
assigning authorities, and writing it registers (or updates) the identity with the MPI, which links it to a
person by a trusted number or by matching. A fact names its patient through ``subject``/``patient``: a source
Patient of the writer (``Patient/<id>``, the id the platform gave it), the Patient entry of the same Bundle
(``urn:uuid:…``) or a conditional reference on the writer's MRN (``Patient?identifier=<system>|<mrn>``).
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError
from fhir.resources.R4B.patient import Patient as FHIRPatient

from ehr.errors import WriteRace
from ehr.indexing import reference_target
from ehr.models import Resource
from ehr.selectors import identifier_criteria, resources_by_ids
from ehr.services import WriteItem
from healthplatform.errors import PlatformError, reference_not_found
from healthplatform.ingest.validation import resource_validated
from mpi import selectors as mpi
from mpi.demographics import Demographics, DemographicsError
from mpi.models import Identity
from mpi.selectors import PERSON_SYSTEM, identifier_kind_for_system
from mpi.services import identity_register

FHIR_GENDERS = ("male", "female", "other", "unknown")


# --- FHIR Patient -> MPI demographics ------------------------------------------------


def _pick_name(patient: FHIRPatient):
    names = patient.name or []
    current = [n for n in names if (n.use or "official") in ("official", "usual")]
    return (current or names or [None])[0]


def _address_text(patient: FHIRPatient) -> str | None:
    for address in patient.address or []:
        if address.text:
            return address.text
        # Chinese order, largest first; the matcher drops the administrative prefixes anyway.
        parts = [address.state, address.city, address.district, *(address.line or [])]
        joined = " ".join(p.strip() for p in parts if p and p.strip())
        if joined:
            return joined
    return None


def local_ids(patient: FHIRPatient) -> list[tuple[str, str]]:
    """(system, value) of the Patient's identifiers that are an assigning authority's local ids (MRNs)."""
    return [
        (ident.system, ident.value)
        for ident in patient.identifier or []
        if ident.system
        and ident.value
        and identifier_kind_for_system(ident.system) is None
        and ident.system != PERSON_SYSTEM
    ]


def patient_demographics(patient: FHIRPatient, *, path: str) -> Demographics:
    """A validated FHIR Patient as the MPI's ``Demographics``; ``path`` is where it sits in the request
    (for error messages). Refuses (400) what the MPI cannot match on."""
    name = _pick_name(patient)
    text = (name.text or "").strip() if name else ""
    family = (name.family or "").strip() if name else ""
    given = " ".join(g.strip() for g in (name.given or []) if g and g.strip()) if name else ""

    gender = patient.gender
    if gender is not None and gender not in FHIR_GENDERS:
        raise PlatformError.one(
            400,
            "code-invalid",
            f"{path}.gender: expected one of {', '.join(FHIR_GENDERS)}",
            expression=f"{path}.gender",
        )

    resident_id = health_card = None
    documents: list[tuple[str, str]] = []
    for ident in patient.identifier or []:
        if not (ident.system and ident.value):
            continue
        kind = identifier_kind_for_system(ident.system)
        if kind == "resident_id":
            resident_id = resident_id or ident.value
        elif kind == "health_card":
            health_card = health_card or ident.value
        elif kind:
            documents.append((kind, ident.value))

    if not (text or family or given) and not (resident_id or health_card or documents) and not local_ids(patient):
        raise PlatformError.one(
            400,
            "required",
            f"{path}: a Patient to match needs a name (name.text or name.family/given), an identity "
            "document identifier (resident id, health card, passport, permit) or a local MRN",
            expression=f"{path}.name",
        )

    phone = next((t.value for t in patient.telecom or [] if t.system in ("phone", "sms") and t.value), None)
    birth = patient.birthDate
    return Demographics(
        name=text or None,
        family_name=family or None,
        given_name=given or None,
        sex=gender if gender in ("male", "female") else None,
        birth_date=birth if isinstance(birth, dt.date) else (str(birth) if birth else None),
        phone=phone,
        address=_address_text(patient),
        resident_id=resident_id,
        health_card=health_card,
        documents=tuple(documents),
    )


# --- the patient a fact is about --------------------------------------------------------


def patient_by_criteria(criteria: str, *, path: str) -> Identity | None:
    """The identity ``Patient?identifier=<system>|<mrn>`` names (an MRN names one identity region-wide: the
    assigning authority is in the system)."""
    found = identifier_criteria(criteria)
    if found is None:
        raise PlatformError.one(
            400,
            "not-supported",
            f"{path}: a conditional Patient reference is Patient?identifier=<system>|<mrn>",
            expression=path,
        )
    system, value = found
    return mpi.identity_by_local_id(mpi.authority_of_system(system), value)


def patient_identity(caller, reference: str, *, path: str) -> Identity:
    """The identity a Patient reference (``Patient/<id>``, absolute or relative, or ``Patient?identifier=…``)
    names, refused unless it is one of the caller's institution's patients."""
    identity = None
    if reference.startswith("Patient?"):
        identity = patient_by_criteria(reference[len("Patient?") :], path=path)
    elif not reference.startswith("urn:"):
        # Parsed as the search index parses it (a FHIR id after the type; ``Patient/<b>#/<a>`` is no reference),
        # and the caller's stored reference is then rewritten to the identity's own id.
        target = reference_target({"reference": reference})
        if target is None or target[0] != "Patient":
            raise PlatformError.one(
                400, "invalid", f"{path}: a Patient reference is Patient/<id> or Patient?identifier=…", expression=path
            )
        fhir_id = target[1]
        identity = mpi.identity_by_uuid(fhir_id)
        if identity is None and mpi.person_uuid_known(fhir_id):
            raise PlatformError.one(
                422,
                "processing",
                f"{path}: Patient/{fhir_id} is the platform's golden Patient; a fact is written about the "
                "Patient your system registered (its MRN)",
                expression=path,
            )
    if identity is None:
        raise reference_not_found(path, f"the Patient {reference!r} is not known")
    if not caller.owns_identity(identity):
        raise PlatformError.one(
            403, "forbidden", f"{path}: that Patient is registered by another institution", expression=path
        )
    return identity


def patient_item(run, body: dict, *, path: str, target: Resource | None) -> WriteItem:
    """Registers a source Patient with the MPI (it *is* the writer's identity) and returns its archive item.

    The MRN is the Patient identifier under one of the writer's assigning authorities; the MPI links the
    identity to a person (by a trusted number or by matching) in the same transaction. An update (``target``)
    cannot change the MRN: it names the identity.
    """
    caller = run.caller
    model = resource_validated("Patient", body, path=path)
    mrns = local_ids(model)
    if not caller.is_staff:
        mrns = [(s, v) for s, v in mrns if mpi.authority_of_system(s) in caller.authorities]
    if not mrns:
        wanted = ", ".join(sorted(caller.authorities)) or "your assigning authority"
        raise PlatformError.one(
            422 if not caller.is_staff else 400,
            "processing",
            f"{path}.identifier: a source Patient carries its MRN under your assigning authority ({wanted})",
            expression=f"{path}.identifier",
        )
    system, mrn = mrns[0]
    authority = mpi.authority_of_system(system)
    if target is not None:
        identity = mpi.identity_by_uuid(target.fhir_id)
        if identity is not None and (identity.assigning_authority, identity.local_id) != (authority, mrn):
            raise PlatformError.one(
                400,
                "invalid",
                f"{path}.identifier: the MRN of a Patient cannot change (it names the identity)",
                expression=f"{path}.identifier",
            )
    try:
        # Without a savepoint of its own: a concurrent registration that wins the insert is a lost race, and the
        # corridor runs the whole request again (race_retried), which then finds the identity.
        registration = identity_register(
            assigning_authority=authority,
            local_id=mrn,
            demographics=patient_demographics(model, path=path),
            source=caller.source,
            actor=caller.actor,
            savepoint=False,
        )
    except DemographicsError as exc:
        raise PlatformError.one(400, "invalid", f"{path}: {exc}", expression=path) from None
    except IntegrityError:
        raise WriteRace() from None
    identity = registration.identity
    # The entries after it name this Patient by its id: the writer owns it, no need to look it up again.
    run.patients[f"Patient/{identity.uuid}"] = identity
    item = WriteItem(
        "Patient",
        body,
        method="update" if target is not None else "create",
        identity_id=identity.pk,
        target=target,
        fhir_id=str(identity.uuid),
        path=path,
    )
    # A Patient just registered for the first time has no archived Patient yet; a known one's is looked up with
    # the request's other Patients (``patients_archived``).
    item.extra.update(resolved=True, decision=registration.decision, identity=identity)
    item.extra["archived_unknown"] = target is None and not registration.created
    return item


def patients_archived(items: list[WriteItem]) -> None:
    """The archived Patient of each known identity among ``patient_item``'s items, looked up in one statement
    (a feed's transaction of several messages holds a Patient each): found, the item updates it."""
    wanted = [item for item in items if item.extra.pop("archived_unknown", False)]
    found = resources_by_ids("Patient", [item.fhir_id for item in wanted])
    for item in wanted:
        existing = found.get(item.fhir_id)
        if existing is not None:
            item.method, item.target = "update", existing
