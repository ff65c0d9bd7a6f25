"""The HL7 v2-to-FHIR maps: what realistic PID, PV1 and OBX segments become, each resource valid R4 (checked
with fhir.resources' R4B models), after HL7's v2-to-FHIR implementation guide."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.v2tofhir import (
    HEALTH_CARD_SYSTEM,
    LOINC,
    RESIDENT_ID_SYSTEM,
    encounter_of,
    hl7_date,
    hl7_datetime,
    observation_of,
    patient_of,
)

# An obviously fake 18-character resident number (the mapping does not check the checksum; the MPI does).
RESIDENT = "44010619800101001X"
LOCAL = "urn:platform:codes:HOSP-A:lab"


def segment(text: str, name: str, occurrence: int = 1):
    msh = "MSH|^~\\&|HIS-A|HOSP-A|HIP|REGION|20261203||ADT^A01|C1|P|2.5.1\r"
    message = message_parse((msh + text).encode(), sender_default_charset="UTF-8")
    assert message.ok, message.faults
    return message.segment(name, occurrence)


def test_pid_identifiers_name_birth_sex_address_and_phone_become_a_valid_patient():
    pid = segment(
        f"PID|1||M-1^^^HOSP-A^MR~{RESIDENT}^^^CHN^NNCHN~HC44001^^^HC^HC||王^小明||19800101|M|||"
        "天河路1号^^广州市^广东省^510000^CHN||13800000000\r",
        "PID",
    )
    patient = patient_of(pid, sending_facility="HOSP-A")
    Patient.model_validate(patient)
    assert {"system": RESIDENT_ID_SYSTEM, "value": RESIDENT} in patient["identifier"]
    assert {"system": HEALTH_CARD_SYSTEM, "value": "HC44001"} in patient["identifier"]
    mrn = patient["identifier"][0]
    assert (mrn["system"], mrn["value"]) == ("urn:platform:authority:HOSP-A", "M-1")
    assert patient["name"] == [{"text": "王小明", "family": "王", "given": ["小明"]}]
    assert patient["birthDate"] == "1980-01-01" and patient["gender"] == "male"
    assert patient["address"][0]["city"] == "广州市" and patient["address"][0]["text"] == "广东省广州市天河路1号"
    assert patient["telecom"] == [{"system": "phone", "value": "13800000000"}]


def test_an_mrn_without_its_authority_is_the_sending_facilitys_and_pid_19_20_carry_the_national_documents():
    pid = segment(f"PID|1||M-2||李^雷||1990|F|||||||||||{RESIDENT.lower()}|YB-77\r", "PID")
    patient = patient_of(pid, sending_facility="HOSP-B")
    Patient.model_validate(patient)
    assert patient["identifier"][0]["system"] == "urn:platform:authority:HOSP-B"
    assert {"system": RESIDENT_ID_SYSTEM, "value": RESIDENT} in patient["identifier"]
    assert {"system": HEALTH_CARD_SYSTEM, "value": "YB-77"} in patient["identifier"]
    assert patient["birthDate"] == "1990" and patient["gender"] == "female"


def test_an_explicit_null_or_an_unknown_sex_is_left_out_rather_than_guessed():
    patient = patient_of(segment('PID|1||M-3^^^HOSP-A||""^""||2026-01-01|Z\r', "PID"), sending_facility="HOSP-A")
    Patient.model_validate(patient)
    assert "name" not in patient and "gender" not in patient and "birthDate" not in patient


def test_pv1_becomes_an_encounter_with_its_class_visit_number_and_period():
    pv1 = segment("PV1|1|I|W3^12^1||||||||||||||||V-1001|||||||||||||||||||||||||20261201083000+0800\r", "PV1")
    encounter = encounter_of(pv1, patient_reference="urn:uuid:p", sending_facility="HOSP-A", status="in-progress")
    Encounter.model_validate(encounter)
    assert encounter["class"]["code"] == "IMP"
    assert encounter["identifier"][0]["value"] == "V-1001"
    assert encounter["period"] == {"start": "2026-12-01T08:30:00+08:00"}
    assert encounter["location"][0]["location"]["display"] == "W3^12^1"


@pytest.mark.parametrize(
    ("obx", "expected"),
    [
        (
            "OBX|1|NM|2345-7^葡萄糖^LN||6.4|mmol/L|3.9-6.1|H|||F|||20261203075500+0800",
            {"valueQuantity": {"value": 6.4, "unit": "mmol/L"}, "status": "final"},
        ),
        (
            "OBX|2|NM|GLU^空腹血糖||<0.5|mmol/L|||||C",
            {"valueQuantity": {"value": 0.5, "comparator": "<", "unit": "mmol/L"}},
        ),
        ("OBX|3|ST|NOTE^备注||溶血||||||F", {"valueString": "溶血"}),
        ("OBX|4|CE|600-7^血培养^LN||NEG^阴性^L||||||P", {"status": "preliminary"}),
    ],
)
def test_obx_becomes_a_valid_observation_by_its_value_type(obx, expected):
    observation = observation_of(
        segment(obx + "\r", "OBX"), patient_reference="urn:uuid:p", local_system=LOCAL, order_id="F-9"
    )
    Observation.model_validate(observation)
    for key, value in expected.items():
        assert observation[key] == value


def test_a_loinc_coded_result_keeps_the_standard_system_and_a_local_one_the_senders_code_system():
    loinc = observation_of(
        segment("OBX|1|NM|2345-7^葡萄糖^LN||5|mmol/L|3.9-6.1|N|||F\r", "OBX"),
        patient_reference="urn:uuid:p",
        local_system=LOCAL,
        order_id="F-9",
    )
    local = observation_of(
        segment("OBX|1|NM|GLU^空腹血糖||5|mmol/L\r", "OBX"),
        patient_reference="urn:uuid:p",
        local_system=LOCAL,
        order_id="F-9",
    )
    assert loinc["code"]["coding"][0]["system"] == LOINC and loinc["code"]["text"] == "葡萄糖"
    assert local["code"]["coding"][0] == {"system": LOCAL, "code": "GLU", "display": "空腹血糖"}
    assert loinc["referenceRange"] == [
        {"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 6.1, "unit": "mmol/L"}}
    ]
    # A corrected result names the same fact: the identifier is the order and the test, not the OBX set id.
    assert loinc["identifier"] == [{"system": f"{LOCAL}:result", "value": "F-9|2345-7"}]


def test_a_number_that_is_not_one_is_kept_as_text_never_dropped():
    observation = observation_of(
        segment("OBX|1|NM|2345-7^葡萄糖^LN||见备注|mmol/L\r", "OBX"),
        patient_reference="urn:uuid:p",
        local_system=LOCAL,
        order_id="",
    )
    Observation.model_validate(observation)
    assert observation["valueString"] == "见备注" and "identifier" not in observation


@pytest.mark.parametrize(
    ("value", "date", "moment"),
    [
        ("20261203", "2026-12-03", "2026-12-03"),
        ("202612", "2026-12", "2026-12"),
        ("20261203083000+0800", "2026-12-03", "2026-12-03T08:30:00+08:00"),
        ("20261203083000", "2026-12-03", "2026-12-03"),  # no offset: the date alone is honest
        ("20260230", None, None),
        ("garbage", None, None),
    ],
)
def test_hl7_times(value, date, moment):
    assert hl7_date(value) == date and hl7_datetime(value) == moment
