"""MLLP framing: frames out of a byte stream however it is cut, and each framing fault a distinct event."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthplatform.ingest.hl7v2.mllp import (
    Frame,
    MLLPDecoder,
    OversizeFrame,
    StrayBytes,
    UnterminatedFrame,
    frame_encode,
)

ADT = "MSH|^~\\&|HIS|H1|HP|REG|20240301083000||ADT^A01^ADT_A01|A1|P|2.5.1\rPID|1||P1^^^H1^MR||张^三\r"
GB = "MSH|^~\\&|LIS|H2|HP|REG|20240301083000||ORU^R01|B2|P|2.4|||||CHN|GB 18030-2000\rPID|1||P2||李^四\r"


def frames(events):
    return [e.payload for e in events if isinstance(e, Frame)]


def test_a_frame_is_its_payload():
    payload = ADT.encode()
    assert MLLPDecoder().feed(frame_encode(payload)) == [Frame(payload)]


@pytest.mark.parametrize(
    "stream, expected",
    [
        (b"\x0bA\x1c\r\x0bB\x1c\r", [b"A", b"B"]),
        (b"\x0bA\x1c\x0bB\x1c", [b"A", b"B"]),  # no CR after the end block
        (b"\r\n\x0bA\x1c\r\n\r\n \t\x0bB\x1c\r", [b"A", b"B"]),  # whitespace between frames
        (b"\x0b\x1c\r", [b""]),
    ],
)
def test_tolerated_streams_give_their_frames_and_nothing_else(stream, expected):
    decoder = MLLPDecoder()
    events = decoder.feed(stream) + decoder.eof()
    assert events == [Frame(p) for p in expected]


def test_junk_between_frames_is_reported_by_size_only_and_the_next_frame_still_arrives():
    events = MLLPDecoder().feed(b"GET / HTTP/1.1\r\n\x0bA\x1c\r")
    assert isinstance(events[0], StrayBytes) and events[0].length == len(b"GET / HTTP/1.1")
    assert "GET" not in repr(events[0])
    assert events[1:] == [Frame(b"A")]


def test_a_start_block_inside_a_frame_reports_the_unterminated_frame_and_starts_anew():
    events = MLLPDecoder().feed(b"\x0bMSH|first\x0bMSH|second\x1c\r")
    assert events == [UnterminatedFrame(length=len(b"MSH|first")), Frame(b"MSH|second")]


def test_a_stream_ending_inside_a_frame_reports_it_at_eof():
    decoder = MLLPDecoder()
    assert decoder.feed(b"\x0bMSH|half") == []
    assert decoder.in_frame and decoder.buffered == 8
    assert decoder.eof() == [UnterminatedFrame(length=8)]
    assert not decoder.in_frame


def test_an_oversize_frame_is_one_event_with_its_head_and_the_next_frame_is_fine():
    big = b"MSH|" + b"x" * 100
    decoder = MLLPDecoder(max_frame_bytes=50, head_bytes=10)
    events = decoder.feed(b"\x0b" + big[:30]) + decoder.feed(big[30:] + b"\x1c\r\x0bok\x1c\r")
    assert events == [OversizeFrame(length=len(big), head=big[:10]), Frame(b"ok")]


def test_a_frame_of_exactly_the_limit_is_accepted():
    decoder = MLLPDecoder(max_frame_bytes=5)
    assert decoder.feed(b"\x0b12345\x1c\r") == [Frame(b"12345")]
    assert isinstance(decoder.feed(b"\x0b123456\x1c\r")[0], OversizeFrame)


@pytest.mark.parametrize("text, codec", [(ADT, "utf-8"), (GB, "gb18030")])
def test_multibyte_text_frames_byte_for_byte(text, codec):
    payload = text.encode(codec)
    assert 0x0B not in payload and 0x1C not in payload
    decoder = MLLPDecoder()
    stream = frame_encode(payload) * 3
    events = [e for i in range(len(stream)) for e in decoder.feed(stream[i : i + 1])]
    assert frames(events) == [payload] * 3
    assert frames(events)[0].decode(codec) == text


def test_the_encoder_refuses_a_payload_that_would_break_the_frame():
    with pytest.raises(ValueError, match="0x1C"):
        frame_encode(b"MSH|\x1c|")


payloads = st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")), max_size=6)


@given(payloads, st.data())
def test_frames_cut_at_any_byte_boundaries_decode_to_the_same_payloads(messages, data):
    stream = b"\r\n".join(frame_encode(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = MLLPDecoder()
    events = []
    start = 0
    for cut in [*cuts, len(stream)]:
        events += decoder.feed(stream[start:cut])
        start = cut
    events += decoder.eof()
    assert frames(events) == messages
    assert all(isinstance(e, Frame) for e in events)


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(1, 400))
def test_the_decoder_never_raises_on_arbitrary_bytes(chunks, limit):
    decoder = MLLPDecoder(max_frame_bytes=limit)
    for chunk in chunks:
        for event in decoder.feed(chunk):
            assert isinstance(event, Frame | StrayBytes | UnterminatedFrame | OversizeFrame)
            if isinstance(event, Frame):
                assert len(event.payload) <= limit
    decoder.eof()
