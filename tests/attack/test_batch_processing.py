"""Attacks on the HL7 v2 inbox's batches (one source's messages written together, ``transactions_apply``) and on
the raw-SQL archive lookups they use (branch attack-batch). Synthetic data only."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import unquote

import pytest
from django.db import connection

from ehr.models import Resource
from healthplatform.ingest import processing
from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.intake import patient_key
from healthplatform.ingest.processing import inbox_process
from mpi.identifiers import make_resident_id
from mpi.models import Identity
from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.fhirapi.samples import MRN_A, patient_body, sample
from tests.ingest import v2samples as v2
from tests.ingest.test_processing import received

RESIDENT_1 = make_resident_id("440106", dt.date(1980, 1, 1), 3)
RESIDENT_2 = make_resident_id("440106", dt.date(1990, 2, 2), 5)


def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's processing claims one message at a time: nothing is written together")


def _adt(
    trigger: str, control: str, pid3: str, *, name: str = "赵^敏", facility: str = "HOSP-A", visit: str = "V-1"
) -> str:
    return (
        v2.msh(f"ADT^{trigger}^ADT_A01", control, facility=facility)
        + f"EVN|{trigger}|20261203101500+0800\r"
        + f"PID|1||{pid3}||{name}||19800101|F\r"
        + v2.pv1(visit)
    )


# --- per-patient order: the patient key is the MRN processing registers -------------------------------------


@pytest.mark.parametrize(
    "pid3",
    [
        f"M-7^^^HOSP-A^MR~{RESIDENT_1}^^^CHN^NNCHN",  # the MRN first (as most senders do)
        f"{RESIDENT_1}^^^CHN^NNCHN~M-7^^^HOSP-A^MR",  # the resident id first: the MRN is the second repetition
        f"{RESIDENT_1}^^^CHN^NNCHN~M-7^^^^MR",  # and without CX.4: the sender's facility is its authority
        "M-7^^^^MR",
    ],
    ids=["mrn-first", "resident-first", "resident-first-no-cx4", "mrn-no-cx4"],
)
def test_the_patient_key_is_the_mrn_processing_registers_whatever_the_order_of_pid_3(pid3):
    """The key that keeps one patient's messages in order (and out of one batch) was PID-3's *first* repetition:
    a sender listing the resident id first gave one patient two keys (one per message layout), so an A08 could be
    claimed beside — or by another worker before — the A01 it follows."""
    message = message_parse(_adt("A08", "C-1", pid3).encode(), sender_default_charset="UTF-8")
    assert patient_key(message, 9) == "9|M-7^HOSP-A"


@pytest.mark.django_db(transaction=True)
def test_two_messages_of_one_patient_are_never_claimed_together_whatever_pid_3s_order():
    _postgresql()
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    first = received(feed.source, _adt("A01", "C-1", f"{RESIDENT_1}^^^CHN^NNCHN~M-7^^^HOSP-A^MR"))
    received(feed.source, _adt("A08", "C-2", f"M-7^^^HOSP-A^MR~{RESIDENT_1}^^^CHN^NNCHN", name="赵^敏敏"))
    assert processing._claim_ids(32) == [first.pk]


# --- one batch, several patients: nothing of one message lands on another's patient ----------------------------


def _oru(control: str, mrn: str, resident: str, *, name: str, value: str) -> str:
    return (
        v2.msh("ORU^R01^ORU_R01", control, app="LIS-A")
        + v2.pid(mrn, name=name, resident=resident)
        + "OBR|1|P-1|F-1|24323-8^综合代谢^LN|||20261203070000+0800\r"
        + f"OBX|1|NM|2345-7^葡萄糖^LN||{value}|mmol/L|3.9-6.1|H|||F|||20261203075500+0800\r"
    )


@pytest.mark.django_db
def test_the_same_result_identifier_for_two_patients_in_one_batch_stays_with_the_first():
    """Two patients' ORUs naming one order number (a laboratory reusing F-1): written together, the second's
    conditional update of the same Observation would be the first's result moved; it is parked alone, and the
    first's facts and provenance are its own."""
    _postgresql()
    lis = register_feed(name="LIS-A", facility="HOSP-A")
    one = received(lis.source, _oru("C-1", "M-1", RESIDENT_1, name="钱^一", value="5.1"))
    two = received(lis.source, _oru("C-2", "M-2", RESIDENT_2, name="孙^二", value="9.9"))
    assert inbox_process() == 2
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.status == "processed", one.error
    assert two.status == "parked" and "cannot move a fact to another patient" in two.error
    assert two.submission_id is None and not two.produced
    glucose = Resource.objects.get(resource_type="Observation")
    assert glucose.identity.local_id == "M-1" and glucose.body["valueQuantity"]["value"] == 5.1
    assert glucose.submission_id == one.submission_id
    assert {p["pk"] for p in one.produced} >= {glucose.pk}


@pytest.mark.django_db
def test_a_batch_mixing_two_institutions_writes_each_message_as_its_own_source(monkeypatch):
    """The fallback claim (``_CLAIM_ANY_SQL``) takes the oldest messages of any source: two hospitals' messages
    about their own MRN M-7 (one resident) in one batch are each written as their own source, about their own
    identity, with their own submission."""
    _postgresql()
    monkeypatch.setattr(processing, "_CLAIM_SQL", processing._CLAIM_ANY_SQL)
    a = register_feed(name="HIS-A", facility="HOSP-A")
    b = register_feed(name="HIS-B", facility="HOSP-B")
    rows = []
    for n in range(3):
        for feed, facility in ((a, "HOSP-A"), (b, "HOSP-B")):
            pid3 = f"M-7^^^{facility}^MR~{RESIDENT_1}^^^CHN^NNCHN" if n == 0 else f"M-{n}{facility}^^^{facility}^MR"
            text = _adt("A01", f"C-{n}", pid3, facility=facility, visit=f"V-{n}")
            text = text.replace("HIS-A", feed.source.sending_application)
            rows.append((feed, facility, received(feed.source, text)))
    assert inbox_process() == 6
    for feed, facility, row in rows:
        row.refresh_from_db()
        assert row.status == "processed", row.error
        assert row.submission.source_id == feed.source.pk
        facts = Resource.objects.filter(submission=row.submission)
        assert {f.resource_type for f in facts} == {"Patient", "Encounter"}
        for fact in facts:
            assert fact.identity.assigning_authority == facility
            assert fact.source_id == feed.source.pk
    assert Identity.objects.filter(local_id="M-7").count() == 2


# --- bad input through the FHIR API's conditional criteria ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    ["a%00b", "50%25'\\,x", "o\\'; SELECT 1 --", "%2C%7C%22"],
    ids=["nul", "percent-quote-backslash-comma", "sql-text", "encoded-comma-bar-quote"],
)
def test_conditional_criteria_with_hostile_values_are_answered_never_a_500(value):
    """``PUT Observation?identifier=<system>|<value>`` in a transaction: the value, decoded, goes to the raw
    identifier lookup (``identifier_matches_many``). A NUL (``%00``) was a 500 on PostgreSQL (a text parameter
    cannot hold it); quotes, backslashes and percent signs are parameters, written once and found again."""
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    observation = sample("Observation", "urn:uuid:11111111-1111-4111-8111-111111111111")
    observation["identifier"] = [{"system": "urn:hosp-a:obs", "value": unquote(value)}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": patient_body("M-1"),
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN_A}|M-1"},
            },
            {
                "resource": observation,
                "request": {"method": "PUT", "url": f"Observation?identifier=urn:hosp-a:obs|{value}"},
            },
        ],
    }
    answers = [
        feed.client.post("/fhir/", json.dumps(bundle), content_type=FHIR_JSON, HTTP_ACCEPT=FHIR_JSON) for _ in range(2)
    ]
    for answer in answers:
        assert answer.status_code < 500, answer.content
    if "%00" in value:
        assert answers[0].status_code == 400
        assert "\x00" not in answers[0].content.decode()
        assert not Resource.objects.filter(resource_type="Observation").exists()
    elif answers[0].status_code == 200:
        assert Resource.objects.filter(resource_type="Observation").count() == 1


# --- the unlocked "unchanged" registration and a concurrent change -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_registration_racing_a_change_leaves_the_mpi_and_the_archive_agreeing(monkeypatch):
    """An ORU's PID read as unchanged (the unlocked read), then the same hospital's FHIR PUT of the Patient with a
    new name commits before the ORU's corridor reads the archived Patient: the ORU wrote its older Patient over the
    new one while the MPI identity kept the new name — the source Patient and the MPI disagreed for good."""
    _postgresql()
    import threading

    from mpi.services import registration

    feed = register_feed(name="HIS-A", facility="HOSP-A")
    first = received(feed.source, v2.adt("A01", "C-1"))
    assert inbox_process() == 1
    first.refresh_from_db()
    assert first.status == "processed", first.error
    original, fired = registration._known, []

    def change_meanwhile():
        body = patient_body("M-7", name="孙^新名", birthDate="1975-05-05", gender="female")
        body["name"] = [{"family": "孙", "given": ["新名"]}]
        answer = feed.client.put(
            f"/fhir/Patient?identifier={MRN_A}|M-7", json.dumps(body), content_type=FHIR_JSON, HTTP_ACCEPT=FHIR_JSON
        )
        fired.append(answer.status_code)
        connection.close()

    def known(authority, local_id):
        found = original(authority, local_id)
        if not fired and local_id == "M-7":
            fired.append("reading")
            worker = threading.Thread(target=change_meanwhile)
            worker.start()
            worker.join()
        return found

    monkeypatch.setattr(registration, "_known", known)
    oru = received(feed.source, v2.oru("C-2"))
    inbox_process()
    oru.refresh_from_db()
    assert fired[-1] in (200, 201), fired
    identity = Identity.objects.get(local_id="M-7")
    patient = Resource.objects.get(resource_type="Patient", fhir_id=str(identity.uuid))
    stored = json.dumps(patient.body, ensure_ascii=False)
    # Whichever registration is last, the MPI identity and the archived source Patient say the same name.
    assert ("新名" in identity.name) == ("新名" in stored), (identity.name, oru.status)


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["identifier", "note"])
def test_a_nul_in_a_posted_resource_is_400_never_a_500(where):
    """U+0000 in a JSON string of a resource (``"\\u0000"``): no FHIR string holds it (R4 datatypes.html#string)
    and PostgreSQL stores it neither in a text column nor in jsonb."""
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    patient = feed.client.put(
        f"/fhir/Patient?identifier={MRN_A}|M-1",
        json.dumps(patient_body("M-1")),
        content_type=FHIR_JSON,
        HTTP_ACCEPT=FHIR_JSON,
    )
    assert patient.status_code in (200, 201), patient.content
    observation = sample("Observation", f"Patient/{patient.json()['id']}")
    if where == "identifier":
        observation["identifier"] = [{"system": "urn:hosp-a:obs", "value": "a\x00b"}]
    else:
        observation["note"] = [{"text": "a\x00b"}]
    body = json.dumps(observation)
    answer = feed.client.post("/fhir/Observation", body, content_type=FHIR_JSON, HTTP_ACCEPT=FHIR_JSON)
    assert answer.status_code == 400, answer.content
    assert not Resource.objects.filter(resource_type="Observation").exists()
