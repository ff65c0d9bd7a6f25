"""The character set of a message, chosen from its raw bytes before anything is decoded.

Order of choice (research notes §2.6, §5.1):

1. MSH-18, first repetition (the default character set; further repetitions are ISO 2022 code switching
   alternatives, MSH-20), read from the raw bytes of the MSH segment and mapped through HL7 table 0211 plus the
   spellings Chinese HIS actually send (``GBK``, ``GB18030``, ``UTF8``, ``ISO8859_1`` …);
2. else the default character set the caller registered for that sender (``SourceSystem``);
3. else the standard's own default, 7-bit ASCII ("This is the default if this field is omitted").

The chosen codec decodes the whole message strictly. A value nobody maps (ERR-3 103, table value not found) or
bytes the codec rejects (ERR-3 102, data type error) is a fault at ``MSH^1^18`` for an AR / CR, never a silent
guess: a guess that is wrong stores a patient's name garbled and acknowledges it as received. The fault text
names the offending byte offset and, as a hint for the sender's engineer, whether the bytes are valid UTF-8 or
GB18030 instead; it never quotes the bytes.

Departures from the notes, and why:

- ``GBK``, ``GB2312``, ``CP936`` and ``EUC-CN`` decode with ``gb18030``: each is a subset of GB18030, so a
  message that is truly in the declared set decodes identically, and the many senders that label GBK text
  ``GB2312`` are not rejected for characters their own platform encodes without complaint.
- MSH-18 is looked for on the raw bytes by counting field separators, and the count is checked again on the
  decoded text. A GBK sender's traditional characters in MSH-3 … MSH-17 can have 0x7C ``|`` as their trail byte
  (區, 億 …), which shifts the raw count; if the decoded MSH names a different character set than the raw
  count did, the decode is redone once with the decoded one, and a declaration that still disagrees with
  itself is a fault.
- A UTF-8 byte order mark is dropped (Windows tools write one); with a declaration other than UTF-8 or ASCII it
  is a contradiction and a fault. UTF-16/32 cannot be framed by single-byte MLLP and are refused (103).
- A strict decode is not enough for GB18030 (nor Big5, EUC-KR): nearly every byte pair is a character there,
  so UTF-8 text labelled GBK decodes without error into other characters. The notes' "a UTF-8 byte stream is
  very unlikely to be valid GBK" holds the other way round only; so a message declared (or defaulted) in one of
  them whose bytes are also valid UTF-8 with non-ASCII text is reported (``_utf8_in_disguise``).
"""

from __future__ import annotations

from typing import NamedTuple

from healthplatform.ingest.hl7v2.faults import (
    DATA_TYPE_ERROR,
    ERROR,
    TABLE_VALUE_NOT_FOUND,
    WARNING,
    ErrorLocation,
    Fault,
)

MSH_18 = ErrorLocation("MSH", 1, 18)
UTF8_BOM = b"\xef\xbb\xbf"

# HL7 table 0211 (v2.5.1 … 2.9) and the aliases seen in the field, keyed by ``_normalised`` spelling, mapped to a
# Python codec. ISO IR87 / IR159 / IR14 (JIS, with ISO 2022 escapes and MSH-20) and CNS 11643 are left out: no
# sender of this region uses them, and a half-right mapping would decode them wrongly rather than refuse them.
_CODECS = {
    "ASCII": "ascii",
    "USASCII": "ascii",
    "ISOIR6": "ascii",
    "UNICODEUTF8": "utf-8",
    "UTF8": "utf-8",
    # "UNICODE" is deprecated since 2.5 ("retained for backward compatibility only"); HAPI reads it as UTF-8.
    "UNICODE": "utf-8",
    "GB180302000": "gb18030",
    "GB180302005": "gb18030",
    "GB180302022": "gb18030",
    "GB18030": "gb18030",
    "GBK": "gb18030",
    "CP936": "gb18030",
    "GB2312": "gb18030",
    "EUCCN": "gb18030",
    "BIG5": "big5",
    "KSX1001": "euc_kr",
    "LATIN1": "iso8859-1",
}
for _part in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15):
    # Table 0211 spells them "8859/1"; senders write "ISO8859_1", "ISO-8859-1", "ISO 8859/1" too.
    _CODECS[f"8859/{_part}"] = _CODECS[f"ISO8859{_part}"] = _CODECS[f"ISO8859/{_part}"] = f"iso8859-{_part}"
_REFUSED = {"UNICODEUTF16", "UNICODEUTF32", "UTF16", "UTF32"}


def _normalised(declared: str) -> str:
    return declared.upper().replace(" ", "").replace("-", "").replace("_", "")


def codec_for(declared: str) -> str | None:
    """The Python codec for an MSH-18 value, or None when the value is not one this platform maps."""
    return _CODECS.get(_normalised(declared))


class Decoded(NamedTuple):
    """A message's text and how it was read: ``codec`` (the Python codec used, also the one its ACK is written
    in), ``declared`` (MSH-18's first repetition as sent, "" when empty), ``source`` (``"MSH-18"``,
    ``"sender default"`` or ``"HL7 default"``). ``text`` is None and ``fault`` is set when it could not be
    decoded; ``codec`` is then still the one that was tried, if any. (A NamedTuple: one is made per message
    on the listener's hot path, and a tuple is several times cheaper to build than a frozen dataclass.)"""

    text: str | None
    codec: str | None
    declared: str
    source: str
    fault: Fault | None = None


def declared_charset(raw: bytes) -> str | None:
    """MSH-18's first repetition read from raw bytes (stripped of spaces around it, "" when empty), or None
    when the bytes do not begin with an MSH segment this can read."""
    return _msh18(raw)[0]


def _msh18(raw: bytes) -> tuple[str | None, bool]:
    """MSH-18 as ``declared_charset`` reads it, and whether every byte before it is ASCII (if so, no
    multi-byte character can have shifted the field count)."""
    if raw.startswith(UTF8_BOM):
        raw = raw[3:]
    raw = raw.lstrip(b" \t\r\n")
    if not raw.startswith(b"MSH") or len(raw) < 5:
        return None, True
    # Where the tokenizer ends MSH: at the first CR if the message has any (an LF is then data), else at an LF.
    end = raw.find(b"\r")
    if end < 0:
        end = raw.find(b"\n")
    if end < 0:
        end = len(raw)
    separator = raw[3:4]
    if separator in (b"\r", b"\n") or separator[0] >= 0x80:
        return None, True
    msh = raw[:end]
    fields = msh.split(separator, 18)
    # fields[0] is "MSH", fields[1] MSH-2, so MSH-n is fields[n - 1].
    if len(fields) < 18:
        return "", msh.isascii()
    repetition = fields[1][1:2] or b"~"
    first = fields[17].split(repetition, 1)[0]
    # All of MSH rather than the part before MSH-18: one C call, and non-ASCII after MSH-18 is rare.
    return first.decode("ascii", "replace").strip(), msh.isascii()


def _hint(raw: bytes, tried: str | None) -> str:
    others = (("UTF-8", "utf-8"), ("GB18030", "gb18030"))
    valid = [name for name, codec in others if codec != tried and _decodes(raw, codec)]
    return f"; the bytes are valid {' and '.join(valid)}" if valid else ""


def _decodes(raw: bytes, codec: str) -> bool:
    try:
        raw.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def message_decode(raw: bytes, *, sender_default: str | None = None) -> Decoded:
    """Decode one message's bytes with the character set it declares (MSH-18), else ``sender_default`` (a table
    0211 value or alias, as registered for the sender), else ASCII; strictly, reporting a fault rather than
    guessing. Never raises."""
    bom = raw.startswith(UTF8_BOM)
    body = raw[3:] if bom else raw
    found, prefix_ascii = _msh18(body)
    declared = found or ""
    if not prefix_ascii:
        declared = _consistent_declaration(body, declared, sender_default)
    codec, source, fault = _choose(declared, sender_default)
    if fault:
        return Decoded(None, None, declared, source, fault)
    if bom and codec not in ("utf-8", "ascii"):
        text = f"a UTF-8 byte order mark, but the character set is {declared or sender_default} ({source})"
        return Decoded(None, codec, declared, source, Fault(DATA_TYPE_ERROR, text, MSH_18))
    return _strict(body, "utf-8" if bom else codec, declared, source)


def _consistent_declaration(body: bytes, declared: str, sender_default: str | None) -> str:
    """MSH-18 as read after decoding the MSH segment with a codec, for the first codec whose reading names
    that same codec (or names nothing, when that codec is the sender's default). A multi-byte character
    before MSH-18 whose trail byte is the field separator (GBK 億 is 0x83 0x7C) makes the raw count wrong;
    decoding first makes it right, and requiring the reading to agree with the codec keeps this a check of
    what the sender declared, not a guess. Without an agreeing codec the raw reading stands (and is judged)."""
    body = body.lstrip(b" \t\r\n")
    line = body.split(b"\r", 1)[0] if b"\r" in body else body.split(b"\n", 1)[0]
    default_codec = codec_for(sender_default) if sender_default else None
    candidates = dict.fromkeys(c for c in (codec_for(declared), default_codec, "utf-8", "gb18030", "big5") if c)
    for codec in candidates:
        try:
            text = line.decode(codec)
        except UnicodeDecodeError:
            continue
        reading = _declared_in_text(text)
        if reading is None:
            continue
        if (reading and codec_for(reading) == codec) or (not reading and codec == default_codec):
            return reading
    return declared


def _declared_in_text(line: str) -> str | None:
    """``declared_charset`` on an already decoded MSH segment."""
    if not line.startswith("MSH") or len(line) < 5 or line[3] in "\r\n":
        return None
    fields = line.split(line[3], 18)  # ``line`` is the MSH segment alone, cut as the tokenizer cuts it
    if len(fields) < 18:
        return ""
    return fields[17].split(fields[1][1:2] or "~", 1)[0].strip()


def _choose(declared: str, sender_default: str | None) -> tuple[str | None, str, Fault | None]:
    if declared:
        source, value = "MSH-18", declared
    elif sender_default:
        source, value = "sender default", sender_default
    else:
        return "ascii", "HL7 default", None
    if _normalised(value) in _REFUSED:
        text = f"character set {value!r} ({source}) cannot be carried by MLLP framing; send UTF-8 or GB 18030-2000"
        return None, source, Fault(TABLE_VALUE_NOT_FOUND, text, MSH_18)
    codec = codec_for(value)
    if codec is None:
        text = f"character set {value!r} ({source}) is not in HL7 table 0211 nor a known alias"
        return None, source, Fault(TABLE_VALUE_NOT_FOUND, text, MSH_18)
    return codec, source, None


def _strict(body: bytes, codec: str, declared: str, source: str) -> Decoded:
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as error:
        what = declared or ("none" if source == "sender default" else "none, so ASCII")
        text = (
            f"byte 0x{body[error.start]:02X} at offset {error.start} is not valid {codec} "
            f"(MSH-18: {what}; read as {source}){_hint(body, codec)}"
        )
        return Decoded(None, codec, declared, source, Fault(DATA_TYPE_ERROR, text, MSH_18))
    if codec in _DENSE and not body.isascii():
        fault = _utf8_in_disguise(body, codec, declared, source)
        if fault is not None:
            return Decoded(None if fault.is_error else text, codec, declared, source, fault)
    return Decoded(text, codec, declared, source)


# Codecs under which almost any byte pair is a character, so a UTF-8 message mislabelled with them decodes
# "successfully" into other characters (刘美华 in UTF-8 reads as 鍒榐缇庡崕 in GB18030).
_DENSE = {"gb18030", "big5", "euc_kr"}
_UTF8_EVIDENCE = 3


def _utf8_in_disguise(body: bytes, codec: str, declared: str, source: str) -> Fault | None:
    """A dense multi-byte declaration whose bytes are also valid UTF-8 with non-ASCII characters in it. Text
    really written in GBK is seldom valid UTF-8 by chance (about one common character in ten is, so three in a
    row about one in a thousand), while UTF-8 text is always valid UTF-8: from three non-ASCII characters on the
    declaration is taken as wrong (E), below that the message is read as declared with a warning (W)."""
    try:
        as_utf8 = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    count = sum(1 for character in as_utf8 if ord(character) > 0x7F)
    what = f"{declared!r}" if source == "MSH-18" else f"{source} {codec}"
    text = f"the character set is {what}, but the bytes are valid UTF-8 ({count} non-ASCII characters)"
    return Fault(DATA_TYPE_ERROR, text, MSH_18, ERROR if count >= _UTF8_EVIDENCE else WARNING)
