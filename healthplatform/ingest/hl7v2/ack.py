"""Acknowledgements, per HL7 v2.5.1 chapter 2 (§2.9 processing rules, §2.14 ACK) and research notes §2.1–2.4.

Which acknowledgement a message gets (``ack_plan``):

- **Original mode** — MSH-15 and MSH-16 both empty, what most 2.3/2.4 senders and Chinese HIS send: one
  application acknowledgement, AA / AE / AR, always due. The platform sends it once the inbox row is committed.
- **Enhanced mode** — MSH-15 or MSH-16 valued: an *accept* acknowledgement (CA / CE / CR) on the connection,
  as MSH-15 asks (table 0155: AL always, NE never, ER only CE/CR, SU only CA), and later, from the workers, an
  *application* acknowledgement (AA / AE / AR) as a message of its own, as MSH-16 asks.
  Choices where the standard leaves a gap: MSH-15 empty beside a valued MSH-16 is read as AL, because MLLP is
  one message in flight and the sender's socket waits for an answer; MSH-16 empty beside a valued MSH-15 is
  read as NE — a sender that asked only for the commit is not pushed an application ACK it did not ask for.
  An unknown condition code is read as AL (the tokenizer warns with ERR-3 103).
- An ACK is never acknowledged ("the only messages that should not be acknowledged are acknowledgments").

How it is written (``ack_build``): MSH-1/MSH-2 the sender's own encoding characters (so MSA-2 can carry MSH-10
verbatim), MSH-3/4 ← inbound MSH-5/6 and MSH-5/6 ← MSH-3/4, MSH-7 now, MSH-9 ``ACK^<trigger>^ACK`` (from 2.3.1,
when MSG.3 exists; ``ACK^<trigger>`` for 2.3 and before), a new MSH-10, MSH-11 and MSH-12 copied (the reply is
in the sender's version), MSH-15/16 empty (an ACK asks for no ACK), MSH-18 copied; then MSA-1 the code and
MSA-2 the inbound MSH-10 exactly as sent; then the faults as ERR, in the sender's version:

- 2.5 and later: one ERR per fault — ERR-2 the ERL, ERR-3 ``code^name^HL70357`` (CWE), ERR-4 the severity
  (table 0516), ERR-5 the platform's own code when there is one, ERR-7 the text. MSA-3 is left empty: it is
  "retained for backward compatibility" in 2.5 and withdrawn in 2.7, and ERR carries the text.
- before 2.5: MSA-3 the first fault's text (what 2.3/2.4 senders display), and one ERR whose ERR-1 (ELD)
  repeats per fault: ``segment^sequence^field^code&name&HL70357`` (the CE's parts become subcomponents).

Every text is escaped with the sender's escape character, CR/LF/0x0B/0x1C included, so a fault text holding
``|`` or ``^`` cannot break the ACK nor its MLLP frame, and the whole ACK is encoded in the character set the
message was read with (a character that set cannot hold becomes ``?``: only our own texts could hold one).
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from healthplatform.ingest.hl7v2.faults import Fault
from healthplatform.ingest.hl7v2.message import EncodingCharacters, Header, Message, version_key

ORIGINAL = "original"
ENHANCED = "enhanced"

# HL7 table 0008, acknowledgment code.
APPLICATION_ACCEPT, APPLICATION_ERROR, APPLICATION_REJECT = "AA", "AE", "AR"
COMMIT_ACCEPT, COMMIT_ERROR, COMMIT_REJECT = "CA", "CE", "CR"
_ACCEPT_CODES = {COMMIT_ACCEPT, COMMIT_ERROR, COMMIT_REJECT}
_CODES = {APPLICATION_ACCEPT, APPLICATION_ERROR, APPLICATION_REJECT} | _ACCEPT_CODES

# The receiver's own version, used only for a message whose MSH-12 could not be read.
DEFAULT_VERSION = "2.5.1"


@dataclass(frozen=True, slots=True)
class AckPlan:
    """Which acknowledgements a message asked for: the ``mode`` and the table 0155 conditions in force for
    the accept (MSH-15) and the application (MSH-16) acknowledgement."""

    mode: str
    accept: str  # AL / NE / ER / SU; NE in original mode (there is no accept ACK)
    application: str  # AL / NE / ER / SU; AL in original mode

    def accept_ack_due(self, *, accepted: bool) -> bool:
        """Whether a CA (``accepted``) or CE/CR is to be sent on the connection."""
        return _due(self.accept, accepted)

    def application_ack_due(self, *, accepted: bool) -> bool:
        """Whether an AA (``accepted``) or AE/AR is to be sent (original mode: on the connection; enhanced
        mode: later, as a message of its own)."""
        return _due(self.application, accepted)

    def code(self, outcome: str) -> str:
        """The MSA-1 code for ``outcome`` ("accept", "error" or "reject") of the acknowledgement the connection
        gets: AA/AE/AR in original mode, CA/CE/CR in enhanced mode."""
        index = ("accept", "error", "reject").index(outcome)
        return (("AA", "AE", "AR") if self.mode == ORIGINAL else ("CA", "CE", "CR"))[index]


def _due(condition: str, accepted: bool) -> bool:
    if condition == "NE":
        return False
    if condition == "ER":
        return not accepted
    if condition == "SU":
        return accepted
    return True


_NO_ACK = AckPlan(ENHANCED, "NE", "NE")


def ack_plan(header: Header) -> AckPlan:
    """The acknowledgements ``header``'s message asked for (MSH-15, MSH-16; none for an ACK)."""
    if header.message_code == "ACK":
        return _NO_ACK
    accept, application = header.accept_ack_type, header.application_ack_type
    if not accept and not application:
        return AckPlan(ORIGINAL, "NE", "AL")
    accept = accept if accept in ("AL", "NE", "ER", "SU") else "AL"
    if application:
        application = application if application in ("AL", "NE", "ER", "SU") else "AL"
    return AckPlan(ENHANCED, accept, application or "NE")


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A built ACK: its ``text`` (segments ended by CR), ``payload`` (the text in the inbound character set,
    ready for ``mllp.frame_encode``), its MSA-1 ``code`` and its own ``control_id`` (MSH-10)."""

    text: str
    payload: bytes
    code: str
    control_id: str


_ACK_PREFIX = secrets.token_hex(5).upper()  # this process's: two listeners never share one
_ack_numbers = itertools.count(1)


def ack_control_id() -> str:
    """A new MSH-10 for an ACK: 20 characters, the length MSH-10 (ST) has up to v2.6 — a random prefix drawn
    once per process and a counter (a system call for fresh randomness on every ACK was a tenth of the ACK's
    cost), so no two ACKs of the region share one."""
    return f"{_ACK_PREFIX}{next(_ack_numbers) % 10**10:010d}"


def _timestamp(now: dt.datetime) -> str:
    if now.tzinfo is None:
        return now.strftime("%Y%m%d%H%M%S")
    return now.strftime("%Y%m%d%H%M%S%z")


def ack_build(
    message: Message,
    *,
    code: str,
    faults: Sequence[Fault] = (),
    control_id: str | None = None,
    now: dt.datetime | None = None,
) -> Acknowledgement:
    """The ACK to ``message`` with MSA-1 ``code`` (table 0008) and an ERR for each of ``faults`` (typically
    ``message.faults`` plus the intake's own). Works on any message the tokenizer returned, even one without a
    usable MSH (the listener decides whether an ACK with an empty MSA-2 is worth sending). Never raises on the
    content of ``message``; an unknown ``code`` is a programming error (ValueError)."""
    if code not in _CODES:
        raise ValueError(f"{code!r} is not an acknowledgment code (HL7 table 0008)")
    header = message.header()
    msh = message._msh  # not message.segments: that would build every Segment of the message
    # A message whose MSH-1 was faulted cannot be read at all: answer in the defaults and echo nothing. One
    # whose MSH-2 was faulted was read with MSH-1 and default delimiters (``message._completed``): so is this.
    unreadable = msh is None or any(
        f.is_error and f.location is not None and f.location.segment == "MSH" and f.location.field == 1
        for f in message.faults
    )
    enc = EncodingCharacters() if unreadable else message.encoding
    raw = (lambda number: "") if unreadable else msh.raw_field
    version_raw = raw(12) if header.version_id else DEFAULT_VERSION  # the whole VID, as the sender wrote it
    version = version_key(header.version_id or DEFAULT_VERSION)
    control_id = control_id or ack_control_id()
    esc = enc.escape_text

    trigger = raw(9).split(enc.repetition)[0].split(enc.component)
    trigger = trigger[1] if len(trigger) > 1 else ""
    message_type = f"ACK{enc.component}{trigger}" + (f"{enc.component}ACK" if version >= (2, 3, 1) else "")
    fields = [
        "MSH",
        enc.msh2,
        raw(5),
        raw(6),
        raw(3),
        raw(4),
        _timestamp(now or dt.datetime.now().astimezone()),
        "",
        message_type,
        esc(control_id),
        raw(11),
        version_raw,
        "",
        "",
        "",
        "",
        "",
        raw(18),
    ]
    while fields and not fields[-1]:
        fields.pop()
    msh_text = enc.field.join(fields)  # "MSH" + "|" + MSH-2 + …: MSH-1 is the join itself
    control_echo = raw(10)
    msa = ["MSA", code, control_echo]
    err_segments: list[str] = []
    if faults and version < (2, 5):
        msa.append(esc(faults[0].text or faults[0].name))
        err_segments.append(_err_before_25(faults, enc))
    elif faults:
        err_segments += [_err_25(fault, enc) for fault in faults]
    segments = [msh_text, enc.field.join(msa), *err_segments]
    text = "\r".join(segments) + "\r"
    codec = message.codec or "ascii"
    try:
        # surrogateescape gives back, byte for byte, what an undecodable message's MSH held (see message_parse).
        payload = text.encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        payload = text.encode(codec, "replace")
    return Acknowledgement(text=text, payload=payload, code=code, control_id=control_id)


def _err_25(fault: Fault, enc: EncodingCharacters) -> str:
    """ERR in v2.5+ layout: ERR-1 empty, ERR-2 ERL, ERR-3 CWE, ERR-4 severity, ERR-5 application code, ERR-7."""
    c, esc = enc.component, enc.escape_text
    location = c.join(esc(part) for part in fault.location.parts()) if fault.location else ""
    code = c.join((str(fault.code), esc(fault.name), "HL70357"))
    application = esc(fault.application_code) if fault.application_code else ""
    fields = ["ERR", "", location, code, fault.severity, application, "", esc(fault.text)]
    return enc.field.join(fields)


def _err_before_25(faults: Sequence[Fault], enc: EncodingCharacters) -> str:
    """ERR in v2.3/2.4 layout: ERR-1 (ELD) repeating, ``segment^sequence^field^code&name&HL70357``."""
    c, s, esc = enc.component, enc.subcomponent, enc.escape_text
    repetitions = []
    for fault in faults:
        location = fault.location
        parts = [esc(location.segment), str(location.sequence)] if location else ["", ""]
        parts.append(str(location.field) if location and location.field is not None else "")
        parts.append(s.join((str(fault.code), esc(fault.name), "HL70357")))
        repetitions.append(c.join(parts))
    return enc.field.join(["ERR", enc.repetition.join(repetitions)])
