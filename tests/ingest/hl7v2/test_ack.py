"""Acknowledgements checked field by field against HL7 v2.5.1 chapter 2 (§2.9, §2.14, MSA, ERR), in each
mode and in the sender's version, and fuzzed: the ACK of any accepted message parses back with MSA-2 equal to
the inbound MSH-10."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthplatform.ingest.hl7v2.ack import ack_build, ack_plan
from healthplatform.ingest.hl7v2.faults import ERROR, WARNING, ErrorLocation, Fault
from healthplatform.ingest.hl7v2.message import EncodingCharacters, message_parse

from .samples import (
    ADT_A01_251,
    ADT_A08_23,
    ADT_A40_24,
    ORM_O01_231,
    ORU_R01_28,
    ORU_R01_251,
    SAMPLES,
    wire,
    with_charset,
    with_delimiters,
)

NOW = dt.datetime(2024, 3, 1, 8, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MISSING_PID_3 = Fault(101, "PID-3 is empty", ErrorLocation("PID", 1, 3))


def build(segments, *, code="AA", faults=(), codec="utf-8", **kwargs):
    msg = message_parse(wire(segments, codec=codec), sender_default_charset="UTF-8")
    assert msg.ok, msg.faults
    ack = ack_build(msg, code=code, faults=faults, control_id="ACK00001", now=NOW, **kwargs)
    return msg, ack, message_parse(ack.payload, sender_default_charset="UTF-8")


def test_the_ack_msh_swaps_sender_and_receiver_and_answers_in_the_senders_version():
    inbound, ack, back = build(ADT_A01_251)
    msh, original = back["MSH"][0], inbound["MSH"][0]
    assert ack.text.startswith("MSH|^~\\&|")
    assert [msh.raw_field(n) for n in (3, 4, 5, 6)] == [original.raw_field(n) for n in (5, 6, 3, 4)]
    assert msh.raw_field(4) == "REGION" and msh.raw_field(6) == "SZ001^1.2.156.112604.1.1^ISO"
    assert msh.value(7) == "20240301083005+0800"
    assert msh.raw_field(9) == "ACK^A01^ACK"
    assert msh.value(10) == "ACK00001" == ack.control_id
    assert msh.value(11) == "P" and msh.value(12) == "2.5.1"
    assert msh.value(15) == "" and msh.value(16) == ""  # an ACK asks for no ACK
    assert msh.value(18) == "UNICODE UTF-8"
    assert back.ok and [s.name for s in back.segments] == ["MSH", "MSA"]


@pytest.mark.parametrize("name", SAMPLES)
def test_msa_echoes_msh_10_for_every_sample(name):
    inbound, _, back = build(SAMPLES[name])
    assert back.get("MSA-1") == "AA"
    assert back["MSA"][0].raw_field(2) == inbound.header().control_id
    assert back.header().version_id == inbound.header().version_id


def test_a_23_ack_has_no_message_structure_component():
    _, _, back = build(ADT_A08_23)
    assert back["MSH"][0].raw_field(9) == "ACK^A08"


def test_the_senders_own_encoding_characters_are_used():
    segments = with_delimiters(ADT_A01_251, "#", "$%!@")
    _, ack, back = build(segments, code="AE", faults=[Fault(101, "a|b^c#d$e", ErrorLocation("PID", 1, 3))])
    assert ack.text.startswith("MSH#$%!@#")
    assert back.get("MSH-9.3") == "ACK" and back.get("MSA-2") == "ADT0001"
    assert back.get("ERR-7") == "a|b^c#d$e"


@pytest.mark.parametrize(
    "msh15, msh16, mode, accept, application",
    [
        ("", "", "original", "NE", "AL"),
        ("AL", "NE", "enhanced", "AL", "NE"),
        ("AL", "AL", "enhanced", "AL", "AL"),
        ("NE", "AL", "enhanced", "NE", "AL"),
        ("ER", "SU", "enhanced", "ER", "SU"),
        ("", "AL", "enhanced", "AL", "AL"),  # MSH-15 empty beside MSH-16: the socket still gets an answer
        ("AL", "", "enhanced", "AL", "NE"),  # MSH-16 empty: no application ACK pushed unasked
        ("XX", "NE", "enhanced", "AL", "NE"),
    ],
)
def test_the_plan_follows_msh_15_and_msh_16(msh15, msh16, mode, accept, application):
    text = f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1|||{msh15}|{msh16}\r"
    plan = ack_plan(message_parse(text).header())
    assert (plan.mode, plan.accept, plan.application) == (mode, accept, application)


@pytest.mark.parametrize(
    "condition, on_success, on_failure",
    [("AL", True, True), ("NE", False, False), ("ER", False, True), ("SU", True, False)],
)
def test_table_0155_conditions_decide_which_acks_are_due(condition, on_success, on_failure):
    header = message_parse(f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1|||{condition}|{condition}\r").header()
    plan = ack_plan(header)
    assert plan.accept_ack_due(accepted=True) is on_success and plan.accept_ack_due(accepted=False) is on_failure
    assert plan.application_ack_due(accepted=True) is on_success
    assert plan.application_ack_due(accepted=False) is on_failure


def test_original_mode_codes_are_aa_ae_ar_and_enhanced_ca_ce_cr():
    original = ack_plan(message_parse(wire(ADT_A08_23), sender_default_charset="UTF-8").header())
    enhanced = ack_plan(message_parse(wire(ADT_A01_251)).header())
    assert [original.code(o) for o in ("accept", "error", "reject")] == ["AA", "AE", "AR"]
    assert [enhanced.code(o) for o in ("accept", "error", "reject")] == ["CA", "CE", "CR"]
    assert original.application_ack_due(accepted=True) and not original.accept_ack_due(accepted=True)


def test_an_ack_is_never_acknowledged():
    plan = ack_plan(message_parse("MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|9|P|2.5.1\rMSA|AA|1\r").header())
    assert not plan.accept_ack_due(accepted=True) and not plan.application_ack_due(accepted=False)


def test_a_251_error_ack_has_err_2_3_4_and_7_and_no_msa_3():
    faults = [MISSING_PID_3, Fault(204, "unknown patient", ErrorLocation("PID", 1, 3, 1, 1), WARNING, "NO_PATIENT")]
    _, _, back = build(ADT_A01_251, code="CE", faults=faults)
    assert back.get("MSA-1") == "CE" and back.get("MSA-3") == ""
    first, second = back["ERR"]
    assert first.raw_field(1) == ""
    assert first.raw_field(2) == "PID^1^3"
    assert first.raw_field(3) == "101^Required field missing^HL70357"
    assert first.value(4) == ERROR and first.value(7) == "PID-3 is empty"
    assert second.raw_field(2) == "PID^1^3^1^1"
    assert second.raw_field(3) == "204^Unknown key identifier^HL70357"
    assert second.value(4) == "W" and second.value(5) == "NO_PATIENT"


@pytest.mark.parametrize("segments", [ADT_A08_23, ADT_A40_24, ORM_O01_231], ids=["2.3", "2.4", "2.3.1"])
def test_a_pre_25_error_ack_has_msa_3_text_and_err_1_eld(segments):
    faults = [MISSING_PID_3, Fault(207, "the inbox is unavailable")]
    _, _, back = build(segments, code="AR", faults=faults)
    assert back.get("MSA-3") == "PID-3 is empty"
    assert len(back["ERR"]) == 1
    err = back["ERR"][0].field(1)
    first, second = err.repetitions()
    assert first.components() == ["PID", "1", "3", "101"]
    assert [first.value(4, s) for s in (1, 2, 3)] == ["101", "Required field missing", "HL70357"]
    assert second.value(4, 1) == "207" and second.value(1) == ""


@pytest.mark.parametrize(
    "text",
    ["a | b", "x ^ y ~ z & w \\ v", "line\rbreak\nand\x1cframe\x0bend", "报错|原因^", "", '""', '"'],
)
def test_fault_texts_with_delimiters_never_break_the_ack(text):
    _, ack, back = build(ADT_A01_251, code="AE", faults=[Fault(102, text, ErrorLocation("OBX", 2, 5))])
    assert 0x0B not in ack.payload and 0x1C not in ack.payload
    assert [s.name for s in back.segments] == ["MSH", "MSA", "ERR"]
    assert back.get("ERR-7") == text
    assert back.get("ERR-2.1") == "OBX" and back.get("ERR-2.2") == "2"


def test_the_ack_is_encoded_in_the_inbound_charset():
    segments = with_charset(ADT_A08_23, "GB 18030-2000")
    msg = message_parse(wire(segments, codec="gb18030"))
    ack = ack_build(msg, code="AE", faults=[Fault(101, "缺少患者标识", ErrorLocation("PID", 1, 3))], now=NOW)
    assert ack.payload.decode("gb18030") == ack.text
    assert message_parse(ack.payload).get("MSA-3") == "缺少患者标识"


def test_a_message_that_could_not_be_decoded_gets_its_ar_with_msh_10_byte_for_byte():
    raw = wire(with_charset(ADT_A08_23, "UTF-8"), codec="gb18030")
    msg = message_parse(raw)
    ack = ack_build(msg, code="AR", faults=msg.faults, now=NOW)
    back = message_parse(ack.payload)
    assert back.get("MSA-2") == "A08-7781" and back.get("ERR-1.4.1") == "102"
    assert back.get("ERR-1.1") == "MSH" and back.get("ERR-1.3") == "18"


def test_a_message_without_msh_gets_an_ack_with_empty_msa_2_in_the_defaults():
    msg = message_parse(b"GET / HTTP/1.1\r\n")
    ack = ack_build(msg, code="AR", faults=msg.faults, now=NOW)
    back = message_parse(ack.payload)
    assert back.encoding.msh2 == "^~\\&" and back.get("MSA-2") == "" and back.get("MSH-12") == "2.5.1"
    assert back.get("ERR-3.1") == "100" and back.get("ERR-2") == "MSH"


def test_an_unknown_ack_code_is_a_programming_error():
    with pytest.raises(ValueError):
        ack_build(message_parse(wire(ADT_A01_251)), code="OK")


# Control ids and fault texts made of the characters that break naive ACK builders.
tricky = st.text(alphabet=st.sampled_from(list('AB12-_.|^~\\&#$%!@"FSTREXP 张')), min_size=1, max_size=24)
delimiter_sets = st.sampled_from([("|", "^~\\&"), ("#", "$%!@"), ("|", "^~\\&#"), ("!", "@#$%")])


@given(tricky, tricky, delimiter_sets, st.sampled_from(["2.3", "2.4", "2.5.1", "2.8"]))
def test_the_ack_of_any_accepted_message_parses_back_with_msa_2_equal_to_msh_10(control, text, delimiters, version):
    field, msh2 = delimiters
    enc = EncodingCharacters(field, *msh2[:4], msh2[4:])
    # The control id as a sender would write it: escaped, or raw with delimiters inside (still one MSH-10).
    raw_id = enc.escape_text(control) if "\\" in control else control.replace(field, "")
    if not raw_id:
        return
    msh = f"MSH{field}{msh2}{field}HIS{field}H1{field}HP{field}REG{field}20240101{field}{field}ADT{msh2[0]}A01"
    msh += f"{field}{raw_id}{field}P{field}{version}{field * 6}UNICODE UTF-8"
    inbound = message_parse(f"{msh}\rPID{field}1\r".encode())
    if not inbound.ok:
        return
    ack = ack_build(inbound, code="AE", faults=[Fault(101, text, ErrorLocation("PID", 1, 3))])
    back = message_parse(ack.payload)
    assert back.ok
    assert back["MSA"][0].raw_field(2) == inbound.header().control_id
    assert back.get("MSA-2") == inbound.get("MSH-10")
    assert back.get("MSA-1") == "AE"
    assert (back.get("MSA-3") if version < "2.5" else back.get("ERR-7")) == text


def test_a_28_ack_keeps_the_truncation_character_and_the_full_message_type():
    _, ack, back = build(ORU_R01_28, code="CA")
    assert ack.text.startswith("MSH|^~\\&#|")
    assert back["MSH"][0].raw_field(9) == "ACK^R01^ACK" and back.get("MSH-12") == "2.8"
    assert back.get("MSA-1") == "CA" and back.get("MSA-2") == "LAB-28-0001"


def test_building_an_ack_does_not_build_the_segments_of_the_message():
    msg = message_parse(wire(ORU_R01_251))
    ack_build(msg, code="AA")
    assert msg._segments is None
