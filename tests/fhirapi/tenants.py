"""Two institutions, each with its feed, its patient, one resource of every archived type and a document: the
``world`` fixture (tests/conftest.py) of the isolation, scope and endpoint tests."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from types import SimpleNamespace

from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.fhirapi.samples import TYPES, patient_body, sample


@dataclass
class Tenant:
    """One institution's feed and what it stored: its Patient, a resource of each type, a document."""

    feed: SimpleNamespace
    hospital: str  # the prefix of its identifier systems, "hosp-a"
    authority: str  # its assigning authority (MRN system's tail)
    patient_id: str = ""
    ids: dict[str, str] = field(default_factory=dict)  # type -> id of its resource of that type
    identifiers: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (system, value)
    document_id: str = ""

    @property
    def client(self):
        return self.feed.client

    @property
    def source(self):
        return self.feed.source


def post(client, path: str, body: dict, **headers):
    return client.post(f"/fhir/{path}", body, content_type=FHIR_JSON, **headers)


def document_body(patient_ref: str, *, hospital: str, value: str = "DOC-1", text: bytes = b"discharge summary") -> dict:
    """A DocumentReference with its content inline (a discharge summary, LOINC 18842-5)."""
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": f"urn:{hospital}:doc", "value": value},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
        "subject": {"reference": patient_ref},
        "date": "2024-05-03T10:00:00+08:00",
        "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(text).decode()}}],
    }


def _tenant(facility: str, hospital: str) -> Tenant:
    tenant = Tenant(register_feed(facility=facility, name=f"HIS-{facility}"), hospital, facility)
    system = f"urn:platform:authority:{facility}"
    response = post(tenant.client, "Patient", patient_body(f"{facility}-1", system=system))
    assert response.status_code == 201, response.content
    tenant.patient_id = response.json()["id"]
    for resource_type in TYPES:
        body = sample(resource_type, f"Patient/{tenant.patient_id}", hospital=hospital)
        response = post(tenant.client, resource_type, body)
        assert response.status_code == 201, response.content
        tenant.ids[resource_type] = response.json()["id"]
        tenant.identifiers[resource_type] = (body["identifier"][0]["system"], body["identifier"][0]["value"])
    tenant.ids["Patient"] = tenant.patient_id
    tenant.identifiers["Patient"] = (system, f"{facility}-1")
    response = post(
        tenant.client, "DocumentReference", document_body(f"Patient/{tenant.patient_id}", hospital=hospital)
    )
    assert response.status_code == 201, response.content
    tenant.document_id = tenant.ids["DocumentReference"] = response.json()["id"]
    tenant.identifiers["DocumentReference"] = (f"urn:{hospital}:doc", "DOC-1")
    return tenant


def world_build() -> SimpleNamespace:
    """Hospital A and hospital B: two institutions, each with everything of its own."""
    return SimpleNamespace(a=_tenant("HOSP-A", "hosp-a"), b=_tenant("HOSP-B", "hosp-b"))
