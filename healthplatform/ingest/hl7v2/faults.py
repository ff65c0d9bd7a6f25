"""Faults: what the HL7 v2 layer reports instead of raising, shaped for an ERR segment.

A fault is one HL7 table 0357 code (ERR-3), one table 0516 severity (ERR-4) and, when it is known, the place in
the message as an ERL (ERR-2: segment^sequence^field^repetition^component^subcomponent, v2.5.1 ch. 2 §2.A.26).
The tokenizer, the charset choice and the intake's own checks all produce these, and the ACK builder writes
them out in the sender's version (ERR-2/3/4 from 2.5, ERR-1 before), so the sender is told precisely what is
wrong and where. Nothing in this package lets an exception reach the listener for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

# HL7 table 0357, message error condition codes, as of v2.5.1 (104 "Value too long" and 198/199 are 2.7/2.9:
# a 2.5.1 sender would not know them, so the layer never emits them).
MESSAGE_ACCEPTED = 0
SEGMENT_SEQUENCE_ERROR = 100
REQUIRED_FIELD_MISSING = 101
DATA_TYPE_ERROR = 102
TABLE_VALUE_NOT_FOUND = 103
UNSUPPORTED_MESSAGE_TYPE = 200
UNSUPPORTED_EVENT_CODE = 201
UNSUPPORTED_PROCESSING_ID = 202
UNSUPPORTED_VERSION_ID = 203
UNKNOWN_KEY_IDENTIFIER = 204
DUPLICATE_KEY_IDENTIFIER = 205
APPLICATION_RECORD_LOCKED = 206
APPLICATION_INTERNAL_ERROR = 207

TABLE_0357 = {
    MESSAGE_ACCEPTED: "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    APPLICATION_RECORD_LOCKED: "Application record locked",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

# HL7 table 0516, error severity (ERR-4, from v2.5). "F" (fatal) came later and a 2.5.1 receiver may not know it.
ERROR = "E"
WARNING = "W"
INFORMATION = "I"


@dataclass(frozen=True, slots=True)
class ErrorLocation:
    """Where a fault is, as ERR-2's ERL counts it: the segment's id and its *absolute* occurrence among the
    segments of that id (the 5th OBX is 5 whatever OBRs stand between), then the field, repetition, component
    and subcomponent, 1-based, each left out when the whole enclosing element is meant."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None

    def parts(self) -> list[str]:
        """The ERL components as text, trailing absent ones dropped. ERL-4 (repetition) is assumed 1 when a
        component is named, because ERL-3 must be valued whenever a later component is."""
        parts = [self.segment, str(self.sequence)]
        if self.field is None:
            return parts
        parts.append(str(self.field))
        tail = [self.repetition, self.component, self.subcomponent]
        while tail and tail[-1] is None:
            tail.pop()
        if tail and tail[0] is None:
            tail[0] = 1
        parts += ["" if value is None else str(value) for value in tail]
        return parts

    def __str__(self) -> str:
        """The terse form used in logs and texts: ``PID[1]-3.4``."""
        text = f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            text += f"-{self.field}"
            if self.repetition not in (None, 1):
                text += f"({self.repetition})"
            if self.component is not None:
                text += f".{self.component}"
                if self.subcomponent is not None:
                    text += f".{self.subcomponent}"
        return text


@dataclass(frozen=True, slots=True)
class Fault:
    """One thing wrong with a message: table 0357 ``code``, a ``text`` for a person (ERR-7 diagnostic
    information from v2.5, MSA-3 / ERR-1.4.2 before; it must never contain patient data, because listeners
    log it), the table 0516 ``severity`` and the ``location`` when one is known. ``application_code`` is an
    optional ERR-5 code of the platform's own (e.g. ``UNKNOWN_SENDER``, for which 2.5.1 has no 0357 code)."""

    code: int
    text: str
    location: ErrorLocation | None = None
    severity: str = ERROR
    application_code: str | None = None

    @property
    def name(self) -> str:
        """The table 0357 name of the code (ERR-3.2)."""
        return TABLE_0357.get(self.code, "Unknown error")

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR
