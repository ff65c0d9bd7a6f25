"""Every HL7 v2 message type the platform maps, processed from the inbox through the write corridor: the facts
it writes (as FHIR R4 the archive and the document store hold), corrections and cancels as new versions of
the same fact, the ADT^A40 merge in the MPI, and every fact traceable to its inbox message."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B import get_fhir_model_class

from ehr.models import Resource
from emr.models import DocumentEntry
from healthplatform.ingest.inbox import inbox_store
from healthplatform.ingest.intake import arrival_of, intake_read
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from mpi.models import Identity, Person
from tests.fhirapi.client import register_feed
from tests.ingest import v2samples as v2
from tests.registry.factories import PractitionerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def feed():
    return register_feed(name="HIS-A", facility="HOSP-A")


def receive(feed, *texts: str) -> list[InboxMessage]:
    rows = []
    for text in texts:
        intake = intake_read(text.encode(), default_charset="UTF-8")
        assert not intake.rejected, intake.faults
        stored = inbox_store([arrival_of(intake, door="mllp", peer="test", source_id=feed.source.pk)])[0]
        rows.append(InboxMessage.objects.get(pk=stored.inbox_id))
    return rows


def process(feed, *texts: str) -> list[InboxMessage]:
    """Stores the messages as the listener does, drains the inbox, and asserts each was processed."""
    rows = receive(feed, *texts)
    inbox_process()
    for row in rows:
        row.refresh_from_db()
        assert row.status == "processed", (row.message_type, row.error)
    return rows


def facts(resource_type: str):
    return Resource.objects.filter(resource_type=resource_type, deleted=False)


def valid(resource: Resource) -> dict:
    """The stored body, validated as FHIR R4."""
    get_fhir_model_class(resource.resource_type).model_validate(resource.body)
    return resource.body


def carried_by(resource: Resource, row: InboxMessage) -> bool:
    return InboxMessage.objects.filter(submission_id=resource.submission_id, pk=row.pk).exists()


def test_adt_a01_writes_patient_encounter_and_allergies_with_free_text_kept(feed):
    (row,) = process(feed, v2.adt("A01", "C-1", extra=v2.AL1))
    encounter = facts("Encounter").get()
    assert valid(encounter)["status"] == "in-progress" and encounter.body["class"]["code"] == "IMP"
    assert encounter.body["location"][0]["location"]["display"] == "W3^12^1"
    allergies = {a.body["code"].get("text"): valid(a) for a in facts("AllergyIntolerance")}
    assert set(allergies) == {"阿莫西林", "海鲜过敏"}
    amoxicillin = allergies["阿莫西林"]
    assert amoxicillin["code"]["coding"][0] == {
        "system": "http://www.whocc.no/atc",
        "code": "J01CA04",
        "display": "阿莫西林",
    }
    assert amoxicillin["criticality"] == "high" and amoxicillin["category"] == ["medication"]
    assert [m["text"] for m in amoxicillin["reaction"][0]["manifestation"]] == ["皮疹", "呼吸困难"]
    seafood = allergies["海鲜过敏"]
    assert "coding" not in seafood["code"] and seafood["category"] == ["food"]
    assert all(carried_by(r, row) for r in facts("AllergyIntolerance"))


def test_the_visit_lifecycle_transfer_discharge_and_its_cancel_are_versions_of_one_encounter(feed):
    process(feed, v2.adt("A01", "C-1"))
    process(feed, v2.adt("A02", "C-2", location="W5^3^2"))
    encounter = facts("Encounter").get()
    assert encounter.body["location"][0]["location"]["display"] == "W5^3^2" and encounter.version_id == 2
    process(feed, v2.adt("A03", "C-3", location="W5^3^2", discharged="20261210090000+0800"))
    encounter.refresh_from_db()
    assert encounter.body["status"] == "finished" and encounter.body["period"]["end"].startswith("2026-12-10")
    process(feed, v2.adt("A13", "C-4", location="W5^3^2", discharged="20261210090000+0800"))
    encounter.refresh_from_db()
    assert encounter.body["status"] == "in-progress" and "end" not in encounter.body["period"]
    assert encounter.version_id == 4 and facts("Encounter").count() == 1
    # A cancelled admission (A11) of another visit: that encounter is cancelled, not deleted.
    process(feed, v2.adt("A01", "C-5", visit="V-56"), v2.adt("A11", "C-6", visit="V-56"))
    cancelled = facts("Encounter").get(body__identifier__0__value="V-56")
    assert cancelled.body["status"] == "cancelled" and cancelled.version_id == 2


def test_adt_a08_updates_the_patient_and_a28_a31_write_only_the_patient(feed):
    process(feed, v2.adt("A28", "C-1"), v2.adt("A08", "C-2", name="赵^敏敏"), v2.adt("A31", "C-3", name="赵^敏敏"))
    identity = Identity.objects.get(assigning_authority="HOSP-A", local_id="M-7")
    assert identity.name == "赵敏敏"
    assert facts("Encounter").get().version_id == 1  # only the A08 carried a visit to write


def test_adt_a40_merges_the_prior_mrn_into_the_survivor_in_the_mpi(feed):
    # The same resident registered twice by the hospital, under two MRNs the MPI kept apart (no shared number).
    process(
        feed,
        v2.adt("A04", "C-1", resident=v2.RESIDENT),
        v2.adt("A04", "C-2", mrn="M-9", visit="V-90", name="赵^敏", resident=v2.OTHER_RESIDENT, birth="19620930"),
    )
    survivor = Identity.objects.get(local_id="M-7")
    prior = Identity.objects.get(local_id="M-9")
    assert survivor.person_id != prior.person_id
    process(feed, v2.a40("C-3"))
    prior.refresh_from_db()
    survivor.refresh_from_db()
    assert prior.person_id == survivor.person_id
    merged = Person.objects.get(identities__isnull=True, merged_into=survivor.person)
    assert merged.status == Person.Status.MERGED
    # Both MRNs' encounters are read with the one person now.
    assert facts("Encounter").filter(identity__person=survivor.person).count() == 2
    assert {i.local_id for i in survivor.person.identities.all()} == {"M-7", "M-9"}


def test_adt_a40_of_an_mrn_never_registered_or_of_another_hospital_is_parked_and_merges_nothing(feed):
    process(feed, v2.adt("A04", "C-1"))
    (row,) = receive(feed, v2.a40("C-2", prior="M-404"))
    other = register_feed(name="HIS-B", facility="HOSP-B")
    (foreign,) = receive(other, v2.a40("C-3").replace("HIS-A|HOSP-A", "HIS-B|HOSP-B"))
    inbox_process()
    row.refresh_from_db()
    foreign.refresh_from_db()
    assert row.status == "parked" and "MRG-1" in row.error
    assert foreign.status == "parked" and "assigning authority" in foreign.error  # refused by the corridor
    assert Person.objects.filter(status=Person.Status.MERGED).count() == 0


def test_adt_a60_iam_adds_an_allergy_and_a_delete_marks_it_entered_in_error(feed):
    process(feed, v2.a60("C-1"))
    allergy = facts("AllergyIntolerance").get()
    body = valid(allergy)
    assert body["code"]["coding"][0]["code"] == "N02BA01" and body["onsetDateTime"] == "2019-03-01"
    assert body["identifier"][0]["value"].endswith("|ALG-1")
    process(feed, v2.a60("C-2", action="D"))
    allergy.refresh_from_db()
    assert allergy.version_id == 2 and valid(allergy)["verificationStatus"]["coding"][0]["code"] == "entered-in-error"


def test_oru_r01_writes_a_report_with_its_observations_and_a_correction_is_a_new_version(feed):
    (row,) = process(feed, v2.oru("R-1"))
    report = facts("DiagnosticReport").get()
    body = valid(report)
    observations = {o.body["code"]["coding"][0]["code"]: o for o in facts("Observation")}
    assert set(observations) == {"2345-7", "2160-0"}
    assert sorted(r["reference"] for r in body["result"]) == sorted(
        f"Observation/{o.fhir_id}" for o in observations.values()
    )
    assert body["status"] == "final" and body["code"]["coding"][0]["code"] == "24323-8"
    assert body["identifier"][0]["value"] == "F-1" and carried_by(report, row)
    process(feed, v2.oru("R-2", value="5.9", status="C"))
    glucose = facts("Observation").get(body__code__coding__0__code="2345-7")
    assert glucose.version_id == 2 and glucose.body["valueQuantity"]["value"] == 5.9
    report.refresh_from_db()
    assert report.version_id == 2 and report.body["status"] == "corrected" and facts("DiagnosticReport").count() == 1


def test_oru_r01_imaging_report_keeps_its_text_and_category(feed):
    process(feed, v2.oru_imaging("R-1"))
    report = valid(facts("DiagnosticReport").get())
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    findings = facts("Observation").get(body__code__coding__0__code="CT001-F")
    assert (
        findings.body["valueString"] == "两肺纹理清晰"
        and findings.body["category"][0]["coding"][0]["code"] == "imaging"
    )


def test_orm_o01_and_oml_o21_write_service_requests_and_a_cancel_revokes_the_order(feed):
    PractitionerFactory(licence_number="D-1")
    process(feed, v2.orm("O-1"), v2.oml("O-2"))
    requests = {r.body["identifier"][0]["value"]: valid(r) for r in facts("ServiceRequest")}
    assert set(requests) == {"P-100", "P-101"}
    glucose = requests["P-100"]
    assert glucose["status"] == "active" and glucose["code"]["coding"][0]["code"] == "2345-7"
    assert glucose["occurrenceDateTime"].startswith("2026-12-10") and glucose["authoredOn"].startswith("2026-12-03")
    # ORC-12 names a practitioner the directory knows: a resolved reference to it.
    assert glucose["requester"]["reference"].startswith("Practitioner/")
    assert requests["P-101"]["code"]["coding"][0]["code"] == "4548-4"
    process(feed, v2.orm("O-3", control_code="CA"))
    cancelled = facts("ServiceRequest").get(body__identifier__0__value="P-100")
    assert cancelled.body["status"] == "revoked" and cancelled.version_id == 2


def test_rde_o11_writes_a_medication_request_with_dose_route_and_timing(feed):
    # The prescriber is not in the directory: kept as a logical reference, the message is not refused.
    process(feed, v2.rde("P-1"))
    request = valid(facts("MedicationRequest").get())
    assert request["status"] == "active" and request["intent"] == "order"
    assert request["medicationCodeableConcept"]["coding"][0] == {
        "system": "http://www.whocc.no/atc",
        "code": "J01CA04",
        "display": "阿莫西林胶囊",
    }
    dosage = request["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 0.5, "unit": "g"}
    assert dosage["timing"]["repeat"] == {"frequency": 3, "period": 1, "periodUnit": "d"}
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert request["requester"] == {
        "identifier": {"system": "urn:platform:practitioner-licence", "value": "D-1"},
        "display": "李医生",
    }
    process(feed, v2.rde("P-2", control_code="DC"))
    stopped = facts("MedicationRequest").get()
    assert stopped.body["status"] == "stopped" and stopped.version_id == 2


@pytest.mark.parametrize("pdf", [False, True], ids=["text", "pdf"])
def test_mdm_t02_stores_the_document_with_its_content_in_the_document_store(feed, pdf):
    (row,) = process(feed, v2.mdm("D-1", pdf=pdf))
    entry = DocumentEntry.objects.get()
    assert entry.resource["masterIdentifier"]["value"] == "DOC-77"
    assert entry.resource["type"]["coding"][0]["code"] == "18842-5"
    assert entry.content_type.startswith("application/pdf" if pdf else "text/plain")
    assert entry.versions.get().submission_id == row.submission_id is not None
    if not pdf:
        attachment = entry.resource["content"][0]["attachment"]
        assert "data" not in attachment or base64.b64decode(attachment["data"]).decode().startswith("出院诊断")
    # Processed again (a worker lost after the write): the same document, not a second one.
    InboxMessage.objects.filter(pk=row.pk).update(status="received")
    inbox_process()
    assert DocumentEntry.objects.count() == 1


def test_vxu_v04_writes_an_immunization_and_a_delete_marks_it_entered_in_error(feed):
    process(feed, v2.vxu("V-1"))
    immunization = facts("Immunization").get()
    body = valid(immunization)
    assert body["vaccineCode"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/cvx",
        "code": "08",
        "display": "乙肝疫苗",
    }
    assert body["status"] == "completed" and body["lotNumber"] == "LOT123" and body["primarySource"] is True
    assert body["doseQuantity"] == {"value": 0.5, "unit": "mL"} and body["route"]["coding"][0]["code"] == "IM"
    process(feed, v2.vxu("V-2", action="D"))
    immunization.refresh_from_db()
    assert immunization.body["status"] == "entered-in-error" and immunization.version_id == 2


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.8"])
def test_older_and_newer_versions_map_the_same(feed, version):
    text = v2.oru("R-1").replace("|P|2.5.1|", f"|P|{version}|")
    process(feed, text)
    assert facts("Observation").count() == 2 and facts("DiagnosticReport").count() == 1
