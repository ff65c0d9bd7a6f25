"""What the FHIR API tests share as plain functions: a source system's credentials, a registered feed
and its HTTP client, and what every FHIR answer must be (valid R4, FHIR JSON)."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from django.test import Client
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from registry.models import Institution, SourceSystem
from registry.services import source_system_register
from tests.registry.factories import InstitutionFactory

FHIR_JSON = "application/fhir+json"
CONTENT_TYPE = f"{FHIR_JSON}; fhirVersion=4.0"


def basic(client_id: str, secret: str) -> dict:
    """HTTP Basic request headers (``Client(headers=...)``) for a source system."""
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def register_feed(
    *,
    institution: Institution | None = None,
    kind: str = SourceSystem.Kind.HIS,
    name: str = "HIS",
    facility: str = "HOSP-A",
) -> SimpleNamespace:
    """A registered source system (at a new institution unless one is given): its ``source``, its
    ``secret`` and an HTTP ``client`` that sends them (HTTP Basic)."""
    source, secret = source_system_register(
        institution=institution or InstitutionFactory(),
        kind=kind,
        name=name,
        sending_application=name,
        sending_facility=facility,
    )
    return SimpleNamespace(source=source, secret=secret, client=Client(headers=basic(source.client_id, secret)))


def searchset(response) -> dict:
    """The body of a successful search: FHIR JSON, a valid R4 searchset Bundle (its resources included)."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    Bundle.model_validate(body)
    assert body["type"] == "searchset"
    return body


def ids(response) -> list[str]:
    """The ids of a search's resources, in order."""
    return [entry["resource"]["id"] for entry in searchset(response).get("entry", [])]


def issues(response, status: int) -> list[dict]:
    """The issues of a refusal: FHIR JSON, a valid OperationOutcome, with this status."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    OperationOutcome.model_validate(body)
    return body["issue"]


def expressions(response, status: int) -> list[str]:
    """The elements a refusal's issues name."""
    return [e for issue in issues(response, status) for e in issue.get("expression", [])]
