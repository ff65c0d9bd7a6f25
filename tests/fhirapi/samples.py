"""Small valid R4 resources of every type the archive and the document store keep, for the API tests."""

from __future__ import annotations

import base64
import copy
import hashlib

MRN_A = "urn:platform:authority:HOSP-A"
LOINC = "http://loinc.org"


def sample(resource_type: str, patient_ref: str, n: int = 1, *, hospital: str = "hosp-a") -> dict:
    """A small valid R4 resource of each archived type, about ``patient_ref``, with business identifier n in
    ``urn:<hospital>:<type>``."""
    subject = {"reference": patient_ref}
    ident = [{"system": f"urn:{hospital}:{resource_type.lower()}", "value": f"{resource_type[:3]}-{n}"}]
    cc = lambda system, code: {"coding": [{"system": system, "code": code}]}  # noqa: E731
    bodies = {
        "Encounter": {
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
            "period": {"start": "2024-05-01T09:00:00+08:00", "end": "2024-05-01T10:00:00+08:00"},
        },
        "Condition": {
            "code": cc("http://hl7.org/fhir/sid/icd-10", "E11.9"),
            "subject": subject,
            "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
            "onsetDateTime": "2024-05-01",
        },
        "AllergyIntolerance": {
            "patient": subject,
            "code": cc("http://www.whocc.no/atc", "J01CE01"),
            "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"),
            "recordedDate": "2024-05-01",
        },
        "MedicationRequest": {
            "status": "active",
            "intent": "order",
            "subject": subject,
            "medicationCodeableConcept": cc("http://www.whocc.no/atc", "A10BA02"),
            "authoredOn": "2024-05-01T10:00:00+08:00",
        },
        "MedicationStatement": {
            "status": "active",
            "subject": subject,
            "medicationCodeableConcept": cc("http://www.whocc.no/atc", "C09AA05"),
            "effectiveDateTime": "2024-05-01",
        },
        "MedicationDispense": {
            "status": "completed",
            "subject": subject,
            "medicationCodeableConcept": cc("http://www.whocc.no/atc", "A10BA02"),
            "whenHandedOver": "2024-05-02T10:00:00+08:00",
        },
        "Observation": {
            "status": "final",
            "code": cc(LOINC, "718-7"),
            "subject": subject,
            "effectiveDateTime": "2024-05-01T10:00:00+08:00",
            "valueQuantity": {"value": 13.2, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
        },
        "DiagnosticReport": {
            "status": "final",
            "code": cc(LOINC, "58410-2"),
            "subject": subject,
            "effectiveDateTime": "2024-05-01T11:00:00+08:00",
        },
        "ServiceRequest": {
            "status": "active",
            "intent": "order",
            "code": cc(LOINC, "58410-2"),
            "subject": subject,
            "authoredOn": "2024-05-01T08:00:00+08:00",
        },
        "Immunization": {
            "status": "completed",
            "vaccineCode": cc("http://hl7.org/fhir/sid/cvx", "140"),
            "patient": subject,
            "occurrenceDateTime": "2024-05-01",
        },
        "Procedure": {
            "status": "completed",
            "code": cc("http://snomed.info/sct", "80146002"),
            "subject": subject,
            "performedDateTime": "2024-05-01T10:00:00+08:00",
        },
    }
    return {"resourceType": resource_type, "identifier": ident, **copy.deepcopy(bodies[resource_type])}


CODES = {  # the token each sample is searched by: (param, system|code)
    "Encounter": ("class", "AMB"),
    "Condition": ("code", "http://hl7.org/fhir/sid/icd-10|E11.9"),
    "AllergyIntolerance": ("code", "J01CE01"),
    "MedicationRequest": ("code", "http://www.whocc.no/atc|A10BA02"),
    "MedicationStatement": ("code", "C09AA05"),
    "MedicationDispense": ("code", "A10BA02"),
    "Observation": ("code", f"{LOINC}|718-7"),
    "DiagnosticReport": ("code", "58410-2"),
    "ServiceRequest": ("code", "58410-2"),
    "Immunization": ("vaccine-code", "140"),
    "Procedure": ("code", "80146002"),
}
TYPES = list(CODES)


def patient_body(mrn: str, *, system: str = MRN_A, name: str = "王小明", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": mrn}],
        "name": [{"text": name}],
        "gender": "male",
        "birthDate": "1985-03-12",
        **extra,
    }


def provide_document_bundle(patient_ref: str, text: bytes, *, doc_id: str = "DOC-1", hospital: str = "hosp-a") -> dict:
    """An ITI-65 Provide Document Bundle: a SubmissionSet List, the DocumentReference and its Binary."""
    sha1 = base64.b64encode(hashlib.sha1(text, usedforsecurity=False).digest()).decode()
    document = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": f"urn:{hospital}:doc", "value": doc_id},
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Discharge summary"}]},
        "subject": {"reference": patient_ref},
        "date": "2024-05-03T10:00:00+08:00",
        "content": [
            {"attachment": {"contentType": "text/plain", "url": "urn:uuid:bin", "size": len(text), "hash": sha1}}
        ],
    }
    submission = {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "subject": {"reference": patient_ref},
        "identifier": [{"system": f"urn:{hospital}:submission", "value": f"S-{doc_id}"}],
        "date": "2024-05-03",
        "entry": [{"item": {"reference": "urn:uuid:doc"}}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:list", "resource": submission, "request": {"method": "POST", "url": "List"}},
            {
                "fullUrl": "urn:uuid:doc",
                "resource": document,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": "urn:uuid:bin",
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "text/plain",
                    "data": base64.b64encode(text).decode(),
                },
                "request": {"method": "POST", "url": "Binary"},
            },
        ],
    }
