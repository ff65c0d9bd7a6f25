"""The status a standard client expects (issue 19), through HTTP: 422 for a body that refers to nothing (the
request's target exists: R4 http.html#create), 404 only for a URL that names nothing, 405 with ``Allow`` for a
method a served endpoint does not support, and 406 for another FHIR version (R4 http.html#version-parameter)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from tests.fhirapi.client import FHIR_JSON, expressions, issues
from tests.fhirapi.samples import TYPES, sample


def _transaction(resource: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}],
    }


# --- 422: the content refers to what does not exist ---------------------------------------------------------


@pytest.mark.parametrize("resource_type", TYPES)
@pytest.mark.parametrize(
    "reference",
    ["Patient/0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "Patient?identifier=urn:platform:authority:HOSP-A|NO-SUCH-MRN"],
)
def test_a_create_about_an_unknown_patient_is_422_naming_the_reference(hosp, resource_type, reference):
    response = hosp.client.post(f"/fhir/{resource_type}", sample(resource_type, reference), content_type=FHIR_JSON)
    assert issues(response, 422)[0]["code"] == "not-found"
    assert any(e.endswith(".reference") or e.startswith(resource_type) for e in expressions(response, 422))


@pytest.mark.parametrize(
    "reference",
    [
        "Encounter/0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6c",
        "Encounter?identifier=urn:hosp-a:encounter|NO-SUCH",
        "urn:uuid:" + "1" * 32,
    ],
)
def test_a_reference_to_anything_unknown_is_422_in_a_single_create_and_in_a_transaction(hosp, reference):
    if reference.startswith("urn:uuid:"):
        reference = f"urn:uuid:{uuid.UUID(int=1)}"
    observation = sample("Observation", f"Patient/{hosp.patient_id}")
    observation["encounter"] = {"reference": reference}
    if not reference.startswith("urn:"):
        single = hosp.client.post("/fhir/Observation", observation, content_type=FHIR_JSON)
        assert "Observation.encounter.reference" in expressions(single, 422)
    transaction = hosp.client.post("/fhir/", _transaction(observation), content_type=FHIR_JSON)
    assert issues(transaction, 422)
    # While a request URL that names nothing stays 404.
    missing = str(uuid.uuid4())
    put = hosp.client.put(f"/fhir/Observation/{missing}", {**observation, "id": missing}, content_type=FHIR_JSON)
    issues(put, 404)


# --- 405: a served endpoint, a method it does not support -----------------------------------------------------


def _unsupported_requests() -> list[tuple[str, str]]:
    """(method, path) of every interaction the CapabilityStatement does not declare on a type it serves."""
    statement = Client().get("/fhir/metadata").json()
    found = []
    for resource in statement["rest"][0]["resource"]:
        kind, declared = resource["type"], {i["code"] for i in resource["interaction"]}
        instance = f"/fhir/{kind}/{uuid.uuid4()}"
        for code, method, path in (
            ("create", "POST", f"/fhir/{kind}"),
            ("search-type", "GET", f"/fhir/{kind}"),
            ("update", "PUT", instance),
            ("delete", "DELETE", instance),
            ("patch", "PATCH", instance),
        ):
            if code not in declared:
                found.append((method, path))
    return found


def test_every_interaction_not_declared_on_a_served_type_is_405_with_allow(db, admin_client):
    requests = _unsupported_requests()
    assert ("POST", "/fhir/Binary") in {(m, p) for m, p in requests}
    for method, path in requests:
        body = "" if method == "GET" else "{}"
        response = admin_client.generic(method, path, body, content_type=FHIR_JSON)
        assert response.status_code == 405, (method, path, response.content)
        assert method not in response["Allow"].replace(" ", "").split(","), (method, path)
        assert issues(response, 405)[0]["code"] == "not-supported"


def test_post_binary_is_405_for_a_source_system_too(hosp):
    response = hosp.client.post("/fhir/Binary", {"resourceType": "Binary"}, content_type=FHIR_JSON)
    issues(response, 405)
    assert "Allow" in response


# --- 406: another FHIR version ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/Patient", "/fhir/Observation"])
@pytest.mark.parametrize("version", ["3.0", "1.0", "5.0", "4.3"])
def test_asking_for_another_fhir_version_is_406_by_accept_or_by_format(hosp, path, version):
    media = f"application/fhir+json; fhirVersion={version}"
    by_accept = hosp.client.get(path, headers={"accept": media})
    by_format = hosp.client.get(path, {"_format": media})
    for response in (by_accept, by_format):
        assert issues(response, 406)[0]["code"] == "not-supported"
        assert version in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/Patient/{id}"])
@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json;fhirversion=4.0",
        "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=3.0;q=0.9, application/json;q=0.5",
    ],
)
def test_fhir_version_4_0_or_a_range_without_a_version_is_answered(hosp, path, accept):
    path = path.format(id=hosp.patient_id)
    assert hosp.client.get(path, headers={"accept": accept}).status_code == 200
    assert hosp.client.get(path, {"_format": "application/fhir+json; fhirVersion=4.0"}).status_code == 200
