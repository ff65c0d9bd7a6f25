"""The attacks the write-path review found, one test each (issue 15): an institution holding another's ids
and identifiers, and a careless or hostile client. Each failed on the code before the write corridor."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ehr.models import Resource
from ehr.services import WriteItem, resources_write
from emr.models import DocumentEntry
from mpi.models import Identity
from tests.fhirapi.client import FHIR_JSON, issues
from tests.fhirapi.samples import sample
from tests.fhirapi.tenants import document_body, post

pytestmark = pytest.mark.django_db


def ok(response, status=200) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def test_a_squatted_business_identifier_does_not_capture_the_owners_writes(world):
    """A stores an Observation and an Encounter carrying B's identifiers first; B's own conditional create,
    conditional update and conditional reference still find only B's resources."""
    a, b = world.a, world.b
    squat = sample("Observation", f"Patient/{a.patient_id}", 500, hospital="hosp-b")
    forged = ok(post(a.client, "Observation", squat), 201)
    encounter = sample("Encounter", f"Patient/{a.patient_id}", 500, hospital="hosp-b")
    forged_encounter = ok(post(a.client, "Encounter", encounter), 201)
    criteria = "identifier=urn:hosp-b:observation|Obs-500"

    mine = sample("Observation", f"Patient/{b.patient_id}", 500, hospital="hosp-b")
    created = ok(post(b.client, "Observation", mine, HTTP_IF_NONE_EXIST=criteria), 201)
    assert created["id"] != forged["id"] and created["subject"]["reference"] == f"Patient/{b.patient_id}"
    updated = ok(b.client.put(f"/fhir/Observation?{criteria}", {**mine, "status": "amended"}, content_type=FHIR_JSON))
    assert updated["id"] == created["id"] and updated["status"] == "amended"
    assert Resource.objects.get(fhir_id=forged["id"]).version_id == 1  # A's forgery untouched, B's data stored

    report = sample("DiagnosticReport", f"Patient/{b.patient_id}", 500, hospital="hosp-b")
    report["encounter"] = {"reference": "Encounter?identifier=urn:hosp-b:encounter|Enc-500"}
    # B never sent Enc-500: only A's forged Encounter carries it, and B's reference must not resolve to it.
    refusal = issues(post(b.client, "DiagnosticReport", report), 422)
    assert refusal[0]["code"] == "not-found" and forged_encounter["id"] not in refusal[0]["diagnostics"]
    own = sample("Encounter", f"Patient/{b.patient_id}", 500, hospital="hosp-b")
    own_encounter = ok(post(b.client, "Encounter", own), 201)
    stored = ok(post(b.client, "DiagnosticReport", report), 201)
    assert stored["encounter"]["reference"] == f"Encounter/{own_encounter['id']}"


def test_a_document_cannot_replace_another_institutions_document(world):
    a, b = world.a, world.b
    replacement = document_body(f"Patient/{a.patient_id}", hospital="hosp-a", value="DOC-R", text=b"mine")
    replacement["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{b.document_id}"}}]
    refusal = issues(post(a.client, "DocumentReference", replacement), 403)
    assert refusal[0]["expression"][0].startswith("DocumentReference.relatesTo[0].target")
    assert DocumentEntry.objects.get(uuid=b.document_id).status == "current"
    in_a_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": replacement, "request": {"method": "POST", "url": "DocumentReference"}}],
    }
    assert issues(post(a.client, "", in_a_bundle), 403)[0]["expression"][0].startswith(
        "Bundle.entry[0].resource.relatesTo[0].target"
    )
    assert DocumentEntry.objects.get(uuid=b.document_id).status == "current"


@pytest.mark.parametrize(
    "spelling",
    [
        "DocumentReference/{id}",
        "http://x/_history/DocumentReference/{id}/_history/v1",
        "http://x/DocumentReference/{ID}/_history/v1",
        "DocumentReference/{id}\n",
    ],
)
def test_a_document_replaces_only_its_own_source_systems_documents_however_the_target_is_spelled(world, spelling):
    """Another source system of the same institution (its LIS beside its HIS) may refer to the HIS's document,
    but not supersede it; the store, which resolves the target, decides (the review found spellings the
    corridor's own parse of the target missed)."""
    from tests.fhirapi.client import register_feed

    lis = register_feed(institution=world.a.source.institution, name="LIS", facility="HOSP-A")
    target = world.a.document_id
    replacement = document_body(f"Patient/{world.a.patient_id}", hospital="hosp-a-lis", value="DOC-L", text=b"lis")
    reference = spelling.format(id=target, ID=target.upper())
    replacement["relatesTo"] = [{"code": "replaces", "target": {"reference": reference}}]
    response = post(lis.client, "DocumentReference", replacement)
    assert response.status_code in (400, 403), response.content
    assert DocumentEntry.objects.get(uuid=target).status == "current"


def test_a_source_system_cannot_change_what_staff_entered(world):
    """A staff member entered a fact about B's patient; neither A nor B's feed may delete or overwrite it."""
    b_identity = Identity.objects.get(uuid=world.b.patient_id)
    body = sample("Condition", f"Patient/{world.b.patient_id}", 700, hospital="staff")
    item = WriteItem("Condition", body, identity_id=b_identity.pk)
    staff_fact = resources_write(items=[item], source=None, actor="clerk", submission=None)[0].resource
    for feed in (world.a, world.b):
        assert issues(feed.client.delete(f"/fhir/Condition/{staff_fact.fhir_id}"), 403)[0]["code"] == "forbidden"
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "DELETE", "url": f"Condition/{staff_fact.fhir_id}"}}],
    }
    assert ok(post(world.a.client, "", batch))["entry"][0]["response"]["status"] == "403"
    assert not Resource.objects.get(pk=staff_fact.pk).deleted


@pytest.mark.parametrize(
    "reference",
    ["Encounter/does-not-exist", "Practitioner/999999", "Practitioner/" + "9" * 64, "Organization/NOWHERE"],
)
def test_a_reference_to_nothing_is_refused_naming_the_element(world, reference):
    body = sample("Observation", f"Patient/{world.a.patient_id}", 800)
    body["encounter" if reference.startswith("Encounter") else "performer"] = (
        {"reference": reference} if reference.startswith("Encounter") else [{"reference": reference}]
    )
    refusal = issues(post(world.a.client, "Observation", body), 422)  # the content refers to nothing (issue 19)
    assert refusal[0]["code"] == "not-found"
    assert refusal[0]["expression"][0].startswith(("Observation.encounter", "Observation.performer[0]"))


def test_a_relative_reference_to_a_type_this_server_does_not_store_is_refused(world):
    body = sample("MedicationRequest", f"Patient/{world.a.patient_id}", 801)
    body.pop("medicationCodeableConcept")
    body["medicationReference"] = {"reference": "Medication/m1"}
    refusal = issues(post(world.a.client, "MedicationRequest", body), 422)
    assert refusal[0]["expression"] == ["MedicationRequest.medicationReference.reference"]
    contained = {**body, "contained": [{"resourceType": "Medication", "id": "m1", "status": "active"}]}
    contained["medicationReference"] = {"reference": "#m1"}
    ok(post(world.a.client, "MedicationRequest", contained), 201)


def test_duplicate_full_urls_in_one_bundle_are_refused(world):
    entries = [
        {
            "fullUrl": "urn:uuid:same",
            "resource": sample("Observation", f"Patient/{world.a.patient_id}", 900 + i),
            "request": {"method": "POST", "url": "Observation"},
        }
        for i in range(2)
    ]
    for kind in ("transaction", "batch"):
        refusal = issues(post(world.a.client, "", {"resourceType": "Bundle", "type": kind, "entry": entries}), 400)
        assert refusal[0]["expression"] == ["Bundle.entry[1].fullUrl"]
    assert not Resource.objects.filter(identifier_value__in=["Obs-900", "Obs-901"]).exists()


def test_a_bundle_get_entry_is_answered_as_the_same_get_alone(world):
    """A batch's ``GET Patient?_count=1000`` without criteria listed every stored source Patient; alone, the
    same search is refused. Now the entry is that very search, refused the same way."""
    alone = world.a.client.get("/fhir/Patient?_count=1000")
    assert alone.status_code == 400
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient?_count=1000"}},
            {"request": {"method": "GET", "url": f"Observation?patient={world.a.patient_id}&colour=red"}},
            {"request": {"method": "GET", "url": f"Observation/{world.b.ids['Observation']}"}},
        ],
    }
    answer = ok(post(world.a.client, "", batch))["entry"]
    assert answer[0]["response"]["status"].startswith("400")
    assert answer[0]["response"]["outcome"]["issue"][0]["code"] == alone.json()["issue"][0]["code"]
    assert answer[1]["response"]["status"].startswith("400")  # an unknown parameter, as alone
    assert answer[2]["resource"]["id"] == world.b.ids["Observation"]  # reads are region-wide, as alone


def test_an_unsupported_chain_never_widens_a_search(world):
    """``Observation?patient.identifier=…&code=…`` answered every patient's results for that code."""
    system, value = world.a.identifiers["Patient"]
    query = f"Observation?patient.identifier={quote(system)}|{value}&code=http://loinc.org|718-7"
    refusal = issues(world.a.client.get(f"/fhir/{query}"), 400)
    assert refusal[0]["expression"] == ["patient.identifier"]
    lenient = ok(world.a.client.get(f"/fhir/{query}", HTTP_PREFER="handling=lenient"))
    assert "patient.identifier" not in lenient["link"][0]["url"]
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"


def test_an_update_cannot_move_a_fact_to_another_person_in_a_bundle_either(world):
    a = world.a
    other = ok(
        post(
            a.client,
            "Patient",
            {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:platform:authority:HOSP-A", "value": "HOSP-A-2"}],
                "name": [{"text": "李四"}],
                "gender": "female",
                "birthDate": "1960-01-01",
            },
        ),
        201,
    )
    observation_id = a.ids["Observation"]
    body = dict(Resource.objects.get(fhir_id=observation_id).body)
    body["subject"] = {"reference": f"Patient/{other['id']}"}
    entry = {"resource": body, "request": {"method": "PUT", "url": f"Observation/{observation_id}"}}
    refusal = issues(post(a.client, "", {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}), 422)
    assert refusal[0]["expression"] == ["Bundle.entry[0].resource.subject"]
    assert Resource.objects.get(fhir_id=observation_id).version_id == 1
