"""Enhanced mode (MSH-15 / MSH-16, HL7 v2.5.1 ch. 2.9.3): the commit ACK comes on the connection; the
application ACK when processing ends — AA, or AE with an ERR naming the fault — kept for the sender to pick up
from ``GET /hl7v2/acks`` as an HL7 batch, its own only."""

from __future__ import annotations

import pytest

from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.models import ApplicationAck
from healthplatform.ingest.processing import inbox_process
from tests.fhirapi.client import register_feed
from tests.ingest import v2samples as v2
from tests.ingest.test_v2_message_types import receive

pytestmark = pytest.mark.django_db


def enhanced(text: str, application: str = "AL") -> str:
    return text.replace("|P|2.5.1|||||CHN|", f"|P|2.5.1|||AL|{application}|CHN|")


def batch(client, after: int = 0):
    response = client.get(f"/hl7v2/acks?after={after}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].endswith("charset=utf-8")
    text = response.content.decode()
    assert text.startswith("BHS|^~\\&|HIP|REGION|") and text.endswith("\r")
    segments = text.strip("\r").split("\r")
    bhs, bts = segments[0].split("|"), segments[-1].split("|")
    acks = []
    for part in ("\r".join(segments[1:-1]) + "\r").split("MSH|")[1:]:
        acks.append(message_parse(("MSH|" + part).encode()))
    assert bts == ["BTS", str(len(acks))]
    return int(bhs[10]), acks


def test_an_enhanced_mode_message_gets_its_application_ack_for_pickup_once_processed():
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    receive(feed, enhanced(v2.adt("A01", "E-1")), v2.adt("A01", "O-1"))  # the second: original mode
    assert batch(feed.client)[1] == []  # nothing before processing
    inbox_process()
    last, acks = batch(feed.client)
    (ack,) = acks
    msa = ack.segment("MSA")
    assert (str(msa.value(1)), str(msa.value(2))) == ("AA", "E-1")
    assert str(ack.header().message_code) == "ACK" and ack.header().receiving_facility.namespace_id == "HOSP-A"
    assert ApplicationAck.objects.get().taken_at is not None
    # The next batch starts after the last one's BHS-11; fetching the same again is harmless.
    assert batch(feed.client, after=last) == (last, [])
    assert len(batch(feed.client)[1]) == 1


def test_a_parked_message_gets_ae_with_err_naming_the_fault_and_er_asks_only_for_errors():
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    no_mrn = enhanced(v2.adt("A08", "E-2").replace("M-7^^^HOSP-A^MR~", ""), application="ER")
    receive(feed, no_mrn, enhanced(v2.adt("A01", "E-3"), application="ER"))
    inbox_process()
    _, acks = batch(feed.client)
    (ack,) = acks  # ER: the processed one gets none
    assert str(ack.segment("MSA").value(1)) == "AE" and str(ack.segment("MSA").value(2)) == "E-2"
    err = ack.segment("ERR")
    assert (str(err.value(2, component=1)), str(err.value(2, component=3))) == ("PID", "3")
    assert str(err.value(3, component=1)) == "101" and str(err.value(4)) == "E"


def test_a_source_picks_up_only_its_own_acks_and_bad_parameters_are_400():
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    other = register_feed(name="HIS-B", facility="HOSP-B")
    receive(feed, enhanced(v2.adt("A01", "E-1")))
    inbox_process()
    assert batch(other.client)[1] == []
    for query in ("after=x", "after=-1", "_count=0", "_count=501"):
        assert feed.client.get(f"/hl7v2/acks?{query}").status_code == 400
    assert feed.client.get("/hl7v2/acks", HTTP_AUTHORIZATION="Basic eDp5").status_code == 401
