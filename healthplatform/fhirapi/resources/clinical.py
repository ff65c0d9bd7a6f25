"""Archived resources (clinical facts and source Patients) as the FHIR API shows them.

Writes do not pass here: every write goes through the platform's write corridor (``healthplatform.ingest``).
"""

from __future__ import annotations

from ehr.models import Resource
from mpi.models import Identity
from mpi.selectors import person_uuids_of_identities, system_of_authority


def rendered(resource: Resource, *, body: dict | None = None, person_uuid=None) -> dict:
    """The resource as the API shows it. A source Patient gains a link to the person's golden Patient
    (``refer``), computed at read time so that it follows merges and unmerges; ``person_uuid`` gives it when
    the caller already knows it (a page of source Patients asks once for all of them)."""
    out = dict(body if body is not None else resource.body)
    if resource.resource_type == "Patient" and resource.identity_id:
        if person_uuid is None:
            person_uuid = person_uuids_of_identities({resource.identity_id}).get(resource.identity_id)
        if person_uuid:
            links = [link for link in out.get("link") or [] if link.get("type") != "refer"]
            out["link"] = [*links, {"other": {"reference": f"Patient/{person_uuid}"}, "type": "refer"}]
    return out


def identity_patient(identity: Identity) -> dict:
    """A source Patient the platform learnt of other than through this API (HL7 v2, the population register):
    rendered from the demographics as received, with its MRN and a link to the golden Patient."""
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
