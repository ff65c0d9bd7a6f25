"""Clinical resources and source Patients through the FHIR API: validation, who may write what, references.

A write names its patient through the resource's ``subject``/``patient``: a source Patient of the writer
(``Patient/<id>``, the id the platform gave it), the Patient entry of the same Bundle (``urn:uuid:…``) or a
conditional reference on the writer's MRN (``Patient?identifier=<system>|<mrn>``). A source system writes
only as its own institution: only Patients under its own assigning authorities, only facts about them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from ehr.errors import ResourceError
from ehr.indexing import SPECS, values_at
from ehr.models import Resource
from ehr.selectors import conditional_matches
from ehr.services import WriteItem
from healthplatform.fhirapi.authentication import client_name
from healthplatform.fhirapi.exceptions import validation_issues
from healthplatform.fhirapi.outcome import FHIRError, Issue
from healthplatform.fhirapi.resources.patient import local_ids, patient_demographics
from mpi.demographics import DemographicsError
from mpi.models import Identity, Person
from mpi.selectors import authority_of_system
from mpi.services import identity_register

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# The types this API stores in the health archive, Patient included (its source Patients).
ARCHIVE_TYPES = tuple(SPECS)


@dataclass
class Writer:
    """Who writes: a source system (as its institution) or a staff user (anything, attributed to them)."""

    source: object | None
    actor: str
    authorities: frozenset[str] = field(default_factory=frozenset)
    # Patient references already resolved in this request: a Bundle names its Patient in every entry.
    patients: dict[str, Identity] = field(default_factory=dict)

    @property
    def is_staff(self) -> bool:
        return self.source is None


def writer_of(request) -> Writer:
    source = getattr(request.user, "source", None)
    authorities: frozenset[str] = frozenset()
    if source is not None:
        authorities = frozenset(a for a in (source.sending_facility, source.institution.code) if a)
    return Writer(source, client_name(request.user), authorities)


def error_from(exc: ResourceError, *, path: str | None = None) -> FHIRError:
    expression = exc.expression or path
    return FHIRError(exc.status, [Issue(exc.code, exc.message, (expression,) if expression else ())])


def validate(resource_type: str, body, *, path: str):
    """Validates a resource with the R4B model of its type and returns the model; every error names its
    element under ``path``."""
    if not isinstance(body, dict):
        raise FHIRError.one(400, "structure", f"{path}: expected a JSON object", expression=path)
    if body.get("resourceType") != resource_type:
        raise FHIRError.one(
            400,
            "invalid",
            f"{path}.resourceType: expected {resource_type}, got {body.get('resourceType')!r}",
            expression=f"{path}.resourceType",
        )
    if "id" in body and not (isinstance(body["id"], str) and FHIR_ID.match(body["id"])):
        raise FHIRError.one(400, "invalid", f"{path}.id: not a FHIR id", expression=f"{path}.id")
    try:
        return get_fhir_model_class(resource_type).model_validate(body)
    except pydantic.ValidationError as exc:
        issues = validation_issues(resource_type, exc)
        if path != resource_type:
            issues = [
                Issue(
                    i.code,
                    i.message.replace(resource_type, path, 1),
                    tuple(e.replace(resource_type, path, 1) for e in i.expression),
                )
                for i in issues
            ]
        raise FHIRError(400, issues) from None


# --- patients -----------------------------------------------------------------------


def _uuid(value: str) -> uuid.UUID | None:
    """Patient ids are uuids (identities' and persons'); any other FHIR id names no Patient."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def identity_by_fhir_id(fhir_id: str) -> Identity | None:
    """The identity a source Patient id names (ids are the identities' uuids)."""
    key = _uuid(fhir_id)
    return Identity.objects.select_related("person").filter(uuid=key).first() if key else None


def identities_for_patient(fhir_id: str) -> list[int]:
    """Every identity of the person a Patient id stands for (a source Patient or the golden one), following
    merges: what "the patient's record" means in this region."""
    identity = identity_by_fhir_id(fhir_id)
    person_id = identity.person_id if identity is not None else None
    if person_id is None:
        key = _uuid(fhir_id)
        person = Person.objects.filter(uuid=key).first() if key else None
        if person is None:
            return []
        person_id = person.pk
        if person.status == Person.Status.MERGED:
            from mpi.selectors import survivor_of

            survivor = survivor_of(person)
            person_id = survivor.pk if survivor else person_id
    return list(Identity.objects.filter(person_id=person_id).values_list("pk", flat=True))


def _owned(writer: Writer, identity: Identity) -> bool:
    if writer.is_staff:
        return True
    return identity.source_id == writer.source.pk or identity.assigning_authority in writer.authorities


def patient_reference(writer: Writer, value, *, path: str, local: dict[str, str]) -> Identity:
    """The identity a subject/patient reference names, checked against the writer's ownership."""
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref:
        raise FHIRError.one(400, "required", f"{path}: a reference to the Patient is required", expression=path)
    ref = local.get(ref, ref)
    if ref in writer.patients:
        return writer.patients[ref]
    identity = None
    if ref.startswith("Patient?"):
        identity = _patient_by_criteria(ref[len("Patient?") :], path=path)
    elif ref.startswith("Patient/") or "/Patient/" in ref:
        fhir_id = ref.rsplit("/", 1)[-1]
        identity = identity_by_fhir_id(fhir_id)
        if identity is None and _uuid(fhir_id) and Person.objects.filter(uuid=_uuid(fhir_id)).exists():
            raise FHIRError.one(
                422,
                "processing",
                f"{path}: Patient/{fhir_id} is the platform's golden Patient; a fact is written about the "
                "Patient your system registered (its MRN)",
                expression=path,
            )
    if identity is None:
        raise FHIRError.one(
            404 if not ref.startswith("urn:") else 400,
            "not-found",
            f"{path}: the Patient {ref!r} is not known",
            expression=path,
        )
    if not _owned(writer, identity):
        raise FHIRError.one(
            403, "forbidden", f"{path}: that Patient is registered by another institution", expression=path
        )
    writer.patients[ref] = identity
    return identity


def _patient_by_criteria(criteria: str, *, path: str) -> Identity | None:
    pairs = parse_qsl(criteria, keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier" or "|" not in pairs[0][1]:
        raise FHIRError.one(
            400,
            "not-supported",
            f"{path}: a conditional Patient reference is Patient?identifier=<system>|<mrn>",
            expression=path,
        )
    system, _, value = pairs[0][1].partition("|")
    return (
        Identity.objects.select_related("person")
        .filter(assigning_authority=authority_of_system(system), local_id=value)
        .first()
    )


def patient_item(writer: Writer, body: dict, *, path: str, method: str, target: Resource | None = None) -> WriteItem:
    """Registers a source Patient with the MPI (it *is* the writer's identity) and returns its archive item.

    The MRN is the Patient identifier under one of the writer's assigning authorities; the MPI links the
    identity to a person (by a trusted number or by matching) in the same transaction.
    """
    model = validate("Patient", body, path=path)
    mrns = local_ids(model)
    if not writer.is_staff:
        mrns = [(s, v) for s, v in mrns if authority_of_system(s) in writer.authorities]
    if not mrns:
        wanted = ", ".join(sorted(writer.authorities)) or "your assigning authority"
        raise FHIRError.one(
            422 if not writer.is_staff else 400,
            "processing",
            f"{path}.identifier: a source Patient carries its MRN under your assigning authority ({wanted})",
            expression=f"{path}.identifier",
        )
    system, mrn = mrns[0]
    authority = authority_of_system(system)
    if target is not None:
        identity = identity_by_fhir_id(target.fhir_id)
        if identity is not None and (identity.assigning_authority, identity.local_id) != (authority, mrn):
            raise FHIRError.one(
                400,
                "invalid",
                f"{path}.identifier: the MRN of a Patient cannot change (it names the identity)",
                expression=f"{path}.identifier",
            )
    try:
        registration = identity_register(
            assigning_authority=authority,
            local_id=mrn,
            demographics=patient_demographics(model, path=path),
            source=writer.source,
            actor=writer.actor,
        )
    except DemographicsError as exc:
        raise FHIRError.one(400, "invalid", f"{path}: {exc}", expression=path) from None
    identity = registration.identity
    # A Patient just registered for the first time has no archived Patient yet; only a known one is looked up.
    existing = target
    if existing is None and not registration.created:
        existing = Resource.objects.filter(resource_type="Patient", fhir_id=str(identity.uuid)).first()
    # The entries after it name this Patient by its id: the writer owns it, no need to look it up again.
    writer.patients[f"Patient/{identity.uuid}"] = identity
    item = WriteItem(
        "Patient",
        body,
        method="update" if existing is not None else "create",
        identity_id=identity.pk,
        target=existing,
        fhir_id=str(identity.uuid),
    )
    item.extra.update(resolved=True, decision=registration.decision, identity=identity)
    return item


# --- clinical resources -----------------------------------------------------------


def clinical_item(
    writer: Writer, resource_type: str, body: dict, *, path: str, local: dict[str, str] | None = None
) -> WriteItem:
    """A clinical resource's archive item: validated, its patient resolved and checked. References other than
    the patient are rewritten later (``references_rewrite``), once every entry of a Bundle has its id."""
    validate(resource_type, body, path=path)
    spec = SPECS[resource_type]
    subject = next(iter(values_at(body, spec.patient)), None)
    identity = patient_reference(writer, subject, path=f"{path}.{spec.patient}", local=local or {})
    return WriteItem(resource_type, body, identity_id=identity.pk)


_CONDITIONAL_TYPES = set(SPECS) - {"Patient"}


def references_rewrite(node, local: dict[str, str], *, path: str) -> None:
    """Rewrites, in place, every ``reference`` that names a Bundle entry (``urn:uuid:…``, or the entry's
    fullUrl) to ``Type/id``, and every conditional reference (``Observation?identifier=…``) to the one resource
    it matches (R4 http.html#trules: no match or several is an error)."""
    if isinstance(node, (dict, list)):
        _rewrite(node, local, (path,))


def _rewrite(node, local: dict[str, str], steps: tuple) -> None:
    # ``steps`` is the element path in pieces, joined only for an error: most nodes hold no reference.
    if isinstance(node, list):
        for i, child in enumerate(node):
            if isinstance(child, (dict, list)):
                _rewrite(child, local, (*steps, f"[{i}]"))
        return
    for key, child in node.items():
        if key == "reference" and isinstance(child, str):
            if child in local:
                node[key] = local[child]
            elif child.startswith("urn:uuid:") or child.startswith("urn:oid:"):
                where = "".join(steps) + ".reference"
                raise FHIRError.one(
                    400, "not-found", f"{where}: {child} is not an entry of this Bundle", expression=where
                )
            elif "?" in child:
                # Resolved once per Bundle: the same Practitioner?identifier=… recurs on every encounter.
                node[key] = local[child] = conditional_reference(child, path="".join(steps) + ".reference")
        elif isinstance(child, (dict, list)):
            _rewrite(child, local, (*steps, f".{key}"))


# Conditional references to the directory (Organization?identifier=…) are answered by the registry; the
# directory module registers its resolvers here: type -> function(criteria) -> "Type/id" or None.
DIRECTORY_RESOLVERS: dict = {}


def conditional_reference(reference: str, *, path: str) -> str:
    resource_type, _, criteria = reference.partition("?")
    if resource_type == "Patient":
        identity = _patient_by_criteria(criteria, path=path)
        if identity is None:
            raise FHIRError.one(400, "not-found", f"{path}: no Patient matches {reference}", expression=path)
        return f"Patient/{identity.uuid}"
    if resource_type in DIRECTORY_RESOLVERS:
        found = DIRECTORY_RESOLVERS[resource_type](criteria)
        if not found:
            raise FHIRError.one(400, "not-found", f"{path}: no {resource_type} matches {reference}", expression=path)
        return found
    if resource_type not in _CONDITIONAL_TYPES:
        raise FHIRError.one(
            400,
            "not-supported",
            f"{path}: conditional references to {resource_type} are not resolved here",
            expression=path,
        )
    try:
        matches = conditional_matches(resource_type, criteria)
    except ResourceError as exc:
        raise error_from(exc, path=path) from None
    if len(matches) != 1:
        raise FHIRError.one(
            400 if not matches else 412,
            "not-found" if not matches else "multiple-matches",
            f"{path}: {reference} matches {len(matches)} resources (exactly one is needed)",
            expression=path,
        )
    return f"{resource_type}/{matches[0].fhir_id}"


# --- reading -------------------------------------------------------------------------


def rendered(resource: Resource, *, body: dict | None = None) -> dict:
    """The resource as the API shows it. A source Patient gains a link to the person's golden Patient
    (``refer``), computed at read time so that it follows merges and unmerges."""
    out = dict(body if body is not None else resource.body)
    if resource.resource_type == "Patient" and resource.identity_id:
        person_uuid = Identity.objects.filter(pk=resource.identity_id).values_list("person__uuid", flat=True).first()
        if person_uuid:
            links = [link for link in out.get("link") or [] if link.get("type") != "refer"]
            out["link"] = [*links, {"other": {"reference": f"Patient/{person_uuid}"}, "type": "refer"}]
    return out


def identity_patient(identity: Identity) -> dict:
    """A source Patient the platform learnt of other than through this API (HL7 v2, the population register):
    rendered from the demographics as received, with its MRN and a link to the golden Patient."""
    from mpi.selectors import system_of_authority

    received = identity.received or {}
    resource: dict = {
        "resourceType": "Patient",
        "id": str(identity.uuid),
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": system_of_authority(identity.assigning_authority),
                "value": identity.local_id,
            }
        ],
    }
    if identity.name:
        name: dict = {"text": identity.name}
        if received.get("family_name"):
            name["family"] = received["family_name"]
        if received.get("given_name"):
            name["given"] = received["given_name"].split()
        resource["name"] = [name]
    if identity.sex in ("male", "female"):
        resource["gender"] = identity.sex
    if identity.birth_date:
        resource["birthDate"] = identity.birth_date.isoformat()
    if received.get("phone"):
        resource["telecom"] = [{"system": "phone", "value": received["phone"]}]
    if received.get("address"):
        resource["address"] = [{"text": received["address"]}]
    resource["link"] = [{"other": {"reference": f"Patient/{identity.person.uuid}"}, "type": "refer"}]
    return resource
