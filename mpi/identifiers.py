"""The resident identity number (公民身份号码), GB 11643-1999.

18 characters: a 6-digit address code (the administrative division, GB/T
2260, where the number was first issued), the 8-digit birth date YYYYMMDD, a
3-digit sequence whose last digit is odd for men and even for women, and a
check character computed by ISO 7064 MOD 11-2 over the first 17 digits (the
value 10 is written ``X``). Numbers issued before 1999 have 15 digits: no
century in the birth date and no check character.

A number that fails these rules is kept and flagged by the MPI, never used as
a trusted key; this module only says what is wrong.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo

# ISO 7064 MOD 11-2: weight of position i (1-based from the left) is 2^(18-i) mod 11.
ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
ID_CHECK_CHARS = "10X98765432"  # check character for (sum of weighted digits) mod 11

# ASCII digits only: \d would also take Arabic-Indic and other Unicode digits.
_ID18_RE = re.compile(r"^[0-9]{17}[0-9X]$")
_ID15_RE = re.compile(r"^[0-9]{15}$")
# Birth dates are calendar days in China: "today" is the Shanghai date, not the server's (often UTC).
_CHINA = ZoneInfo("Asia/Shanghai")


class ResidentIdError(ValueError):
    """A resident identity number that breaks GB 11643; ``code`` says which rule."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ResidentId:
    """A resident identity number that passed every GB 11643 rule, with its parts."""

    number: str
    division_code: str
    birth_date: dt.date
    sequence: int

    @property
    def sex(self) -> str:
        """``male`` or ``female``, by the parity of the sequence (GB 11643 §5.3)."""
        return "male" if self.sequence % 2 else "female"


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def normalize_resident_id(value: str) -> str:
    """Upper-cases the check character and drops spaces, as clerks and scanners vary."""
    # NFKC turns the full-width digits and Ｘ that Chinese input methods type into ASCII.
    return re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", value or "")).upper()


def parse_resident_id(value: str, *, today: dt.date | None = None) -> ResidentId:
    """Validates an 18-character number and returns its parts; raises ``ResidentIdError``."""
    number = normalize_resident_id(value)
    if not _ID18_RE.match(number):
        raise ResidentIdError("format", "a resident identity number has 17 digits and a check digit or X")
    if id_check_char(number[:17]) != number[17]:
        raise ResidentIdError("check", "the check character does not match the first 17 digits")
    if number[0] == "0" or number[0] == "9":
        raise ResidentIdError("division", "the address code is not a GB/T 2260 division")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ResidentIdError("birth_date", "the embedded birth date is not a calendar date") from None
    today = today or dt.datetime.now(_CHINA).date()
    if birth > today or birth.year < 1870:
        raise ResidentIdError("birth_date", "the embedded birth date is in the future or impossibly old")
    return ResidentId(number=number, division_code=number[:6], birth_date=birth, sequence=int(number[14:17]))


def make_resident_id(division_code: str, birth_date: dt.date, sequence: int) -> str:
    """Builds a valid 18-character number (used by the synthetic generator and tests)."""
    if not (len(division_code) == 6 and division_code.isdigit()):
        raise ValueError("division_code must be 6 digits")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be 0..999")
    first17 = f"{division_code}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + id_check_char(first17)


def convert_15_to_18(value: str) -> str:
    """Converts a legacy 15-digit number: the century 19 goes into the birth year, a check is added.

    Every 15-digit number was issued to a person born in the 1900s (they were
    replaced from 1999 on), hence the fixed century.
    """
    number = normalize_resident_id(value)
    if not _ID15_RE.match(number):
        raise ResidentIdError("format", "a legacy resident identity number has 15 digits")
    first17 = number[:6] + "19" + number[6:]
    # Validate the result: a made-up check character must not make a bad date look valid.
    return parse_resident_id(first17 + id_check_char(first17)).number
