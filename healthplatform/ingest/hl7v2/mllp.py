"""MLLP framing, sans-IO: an incremental frame decoder and the frame encoder.

A block is ``<SB=0x0B> payload <EB=0x1C><CR=0x0D>`` (MLLP Release 1 and 2; research notes §1.1). The decoder is
fed whatever bytes a socket read returned and hands back events; it owns no socket and no clock, so the asyncio
listener decides what each event means for that one connection (answer, log, close) while the others keep
flowing, and a test can drive it byte by byte.

Tolerance, after the receivers that survive real traffic (notes §1.2, §4.5):

- whitespace between frames (CR, LF, space, tab: keep-alives, the CR of a sender that ends blocks with
  ``<EB><CR><LF>``) is dropped silently;
- other bytes outside a frame are dropped and reported as ``StrayBytes`` (their count only: they may be a
  fragment of a message with patient data in it, and the listener logs what it is given);
- a frame is complete at ``<EB>``, whether or not the ``<CR>`` follows: the CR, when it comes, is whitespace
  between frames. This also means a frame is never held back waiting for a CR that arrives in the next TCP
  segment, which would add a round trip of latency to the ACK;
- a ``<SB>`` inside a frame means the previous frame never got its end block (MLLP R2's BNF keeps 0x0B and 0x1C
  out of the payload): that partial frame is reported as ``UnterminatedFrame`` and dropped — it was never
  acknowledged, so the sender will resend it — and a new frame starts;
- a frame longer than ``max_frame_bytes`` stops being buffered; its first ``head_bytes`` are kept so the
  listener can read MSH-10 and answer AR with ERR-3 207, and one ``OversizeFrame`` is reported at its end block.

UTF-8, GBK and GB18030 never use 0x0B, 0x1C or 0x0D inside a multi-byte character (UTF-8 continuation bytes
are 0x80–0xBF, GBK trail bytes 0x40–0xFE, GB18030's four-byte form has 0x30–0x39 in bytes 2 and 4), so
framing on raw bytes before any decoding is safe for them; UTF-16/32 are not, and ``charset`` rejects them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\r"
_WHITESPACE = b" \t\r\n"

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
DEFAULT_HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete block: the payload between ``<SB>`` and ``<EB>`` (one HL7 message, as bytes)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class StrayBytes:
    """Bytes that arrived outside any frame and were dropped: how many (leading and trailing whitespace of
    the run not counted) and a short digest, so two log lines about the same junk can be matched without the
    log holding the bytes themselves."""

    length: int
    digest: str


@dataclass(frozen=True, slots=True)
class UnterminatedFrame:
    """A frame that never got its end block: a new ``<SB>`` arrived, or the stream ended, inside it. ``length``
    is how many payload bytes were dropped."""

    length: int


@dataclass(frozen=True, slots=True)
class OversizeFrame:
    """A frame longer than the decoder's limit, dropped whole: ``length`` is its full payload length, ``head``
    its first bytes (enough for the MSH segment, to answer with MSA-2)."""

    length: int
    head: bytes


Event = Frame | StrayBytes | UnterminatedFrame | OversizeFrame


def _stray(run: bytes) -> StrayBytes | None:
    run = run.strip(_WHITESPACE)
    if not run:
        return None
    return StrayBytes(length=len(run), digest=hashlib.blake2b(run, digest_size=6).hexdigest())


class MLLPDecoder:
    """Incremental MLLP block decoder for one connection.

    ``feed(data)`` returns the events completed by those bytes, in order; ``eof()`` returns what the end of
    the stream leaves (an ``UnterminatedFrame`` if it ended inside one). ``in_frame`` and ``buffered`` let
    the listener time out a frame that stalls half way. The decoder never raises on any input.
    """

    __slots__ = ("_body", "_discarded", "_head", "_head_bytes", "_in_frame", "_max", "_oversize")

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, head_bytes: int = DEFAULT_HEAD_BYTES):
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be at least 1")
        self._max = max_frame_bytes
        self._head_bytes = min(head_bytes, max_frame_bytes)
        self._body = bytearray()
        self._in_frame = False
        self._oversize = False
        self._discarded = 0  # payload bytes counted, not kept, once a frame is over the limit
        self._head = b""

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not yet ended."""
        return self._in_frame

    @property
    def buffered(self) -> int:
        """Payload bytes of the current frame received so far (kept or, past the limit, counted)."""
        return len(self._body) + self._discarded

    def feed(self, data: bytes) -> list[Event]:
        """Take the next bytes of the stream; return the events they complete."""
        events: list[Event] = []
        position = 0
        size = len(data)
        while position < size:
            if not self._in_frame:
                start = data.find(START_BLOCK, position)
                if start < 0:
                    stray = _stray(data[position:])
                    if stray:
                        events.append(stray)
                    return events
                if start > position:
                    stray = _stray(data[position:start])
                    if stray:
                        events.append(stray)
                self._in_frame = True
                position = start + 1
                continue
            end = data.find(END_BLOCK, position)
            restart = data.find(START_BLOCK, position, end if end >= 0 else size)
            if restart >= 0:
                self._take(data, position, restart)
                events.append(UnterminatedFrame(length=self.buffered))
                self._reset()
                position = restart  # the new <SB> is read by the hunt above
                continue
            if end < 0:
                self._take(data, position, size)
                return events
            self._take(data, position, end)
            if self._oversize:
                events.append(OversizeFrame(length=self.buffered, head=self._head))
            else:
                events.append(Frame(payload=bytes(self._body)))
            self._reset()
            position = end + 1
        return events

    def eof(self) -> list[Event]:
        """The stream ended: report a frame left open, and forget it."""
        if not self._in_frame:
            return []
        event = UnterminatedFrame(length=self.buffered)
        self._reset()
        return [event]

    def _take(self, data: bytes, start: int, stop: int) -> None:
        if start >= stop:
            return
        if self._oversize:
            self._discarded += stop - start
            return
        self._body += data[start:stop]
        if len(self._body) > self._max:
            self._oversize = True
            self._head = bytes(self._body[: self._head_bytes])
            self._discarded = len(self._body)
            self._body = bytearray()

    def _reset(self) -> None:
        self._body = bytearray()
        self._in_frame = False
        self._oversize = False
        self._discarded = 0
        self._head = b""


def frame_encode(payload: bytes) -> bytes:
    """One MLLP block around ``payload``. A payload holding 0x0B or 0x1C would end or restart the block on the
    other side, so it is refused (the ACK builder escapes both as ``\\X0B\\`` / ``\\X1C\\`` in any text it
    writes, so an ACK never contains them)."""
    if 0x0B in payload or 0x1C in payload:
        raise ValueError("an MLLP payload cannot contain 0x0B or 0x1C")
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN
