"""GB 11643 resident identity numbers: check character, sex parity, birth date, legacy numbers."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpi.identifiers import (
    ResidentIdError,
    convert_15_to_18,
    id_check_char,
    make_resident_id,
    parse_resident_id,
)

divisions = st.sampled_from(["110105", "310115", "440106", "440111", "510107", "230102"])
births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 1, 1))
sequences = st.integers(min_value=0, max_value=999)


def test_the_standard_s_own_example_validates():
    # GB 11643-1999 appendix example.
    parsed = parse_resident_id("11010519491231002X")
    assert parsed.birth_date == dt.date(1949, 12, 31)
    assert parsed.division_code == "110105"
    assert parsed.sex == "female"


@given(divisions, births, sequences)
def test_a_made_number_parses_back_to_its_parts(division, birth, sequence):
    parsed = parse_resident_id(make_resident_id(division, birth, sequence))
    assert (parsed.division_code, parsed.birth_date, parsed.sequence) == (division, birth, sequence)


@given(divisions, births, sequences)
def test_sex_follows_the_parity_of_the_sequence(division, birth, sequence):
    parsed = parse_resident_id(make_resident_id(division, birth, sequence))
    assert parsed.sex == ("male" if sequence % 2 else "female")


@given(divisions, births, sequences, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_changing_any_one_digit_breaks_the_check_character(division, birth, sequence, position, delta):
    number = make_resident_id(division, birth, sequence)
    digit = (int(number[position]) + delta) % 10
    altered = number[:position] + str(digit) + number[position + 1 :]
    with pytest.raises(ResidentIdError):
        parse_resident_id(altered)


@given(divisions, births, sequences, st.integers(min_value=0, max_value=15))
def test_swapping_two_adjacent_different_digits_is_detected(division, birth, sequence, position):
    number = make_resident_id(division, birth, sequence)
    a, b = number[position], number[position + 1]
    if a == b:
        return
    swapped = number[:position] + b + a + number[position + 2 :]
    with pytest.raises(ResidentIdError):
        parse_resident_id(swapped)


def test_check_character_ten_is_written_x_and_lowercase_x_is_accepted():
    first17 = "11010519491231002"
    assert id_check_char(first17) == "X"
    assert parse_resident_id(first17 + "x").number == first17 + "X"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("440106199902300011", "birth_date"),  # 30 February
        ("440106199913010011", "birth_date"),  # month 13
        ("440106209901010011", "birth_date"),  # born in the future
        ("44010619990101001", "format"),  # 17 characters
        ("44010619990101001A", "format"),
    ],
)
def test_impossible_birth_dates_and_wrong_formats_say_which_rule(body, code):
    number = body if code == "format" else body[:17] + id_check_char(body[:17])
    with pytest.raises(ResidentIdError) as err:
        parse_resident_id(number, today=dt.date(2026, 11, 24))
    assert err.value.code == code


@given(divisions, births, sequences)
def test_full_width_digits_from_chinese_input_methods_normalise_to_ascii(division, birth, sequence):
    number = make_resident_id(division, birth, sequence)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number)  # ０-９ and Ｘ
    assert parse_resident_id(full_width).number == number


def test_non_ascii_digits_that_do_not_normalise_are_rejected():
    arabic_indic = "".join(chr(0x0660 + int(c)) for c in "11010519491231002") + "X"
    with pytest.raises(ResidentIdError):
        parse_resident_id(arabic_indic)


def test_a_legacy_number_with_an_impossible_date_does_not_become_valid():
    with pytest.raises(ResidentIdError) as err:
        convert_15_to_18("110105991399002")
    assert err.value.code == "birth_date"


def test_legacy_15_digit_number_converts_to_the_18_digit_one():
    assert convert_15_to_18("110105491231002") == "11010519491231002X"


@given(divisions, st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1999, 12, 31)), sequences)
def test_every_legacy_number_converts_to_a_valid_number(division, birth, sequence):
    legacy = f"{division}{birth:%y%m%d}{sequence:03d}"
    assert parse_resident_id(convert_15_to_18(legacy)).birth_date == birth
