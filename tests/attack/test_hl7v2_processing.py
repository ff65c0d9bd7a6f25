"""Attacks on HL7 v2 processing (issue 17): a hospital holding another's residents, and a careless sender whose
fields carry what the maps did not expect. Each test failed on the code before its fix (branch attack-v2)."""

from __future__ import annotations

import datetime as dt

import pytest

from ehr.models import Resource
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from mpi.identifiers import make_resident_id
from mpi.models import Identity
from tests.fhirapi.client import register_feed
from tests.ingest import v2samples as v2
from tests.ingest.test_v2_message_types import receive

pytestmark = pytest.mark.django_db

RESIDENT_1 = make_resident_id("440106", dt.date(1980, 1, 1), 3)
RESIDENT_2 = make_resident_id("440106", dt.date(1990, 2, 2), 5)
OBR_2 = "OBR|1|P-9^HIS-A|F-9^LIS-A|24323-8^综合代谢^LN\rOBX|1|NM|2345-7^葡萄糖^LN||5.0|mmol/L||||F\r"


@pytest.fixture
def feed():
    return register_feed(name="HIS-A", facility="HOSP-A")


def drained(feed, *texts: str) -> list[InboxMessage]:
    """The messages stored as the listener stores them and the inbox drained: their rows as processing left them."""
    rows = receive(feed, *texts)
    inbox_process()
    for row in rows:
        row.refresh_from_db()
    return rows


def as_b(text: str) -> str:
    return text.replace("HOSP-A", "HOSP-B").replace("HIS-A", "HIS-B")


def persons() -> dict[str, int]:
    return dict(Identity.objects.values_list("local_id", "person_id"))


def test_an_a40_of_one_hospital_never_joins_another_hospitals_two_residents():
    """A and B both know residents 1 and 2. B's A40 says its two MRNs are one patient: B's identities join, A's
    two patients stay two persons (before: the whole person of B's prior MRN was merged, A's patient with it)."""
    a = register_feed(name="HIS-A", facility="HOSP-A")
    b = register_feed(name="HIS-B", facility="HOSP-B")
    for feed, prefix in ((a, "A"), (b, "B")):
        send = (lambda t: t) if feed is a else as_b
        rows = drained(
            feed,
            send(v2.adt("A01", f"{prefix}1", mrn=f"{prefix}-1", resident=RESIDENT_1, name="张^三", birth="19800101")),
            send(
                v2.adt(
                    "A01",
                    f"{prefix}2",
                    mrn=f"{prefix}-2",
                    resident=RESIDENT_2,
                    name="李^四",
                    birth="19900202",
                    visit="V-2",
                )
            ),
        )
        assert [r.status for r in rows] == ["processed", "processed"]
    linked = persons()
    assert linked["A-1"] == linked["B-1"] != linked["A-2"] == linked["B-2"]

    a40 = (
        v2.msh("ADT^A40^ADT_A39", "B3")
        + "EVN|A40|20261203101500+0800\r"
        + v2.pid("B-1", name="张^三", birth="19800101", resident=RESIDENT_1)
        + "MRG|B-2^^^HOSP-A^MR\r"
    )
    (row,) = drained(b, as_b(a40))
    assert row.status == "processed", row.error
    after = persons()
    assert after["B-2"] == after["B-1"] == after["A-1"]  # B's statement about B's records holds
    assert after["A-2"] != after["A-1"]  # A's two residents are still two persons
    assert after["A-2"] == linked["A-2"]


@pytest.mark.parametrize(
    "text",
    [
        # ORU_R01's PATIENT_RESULT group repeats: a second patient's results after the first's.
        v2.oru("C-2") + v2.pid("M-8", resident=v2.OTHER_RESIDENT) + OBR_2,
        # ADT_A39's PATIENT group repeats: a second survivor / prior pair.
        v2.a40("C-2") + v2.pid("M-8", resident=v2.OTHER_RESIDENT) + "MRG|M-10^^^HOSP-A^MR\r",
    ],
    ids=["oru-two-patient-results", "a40-two-patient-groups"],
)
def test_a_message_of_two_patients_is_parked_whole_not_filed_under_the_first(feed, text):
    prior = v2.adt("A01", "C-0", mrn="M-9", visit="V-90", resident=v2.OTHER_RESIDENT, birth="19620930")
    *first, two, after = drained(feed, v2.adt("A01", "C-1"), prior, text, v2.oru("C-3"))
    assert [r.status for r in (*first, after)] == ["processed"] * 3
    assert two.status == "parked" and "2 PID segments" in two.error, two.error
    assert persons()["M-9"] != persons()["M-7"]  # nothing of it applied: not the first group's merge either
    # The first patient's record holds only its own results (before: the second's glucose, 5.0, was filed there).
    values = sorted(r.body["valueQuantity"]["value"] for r in Resource.objects.filter(resource_type="Observation"))
    assert 5.0 not in values
    assert not Identity.objects.filter(local_id="M-8").exists()


@pytest.mark.parametrize(
    "tail",
    [
        "OBX|1|NM|2345-7^葡萄糖^LN||6.4|mmol/L||||F\r" + "OBR|1|P-1^HIS-A|F-1^LIS-A|24323-8^综合代谢^LN\r",
        "OBX|1|NM|2345-7^葡萄糖^LN||6.4|mmol/L||||F\r",
    ],
    ids=["obx-before-obr", "no-obr"],
)
def test_results_outside_an_order_are_parked_not_dropped(feed, tail):
    odd, after = drained(feed, v2.msh("ORU^R01^ORU_R01", "C-1", app="LIS-A") + v2.pid() + tail, v2.adt("A08", "C-2"))
    assert odd.status == "parked" and "OBR" in odd.error  # before: processed, the result silently gone
    assert after.status == "processed"


def test_a_visit_number_with_a_comma_does_not_match_and_overwrite_another_visit(feed):
    """PV1-19 ``V-9,V-1``: the conditional update's criteria became an OR naming visit V-1, which
    was overwritten (its location and its very identifier) by another visit's message."""
    drained(feed, v2.adt("A01", "C-1", visit="V-1", location="W1"))
    crafted = "V-9,V-1"  # an OR: V-9 of the visit system, or V-1 of any
    (row,) = drained(feed, v2.adt("A01", "C-2", visit=crafted, location="HACK"))
    assert row.status == "processed", row.error
    visits = {r.body["identifier"][0]["value"]: r for r in Resource.objects.filter(resource_type="Encounter")}
    assert set(visits) == {"V-1", crafted}
    assert visits["V-1"].version_id == 1 and visits["V-1"].body["location"][0]["location"]["display"] == "W1"


@pytest.mark.parametrize(
    "field,value",
    [("visit", "V+1"), ("visit", "V%2D1"), ("visit", "V#1"), ("visit", "V=1"), ("mrn", "M+7"), ("order", "F+1")],
)
def test_identifiers_with_query_characters_are_written_once_and_their_resend_changes_nothing(feed, field, value):
    """A ``+`` (read back as a space), ``%2D`` (read as ``-``), ``#`` or ``=`` in a number the maps put in the
    conditional criteria: the second message about the same visit or order found nothing and was refused as a
    second create; an MRN's was refused at once, the error quoting the MRN to operators and in the AE ACK."""
    if field == "order":
        texts = [v2.oru(f"C-{n}", value=f"6.{n}").replace("F-1^LIS-A", f"{value}^LIS-A") for n in (1, 2)]
    else:
        texts = [v2.adt("A08", f"C-{n}", location=f"W{n}", **{field: value}) for n in (1, 2)]
    rows = drained(feed, *texts)
    assert [(r.status, r.error) for r in rows] == [("processed", "")] * 2
    assert value not in "".join(r.error for r in rows)
    kind = {"visit": "Encounter", "mrn": "Patient", "order": "DiagnosticReport"}[field]
    written = Resource.objects.filter(resource_type=kind)
    assert written.count() == 1 and written.get().version_id in (1, 2)


@pytest.mark.parametrize(
    "text",
    [
        v2.oru("C-1", value="a\\X00\\b").replace("|NM|2345-7", "|ST|2345-7"),
        v2.adt("A08", "C-1", name="赵\\X07\\^敏"),
        v2.adt("A08", "C-1", visit="V\\X1B\\1"),
    ],
    ids=["nul-in-obx-5", "bell-in-pid-5", "escape-in-pv1-19"],
)
def test_a_control_character_is_parked_naming_the_element_not_the_value(feed, text):
    """``\\Xhh\\`` of a C0 control: SQLite stored it in the record, PostgreSQL parked the message as
    ``DataError at copy:330`` — now parked on every database, naming the FHIR element, before anything is
    written; the next message is processed."""
    bad, after = drained(feed, text, v2.adt("A08", "C-2"))
    assert bad.status == "parked" and "control character" in bad.error and "Bundle.entry[" in bad.error
    assert "赵" not in bad.error
    assert after.status == "processed"
    assert not Resource.objects.filter(submission__isnull=False, body__icontains="\\u0007").exists()


@pytest.mark.parametrize("raw", ["1_5", "１２", "1e400", "1" * 400 + ".0", "--1", "."])
def test_a_lab_value_that_is_not_an_hl7_number_is_kept_as_sent_not_misread(feed, raw):
    """OBX-2 NM is ASCII digits with a sign and a point (HL7 v2.5.1 ch. 2A.2.47). ``1_5`` was read as 15 and
    full-width ``１２`` as 12 (a typo becoming another glucose value); ``1e400`` as infinity, which parked the
    whole report."""
    (row,) = drained(feed, v2.oru("C-1", value=raw))
    assert row.status == "processed", row.error
    glucose = Resource.objects.get(resource_type="Observation", body__code__coding__0__code="2345-7")
    assert "valueQuantity" not in glucose.body and glucose.body["valueString"] == raw


def test_repeated_result_lines_of_one_code_are_each_kept_and_a_resend_changes_nothing(feed):
    """Two OBX of one code without OBX-4 under one OBR (a report's TX lines): the same Observation was changed
    twice and the report parked."""
    extra = "OBX|3|TX|2345-7^葡萄糖^LN||复查建议||||||F\r"
    text = v2.oru("C-1") + extra
    first, resend = drained(feed, text, text.replace("|C-1|", "|C-2|"))
    assert [(first.status, first.error), (resend.status, resend.error)] == [("processed", "")] * 2
    assert Resource.objects.filter(resource_type="Observation").count() == 3
    assert {p["outcome"] for p in resend.produced} <= {"unchanged", "updated"}
    assert not {p["outcome"] for p in resend.produced if p["type"] == "Observation"} - {"unchanged"}
