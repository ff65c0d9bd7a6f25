"""An ORU^R01 whose OBX repeat one test code under one order (an oral glucose tolerance test: glucose at 0, 60 and
120 minutes, told apart by OBX-4, the observation sub-id) is a normal laboratory message. Found by
bench/hl7v2_process.py: the OBX map identified an Observation by the order and the test code only, so the
repeats were one identifier twice in one transaction and the message was parked; OBX-4 is part of the
identifier now (``v2tofhir.observation_of``)."""

from __future__ import annotations

from ehr.models import Resource
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from tests.fhirapi.client import register_feed
from tests.ingest.test_processing import MSH, PID, RESIDENT, received


def test_an_oru_with_one_test_repeated_under_sub_ids_writes_one_observation_each(db):
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    text = (
        MSH.format(type="ORU^R01^ORU_R01", control="OGTT-1")
        + PID.format(resident=RESIDENT)
        + "OBR|1|P-9|F-9|OGTT^葡萄糖耐量试验^L|||20261203070000+0800\r"
        + "".join(
            f"OBX|{n}|NM|2345-7^葡萄糖^LN|{n}|{value}|mmol/L|3.9-6.1|N|||F|||20261203{minute}00+0800\r"
            for n, (value, minute) in enumerate([("5.1", "0700"), ("9.8", "0800"), ("7.2", "0900")], start=1)
        )
    )
    row = received(feed.source, text)
    inbox_process()
    row.refresh_from_db()
    assert row.status == InboxMessage.Status.PROCESSED, row.error
    assert Resource.objects.filter(resource_type="Observation").count() == 3
