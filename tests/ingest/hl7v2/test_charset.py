"""Character sets: chosen from MSH-18 in the raw bytes, else the sender's default, decoded strictly; a wrong or
unknown declaration is a fault at MSH^1^18, never a guess."""

import pytest

from healthplatform.ingest.hl7v2.charset import codec_for, declared_charset, message_decode
from healthplatform.ingest.hl7v2.faults import DATA_TYPE_ERROR, TABLE_VALUE_NOT_FOUND, ErrorLocation

from .samples import ADT_A08_23, wire, with_charset

MSH_18 = ErrorLocation("MSH", 1, 18)


@pytest.mark.parametrize(
    "declared, codec",
    [
        ("UNICODE UTF-8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("UTF8", "utf-8"),
        ("utf-8", "utf-8"),
        ("UNICODE", "utf-8"),
        ("GB 18030-2000", "gb18030"),
        ("GB18030", "gb18030"),
        ("GBK", "gb18030"),
        ("GB2312", "gb18030"),
        ("CP936", "gb18030"),
        ("ASCII", "ascii"),
        ("8859/1", "iso8859-1"),
        ("ISO8859_1", "iso8859-1"),
        ("ISO-8859-15", "iso8859-15"),
        ("BIG-5", "big5"),
    ],
)
def test_table_0211_values_and_field_aliases_map_to_a_codec(declared, codec):
    assert codec_for(declared) == codec
    text = "\r".join(with_charset(ADT_A08_23, declared)) + "\r"
    if codec in ("ascii", "iso8859-1", "iso8859-15"):
        text = text.replace("刘^美华", "LIU^MEIHUA")
    if codec == "big5":
        text = text.replace("刘^美华", "劉^美華")
    decoded = message_decode(text.encode(codec))
    assert (decoded.codec, decoded.declared, decoded.source, decoded.fault) == (codec, declared, "MSH-18", None)
    assert decoded.text == text


@pytest.mark.parametrize("codec", ["utf-8", "gb18030"])
def test_an_undeclared_charset_is_the_senders_registered_default(codec):
    raw = wire(ADT_A08_23, codec=codec)
    decoded = message_decode(raw, sender_default="GBK" if codec == "gb18030" else "UTF-8")
    assert decoded.fault is None and decoded.source == "sender default"
    assert "刘^美华" in decoded.text


def test_without_declaration_nor_default_the_hl7_default_is_ascii_and_chinese_bytes_are_a_fault():
    decoded = message_decode(wire(ADT_A08_23, codec="gb18030"))
    assert decoded.text is None and decoded.source == "HL7 default"
    fault = decoded.fault
    assert (fault.code, fault.location, fault.severity) == (DATA_TYPE_ERROR, MSH_18, "E")
    assert "offset" in fault.text and "valid GB18030" in fault.text
    assert "刘" not in fault.text


def test_utf8_declared_gb18030_is_reported_although_gb18030_would_decode_it_into_other_characters():
    raw = wire(with_charset(ADT_A08_23, "GB 18030-2000"), codec="utf-8")
    assert "鍒榐缇庡崕" in raw.decode("gb18030")  # what a strict decode alone would have stored
    decoded = message_decode(raw)
    assert decoded.text is None
    assert (decoded.fault.code, decoded.fault.location, decoded.fault.severity) == (DATA_TYPE_ERROR, MSH_18, "E")
    assert "valid UTF-8" in decoded.fault.text


def test_utf8_sent_by_a_sender_registered_as_gbk_is_reported_the_same_way():
    decoded = message_decode(wire(ADT_A08_23, codec="utf-8"), sender_default="GBK")
    assert decoded.text is None and decoded.fault.severity == "E" and "sender default" in decoded.fault.text


def test_one_or_two_chinese_characters_valid_in_both_are_read_as_declared_with_a_warning():
    segments = with_charset(ADT_A08_23, "GBK")
    # 一 is 0xD2 0xBB in GBK, which is also UTF-8 (Cyrillic һ): one such character proves nothing.
    segments[2] = segments[2].replace("刘^美华", "LIU^一")
    decoded = message_decode(wire(segments, codec="gb18030"))
    assert "LIU^一" in decoded.text and decoded.fault.severity == "W"


def test_gbk_text_declared_utf8_is_an_error_at_the_first_bad_byte():
    decoded = message_decode(wire(with_charset(ADT_A08_23, "UTF-8"), codec="gb18030"))
    assert decoded.text is None and decoded.fault.code == DATA_TYPE_ERROR
    assert "is not valid utf-8" in decoded.fault.text and "valid GB18030" in decoded.fault.text


@pytest.mark.parametrize("declared", ["KOI8-R", "ISO IR87", "Windows-1252", "UNICODE UTF-16"])
def test_an_unknown_or_unframeable_declaration_is_table_value_not_found(declared):
    decoded = message_decode(wire(with_charset(ADT_A08_23, declared)))
    assert decoded.text is None
    assert (decoded.fault.code, decoded.fault.location) == (TABLE_VALUE_NOT_FOUND, MSH_18)


def test_an_unknown_sender_default_is_a_fault_too():
    decoded = message_decode(wire(ADT_A08_23), sender_default="EBCDIC")
    assert decoded.fault.code == TABLE_VALUE_NOT_FOUND and "sender default" in decoded.fault.text


def test_msh_18_repeats_and_the_first_repetition_is_the_default_charset():
    assert declared_charset(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5|||||CHN|UNICODE UTF-8~GB 18030-2000\r") == (
        "UNICODE UTF-8"
    )


def test_a_utf8_byte_order_mark_is_dropped_and_contradicts_any_other_declaration():
    raw = wire(with_charset(ADT_A08_23, "UTF-8"))
    assert message_decode(b"\xef\xbb\xbf" + raw).text == raw.decode()
    clash = message_decode(b"\xef\xbb\xbf" + wire(with_charset(ADT_A08_23, "GBK"), codec="gb18030"))
    assert clash.fault.code == DATA_TYPE_ERROR


@pytest.mark.parametrize("facility", ["億達醫院", "九龍區醫院"])
def test_gbk_trail_bytes_equal_to_a_delimiter_before_msh_18_do_not_move_it(facility):
    # 億 is 0x83 0x7C ("|" as trail byte) and 區 0x85 0x5E ("^"): counting raw separators misplaces MSH-18.
    segments = with_charset(ADT_A08_23, "GBK")
    segments[0] = segments[0].replace("GZ002", facility)
    raw = wire(segments, codec="gb18030")
    assert b"|" in facility.encode("gb18030") or b"^" in facility.encode("gb18030")
    decoded = message_decode(raw)
    assert decoded.fault is None and decoded.codec == "gb18030"
    assert facility in decoded.text


def test_bytes_that_are_not_hl7_read_no_declaration():
    assert declared_charset(b"GET / HTTP/1.1\r\n") is None
    assert message_decode(b"GET / HTTP/1.1\r\n").fault is None  # ASCII: the tokenizer reports the missing MSH
