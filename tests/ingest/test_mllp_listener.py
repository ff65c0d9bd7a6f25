"""The MLLP listener over a real socket: a sender gets an ACK only after its message's inbox row is committed;
bad senders, types and frames get the answers of HL7 v2.5.1 chapter 2 (or a closed connection) while other
connections keep flowing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import pytest

from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.hl7v2.mllp import MLLPDecoder, frame_encode
from healthplatform.ingest.listener import Listener
from healthplatform.ingest.models import InboxMessage
from tests.fhirapi.client import register_feed

pytestmark = pytest.mark.django_db(transaction=True)


def adt(control_id: str, *, app: str = "HIS-A", facility: str = "HOSP-A", version: str = "2.5.1", extra: str = ""):
    return (
        f"MSH|^~\\&|{app}|{facility}|HIP|REGION|20261203101500||ADT^A01^ADT_A01|{control_id}|P|{version}{extra}\r"
        "EVN|A01|20261203101500\r"
        "PID|1||M-1^^^HOSP-A^MR||测试^患者||19800101|F\r"
        "PV1|1|I|W1^1^1\r"
    ).encode()


@pytest.fixture
def listener():
    """A listener on a free port, its loop in a thread, stopped after the test."""
    server = Listener(host="127.0.0.1", port=0, max_message_bytes=64 * 1024, idle_timeout=5, frame_timeout=2)
    loop = asyncio.new_event_loop()
    task = {}

    def run():
        asyncio.set_event_loop(loop)
        task["serve"] = loop.create_task(server.serve())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task["serve"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started.is_set():
            break
        threading.Event().wait(0.05)
    assert server.started.is_set()
    yield server
    loop.call_soon_threadsafe(task["serve"].cancel)
    thread.join(15)
    from django.db import connections

    connections.close_all()


class Sender:
    """A hospital system's MLLP client: one message in flight, waiting for its ACK."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = MLLPDecoder()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self):
        while True:
            data = self.sock.recv(65536)
            if not data:
                return None
            for event in self.decoder.feed(data):
                return message_parse(event.payload)

    def send(self, payload: bytes):
        self.send_raw(frame_encode(payload))
        return self.receive()

    def close(self):
        self.sock.close()


@pytest.fixture
def feed():
    return register_feed(name="HIS-A", facility="HOSP-A")


def msa(ack):
    segment = ack.segment("MSA")
    return segment.value(1), segment.value(2)


def test_an_ack_comes_after_the_inbox_row_is_committed_and_echoes_msh_10(listener, feed):
    sender = Sender(listener.port)
    try:
        ack = sender.send(adt("CTRL-1"))
        assert msa(ack) == ("AA", "CTRL-1")
        assert ack.header().message_code == "ACK" and ack.header().trigger_event == "A01"
        # Sender and receiver swapped (MSH-3/4 of the ACK are the inbound MSH-5/6).
        assert ack.header().sending_application.namespace_id == "HIP"
        assert ack.header().receiving_facility.namespace_id == "HOSP-A"
        row = InboxMessage.objects.get(control_id="CTRL-1")
        assert row.source_id == feed.source.pk and row.status == "received" and row.ack_code == "AA"
        assert row.message_type == "ADT^A01^ADT_A01" and "测试" in row.text and bytes(row.raw).startswith(b"MSH|")
        assert row.patient_key == f"{feed.source.pk}|M-1^HOSP-A"
    finally:
        sender.close()


def test_resend_with_same_control_id_is_acked_and_stored_once(listener, feed):
    sender = Sender(listener.port)
    try:
        assert msa(sender.send(adt("CTRL-1")))[0] == "AA"
        assert msa(sender.send(adt("CTRL-1")))[0] == "AA"
    finally:
        sender.close()
    row = InboxMessage.objects.get(control_id="CTRL-1")
    assert row.resends == 1


def test_an_unknown_sender_gets_ar_with_err_and_nothing_is_processed(listener, feed):
    sender = Sender(listener.port)
    try:
        ack = sender.send(adt("CTRL-9", app="NOBODY", facility="NOWHERE"))
    finally:
        sender.close()
    assert msa(ack) == ("AR", "CTRL-9")
    err = ack.segment("ERR")
    assert (
        err.value(3, component=1) == "207" and err.value(2, component=1) == "MSH" and err.value(2, component=3) == "4"
    )
    row = InboxMessage.objects.get(control_id="CTRL-9")
    assert row.status == "rejected" and row.source_id is None and row.ack_code == "AR"


@pytest.mark.parametrize(
    ("message", "code", "where"),
    [
        (adt("C-T").replace(b"ADT^A01^ADT_A01", b"QRY^A19"), "200", "9"),
        (adt("C-T").replace(b"ADT^A01^ADT_A01", b"ADT^A99"), "201", "9"),
        (adt("C-T", version="9.9"), "203", "12"),
    ],
)
def test_an_unsupported_type_trigger_or_version_gets_ar_naming_the_field(listener, feed, message, code, where):
    sender = Sender(listener.port)
    try:
        ack = sender.send(message)
    finally:
        sender.close()
    assert msa(ack) == ("AR", "C-T")
    codes = {(e.value(3, component=1), e.value(2, component=3)) for e in ack["ERR"]}
    assert (code, where) in codes


def test_enhanced_mode_gets_a_commit_ack(listener, feed):
    sender = Sender(listener.port)
    try:
        ack = sender.send(adt("C-E", extra="|||AL|AL"))
        none_due = adt("C-N", extra="|||NE|AL")
        sender.send_raw(frame_encode(none_due))
        follow = sender.send(adt("C-F", extra="|||AL|NE"))
    finally:
        sender.close()
    assert msa(ack) == ("CA", "C-E")
    # MSH-15 NE: no accept ACK on the connection; the next message's ACK is the next thing the sender reads.
    assert msa(follow) == ("CA", "C-F")
    assert InboxMessage.objects.filter(control_id__in=["C-E", "C-N", "C-F"]).count() == 3


def test_junk_and_an_unterminated_frame_are_dropped_and_the_connection_keeps_serving(listener, feed):
    sender = Sender(listener.port)
    try:
        sender.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        sender.send_raw(b"\x0bMSH|^~\\&|HIS-A|HOSP-A|partial")  # a new start block follows: dropped
        ack = sender.send(adt("C-OK"))
    finally:
        sender.close()
    assert msa(ack) == ("AA", "C-OK")
    assert InboxMessage.objects.count() == 1


def test_an_oversize_message_gets_ar_and_is_not_stored(listener, feed):
    big = adt("C-BIG") + b"NTE|1||" + b"x" * (70 * 1024) + b"\r"
    sender = Sender(listener.port)
    try:
        ack = sender.send(big)
        after = sender.send(adt("C-AFTER"))
    finally:
        sender.close()
    assert msa(ack) == ("AR", "C-BIG")
    assert msa(after) == ("AA", "C-AFTER")
    assert not InboxMessage.objects.filter(control_id="C-BIG").exists()


def test_a_frame_without_msh_is_not_answered_and_other_connections_keep_flowing(listener, feed):
    bad, good = Sender(listener.port), Sender(listener.port)
    try:
        bad.send_raw(frame_encode(b"this is not HL7"))
        assert msa(good.send(adt("C-GOOD"))) == ("AA", "C-GOOD")
        assert msa(bad.send(adt("C-BAD-THEN-GOOD"))) == ("AA", "C-BAD-THEN-GOOD")
    finally:
        bad.close()
        good.close()


def test_many_concurrent_senders_each_get_every_ack_and_every_message_is_stored(listener, feed):
    def run(n: int, out: list):
        sender = Sender(listener.port)
        try:
            for i in range(20):
                out.append(msa(sender.send(adt(f"C-{n}-{i}"))))
        finally:
            sender.close()

    results: list = []
    threads = [threading.Thread(target=run, args=(n, results)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 200 and all(code == "AA" for code, _ in results)
    assert InboxMessage.objects.count() == 200
    assert listener.inbox.commits <= 200


def test_a_sender_registered_with_gb18030_may_leave_msh_18_empty(listener, feed):
    gbk = register_feed(name="HIS-G", facility="HOSP-G").source
    gbk.hl7_charset = "GB18030"
    gbk.save()
    message = adt("C-G", app="HIS-G", facility="HOSP-G").decode().encode("gb18030")
    plain = Sender(listener.port)
    try:
        ack = plain.send(message)
        # The same bytes from a sender on the region's default (UTF-8) cannot be read: AR naming MSH-18.
        refused = plain.send(adt("C-U").decode().encode("gb18030"))
    finally:
        plain.close()
    assert msa(ack) == ("AA", "C-G")
    row = InboxMessage.objects.get(control_id="C-G")
    assert "测试^患者" in row.text and row.charset.replace("-", "").lower() == "gb18030"
    assert msa(refused) == ("AR", "C-U")
    assert any(e.value(2, component=3) == "18" for e in refused["ERR"])
