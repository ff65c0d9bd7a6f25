"""A hospital's systems send every message type the platform maps over a real MLLP socket, in original and in
enhanced acknowledgement mode: each gets its ACK (AA, or the commit ACK CA) echoing MSH-10; processed, the facts
are readable through the FHIR API as the hospital's own and with the person ($everything), each traceable to the
inbox row of the message that carried it."""

from __future__ import annotations

import pytest

from ehr.models import Resource
from emr.models import DocumentEntry
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from registry.models import SourceSystem
from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.ingest import v2samples as v2
from tests.ingest.test_mllp_listener import Sender, listener  # noqa: F401 (the listener fixture)
from tests.registry.factories import InstitutionFactory

pytestmark = pytest.mark.django_db(transaction=True)

ENHANCED = ("|P|2.5.1|||||CHN|", "|P|2.5.1|||AL|AL|CHN|")


def day(n: int) -> list[str]:
    """One patient's day at the hospital, every mapped type, control ids unique per round ``n``."""
    c = f"{n}-"
    return [
        v2.adt("A04", c + "1", mrn="M-9", visit="V-90", resident=v2.OTHER_RESIDENT, birth="19620930"),
        v2.adt("A01", c + "2", extra=v2.AL1),
        v2.adt("A02", c + "3", location="W5^3^2"),
        v2.adt("A08", c + "4", location="W5^3^2", name="赵^敏敏"),
        v2.a60(c + "5"),
        v2.orm(c + "6"),
        v2.oml(c + "7"),
        v2.rde(c + "8"),
        v2.oru(c + "9"),
        v2.oru_imaging(c + "10"),
        v2.mdm(c + "11"),
        v2.vxu(c + "12"),
        v2.adt("A03", c + "13", location="W5^3^2", discharged="20261210090000+0800", name="赵^敏敏"),
        v2.adt("A05", c + "14", visit="V-91", admitted="20261220080000+0800", name="赵^敏敏"),
        v2.adt("A11", c + "15", visit="V-91", name="赵^敏敏"),
        v2.adt("A13", c + "16", location="W5^3^2", discharged="20261210090000+0800", name="赵^敏敏"),
        v2.a40(c + "17"),
        v2.adt("A28", c + "18", name="赵^敏敏"),
        v2.adt("A31", c + "19", name="赵^敏敏"),
    ]


def test_every_message_type_over_mllp_in_both_modes_is_acknowledged_processed_and_readable(listener):  # noqa: F811
    hospital = InstitutionFactory()
    his = register_feed(institution=hospital, name="HIS-A", facility="HOSP-A")
    for kind, name in ((SourceSystem.Kind.LIS, "LIS-A"), (SourceSystem.Kind.PACS, "RIS-A"), ("EMR", "EPI-A")):
        register_feed(institution=hospital, kind=kind, name=name, facility="HOSP-A")
    sender = Sender(listener.port)
    sent: dict[str, str] = {}
    for n, enhanced in ((1, False), (2, True)):
        for text in day(n):
            if enhanced:
                text = text.replace(*ENHANCED)
            control = text.split("|")[9]
            ack = sender.send(text.encode())
            assert ack is not None, control
            msa = ack.segment("MSA")
            assert (str(msa.value(1)), str(msa.value(2))) == ("CA" if enhanced else "AA", control)
            sent[control] = text.split("|")[8]
    sender.close()

    assert inbox_process() == len(sent)
    rows = list(InboxMessage.objects.order_by("pk"))
    assert [(r.control_id, r.status, r.error) for r in rows] == [(c, "processed", "") for c in sent]

    # Through the FHIR API, as the hospital's own facts about its patient.
    patient = his.client.get("/fhir/Patient?identifier=urn:platform:authority:HOSP-A|M-7", HTTP_ACCEPT=FHIR_JSON)
    patient_id = patient.json()["entry"][0]["resource"]["id"]
    expected = {
        # V-55, V-91 (cancelled), and V-90 of the MRN merged into this one by the A40: a search by patient
        # reads the person's facts.
        "Encounter": 3,
        "AllergyIntolerance": 3,
        "ServiceRequest": 2,
        "MedicationRequest": 1,
        "Observation": 4,
        "DiagnosticReport": 2,
        "Immunization": 1,
        "DocumentReference": 1,
    }
    for resource_type, count in expected.items():
        response = his.client.get(f"/fhir/{resource_type}?patient={patient_id}", HTTP_ACCEPT=FHIR_JSON)
        assert response.status_code == 200, response.content
        found = [e["resource"] for e in response.json().get("entry", [])]
        assert len(found) == count, (resource_type, [f.get("identifier") for f in found])

    # With the person, in one read.
    everything = his.client.get(f"/fhir/Patient/{patient_id}/$everything", HTTP_ACCEPT=FHIR_JSON).json()
    types = [e["resource"]["resourceType"] for e in everything["entry"]]
    assert types.count("Encounter") == 3 and set(expected) <= set(types)

    # Every fact and document points back to an inbox row of this hospital's messages.
    carried = set(InboxMessage.objects.values_list("submission_id", flat=True))
    assert not Resource.objects.exclude(submission_id__in=carried).exclude(resource_type="Patient").exists()
    for entry in DocumentEntry.objects.all():
        assert {v.submission_id for v in entry.versions.all()} <= carried
