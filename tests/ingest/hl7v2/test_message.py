"""The tokenizer: segments however they are terminated, the message's own encoding characters, MSH counted as
the standard counts it, repetitions / components / subcomponents, "" told from empty, escapes decoded when a
value is read, structural faults reported with their table 0357 code and location."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthplatform.ingest.hl7v2.faults import ErrorLocation
from healthplatform.ingest.hl7v2.message import NULL, message_parse

from .samples import (
    ADT_A01_251,
    ADT_A08_23,
    ADT_A40_24,
    MDM_T02_251,
    ORU_R01_28,
    ORU_R01_251,
    SAMPLES,
    wire,
    with_charset,
    with_delimiters,
)


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("terminator", ["\r", "\n", "\r\n"])
def test_every_sample_tokenises_without_fault_whatever_its_segment_terminator(name, terminator):
    segments = SAMPLES[name]
    msg = message_parse(wire(segments, terminator=terminator), sender_default_charset="UTF-8")
    assert msg.faults == []
    assert [s.name for s in msg.segments] == [s[:3] for s in segments]
    assert msg.segment_terminator == terminator
    header = msg.header()
    code, trigger = name.split()[0].split("^")
    assert (header.message_code, header.trigger_event) == (code, trigger)
    assert header.version_id == name.split()[1]


def test_the_header_gives_what_the_intake_needs_before_the_commit():
    header = message_parse(wire(ADT_A01_251)).header()
    assert header.sending_application.namespace_id == "HIS"
    assert (header.sending_facility.namespace_id, header.sending_facility.universal_id) == (
        "SZ001",
        "1.2.156.112604.1.1",
    )
    assert header.sending_facility.universal_id_type == "ISO"
    assert str(header.receiving_facility) == "REGION"
    assert header.timestamp == "20240301083000+0800"
    assert (header.message_code, header.trigger_event, header.message_structure) == ("ADT", "A01", "ADT_A01")
    assert header.control_id == "ADT0001"
    assert (header.processing_id, header.version_id) == ("P", "2.5.1")
    assert (header.accept_ack_type, header.application_ack_type) == ("AL", "NE")
    assert header.character_set == "UNICODE UTF-8"
    assert header.message_type == "ADT^A01"


def test_msh_fields_are_numbered_as_the_standard_counts_them():
    msh = message_parse(wire(ADT_A01_251))["MSH"][0]
    assert msh.value(1) == "|"
    assert msh.value(2) == "^~\\&"  # never split nor unescaped
    assert msh.value(3) == "HIS"
    assert msh.value(9, 2) == "A01"
    assert msh.value(10) == "ADT0001"


def test_repetitions_components_and_subcomponents():
    msg = message_parse(wire(ADT_A01_251))
    pid = msg["PID"][0]
    identifiers = pid.field(3).repetitions()
    assert [(r.value(1), r.value(4), r.value(5)) for r in identifiers] == [
        ("MRN0001", "SZ001", "MR"),
        ("11010519000101000X", "NNCHN", "NI"),
        ("HC99000001", "HC", "HC"),
    ]
    assert msg.get("PID-3[2].1") == "11010519000101000X"
    assert msg.get("PID-5.1") == "张" and msg.get("PID-5.2") == "伟"
    assert msg.get("PID-11.3") == "深圳"
    assert msg.get("PID-3[4]") == "" and msg.get("PID-99") == "" and msg.get("NK1-1") == ""
    assert pid.field(5).components() == ["张", "伟", "", "", "", "", "L"]


def test_subcomponents_are_split_inside_a_component():
    msg = message_parse("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPV1|1|I|W^1^2^H1&1.2.3&ISO\r")
    assert msg.get("PV1-3.4.1") == "H1"
    assert msg.get("PV1-3.4.2") == "1.2.3"
    assert msg.get("PV1-3.4.3") == "ISO"
    assert msg.get("PV1-3.4") == "H1"


def test_explicit_null_is_told_from_empty():
    pid = message_parse(wire(ADT_A08_23), sender_default_charset="UTF-8")["PID"][0]
    assert pid.value(11) is NULL and pid.field(11).is_null
    assert pid.value(13) is NULL
    assert pid.value(12) == "" and pid.field(12).is_empty and not pid.field(12).is_null
    assert not NULL and str(NULL) == '""'


def test_occurrences_and_the_oru_with_thirty_obx():
    msg = message_parse(wire(ORU_R01_251))
    assert len(msg["OBX"]) == 30
    assert [s.sequence for s in msg["OBX"]][:3] == [1, 2, 3]
    assert msg.get("OBX(30)-5") == "30.5"
    assert msg.get("OBX(10)-8") == "H"
    assert msg.segment("OBX", 31) is None
    assert msg["OBX"][4].location(5) == ErrorLocation("OBX", 5, 5)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b\\T\\c\\R\\d\\E\\e", "a^b&c~d\\e"),
        ("line one\\.br\\line two", "line one\nline two"),
        ("\\H\\bold\\N\\", "bold"),
        ("\\X41\\\\X42\\", "AB"),
        ("\\XE5BCA0\\", "张"),  # hex data is bytes in the message's character set
        ("keep \\Zlocal\\ as text", "keep \\Zlocal\\ as text"),
        ("unpaired \\ escape", "unpaired \\ escape"),
        ("C:\\temp\\F\\", "C:\\temp|"),
        ("\\.sp2\\x", "\n\nx"),
        ("\\.in+4\\indented", "indented"),
        ("\\XZZ\\", "\\XZZ\\"),
    ],
)
def test_escape_sequences_are_decoded_when_read(raw, expected):
    msg = message_parse(f"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1|||||CHN|UNICODE UTF-8\rNTE|1||{raw}\r".encode())
    assert msg.codec == "utf-8"
    assert msg["NTE"][0].field(3).text() == expected


def test_escapes_in_a_leaf_do_not_split_it_and_tx_text_keeps_its_components():
    msg = message_parse(wire(MDM_T02_251))
    assert msg.get("OBX-5") == "患者因头痛入院。\n治疗：降压&对症。\n血压 140^90 mmHg"
    assert msg["OBX"][1].field(5).text() == "出院医嘱：规律服药，|复诊| 一周后。"
    assert message_parse(wire(ADT_A01_251)).get("ZPV-2") == "VIP^GOLD"


def test_z_segments_are_kept_in_order():
    msg = message_parse(wire(ADT_A01_251))
    assert msg.segments[-1].name == "ZPV" and msg.get("ZPV-3") == "extra"


@pytest.mark.parametrize("field, msh2", [("#", "$%!@"), ("|", "^~\\&"), ("!", "@#$%"), ("^", "|~\\&")])
def test_the_message_s_own_encoding_characters_are_used(field, msh2):
    msg = message_parse(wire(with_delimiters(ADT_A01_251, field, msh2)))
    assert msg.faults == []
    assert msg.encoding.field == field and msg.encoding.msh2 == msh2
    assert msg.get("PID-3[2].1") == "11010519000101000X"
    assert msg.get("MSH-9.2") == "A01" and msg.get("MSH-2") == msh2
    assert msg.get("ZPV-2") == "VIP" + msh2[0] + "GOLD"  # \S\ is this message's component separator


def test_the_27_truncation_character_is_read_and_its_escape_decoded():
    msg = message_parse(wire(ORU_R01_28))
    assert msg.encoding.truncation == "#"
    assert msg.get("OBX(2)-5") == "长文本被截断##"


def test_lf_inside_a_field_is_data_when_cr_ends_segments():
    msg = message_parse("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rNTE|1||first line\nsecond line\rPID|1\r")
    assert [s.name for s in msg.segments] == ["MSH", "NTE", "PID"]
    assert msg.get("NTE-3") == "first line\nsecond line"


def test_a_line_that_is_not_a_segment_is_joined_back_with_a_warning():
    msg = message_parse("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\nNTE|1||first line\nsecond line\nPID|1\n")
    assert [s.name for s in msg.segments] == ["MSH", "NTE", "PID"]
    assert msg.get("NTE-3") == "first line\nsecond line"
    assert [(f.code, f.severity, f.location) for f in msg.faults] == [(100, "W", ErrorLocation("NTE", 1))]
    assert msg.ok


def test_blank_lines_and_leading_whitespace_are_ignored():
    msg = message_parse(b"\r\n\r\n" + wire(ADT_A40_24, terminator="\r\n") + b"\r\n\r\n", sender_default_charset="UTF-8")
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID", "MRG"] and msg.faults == []


def test_gb18030_message_reads_its_chinese_names():
    msg = message_parse(wire(with_charset(ADT_A08_23, "GB 18030-2000"), codec="gb18030"))
    assert msg.faults == [] and msg.codec == "gb18030"
    assert msg.get("PID-5.1") == "刘" and msg.get("PID-5.2") == "美华"


STRUCTURAL = [
    ("", 100, ErrorLocation("MSH", 1)),
    ("EVN|A01\r", 100, ErrorLocation("MSH", 1)),
    ("FHS|^~\\&\rBHS|^~\\&\r", 100, ErrorLocation("MSH", 1)),
    ("MSH\r", 101, ErrorLocation("MSH", 1, 1)),
    ("MSHA^~\\&|x\r", 102, ErrorLocation("MSH", 1, 1)),
    ("MSH||A|B\r", 101, ErrorLocation("MSH", 1, 2)),
    ("MSH|HISAPP|H1|HP|REG|20240101||ADT^A01|1|P|2.5\r", 102, ErrorLocation("MSH", 1, 2)),
    ("MSH|^^\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r", 102, ErrorLocation("MSH", 1, 2)),
    ("MSH|^~\\&|A|B|C|D|20240101\r", 101, ErrorLocation("MSH", 1, 9, None, 1)),
    ("MSH|^~\\&|A|B|C|D|20240101||ADT|1|P|2.5\r", 101, ErrorLocation("MSH", 1, 9, None, 2)),
    ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01||P|2.5\r", 101, ErrorLocation("MSH", 1, 10)),
    ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1||2.5\r", 101, ErrorLocation("MSH", 1, 11)),
    ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|X|2.5\r", 202, ErrorLocation("MSH", 1, 11)),
    ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P\r", 101, ErrorLocation("MSH", 1, 12)),
    ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|3.0\r", 203, ErrorLocation("MSH", 1, 12)),
]


@pytest.mark.parametrize("text, code, location", STRUCTURAL)
def test_structural_faults_are_reported_with_code_and_location_not_raised(text, code, location):
    msg = message_parse(text.encode())
    assert (code, location) in [(f.code, f.location) for f in msg.faults]
    assert not msg.ok
    assert all(f.code != 207 for f in msg.faults)


def test_a_short_msh_reports_every_missing_required_field():
    msg = message_parse(b"MSH|^~\\&|HIS")
    assert sorted(f.location.field for f in msg.faults) == [9, 10, 11, 12]


def test_a_short_msh2_is_completed_with_a_warning():
    msg = message_parse("MSH|^~|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||X\\F\\Y\r")
    assert msg.ok and [(f.code, f.severity) for f in msg.faults] == [(102, "W")]
    assert msg.encoding.msh2 == "^~\\&"


def test_an_unknown_acknowledgment_condition_is_a_warning():
    msg = message_parse("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5|||XX|AL\r")
    assert msg.ok and [(f.code, f.location.field, f.severity) for f in msg.faults] == [(103, 15, "W")]


def test_an_undecodable_message_keeps_its_msh_for_the_ack_and_reports_the_charset():
    raw = wire(with_charset(ADT_A08_23, "UTF-8"), codec="gb18030")
    msg = message_parse(raw)
    assert [f.location for f in msg.faults] == [ErrorLocation("MSH", 1, 18)]
    assert [s.name for s in msg.segments] == ["MSH"]
    assert msg.header().control_id == "A08-7781"


def test_a_path_that_is_not_a_path_is_a_programming_error():
    with pytest.raises(ValueError, match="not a value path"):
        message_parse(wire(ADT_A08_23)).get("PID.3")


def _read_everything(msg):
    msg.header()
    for segment in msg.segments:
        for number in range(1, len(segment) + 1):
            field = segment.field(number)
            list(field.leaves())
            field.text()
            field.repetitions()
            segment.value(number, 2, 2, 2)


@given(st.binary(max_size=400))
def test_the_tokenizer_never_raises_on_arbitrary_bytes(data):
    msg = message_parse(data)
    _read_everything(msg)
    assert all(f.code != 207 for f in msg.faults)


HL7ISH = list('MSHPIDOBX|^~\\&#$%!@\r\n"FSTREPX0123456789ABCDEF .br张')
hl7ish = st.text(alphabet=st.sampled_from(HL7ISH), max_size=300)


@given(hl7ish)
def test_the_tokenizer_never_raises_on_text_that_looks_like_hl7(text):
    for data in ("MSH" + text, "MSH|^~\\&|" + text, text):
        msg = message_parse(data)
        _read_everything(msg)
        assert all(f.code != 207 for f in msg.faults)


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize(
    "declared, codec, default",
    [
        ("GB 18030-2000", "gb18030", None),
        ("", "gb18030", "GBK"),
        ("UNICODE UTF-8", "utf-8", None),
        ("", "utf-8", "UTF-8"),
    ],
)
def test_every_sample_reads_the_same_in_gb18030_and_utf8(name, declared, codec, default):
    segments = with_charset(SAMPLES[name], declared)
    msg = message_parse(wire(segments, codec=codec), sender_default_charset=default)
    assert msg.faults == [] and msg.codec == codec
    assert msg.get("PID-5.1") in ("张", "刘", "陈")
    assert msg.charset_source == ("MSH-18" if declared else "sender default")
