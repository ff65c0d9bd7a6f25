"""A careless or hostile sender against the HL7 v2 intake (issue 17's review): bytes the database cannot hold,
control ids longer than the column, a message built to make the tokenizer quadratic, a frame that never ends.
Each must get its answer (or a closed connection) without stalling the listener for the other connections, nor
a 500 on HTTP, and every resend must still be acknowledged. Each failed on the code before its fix."""

from __future__ import annotations

import socket
import time

import pytest

from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.hl7v2.mllp import frame_encode
from healthplatform.ingest.inbox import Arrival, GroupCommit, inbox_store
from healthplatform.ingest.intake import acknowledgement, arrival_of, intake_read
from healthplatform.ingest.models import InboxMessage
from tests.ingest import test_mllp_listener
from tests.ingest.test_hl7v2_http import post
from tests.ingest.test_mllp_listener import Sender, adt, msa

# The listener's fixtures: a listener on a free port, and the registered feed HIS-A / HOSP-A.
listener, feed = test_mllp_listener.listener, test_mllp_listener.feed

pytestmark = pytest.mark.django_db(transaction=True)

# GBK 天河 in MSH-4.2 and MSH-10 of a message that declares nothing, from a sender without a character set of
# its own: not UTF-8, the region's default, so the message is refused — and its MSH is read byte for byte.
GBK = "天河".encode("gb18030")


def undecodable_msh(control_id: bytes = b"C-GBK") -> bytes:
    return adt("X").replace(b"|HOSP-A|", b"|HOSP-A^" + GBK + b"|").replace(b"|X|", b"|" + control_id + GBK + b"|")


def ack_bytes(sender: Sender, payload: bytes) -> bytes | None:
    """The ACK's bytes as they came (it echoes MSH-10 byte for byte, so it is in no one character set here)."""
    sender.sock.settimeout(10)
    sender.send_raw(frame_encode(payload))
    while True:
        data = sender.sock.recv(65536)
        if not data:
            return None
        for event in sender.decoder.feed(data):
            return event.payload


def test_undecodable_bytes_in_msh_get_ar_and_the_listener_keeps_acknowledging_everyone(listener, feed):
    bad = Sender(listener.port)
    try:
        ack = ack_bytes(bad, undecodable_msh())
    finally:
        bad.close()
    assert ack is not None and b"\rMSA|AR|C-GBK" + GBK + b"\r" in ack
    good = Sender(listener.port)
    good.sock.settimeout(10)
    try:
        assert msa(good.send(adt("C-AFTER"))) == ("AA", "C-AFTER")
    finally:
        good.close()
    row = InboxMessage.objects.get(status="rejected")
    assert bytes(row.raw) == undecodable_msh() and row.source_id is None


def test_undecodable_bytes_in_msh_3_get_ar_not_a_dropped_connection(listener, feed):
    sender = Sender(listener.port)
    try:
        ack = ack_bytes(sender, adt("C-APP").replace(b"|HIS-A|", b"|HIS-" + GBK + b"|"))
    finally:
        sender.close()
    assert ack is not None and b"\rMSA|AR|C-APP\r" in ack


def test_nul_bytes_are_refused_with_ar_and_stored_as_rejected(listener, feed):
    sender = Sender(listener.port)
    sender.sock.settimeout(10)
    try:
        in_pid = sender.send(adt("C-NUL").replace(b"19800101", b"1980\x000101"))
        in_msh_3 = sender.send(adt("C-NUL3", app="HIS-\x00A"))
        after = sender.send(adt("C-AFTER"))
    finally:
        sender.close()
    assert msa(in_pid) == ("AR", "C-NUL") and in_pid.segment("ERR").value(3, component=1) == "102"
    assert msa(in_msh_3) == ("AR", "C-NUL3")
    assert msa(after) == ("AA", "C-AFTER")
    row = InboxMessage.objects.get(control_id="C-NUL")
    assert row.status == "rejected" and b"\x00" in bytes(row.raw) and "\x00" not in row.text


def test_the_group_commit_survives_a_batch_that_fails_with_any_error():
    inbox = GroupCommit()
    try:
        unstorable = Arrival(door="mllp", raw=b"MSH", sha256="0" * 64, sending_application="\udcff")
        with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises for it)
            inbox.submit(unstorable).result(10)
        stored = inbox.submit(Arrival(door="mllp", raw=b"MSH", sha256="1" * 64, control_id="C-OK")).result(10)
    finally:
        inbox.close()
    assert InboxMessage.objects.get(pk=stored.inbox_id).control_id == "C-OK"


def test_a_resend_of_a_message_whose_control_id_is_longer_than_the_column_is_acknowledged_and_stored_once(feed):
    control_id = "L" * 250
    first = inbox_store([intake_arrival(adt(control_id), feed)])[0]
    again = inbox_store([intake_arrival(adt(control_id), feed)])[0]
    assert again.resend and again.inbox_id == first.inbox_id
    assert InboxMessage.objects.get().resends == 1


def test_a_long_control_id_resent_over_http_gets_its_ack_again(feed):
    message = adt("H" * 250)
    assert post(feed.client, message).status_code == 200
    response = post(feed.client, message)
    assert response.status_code == 200
    assert message_parse(response.content).segment("MSA").value(1) == "AA"


def intake_arrival(payload: bytes, feed):
    return arrival_of(intake_read(payload, default_charset="UTF-8"), door="http", peer="", source_id=feed.source.pk)


@pytest.mark.parametrize(
    "body",
    [b"\x00\xff\xfe not HL7", undecodable_msh(), adt("H-NUL").replace(b"19800101", b"1980\x000101")],
    ids=["junk", "undecodable MSH", "NUL"],
)
def test_http_answers_bytes_the_database_cannot_hold_with_ar_not_500(feed, body):
    feed.client.raise_request_exception = False
    response = post(feed.client, body)
    assert response.status_code == 200, response.content[:200]
    assert b"\rMSA|AR|" in response.content
    assert InboxMessage.objects.get().status == "rejected"


def test_lines_cut_from_a_segment_are_read_in_linear_time_and_the_ack_stays_small():
    """A message of 400,000 unescaped line breaks inside one field (1.2 MB): each line was put back by copying
    the whole segment again (quadratic: ~17 s of the event loop), and each got its own ERR in the ACK (an ACK
    of 47 MB)."""
    payload = adt("C-CUT").replace(b"PV1|1|I|W1^1^1\r", b"NTE|1||" + b"ab\r" * 400_000)
    started = time.perf_counter()
    intake = intake_read(payload, default_charset="UTF-8")
    answer = acknowledgement(intake)
    assert time.perf_counter() - started < 3
    assert intake.message.segment("NTE").raw_field(3).count("ab") == 400_000
    assert len(answer) < 10_000 and msa(message_parse(answer)) == ("AA", "C-CUT")


def test_a_frame_trickled_byte_by_byte_is_dropped_after_the_frame_timeout(listener, feed):
    """One byte a second keeps every read inside ``frame_timeout`` (2 s here): the frame must still end in
    time, or a sender holds a connection and its buffer (up to the size limit) for ever."""
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    try:
        sock.sendall(b"\x0bMSH|")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8:
            time.sleep(1)
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
        assert closed, "the listener kept a frame open for 8 s with a frame timeout of 2 s"
    finally:
        sock.close()


def test_a_body_beyond_the_request_size_limit_gets_413_not_a_400_page(feed, settings):
    """``DATA_UPLOAD_MAX_MEMORY_SIZE`` (the FHIR API's body limit) below the message: Django's refusal of the
    body reached no handler of this view and became Django's HTML 400 page."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    feed.client.raise_request_exception = False
    response = post(feed.client, adt("H-BIG") + b"NTE|1||" + b"x" * (2 * 1024 * 1024) + b"\r")
    assert response.status_code == 413
    assert not InboxMessage.objects.exists()
