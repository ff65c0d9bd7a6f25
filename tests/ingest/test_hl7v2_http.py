"""The HL7 v2 HTTP door: the same inbox and the same ACK as the MLLP listener, for a sender authenticated like
a FHIR client; MSH-3 / MSH-4 must name the authenticated source system."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client

from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.models import InboxMessage
from tests.fhirapi.client import basic, register_feed
from tests.ingest.test_mllp_listener import adt

ER7 = "x-application/hl7-v2+er7"


@pytest.fixture
def feed(db):
    return register_feed(name="HIS-A", facility="HOSP-A")


def post(client, body: bytes):
    return client.post("/hl7v2", body, content_type=ER7)


def msa(response):
    segment = message_parse(response.content).segment("MSA")
    return segment.value(1), segment.value(2)


def test_a_message_is_stored_and_its_ack_is_the_body_of_the_answer(feed):
    response = post(feed.client, adt("H-1"))
    assert response.status_code == 200 and response["Content-Type"].startswith(ER7)
    assert msa(response) == ("AA", "H-1")
    row = InboxMessage.objects.get(control_id="H-1")
    assert row.door == "http" and row.source_id == feed.source.pk and row.status == "received"


def test_resend_with_same_control_id_is_acked_and_stored_once(feed):
    assert msa(post(feed.client, adt("H-1")))[0] == "AA"
    assert msa(post(feed.client, adt("H-1")))[0] == "AA"
    assert InboxMessage.objects.get(control_id="H-1").resends == 1


def test_a_message_naming_another_sender_than_the_one_authenticated_is_refused(feed):
    register_feed(name="LIS-B", facility="HOSP-B")
    response = post(feed.client, adt("H-2", app="LIS-B", facility="HOSP-B"))
    assert response.status_code == 200 and msa(response) == ("AR", "H-2")
    err = message_parse(response.content).segment("ERR")
    assert err.value(3, component=1) == "207" and err.value(5, component=1) == "UNKNOWN_SENDER"
    row = InboxMessage.objects.get(control_id="H-2")
    assert row.status == "rejected" and row.source_id is None


def test_an_unauthenticated_request_is_refused_and_nothing_stored(db):
    assert post(Client(), adt("H-3")).status_code == 401
    assert post(Client(headers=basic("ss-nobody", "wrong")), adt("H-3")).status_code == 401
    assert not InboxMessage.objects.exists()


def test_a_bearer_token_that_cannot_write_what_messages_map_to_is_refused(feed):
    token = Client().post(
        "/oauth/token",
        urlencode({"grant_type": "client_credentials", "scope": "system/*.read"}),
        content_type="application/x-www-form-urlencoded",
        headers=basic(feed.source.client_id, feed.secret),
    )
    assert token.status_code == 200, token.content
    reader = Client(headers={"authorization": f"Bearer {token.json()['access_token']}"})
    response = post(reader, adt("H-4"))
    assert response.status_code == 403 and b"system/*.write" in response.content
    assert not InboxMessage.objects.exists()


def test_an_inbound_ack_is_stored_and_not_answered(feed):
    ack = b"MSH|^~\\&|HIS-A|HOSP-A|HIP|REGION|20261203101500||ACK^A01^ACK|A-1|P|2.5.1\rMSA|AA|X-9\r"
    assert post(feed.client, ack).status_code == 204
    assert InboxMessage.objects.filter(control_id="A-1").exists()


def test_an_oversize_message_gets_413(feed, settings):
    settings.HL7_MAX_MESSAGE_BYTES = 2048
    assert post(feed.client, adt("H-5") + b"NTE|1||" + b"x" * 4096 + b"\r").status_code == 413
    assert not InboxMessage.objects.exists()


def test_a_sender_registered_with_gb18030_may_leave_msh_18_empty(feed):
    feed.source.hl7_charset = "GB18030"
    feed.source.save()
    response = post(feed.client, adt("H-G").decode().encode("gb18030"))
    assert msa(response) == ("AA", "H-G")
    assert "测试^患者" in InboxMessage.objects.get(control_id="H-G").text
    assert "gb18030" in response["Content-Type"].lower().replace("-", "")
