"""Facts that arrive by HL7 v2 feed the alerts exactly as FHIR facts do: a test order (ORM) and a prescription
(RDE) one hospital sends by HL7 v2 raise the duplicate-test and drug–allergy alerts against a result and an
allergy another hospital sent by FHIR."""

from __future__ import annotations

import datetime as dt

import pytest

from healthplatform.alerts.models import Alert
from healthplatform.ingest.inbox import inbox_store
from healthplatform.ingest.intake import arrival_of, intake_read
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from registry.codes import ALLERGEN_CLASS_SYSTEM
from tests.alerts.scenario import NOW, Resident, allergy, lab, region
from tests.ingest.v2samples import msh

pytestmark = pytest.mark.django_db

POTASSIUM = "2823-3"
CHINA = dt.timezone(dt.timedelta(hours=8))


def hl7_now() -> str:
    return NOW.astimezone(CHINA).strftime("%Y%m%d%H%M%S+0800")


def sent_by_v2(clinic, resident: Resident, control: str, message_type: str, body: str) -> InboxMessage:
    """The clinic's HIS sends one message about the resident (PID as it registered them), as the listener
    stores it."""
    text = (
        msh(message_type, control, app=f"HIS-{clinic.facility}", facility=clinic.facility)
        + f"PID|1||{clinic.facility}-{resident.key}^^^{clinic.facility}^MR~{resident.resident_id}^^^CHN^NNCHN||"
        + f"{resident.name[0]}^{resident.name[1:]}||{resident.birth_date:%Y%m%d}|F\r"
        + body
    )
    intake = intake_read(text.encode(), default_charset="UTF-8")
    assert not intake.rejected, intake.faults
    stored = inbox_store([arrival_of(intake, door="mllp", peer="test", source_id=clinic.source.pk)])[0]
    return InboxMessage.objects.get(pk=stored.inbox_id)


def test_v2_order_and_prescription_raise_alerts_against_fhir_result_and_allergy(django_capture_on_commit_callbacks):
    a, b, _ = region()
    resident = Resident("v2")
    (result_id,) = a.send(resident, lab(POTASSIUM, 4.2, "mmol/L", days_ago=2))
    (allergy_id,) = a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    order = sent_by_v2(
        b,
        resident,
        "O-1",
        "ORM^O01^ORM_O01",
        f"ORC|NW|P-9^HIS-B|||||||{hl7_now()}\rOBR|1|P-9^HIS-B||{POTASSIUM}^血钾^LN\r",
    )
    prescription = sent_by_v2(
        b,
        resident,
        "O-2",
        "RDE^O11^RDE_O11",
        f"ORC|NW|RX-9^HIS-B|||||||{hl7_now()}\rTQ1|1||TID\rRXE||J01CA04^阿莫西林胶囊^ATC|0.5||g\rRXR|PO\r",
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert inbox_process() == 2
    for row in (order, prescription):
        row.refresh_from_db()
        assert row.status == "processed", row.error
    alerts = {alert.kind: alert for alert in Alert.objects.all()}
    assert set(alerts) == {"duplicate-test", "drug-allergy"}
    assert all(alert.institution == b.institution for alert in alerts.values())
    assert alerts["duplicate-test"].order.startswith("ServiceRequest/")
    assert alerts["duplicate-test"].evidence[0]["reference"] == f"Observation/{result_id}"
    assert alerts["drug-allergy"].order.startswith("MedicationRequest/")
    assert alerts["drug-allergy"].evidence[0]["reference"] == f"AllergyIntolerance/{allergy_id}"
    assert alerts["drug-allergy"].person_id == resident.person_id(a)
