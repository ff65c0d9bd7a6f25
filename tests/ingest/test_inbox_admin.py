"""The inbox in the admin: an operator lists, filters and opens messages, in Chinese; nothing can be changed."""

from __future__ import annotations

import hashlib

import pytest

from healthplatform.ingest.inbox import Arrival, inbox_store
from healthplatform.ingest.models import InboxMessage
from tests.fhirapi.client import register_feed


@pytest.fixture
def stored(db):
    source = register_feed(name="HIS-A", facility="HOSP-A").source
    text = "MSH|^~\\&|HIS-A|HOSP-A|HIP|REGION|20261203||ADT^A01^ADT_A01|C-1|P|2.5.1\rPID|1||M-1^^^HOSP-A^MR\r"
    raw = text.encode()
    arrival = Arrival(
        door="mllp",
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        source_id=source.pk,
        control_id="C-1",
        message_type="ADT^A01^ADT_A01",
        text=text,
    )
    return InboxMessage.objects.get(pk=inbox_store([arrival])[0].inbox_id)


def test_an_operator_finds_a_message_by_control_id_and_reads_its_segments(admin_client, stored):
    listing = admin_client.get("/admin/ingest/inboxmessage/", {"q": "C-1", "status__exact": "received"})
    assert listing.status_code == 200 and "C-1" in listing.content.decode()
    page = admin_client.get(f"/admin/ingest/inboxmessage/{stored.pk}/change/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    body = page.content.decode()
    assert page.status_code == 200
    assert "MSH|^~\\&amp;|HIS-A" in body and "\nPID|1||M-1" in body  # one segment per line
    assert "收件箱消息" in body  # the admin speaks Chinese
    # Read only: no save button, and a POST changes nothing.
    assert 'name="_save"' not in body
    admin_client.post(f"/admin/ingest/inboxmessage/{stored.pk}/change/", {"status": "processed"})
    assert InboxMessage.objects.get(pk=stored.pk).status == "received"
