"""The HL7 v2 tokenizer: tolerant, fast, lazy.

``message_parse(data)`` splits a message into segments and reads its MSH; everything else is split only when it
is read, and escape sequences are decoded only in the values read, so the listener pays for the header it needs
before the inbox commit and nothing more (the mapping workers read what they map). It never raises on input:
what is wrong is in ``Message.faults`` (table 0357 code, severity, ERL location).

Reading values::

    msg = message_parse(raw_bytes, sender_default_charset="GBK")
    msg.header().control_id                 # MSH-10 as sent
    msg["OBX"]                              # every OBX segment, in order
    msg["PID"][0].value(3, component=4)     # PID-3.4 of the first repetition, unescaped
    msg["PID"][0].field(3).repetitions()    # each PID-3 repetition as a Field
    msg.get("PID-3[2].4.1")                 # the same with a path: PID-3, 2nd repetition, CX.4, HD.1
    msg.get("OBX(3)-5")                     # OBX-5 of the 3rd OBX
    msg["PID"][0].value(8) is NULL          # PID-8 was sent as "" (delete the stored value)

A value is a ``str`` ("" when empty or not present: ch. 2 §2.6.2 b/c treat both as not present) or ``NULL``
when the sender sent ``""``, which v2.5.1 ch. 2 §2.5.3 defines as "change the stored value to null" — a
different instruction from an empty field, which leaves the stored value unchanged (this matters for A08/A31).
``NULL`` is falsy, so ``value or default`` reads it as absent; code that applies updates tests ``is NULL``.

Field numbers are the standard's: MSH-1 is the field separator itself and MSH-2 the encoding characters, so
``msh.value(9)`` is MSH-9 as everywhere else; MSH-1 and MSH-2 are returned as sent, never split nor unescaped
(python-hl7 issue #27: unescaping MSH-2 loses the delimiters).

Tolerance (research notes §4.1, §4.5): segments end with CR, LF or CRLF; when the message has CRs, it is split
on CR only, because an LF inside a field (NTE text, addresses) is real; a line that does not start with a
segment id and the field separator is taken as the rest of the previous segment's last field, cut by an LF or
CR the sender did not escape (warning, ERR-3 100); Z-segments, unexpected segments, extra fields, components and
repetitions are kept and never faulted; trailing empty fields are simply absent. The encoding characters are
the message's own (MSH-1, MSH-2 with the 2.7+ truncation character); a short MSH-2 is completed with the
defaults that do not clash, as python-hl7 does, with a warning.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from healthplatform.ingest.hl7v2.charset import message_decode
from healthplatform.ingest.hl7v2.faults import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_VERSION_ID,
    WARNING,
    ErrorLocation,
    Fault,
)

# HL7 table 0103 (processing id), 0104 (version id), 0155 (accept / application acknowledgment conditions).
PROCESSING_IDS = frozenset({"P", "T", "D"})
VERSIONS = frozenset(
    {"2.0", "2.0D", "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"}
    | {"2.9", "2.9.1"}
)
ACK_CONDITIONS = frozenset({"AL", "NE", "ER", "SU"})

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_PATH = re.compile(r"([A-Z][A-Z0-9]{2})(?:\((\d+)\))?-(\d+)(?:\[(\d+)\])?(?:\.(\d+)(?:\.(\d+))?)?")
_FORMATTING_DROPPED = (".fi", ".nf", ".ce", ".in", ".ti", ".sk")
_MAX_SPACING = 100  # \.sp<n>\ is n line breaks; a sender's \.sp999999999\ must not become a gigabyte


class Null:
    """The explicit null, ``""`` on the wire: "delete the stored value" (v2.5.1 ch. 2 §2.5.3)."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NULL"

    def __str__(self) -> str:
        return '""'


NULL = Null()
Value = str | Null


def version_key(version: str) -> tuple[int, ...]:
    """A version id (MSH-12.1) as numbers to compare: ``"2.5.1"`` → (2, 5, 1); ``"2.4"`` < ``"2.5"``. Tolerates
    the spellings senders use (``V2.4``, ``2.3.1 `` ); an unreadable one is (0,)."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    return numbers or (0,)


class EncodingCharacters:
    """The delimiters of one message: MSH-1 (field) and MSH-2 (component, repetition, escape, subcomponent and,
    from 2.7, truncation). An escape character of "" means the sender declared none: values are then read as
    sent, and text written back cannot be escaped."""

    __slots__ = ("_escapes", "_writing", "codec", "component", "escape", "field", "repetition", "subcomponent")
    __slots__ += ("truncation",)

    def __init__(
        self,
        field: str = "|",
        component: str = "^",
        repetition: str = "~",
        escape: str = "\\",
        subcomponent: str = "&",
        truncation: str = "",
        codec: str | None = None,
    ):
        self.field = field
        self.component = component
        self.repetition = repetition
        self.escape = escape
        self.subcomponent = subcomponent
        self.truncation = truncation
        self.codec = codec  # of the message: \Xhh..\ escapes are bytes in the message's character set
        self._escapes: dict[str, str] | None = None
        self._writing: dict[int, str] | None = None

    @property
    def msh2(self) -> str:
        """MSH-2 as these characters are written."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    def escapes(self) -> dict[str, str]:
        """Escape sequence (without the escape characters) → text, for the sequences with a fixed meaning
        (v2.5.1 ch. 2 §2.7): delimiters, highlighting (dropped: plain text has none) and the FT line break."""
        if self._escapes is None:
            table = {"F": self.field, "S": self.component, "T": self.subcomponent, "R": self.repetition}
            table |= {"E": self.escape, "H": "", "N": "", ".br": "\n", ".sp": "\n"}
            if self.truncation:
                table["P"] = self.truncation
            self._escapes = table
        return self._escapes

    def escape_text(self, text: str) -> str:
        """``text`` written as one value: every delimiter as its escape sequence, and CR, LF, 0x0B, 0x1C as
        ``\\Xhh\\`` so the value can end neither a segment nor an MLLP block; a text of two quotes alone as
        ``\\X2222\\``, so it is not read back as the explicit null."""
        if self._writing is None:
            if self.escape:
                e = self.escape
                table = {
                    ord(self.escape): f"{e}E{e}",
                    ord(self.field): f"{e}F{e}",
                    ord(self.component): f"{e}S{e}",
                    ord(self.subcomponent): f"{e}T{e}",
                    ord(self.repetition): f"{e}R{e}",
                }
                if self.truncation:
                    table[ord(self.truncation)] = f"{e}P{e}"
                for control in (0x0D, 0x0A, 0x0B, 0x1C):
                    table[control] = f"{e}X{control:02X}{e}"
            else:
                # Nothing to escape with: a delimiter becomes a space rather than a structure.
                delimiters = (self.field, self.component, self.subcomponent, self.repetition, self.truncation)
                table = {ord(d): " " for d in delimiters if d} | {c: " " for c in (0x0D, 0x0A, 0x0B, 0x1C)}
            self._writing = table
        written = text.translate(self._writing)
        if written == '""' and self.escape:
            # Two quotes alone are the explicit null on the wire (ch. 2 §2.5.3): written as hex, they stay text.
            return f"{self.escape}X2222{self.escape}"
        return written

    def unescape(self, value: str) -> str:
        """Decode the escape sequences of one value (a leaf, or a whole TX/FT field). Unknown sequences (``\\Z..\\``
        locally defined, ``\\C..\\``/``\\M..\\`` ISO 2022 switches) and an escape character without its closing
        one are kept as text; ``\\Xhh..\\`` is decoded in the message's character set and kept as text if it is
        not valid there; ``\\.sp<n>\\`` is n line breaks; the other FT formatting commands (``.fi .nf .in .ti
        .sk .ce``) are dropped, because plain text cannot show them and their letters are not data."""
        esc = self.escape
        if not esc or esc not in value:
            return value
        table = self.escapes()
        out = []
        position = 0
        while True:
            start = value.find(esc, position)
            if start < 0:
                break
            end = value.find(esc, start + 1)
            if end < 0:
                break
            sequence = value[start + 1 : end]
            text = table.get(sequence)
            if text is None:
                text = self._special(sequence)
            if text is None:
                # Not an escape: keep the first escape character and look again from the second, which may
                # open a real sequence ("C:\temp\F\" keeps "C:\temp" and decodes "\F\").
                out.append(value[position:end])
                position = end
                continue
            out.append(value[position:start])
            out.append(text)
            position = end + 1
        out.append(value[position:])
        return "".join(out)

    def _special(self, sequence: str) -> str | None:
        if len(sequence) > 1 and sequence[0] == "X":
            digits = sequence[1:]
            if len(digits) % 2:
                return None
            try:
                return bytes.fromhex(digits).decode(self.codec or "utf-8")
            except (ValueError, LookupError):
                return None
        if sequence.startswith(".sp"):
            count = sequence[3:].strip().lstrip("+")
            if count.isdigit():
                return "\n" * max(1, min(int(count), _MAX_SPACING))
            return None
        if sequence.startswith(_FORMATTING_DROPPED):
            rest = sequence[3:].strip().lstrip("+-")
            if not rest or rest.isdigit():
                return ""
        return None


class Field:
    """One field as sent, split into repetitions, components and subcomponents when first asked."""

    __slots__ = ("_enc", "_tree", "raw")

    def __init__(self, raw: str, enc: EncodingCharacters | None):
        self.raw = raw
        self._enc = enc  # None: MSH-1 / MSH-2, read literally
        self._tree: list[list[list[str]]] | None = None

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"

    @property
    def is_null(self) -> bool:
        """Sent as ``""``: delete the stored value."""
        return self.raw == '""'

    @property
    def is_empty(self) -> bool:
        """Not sent (empty): leave the stored value unchanged."""
        return not self.raw

    def tree(self) -> list[list[list[str]]]:
        """Repetitions → components → subcomponents, raw (escapes not decoded)."""
        if self._tree is None:
            enc = self._enc
            if enc is None:
                self._tree = [[[self.raw]]]
            else:
                self._tree = [
                    [component.split(enc.subcomponent) for component in repetition.split(enc.component)]
                    for repetition in self.raw.split(enc.repetition)
                ]
        return self._tree

    def repetitions(self) -> list[Field]:
        """Each repetition as a Field of its own (one, possibly empty, when the field does not repeat)."""
        if self._enc is None:
            return [self]
        return [Field(raw, self._enc) for raw in self.raw.split(self._enc.repetition)]

    def value(self, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> Value:
        """One leaf, unescaped: "" when absent, ``NULL`` when sent as ``""``."""
        return _leaf(self.raw, self._enc, repetition, component, subcomponent)

    def components(self, repetition: int = 1) -> list[Value]:
        """The components of one repetition, each its first subcomponent, unescaped."""
        tree = self.tree()
        if not 1 <= repetition <= len(tree):
            return []
        return [_decoded(parts[0], self._enc) for parts in tree[repetition - 1]]

    def leaves(self):
        """Every non-empty leaf as ``(repetition, component, subcomponent, value)``, 1-based, unescaped."""
        raw, enc = self.raw, self._enc
        if not raw:
            return
        if enc is None or (enc.repetition not in raw and enc.component not in raw and enc.subcomponent not in raw):
            yield 1, 1, 1, _decoded(raw, enc)  # most fields: one leaf, nothing to split
            return
        for r, rep in enumerate(self.tree(), 1):
            for c, component in enumerate(rep, 1):
                for s, sub in enumerate(component, 1):
                    if sub:
                        yield r, c, s, _decoded(sub, self._enc)

    def text(self) -> str:
        """The whole field unescaped, delimiters left as they are: for TX / FT / ST values (OBX-5 text, MDM
        document lines, NTE-3), where a component separator is data rather than structure. ``\\.br\\`` is a
        line break."""
        if self._enc is None:
            return self.raw
        return self._enc.unescape(self.raw)


def _decoded(leaf: str, enc: EncodingCharacters | None) -> Value:
    if leaf == '""':
        return NULL
    if enc is None or not enc.escape or enc.escape not in leaf:
        return leaf
    return enc.unescape(leaf)


def _leaf(raw: str, enc: EncodingCharacters | None, repetition: int, component: int, subcomponent: int) -> Value:
    if not raw:
        return ""
    if enc is None:
        return raw if repetition == component == subcomponent == 1 else ""
    if raw == '""':
        return NULL
    if enc.repetition not in raw and enc.component not in raw and enc.subcomponent not in raw:
        if repetition == component == subcomponent == 1:
            return _decoded(raw, enc)
        return ""
    if repetition < 1 or component < 1 or subcomponent < 1:
        return ""
    reps = raw.split(enc.repetition)
    if repetition > len(reps):
        return ""
    components = reps[repetition - 1].split(enc.component)
    if component > len(components):
        return ""
    subs = components[component - 1].split(enc.subcomponent)
    if subcomponent > len(subs):
        return ""
    return _decoded(subs[subcomponent - 1], enc)


class Segment:
    """One segment: its id (``name``), its absolute occurrence among segments of that id (``sequence``, as
    ERR-2's ERL counts them) and its fields, split from ``raw`` when first read."""

    __slots__ = ("_enc", "_fields", "name", "raw", "sequence")

    def __init__(self, name: str, raw: str, sequence: int, enc: EncodingCharacters):
        self.name = name
        self.raw = raw
        self.sequence = sequence
        self._enc = enc
        self._fields: list[str] | None = None

    def __repr__(self) -> str:
        return f"Segment({self.name}[{self.sequence}])"

    def _split(self) -> list[str]:
        fields = self.raw.split(self._enc.field)
        if self.name == "MSH":
            # MSH-1 is the field separator itself: put it back so that fields[n] is MSH-n.
            fields.insert(1, self._enc.field)
        self._fields = fields
        return fields

    def __len__(self) -> int:
        """The number of the last field present (trailing empty fields included if they were sent)."""
        return len(self._fields or self._split()) - 1

    def raw_field(self, number: int) -> str:
        """Field ``number`` exactly as sent ("" when absent)."""
        fields = self._fields or self._split()
        return fields[number] if 0 < number < len(fields) else ""

    def field(self, number: int) -> Field:
        """Field ``number`` (1-based, MSH-1 being the field separator)."""
        literal = self.name == "MSH" and number <= 2
        return Field(self.raw_field(number), None if literal else self._enc)

    def value(self, number: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> Value:
        """One leaf of field ``number``, unescaped: "" when absent, ``NULL`` when sent as ``""``."""
        fields = self._fields or self._split()
        if not 0 < number < len(fields):
            return ""
        literal = self.name == "MSH" and number <= 2
        return _leaf(fields[number], None if literal else self._enc, repetition, component, subcomponent)

    def location(self, field: int | None = None, repetition=None, component=None, subcomponent=None):
        """The ERL of this segment or of one of its elements, for a fault."""
        return ErrorLocation(self.name, self.sequence, field, repetition, component, subcomponent)


class HierarchicDesignator(NamedTuple):
    """An HD (MSH-3 … MSH-6): namespace id, universal id, universal id type."""

    namespace_id: str = ""
    universal_id: str = ""
    universal_id_type: str = ""

    def __str__(self) -> str:
        return "^".join((self.namespace_id, self.universal_id, self.universal_id_type)).rstrip("^")


class Header(NamedTuple):
    """What the intake needs from MSH before the inbox commit: who sent it to whom, what it is, its control
    id, version and processing id, which acknowledgements are asked for, and its character set.

    ``control_id`` is MSH-10 exactly as sent (the duplicate key with the sender, and MSA-2 of the ACK, which
    echoes it verbatim); the other values are unescaped and stripped of surrounding spaces. ``message_structure``
    is MSH-9.3 as sent, often empty before 2.3.1: never depend on it (the structure follows from the trigger,
    table 0354). A NamedTuple, because one is built for every message on the listener's hot path."""

    sending_application: HierarchicDesignator
    sending_facility: HierarchicDesignator
    receiving_application: HierarchicDesignator
    receiving_facility: HierarchicDesignator
    timestamp: str  # MSH-7.1, as sent (TS / DTM)
    message_code: str  # MSH-9.1
    trigger_event: str  # MSH-9.2
    message_structure: str  # MSH-9.3
    control_id: str  # MSH-10, raw
    processing_id: str  # MSH-11.1 (table 0103)
    processing_mode: str  # MSH-11.2
    version_id: str  # MSH-12.1 (table 0104)
    accept_ack_type: str  # MSH-15 (table 0155)
    application_ack_type: str  # MSH-16 (table 0155)
    character_sets: tuple[str, ...]  # MSH-18, every repetition

    @property
    def character_set(self) -> str:
        """MSH-18's first repetition, the message's default character set ("" when not declared)."""
        return self.character_sets[0] if self.character_sets else ""

    @property
    def message_type(self) -> str:
        """``ADT^A01`` style, for logs and the monitor."""
        return f"{self.message_code}^{self.trigger_event}" if self.trigger_event else self.message_code


class Message:
    """A tokenised message: its ``segments`` in order, its ``encoding`` characters, the character set it was
    read with (``codec``, ``declared_charset``, ``charset_source``), how its segments were terminated
    (``segment_terminator``: ``"\\r"``, ``"\\n"`` or ``"\\r\\n"``) and the ``faults`` found while reading it.

    The parse cuts the text into segment lines and reads MSH; the Segment objects of the other lines and the
    index by segment id are made the first time ``segments``, ``msg[name]`` or ``get`` is used, so the listener's
    header-only path never builds them."""

    __slots__ = ("_header", "_index", "_lines", "_msh", "_segments", "charset_source", "codec", "declared_charset")
    __slots__ += ("encoding", "faults", "segment_terminator", "text")

    def __init__(self, text: str, encoding: EncodingCharacters):
        self.text = text
        self.encoding = encoding
        self.faults: list[Fault] = []
        self.codec: str | None = encoding.codec
        self.declared_charset = ""
        self.charset_source = ""
        self.segment_terminator = "\r"
        self._lines: list[tuple[str, str]] = []  # (segment id or "" for a line that is not a segment, line)
        self._msh: Segment | None = None
        self._segments: list[Segment] | None = None
        self._index: dict[str, list[Segment]] | None = None
        self._header: Header | None = None

    def __repr__(self) -> str:
        names = [name or "?" for name, _ in self._lines[:6]]
        return f"Message({' '.join(names)}{' …' if len(self._lines) > 6 else ''})"

    @property
    def ok(self) -> bool:
        """No fault of severity E: the message can be accepted (warnings may remain)."""
        return not any(fault.is_error for fault in self.faults)

    @property
    def has_msh(self) -> bool:
        return self._msh is not None

    @property
    def segments(self) -> list[Segment]:
        """Every segment in order, lines that are not segments included (with an empty ``name``)."""
        if self._segments is None:
            self._build()
        return self._segments

    def _build(self) -> None:
        segments: list[Segment] = []
        index: dict[str, list[Segment]] = {}
        enc = self.encoding
        for position, (name, line) in enumerate(self._lines):
            if not name:
                segments.append(Segment("", line, 1, enc))
                continue
            found = index.get(name)
            if found is None:
                found = index[name] = []
            segment = self._msh if position == 0 and self._msh is not None else Segment(name, line, len(found) + 1, enc)
            found.append(segment)
            segments.append(segment)
        self._segments, self._index = segments, index

    def __getitem__(self, name: str) -> list[Segment]:
        """Every segment with id ``name``, in order (an empty list when there is none)."""
        if self._index is None:
            self._build()
        return self._index.get(name, [])

    def __contains__(self, name: str) -> bool:
        return bool(self[name])

    def segment(self, name: str, occurrence: int = 1) -> Segment | None:
        """The ``occurrence``-th segment with id ``name`` (1-based), or None."""
        found = self[name]
        if found and 0 < occurrence <= len(found):
            return found[occurrence - 1]
        return None

    def get(self, path: str) -> Value:
        """A value by path: ``SEG[(occurrence)]-field[[repetition]][.component[.subcomponent]]``, every number
        1-based — ``PID-3``, ``PID-3[2].4.1``, ``OBX(3)-5``, ``MSH-9.2``. An absent element is ""; a path that
        does not follow this form is a programming error (ValueError)."""
        name, occurrence, field, repetition, component, subcomponent = _path(path)
        segment = self.segment(name, occurrence)
        if segment is None:
            return ""
        return segment.value(field, component, subcomponent, repetition)

    def unescape(self, value: str) -> str:
        return self.encoding.unescape(value)

    def escape(self, text: str) -> str:
        return self.encoding.escape_text(text)

    def header(self) -> Header:
        """MSH read into a Header (empty values where the message has no MSH)."""
        if self._header is None:
            self._header = _header(self._msh)
        return self._header


@lru_cache(maxsize=512)
def _path(path: str) -> tuple[str, int, int, int, int, int]:
    match = _PATH.fullmatch(path)
    if match is None:
        raise ValueError(f"not a value path: {path!r} (e.g. PID-3[2].4.1 or OBX(3)-5)")
    name, occurrence, field, repetition, component, subcomponent = match.groups()
    return name, int(occurrence or 1), int(field), int(repetition or 1), int(component or 1), int(subcomponent or 1)


_EMPTY_HD = HierarchicDesignator()
_NO_HEADER = Header(_EMPTY_HD, _EMPTY_HD, _EMPTY_HD, _EMPTY_HD, "", "", "", "", "", "", "", "", "", "", ())


def _components(raw: str, enc: EncodingCharacters) -> list[str]:
    """The components of a field's first repetition, each its first subcomponent, unescaped and stripped; an
    explicit null reads as "" (an MSH field has no stored value to delete)."""
    if enc.repetition in raw:
        raw = raw.split(enc.repetition, 1)[0]
    parts = raw.split(enc.component) if enc.component in raw else [raw]
    sub, esc = enc.subcomponent, enc.escape
    out = []
    for part in parts:
        if sub in part:
            part = part.split(sub, 1)[0]
        if esc and esc in part:
            part = enc.unescape(part)
        out.append("" if part == '""' else part.strip())
    return out


def _header(msh: Segment | None) -> Header:
    if msh is None:
        return _NO_HEADER
    fields = msh._fields or msh._split()
    fields = fields + [""] * (19 - len(fields)) if len(fields) < 19 else fields
    enc = msh._enc

    def first(number: int) -> str:
        raw = fields[number]
        return _components(raw, enc)[0] if raw else ""

    def hd(number: int) -> HierarchicDesignator:
        raw = fields[number]
        return HierarchicDesignator(*_components(raw, enc)[:3]) if raw else _EMPTY_HD

    message_type = [*_components(fields[9], enc), "", ""] if fields[9] else ["", "", ""]
    processing = [*_components(fields[11], enc), ""] if fields[11] else ["", ""]
    charsets = fields[18]
    return Header(
        hd(3),
        hd(4),
        hd(5),
        hd(6),
        first(7),
        message_type[0],
        message_type[1],
        message_type[2],
        fields[10],
        processing[0],
        processing[1],
        first(12),
        first(15).upper(),
        first(16).upper(),
        tuple(_components(rep, enc)[0] for rep in charsets.split(enc.repetition)) if charsets else (),
    )


def _completed(separator: str, chars: list[str]) -> EncodingCharacters:
    """Encoding characters from the ``chars`` MSH-2 declared (possibly none), the missing ones completed with
    the defaults, or a spare delimiter where a default is already taken: the splitting code relies on four
    distinct, non-empty delimiters."""
    taken = {separator, *chars}
    chars = list(chars)
    for default in "^~\\&"[len(chars) :]:
        choice = default if default not in taken else next(c for c in "^~\\&#$%!@*" if c not in taken)
        chars.append(choice)
        taken.add(choice)
    truncation = chars[4] if len(chars) > 4 else ""
    return EncodingCharacters(separator, chars[0], chars[1], chars[2], chars[3], truncation)


_ENCODINGS: dict[tuple[str, str, str | None], tuple[EncodingCharacters, tuple[Fault, ...]]] = {}


def _encoding_characters_cached(text: str, codec: str | None, faults: list[Fault]) -> EncodingCharacters:
    """``_encoding_characters``, remembered per (MSH-1, MSH-2, codec): a sender's messages all share one
    EncodingCharacters, and with it its escape tables, built once. Shared, so never mutated after this."""
    end = text.find("\r") if "\r" in text else text.find("\n")
    head = text[3:20] if end < 0 else text[3 : min(end, 20)]
    separator = head[:1]
    key = (separator, head[1:].split(separator, 1)[0] if separator else "", codec)
    cached = _ENCODINGS.get(key)
    if cached is None:
        found: list[Fault] = []
        enc = _encoding_characters(text, found)
        enc.codec = codec
        cached = (enc, tuple(found))
        if len(_ENCODINGS) < 1024 and len(key[1]) <= 5:
            _ENCODINGS[key] = cached
    faults.extend(cached[1])
    return cached[0]


def _encoding_characters(text: str, faults: list[Fault]) -> EncodingCharacters:
    """MSH-1 and MSH-2 of a message that starts with "MSH", checked (ERR at MSH^1^1 / MSH^1^2)."""
    separator = text[3:4]
    if not separator or separator in "\r\n":
        faults.append(Fault(REQUIRED_FIELD_MISSING, "MSH-1 (field separator) is missing", ErrorLocation("MSH", 1, 1)))
        return EncodingCharacters()
    if separator.isalnum() or separator.isspace() or not separator.isprintable():
        text_ = "MSH-1 (field separator) must be a printable, non-alphanumeric character"
        faults.append(Fault(DATA_TYPE_ERROR, text_, ErrorLocation("MSH", 1, 1)))
        return _completed(separator, [])
    end = text.find("\r") if "\r" in text else text.find("\n")
    if end < 0:
        end = len(text)
    second = text.find(separator, 4, end)
    msh2 = text[4 : second if second >= 0 else end]
    location = ErrorLocation("MSH", 1, 2)
    if not msh2:
        faults.append(Fault(REQUIRED_FIELD_MISSING, "MSH-2 (encoding characters) is empty", location))
        return _completed(separator, [])
    if len(msh2) > 5:
        text_ = f"MSH-2 (encoding characters) has {len(msh2)} characters, 4 expected (5 from v2.7)"
        faults.append(Fault(DATA_TYPE_ERROR, text_, location))
        return _completed(separator, [])
    chars = list(msh2)
    bad = [c for c in chars if c.isalnum() or c.isspace() or not c.isprintable()]
    if bad or len(set(chars)) != len(chars) or separator in chars:
        text_ = "MSH-2 (encoding characters) must be distinct, non-alphanumeric and differ from MSH-1"
        faults.append(Fault(DATA_TYPE_ERROR, text_, location))
        return _completed(separator, [])
    if len(chars) < 4:
        # Completed with the defaults still free, as python-hl7 does; a warning, not a rejection.
        text_ = f"MSH-2 has {len(msh2)} encoding characters, 4 expected"
        faults.append(Fault(DATA_TYPE_ERROR, text_, location, WARNING))
    return _completed(separator, chars)


def _check_header(header: Header, faults: list[Fault]) -> None:
    """The structural checks the intake answers before the commit (AR / CR with ERR; notes §0.2)."""

    def missing(field: int, what: str, component: int | None = None) -> None:
        location = ErrorLocation("MSH", 1, field, None, component)
        name = f"MSH-{field}.{component}" if component else f"MSH-{field}"
        faults.append(Fault(REQUIRED_FIELD_MISSING, f"{name} ({what}) is empty", location))

    if not header.message_code:
        missing(9, "message code", 1)
    elif not header.trigger_event and header.message_code != "ACK":
        missing(9, "trigger event", 2)
    if not header.control_id:
        missing(10, "message control id")
    if not header.processing_id:
        missing(11, "processing id")
    elif header.processing_id not in PROCESSING_IDS:
        text = f"MSH-11 processing id {header.processing_id!r} is not P, T or D (HL7 table 0103)"
        faults.append(Fault(UNSUPPORTED_PROCESSING_ID, text, ErrorLocation("MSH", 1, 11)))
    if not header.version_id:
        missing(12, "version id")
    elif header.version_id not in VERSIONS:
        text = f"MSH-12 version id {header.version_id!r} is not an HL7 v2 version (HL7 table 0104)"
        faults.append(Fault(UNSUPPORTED_VERSION_ID, text, ErrorLocation("MSH", 1, 12)))
    for field, value in ((15, header.accept_ack_type), (16, header.application_ack_type)):
        if value and value not in ACK_CONDITIONS:
            # Liberal: an unknown condition is read as AL (always answer), so the sender sees this warning.
            text = f"MSH-{field} {value!r} is not AL, NE, ER or SU (HL7 table 0155); read as AL"
            faults.append(Fault(TABLE_VALUE_NOT_FOUND, text, ErrorLocation("MSH", 1, field), WARNING))


_KNOWN_IDS: set[str] = set()


def message_parse(data: bytes | str, *, sender_default_charset: str | None = None) -> Message:
    """Tokenise one message. ``data`` is the MLLP payload (bytes, decoded here by ``charset.message_decode``
    with MSH-18 or else ``sender_default_charset``) or text already decoded. Never raises: faults are in
    ``Message.faults``. A message whose bytes cannot be decoded comes back with no segments and the charset
    fault; a message without an MSH comes back tokenised with the default encoding characters, and a fault."""
    try:
        return _parse(data, sender_default_charset)
    except Exception as error:  # pragma: no cover - a safety net; the fuzz tests assert it is never used
        message = Message("", EncodingCharacters())
        text = f"the tokenizer failed ({type(error).__name__}); this is a defect of the receiver"
        message.faults.append(Fault(207, text))
        return message


def _parse(data: bytes | str, sender_default_charset: str | None) -> Message:
    faults: list[Fault] = []
    codec = declared = source = None
    if isinstance(data, bytes | bytearray | memoryview):
        decoded = message_decode(bytes(data), sender_default=sender_default_charset)
        codec, declared, source = decoded.codec, decoded.declared, decoded.source
        if decoded.fault and decoded.text is not None:
            faults.append(decoded.fault)  # a warning: read as declared
        elif decoded.fault:
            # Not decoded, so not tokenised; only MSH is read, as ASCII with every other byte kept as a
            # surrogate (``surrogateescape``), so the ACK can name the sender and echo MSH-10 byte for byte.
            first = bytes(data).lstrip(b"\xef\xbb\xbf \t\r\n")
            first = first.split(b"\r", 1)[0] if b"\r" in first else first.split(b"\n", 1)[0]
            message = _parse(first.decode("ascii", "surrogateescape"), None)
            message.faults.insert(0, decoded.fault)
            message.declared_charset, message.charset_source = declared, source
            return message
        text = decoded.text or ""
    else:
        text = data
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("MSH"):
        enc = _encoding_characters_cached(text, codec, faults)
    else:
        what = "is empty" if not text else f"does not begin with an MSH segment (it begins {text[:3]!r})"
        faults.append(Fault(SEGMENT_SEQUENCE_ERROR, f"the message {what}", ErrorLocation("MSH", 1)))
        enc = EncodingCharacters(codec=codec)
    message = Message(text, enc)
    message.faults = faults
    message.declared_charset = declared or ""
    message.charset_source = source or ""

    if "\r" in text:
        # CR present: CR ends segments and an LF next to it is part of a CRLF (or LFCR) ending, while an LF
        # elsewhere is data (NTE text with a line break), so never split on it.
        lines = text.split("\r")
        if "\n" in text:
            lines = [line.strip("\n") for line in lines]
            message.segment_terminator = "\r\n" if "\r\n" in text else "\r"
        joiner = "\r"
    else:
        lines = text.split("\n")
        message.segment_terminator = joiner = "\n"
    separator = enc.field
    kept = message._lines
    pieces: list[str] = []  # kept[-1]'s line and the lines put back into it, joined once (linear, not quadratic)
    occurrences: dict[str, int] = {}  # segments of each id so far, for a fault's ERL
    not_segments = 0
    for number, line in enumerate(lines, 1):
        name = line[:3]
        if (line[3:4] == separator or len(line) == 3) and (name in _KNOWN_IDS or _known_id(name)):
            _rejoin(kept, pieces, joiner)
            kept.append((name, line))
            occurrences[name] = occurrences.get(name, 0) + 1
        elif not line.strip():
            continue
        elif kept and kept[-1][0] not in ("MSH", ""):
            # An unescaped CR / LF inside a field cut the segment: put the piece back where it belongs. Never
            # into MSH, whose extent the character set was read from (it ends at the first CR or LF).
            if not pieces:
                pieces.append(kept[-1][1])
            pieces.append(line)
            not_segments += 1
            if not_segments <= _NOT_SEGMENTS_LISTED:
                last = kept[-1][0]
                location = ErrorLocation(last, occurrences[last])
                text_ = f"line {number} is not a segment: read as the rest of {location}'s last field"
                faults.append(Fault(SEGMENT_SEQUENCE_ERROR, text_, location, WARNING))
        else:
            # Kept, unnamed and out of the index, so the admin can show it; nothing maps it.
            _rejoin(kept, pieces, joiner)
            kept.append(("", line))
            if kept[0][0] == "MSH":
                not_segments += 1
                if not_segments <= _NOT_SEGMENTS_LISTED:
                    text_ = f"line {number} is not a segment (no segment id followed by the field separator)"
                    faults.append(Fault(SEGMENT_SEQUENCE_ERROR, text_, None, WARNING))
    _rejoin(kept, pieces, joiner)
    if not_segments > _NOT_SEGMENTS_LISTED:
        text_ = f"{not_segments - _NOT_SEGMENTS_LISTED} more lines are not segments (not listed one by one)"
        faults.append(Fault(SEGMENT_SEQUENCE_ERROR, text_, None, WARNING))
    if kept and kept[0][0] == "MSH":
        message._msh = Segment("MSH", kept[0][1], 1, enc)
        _check_header(message.header(), faults)
    return message


# Lines that are not segments, each a warning (an ERR in the ACK) up to this many; the rest are counted in one:
# a message of 400,000 of them was answered with an ACK of 47 MB.
_NOT_SEGMENTS_LISTED = 10


def _rejoin(kept: list[tuple[str, str]], pieces: list[str], joiner: str) -> None:
    """Puts the lines read as the rest of ``kept[-1]`` back into it, and empties ``pieces``."""
    if pieces:
        kept[-1] = (kept[-1][0], joiner.join(pieces))
        pieces.clear()


def _known_id(name: str) -> bool:
    if _SEGMENT_ID.fullmatch(name):
        if len(_KNOWN_IDS) < 4096:
            _KNOWN_IDS.add(name)
        return True
    return False
