"""An access event as a FHIR R4 AuditEvent, following IHE BALP (Basic Audit Log Patterns).

A read through the FHIR API follows BALP's PatientRead (read, vread, history: action R) or PatientQuery (search,
an operation such as ``$everything``: action E) pattern: ``type`` rest, ``subtype`` the FHIR interaction, the
client (DICOM 110153 "Source Role ID", with its network address) and the server (110152 "Destination Role ID",
the FHIR base) as agents, the person as the patient entity (role 1), the resource read or the query made as a
second entity. A page of the viewer or the admin is not a RESTful interaction: its type is DICOM 110110
"Patient Record" with the same agents and entities, and it claims no BALP profile.

Who read it: a source system is the client agent and the requestor; a staff user or a clinician is the
"information recipient" (v3-ParticipationType IRCP) agent and the requestor, the browser they used the client.
The reader's institution is an agent of its own (v3-RoleClass PROV), named by its ``Organization/<code>`` in the
directory. A stated reason (a clinician opening a resident their institution does not know) is the
``purposeOfUse``: v3-ActReason ETREAT for an emergency, TREAT for a referral or consultation, and BTG (break the
glass) when the read needed one.

References point at this platform's FHIR API: the patient entity is the golden Patient (``Patient/<uuid>``).
No name or identity number of the resident is written: the reference is enough, and it is resolved under
access control.
"""

from __future__ import annotations

import base64
import re

from healthplatform.audit.models import AccessEvent

PATIENT_READ = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
PATIENT_QUERY = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
OUTCOME = "0"  # success: only reads that were answered are recorded (http://hl7.org/fhir/audit-event-outcome)
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
NETWORK_TYPE = "http://hl7.org/fhir/network-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
SOURCE_SYSTEM_ID = "urn:platform:source-system"  # a source system's OAuth2 client id
USER_ID = "urn:platform:user"  # a staff or clinician login
PLATFORM = "Regional health information platform"

# Interactions that read what they name (action R); every other one queries (action E).
READS = frozenset({"read", "vread", "history-instance", "history-type"})
QUERY_ROLE = {"system": OBJECT_ROLE, "code": "24", "display": "Query"}
PURPOSES = {
    AccessEvent.Reason.EMERGENCY: ("ETREAT", "Emergency Treatment"),
    AccessEvent.Reason.REFERRAL: ("TREAT", "treatment"),
    AccessEvent.Reason.CONSULTATION: ("TREAT", "treatment"),
}
BREAK_GLASS = ("BTG", "break the glass")
# "GET /fhir/Observation/123/_history/2" -> "Observation/123/_history/2": what a read read.
_READ_TARGET = re.compile(
    r"^[A-Z]+ (?:\S*?/fhir)?/([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[0-9]+)?)(?:[/?]|$)"
)


def _coding(system: str, code: str, display: str | None = None) -> dict:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _purposes(event: AccessEvent) -> list[dict]:
    codings = []
    if event.reason in PURPOSES:
        codings.append(_coding(ACT_REASON, *PURPOSES[event.reason]))
    if event.break_glass:
        codings.append(_coding(ACT_REASON, *BREAK_GLASS))
    if not codings:
        return []
    concept: dict = {"coding": codings}
    if event.reason_text:
        concept["text"] = event.reason_text
    return [concept]


def _network(address: str | None, kind: str) -> dict:
    return {"address": address, "type": kind} if address else {}


def _agents(event: AccessEvent, base_url: str, purposes: list[dict]) -> list[dict]:
    client_address = _network(event.client_address, "2")  # 2: IP address
    person_reads = event.source_id is None  # a staff user or a clinician: a person, through a browser
    client: dict = {
        "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
        "requestor": not person_reads,
    }
    if event.source_id is not None:
        source = event.source
        client["who"] = {"identifier": {"system": SOURCE_SYSTEM_ID, "value": source.client_id}, "display": source.name}
    else:
        client["who"] = {"display": "web browser"}
    if client_address:
        client["network"] = client_address
    agents = [
        client,
        {
            "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
            "who": {"display": PLATFORM},
            "requestor": False,
            "network": _network(base_url, "5"),  # 5: URI
        },
    ]
    if person_reads:
        user: dict = {
            "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
            "who": {"identifier": {"system": USER_ID, "value": event.actor}, "display": event.actor},
            "name": event.actor,
            "requestor": True,
        }
        if purposes:
            user["purposeOfUse"] = purposes
        agents.append(user)
    if event.institution_id is not None:
        institution = event.institution
        agents.append(
            {
                "type": {"coding": [_coding(ROLE_CLASS, "PROV", "healthcare provider")]},
                "who": {"reference": f"Organization/{institution.code}", "display": institution.name},
                "requestor": False,
            }
        )
    return agents


def _read_entity(event: AccessEvent) -> dict:
    """BALP's second entity: the query made (a search, an operation) or the resource read."""
    request = event.query or event.what
    if event.action not in READS:
        return {
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": QUERY_ROLE,
            "description": request,
            "query": base64.b64encode(request.encode()).decode("ascii"),
        }
    entity: dict = {
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
        "description": event.what,
    }
    target = _READ_TARGET.match(event.query)
    entity["what"] = {"reference": target.group(1)} if target else {"display": event.what}
    return entity


def audit_event(event: AccessEvent, *, base_url: str) -> dict:
    """``event`` as a FHIR R4 AuditEvent (BALP PatientRead or PatientQuery for a FHIR read; see the module's
    docstring). ``base_url`` is the platform's FHIR base, the server agent's address. ``event.person``,
    ``.institution`` and ``.source`` should be loaded with it (``selectors.access_events``)."""
    rest = event.door == AccessEvent.Door.FHIR
    reads = event.action in READS
    purposes = _purposes(event)
    resource: dict = {"resourceType": "AuditEvent", "id": str(event.pk)}
    if rest:
        resource["meta"] = {"profile": [PATIENT_READ if reads else PATIENT_QUERY]}
        resource["type"] = _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")
        resource["subtype"] = [_coding(RESTFUL_INTERACTION, event.action)]
    else:
        resource["type"] = _coding(DCM, "110110", "Patient Record")
        resource["subtype"] = [_coding(RESTFUL_INTERACTION, "read" if reads else "search")]
    resource.update(
        action="R" if reads else "E",
        recorded=event.at.isoformat(timespec="milliseconds"),
        outcome=OUTCOME,
    )
    if purposes:
        resource["purposeOfEvent"] = purposes
    resource["agent"] = _agents(event, base_url, purposes)
    resource["source"] = {
        "site": base_url,
        "observer": {"display": PLATFORM},
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }
    resource["entity"] = [
        {
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "1", "Patient"),
            "what": {"reference": f"Patient/{event.person.uuid}"},
        },
        _read_entity(event),
    ]
    return resource


def audit_bundle(events, *, base_url: str, kind: str = "collection", **extra) -> dict:
    """Access events as a Bundle of AuditEvents (``collection`` for a download; the FHIR search makes its own
    searchset)."""
    bundle: dict = {"resourceType": "Bundle", "type": kind, **extra}
    entries = [
        {"fullUrl": f"{base_url}AuditEvent/{e.pk}", "resource": audit_event(e, base_url=base_url)} for e in events
    ]
    if entries:
        bundle["entry"] = entries
    return bundle
