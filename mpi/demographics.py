"""Demographics as sources send them, and the normalised profile the matcher compares.

A source sends a name in Chinese characters (surname first, no space), in
pinyin or another Latin script in any order and case, or split into family and
given parts (HL7 XPN.1/XPN.2, FHIR ``HumanName.family``/``given``). Birth dates
arrive typed by hand, phones with prefixes, addresses with or without the
province and city. ``profile_build`` turns all of that into one comparable
``Profile``; ``blocking_keys`` derives the index keys that find candidates.

Nothing here touches the database, so the matcher's rules can be tested (and
property-tested) on plain values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import jellyfish
from pypinyin import Style, lazy_pinyin
from pypinyin.pinyin_dict import pinyin_dict

from mpi.identifiers import ResidentIdError, convert_15_to_18, normalize_resident_id, parse_resident_id

SEXES = ("male", "female")

# Two-character surnames (复姓): without them 欧阳娜娜 would be surname 欧, given 阳娜娜.
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "端木",
        "轩辕",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "万俟",
        "单于",
        "闻人",
        "澹台",
        "公冶",
        "太史",
        "申屠",
        "钟离",
        "宗政",
        "濮阳",
        "淳于",
        "赫连",
        "拓跋",
        "歐陽",
        "諸葛",
        "長孫",
        "東方",
    }
)
# Surnames read differently from the everyday reading of their character
# (曾 zēng not céng): pinyin typed by a clerk follows the surname reading.
SURNAME_READINGS = {
    "曾": "zeng",
    "单": "shan",
    "解": "xie",
    "仇": "qiu",
    "朴": "piao",
    "查": "zha",
    "区": "ou",
    "盖": "ge",
    "乐": "yue",
    "覃": "qin",
    "尉": "yu",
    "缪": "miao",
    "召": "shao",
    "翟": "zhai",
    "藏": "zang",
    "种": "chong",
    "秘": "bi",
    "重": "chong",
    "折": "she",
    "员": "yun",
}
_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_TOKEN_RE = re.compile(r"[a-z]+")
# Words that are not part of anyone's name but that registrars type into the name field.
_NAME_NOISE = frozenset({"mr", "mrs", "ms", "miss", "dr", "jr", "sr", "ii", "iii"})


class DemographicsError(ValueError):
    """Demographics that cannot be registered at all; the message says what is missing."""


@dataclass(frozen=True)
class Demographics:
    """One registration's demographics, exactly as the source sent them (strings, not parsed)."""

    name: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    sex: str | None = None
    birth_date: str | dt.date | None = None
    phone: str | None = None
    address: str | None = None
    resident_id: str | None = None
    health_card: str | None = None
    # Other documents: (type, value), type one of DOCUMENT_TYPES.
    documents: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict:
        data = {k: v for k, v in vars(self).items() if v not in (None, "", ())}
        if isinstance(self.birth_date, dt.date):
            data["birth_date"] = self.birth_date.isoformat()
        if self.documents:
            data["documents"] = [list(d) for d in self.documents]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Demographics:
        values = {k: data.get(k) for k in vars(cls()) if k in data}
        values["documents"] = tuple(tuple(d) for d in data.get("documents") or ())
        return cls(**values)


# Identity documents other than the resident identity number, with the
# shapes their issuers use. A value that does not fit is kept and flagged.
DOCUMENT_TYPES = {
    "passport": re.compile(r"^[A-Z0-9]{5,20}$"),
    # 港澳居民来往内地通行证 (H/M + 8 or 10 digits) and 台湾居民来往大陆通行证 (8 digits).
    "hk_macau_permit": re.compile(r"^[HM][0-9]{8}([0-9]{2})?$"),
    "taiwan_permit": re.compile(r"^[0-9]{8}([0-9]{2})?$"),
    # 外国人永久居留身份证: 15 characters (old) or 18 (2023 format, starting 9).
    "foreign_permanent_resident": re.compile(r"^([A-Z]{3}[0-9]{12}|9[0-9]{16}[0-9X])$"),
}
HEALTH_CARD_RE = re.compile(r"^[0-9A-Z]{8,24}$")


@dataclass(frozen=True)
class Flag:
    """Something wrong or doubtful in received demographics: kept, shown, never trusted."""

    code: str
    element: str
    message: str

    def as_json(self) -> dict:
        return {"code": self.code, "element": self.element, "message": self.message}


@dataclass
class Profile:
    """Normalised demographics of one identity: what the matcher compares and blocks on."""

    hanzi: str = ""  # the name in Chinese characters, if it was written so
    family: str = ""  # Latin (pinyin) family name, lower case, no spaces, when known
    given: str = ""  # Latin given name(s), joined
    tokens: tuple[str, ...] = ()  # the Latin name tokens in the order received
    sounds: tuple[str, ...] = ()  # "family given" sound keys, one per plausible order
    sex: str | None = None
    birth_date: dt.date | None = None
    birth_year_only: bool = False
    phone: str | None = None
    address: str | None = None
    address_tokens: tuple[str, ...] = ()
    resident_id: str | None = None  # as received, normalised; trusted only if resident_id_valid
    resident_id_valid: bool = False
    health_card: str | None = None
    documents: tuple[tuple[str, str], ...] = ()
    flags: list[Flag] = field(default_factory=list)

    @property
    def has_name(self) -> bool:
        return bool(self.hanzi or self.tokens)

    @property
    def latin(self) -> str:
        """The name as one Latin string in the received order (for display and distance)."""
        return " ".join(self.tokens)

    def as_json(self) -> dict:
        return {
            "hanzi": self.hanzi,
            "family": self.family,
            "given": self.given,
            "tokens": list(self.tokens),
            "sounds": list(self.sounds),
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "birth_year_only": self.birth_year_only,
            "phone": self.phone,
            "address": self.address,
            "address_tokens": list(self.address_tokens),
            "resident_id": self.resident_id,
            "resident_id_valid": self.resident_id_valid,
            "health_card": self.health_card,
            "documents": [list(d) for d in self.documents],
        }

    @classmethod
    def from_json(cls, data: dict) -> Profile:
        birth = data.get("birth_date")
        return cls(
            hanzi=data.get("hanzi", ""),
            family=data.get("family", ""),
            given=data.get("given", ""),
            tokens=tuple(data.get("tokens", ())),
            sounds=tuple(data.get("sounds", ())),
            sex=data.get("sex"),
            birth_date=dt.date.fromisoformat(birth) if birth else None,
            birth_year_only=data.get("birth_year_only", False),
            phone=data.get("phone"),
            address=data.get("address"),
            address_tokens=tuple(data.get("address_tokens", ())),
            resident_id=data.get("resident_id"),
            resident_id_valid=data.get("resident_id_valid", False),
            health_card=data.get("health_card"),
            documents=tuple(tuple(d) for d in data.get("documents", ())),
        )


# --- names -------------------------------------------------------------------


def _strip_tone(syllable: str) -> str:
    plain = unicodedata.normalize("NFKD", syllable).replace("ü", "v")
    return "".join(c for c in plain if not unicodedata.combining(c)).replace("u\u0308", "v")


@lru_cache(maxsize=1)
def pinyin_syllables() -> frozenset[str]:
    """Every toneless pinyin syllable pypinyin knows (ü written v), for telling pinyin from other Latin names."""
    syllables = set()
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            syllables.add(_strip_tone(reading).lower())
    # "lü"/"nü" are typed "lu"/"nu", "lyu", or "lv"; accept all.
    syllables.update({"lyu", "nyu", "lue", "nue"})
    return frozenset(s for s in syllables if s.isascii() and s.isalpha())


@lru_cache(maxsize=65536)
def pinyin_split(token: str) -> tuple[str, ...] | None:
    """Splits a Latin token into pinyin syllables ("xiaoming" -> xiao, ming), or None if it is not pinyin."""
    syllables = pinyin_syllables()
    n = len(token)
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[0] = ()
    for end in range(1, n + 1):
        # Longest syllable first at each step: "xian" over "xi"+"an" when both parse.
        for start in range(max(0, end - 6), end):
            prev = best[start]
            if prev is not None and token[start:end] in syllables:
                candidate = (*prev, token[start:end])
                if best[end] is None or len(candidate) < len(best[end]):
                    best[end] = candidate
    return best[n]


# Sounds that speakers of southern Mandarin and clerks mix up (模糊音): the
# retroflex and flat initials, n/l, and the front/back nasal finals.
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("l", "n"))
_FUZZY_FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"), ("ong", "on"))


def _fuzzy_syllable(syllable: str) -> str:
    for old, new in _FUZZY_INITIALS:
        if syllable.startswith(old):
            syllable = new + syllable[len(old) :]
            break
    for old, new in _FUZZY_FINALS:
        if syllable.endswith(old):
            return syllable[: -len(old)] + new
    return syllable.replace("v", "u")


@lru_cache(maxsize=65536)
def token_sound(token: str) -> str:
    """A sound key for one name token: fuzzy pinyin if the token is pinyin, else Metaphone."""
    syllables = pinyin_split(token)
    if syllables:
        return "".join(_fuzzy_syllable(s) for s in syllables)
    return jellyfish.metaphone(token).lower() or token


def _latin_tokens(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return [t for t in _LATIN_TOKEN_RE.findall(plain) if t not in _NAME_NOISE]


@lru_cache(maxsize=32768)
def char_pinyin(char: str) -> str:
    """Toneless pinyin of one character, read as in a name (character by character, not as a phrase)."""
    # pypinyin also reads traditional characters (張曉明 -> zhang xiao ming).
    return lazy_pinyin(char, style=Style.NORMAL)[0].lower()


def hanzi_pinyin(hanzi: str) -> tuple[str, str]:
    """(family, given) pinyin of a name written in characters, surname readings and 复姓 respected."""
    split = 2 if hanzi[:2] in COMPOUND_SURNAMES else 1
    surname, given = hanzi[:split], hanzi[split:]
    family = "".join(SURNAME_READINGS.get(c) or char_pinyin(c) for c in surname)
    return family, "".join(char_pinyin(c) for c in given)


def _name_sounds(family: str, given: str, tokens: list[str], split_known: bool) -> tuple[str, ...]:
    if split_known or len(tokens) < 2:
        if not (family or given):
            return ()
        return (f"{token_sound(family)} {token_sound(given)}",)
    # Order unknown ("Xiaoming Wang", "WANG Xiaoming", "Smith John"): the family
    # name is the first or the last token; offer both readings.
    first = f"{token_sound(tokens[0])} {token_sound(''.join(tokens[1:]))}"
    last = f"{token_sound(tokens[-1])} {token_sound(''.join(tokens[:-1]))}"
    return tuple(dict.fromkeys((first, last)))


def _name_profile(profile: Profile, d: Demographics) -> None:
    raw = unicodedata.normalize("NFKC", " ".join(p for p in (d.name,) if p) or "").strip()
    family_raw = unicodedata.normalize("NFKC", d.family_name or "").strip()
    given_raw = unicodedata.normalize("NFKC", d.given_name or "").strip()
    if not raw and (family_raw or given_raw):
        raw = (family_raw + given_raw) if _CJK_RE.search(family_raw + given_raw) else f"{family_raw} {given_raw}"
    compact = re.sub(r"[\s·•・.\-]", "", raw)
    if compact and _CJK_RE.search(compact):
        hanzi = "".join(_CJK_RE.findall(compact))
        profile.hanzi = hanzi
        if family_raw and _CJK_RE.search(family_raw) and hanzi.startswith(family_raw):
            family = "".join(SURNAME_READINGS.get(c) or char_pinyin(c) for c in family_raw)
            given = "".join(char_pinyin(c) for c in hanzi[len(family_raw) :])
        else:
            family, given = hanzi_pinyin(hanzi)
        profile.family, profile.given = family, given
        profile.tokens = (family, given) if given else (family,)
        profile.sounds = _name_sounds(family, given, [], split_known=True)
        return
    if family_raw or given_raw:
        family_tokens, given_tokens = _latin_tokens(family_raw), _latin_tokens(given_raw)
        if family_tokens and given_tokens:
            profile.family, profile.given = "".join(family_tokens), "".join(given_tokens)
            profile.tokens = (*family_tokens, *given_tokens)
            profile.sounds = _name_sounds(profile.family, profile.given, [], split_known=True)
            return
    tokens = [t for t in _latin_tokens(raw) if len(t) > 1] or _latin_tokens(raw)
    profile.tokens = tuple(tokens)
    if len(tokens) == 1:
        profile.family = tokens[0]
    profile.sounds = _name_sounds(tokens[0] if tokens else "", "", tokens, split_known=len(tokens) < 2)


# --- other fields ------------------------------------------------------------


def parse_birth_date(value: str | dt.date | None, *, today: dt.date) -> tuple[dt.date | None, bool, Flag | None]:
    """(date, year_only, flag): accepts ISO dates, YYYYMMDD, YYYY-MM and YYYY (HL7 TS precision)."""
    if value is None or value == "":
        return None, False, None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        parsed, year_only = value, False
    else:
        text = unicodedata.normalize("NFKC", str(value)).strip()
        digits = re.sub(r"[\s/.\-年月日]", "", text)
        if not digits.isdigit() or len(digits) not in (4, 6, 8):
            return None, False, Flag("birth_date_invalid", "birth_date", "birth date is not a date (YYYY-MM-DD)")
        try:
            year = int(digits[:4])
            month = int(digits[4:6]) if len(digits) >= 6 else 1
            day = int(digits[6:8]) if len(digits) == 8 else 1
            parsed = dt.date(year, month, day)
        except ValueError:
            return None, False, Flag("birth_date_invalid", "birth_date", "birth date is not a calendar date")
        year_only = len(digits) < 8
    if parsed > today:
        return None, False, Flag("birth_date_future", "birth_date", "birth date is in the future")
    if parsed.year < 1880:
        return None, False, Flag("birth_date_invalid", "birth_date", "birth date is before 1880")
    return parsed, year_only, None


def normalize_phone(value: str | None) -> str | None:
    """Digits only, without the +86 / 0086 country prefix: the last 11 digits of a mobile number."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", value or ""))
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) in (11, 10, 12):
            digits = digits[len(prefix) :]
    return digits if len(digits) >= 5 else None


# Administrative prefixes that some systems type and others leave out.
_ADDRESS_PREFIX_RE = re.compile(r"^(.{2,8}?(省|自治区))?(.{2,8}?市)?(.{2,8}?(区|县))?")
_ADDRESS_TOKEN_RE = re.compile(r"[0-9]+|[a-z]+|[\u3400-\u9fff]")


def normalize_address(value: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(comparable text, tokens): NFKC, lower case, no spaces or punctuation, CJK province/city/district dropped."""
    text = unicodedata.normalize("NFKC", value or "").lower()
    text = re.sub(r"[\s,，.。#\-/]", "", text)
    if not text:
        return None, ()
    if _CJK_RE.search(text):
        text = _ADDRESS_PREFIX_RE.sub("", text, count=1) or text
        return text, tuple(_ADDRESS_TOKEN_RE.findall(text))
    tokens = tuple(_latin_tokens(value or "")) + tuple(re.findall(r"[0-9]+", value or ""))
    return text, tokens


def profile_build(d: Demographics, *, today: dt.date | None = None) -> Profile:
    """Normalises and checks demographics; what is wrong is flagged in ``profile.flags``, never fixed silently."""
    today = today or dt.date.today()
    p = Profile()
    _name_profile(p, d)
    if not p.has_name:
        p.flags.append(Flag("name_missing", "name", "no name was sent"))
    sex = (d.sex or "").strip().lower()
    p.sex = {"m": "male", "f": "female", "男": "male", "女": "female", "1": "male", "2": "female"}.get(sex, sex)
    if p.sex not in SEXES:
        p.sex = None
    p.birth_date, p.birth_year_only, flag = parse_birth_date(d.birth_date, today=today)
    if flag:
        p.flags.append(flag)
    p.phone = normalize_phone(d.phone)
    p.address, p.address_tokens = normalize_address(d.address)
    _resident_id_profile(p, d.resident_id, today)
    card = re.sub(r"\s", "", unicodedata.normalize("NFKC", d.health_card or "")).upper()
    if card:
        p.health_card = card
        if not HEALTH_CARD_RE.match(card):
            p.flags.append(Flag("health_card_invalid", "health_card", "health card number is not 8-24 digits/letters"))
    docs = []
    for kind, value in d.documents:
        value = re.sub(r"\s", "", unicodedata.normalize("NFKC", value or "")).upper()
        if not value:
            continue
        pattern = DOCUMENT_TYPES.get(kind)
        if pattern is None:
            p.flags.append(Flag("document_type_unknown", f"documents.{kind}", "unknown identity document type"))
            continue
        if not pattern.match(value):
            p.flags.append(Flag("document_invalid", f"documents.{kind}", f"{kind} number has an unexpected form"))
        docs.append((kind, value))
    p.documents = tuple(sorted(set(docs)))
    return p


def _resident_id_profile(p: Profile, value: str | None, today: dt.date) -> None:
    number = normalize_resident_id(value or "")
    if not number:
        return
    if len(number) == 15 and number.isdigit():
        try:
            number = convert_15_to_18(number)
            p.flags.append(Flag("resident_id_converted", "resident_id", "15-digit number converted to 18 digits"))
        except ResidentIdError as exc:
            p.resident_id = number
            p.flags.append(Flag(f"resident_id_{exc.code}", "resident_id", str(exc)))
            return
    p.resident_id = number
    try:
        rid = parse_resident_id(number, today=today)
    except ResidentIdError as exc:
        p.flags.append(Flag(f"resident_id_{exc.code}", "resident_id", str(exc)))
        return
    consistent = True
    if p.birth_date and not p.birth_year_only and rid.birth_date != p.birth_date:
        consistent = False
        p.flags.append(
            Flag("resident_id_birth_date_conflict", "resident_id", "the number's birth date differs from birth_date")
        )
    if p.sex and rid.sex != p.sex:
        consistent = False
        p.flags.append(Flag("resident_id_sex_conflict", "resident_id", "the number's sex digit contradicts sex"))
    p.resident_id_valid = consistent
    # A valid number fills what the registration left out: it *is* the
    # birth date and sex the population register issued it for.
    if consistent:
        if p.birth_date is None or p.birth_year_only:
            p.birth_date, p.birth_year_only = rid.birth_date, False
        p.sex = p.sex or rid.sex


# --- blocking ----------------------------------------------------------------


def key_hash(text: str) -> int:
    """A signed 64-bit hash of a blocking key (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _date_variants(d: dt.date) -> list[dt.date]:
    variants = [d]
    if d.day <= 12 and d.day != d.month:
        variants.append(dt.date(d.year, d.day, d.month))  # day <= 12: always a valid month, and day <= 28
    return variants


def blocking_keys(p: Profile, *, query: bool = False) -> set[str]:
    """Blocking keys of a profile. Several passes, so that one wrong field does not hide the true record:
    identifiers; the birth date (and, when querying, its day/month swap); the phone; the name's sound with
    the birth year, and with the birth month and day (a year typed wrong); the name's sound alone.
    ``query`` adds the variants a query looks for and leaves out the name-alone pass when a birth date
    narrows the search.
    """
    keys: set[str] = set()
    if p.resident_id:
        keys.add(f"id:{p.resident_id}")
    if p.health_card:
        keys.add(f"hc:{p.health_card}")
    for kind, value in p.documents:
        keys.add(f"doc:{kind}:{value}")
    if p.phone:
        keys.add(f"ph:{p.phone}")
    if p.birth_date:
        dates = _date_variants(p.birth_date) if query else [p.birth_date]
        if not p.birth_year_only:
            keys.update(f"dob:{d.isoformat()}" for d in dates)
        for sound in p.sounds:
            keys.add(f"ny:{sound}|{p.birth_date.year}")
            if not p.birth_year_only:
                keys.update(f"nmd:{sound}|{d:%m%d}" for d in dates)
    # The name alone makes big blocks (王伟); stored always, asked only when
    # there is no full birth date to narrow by.
    if not query or not p.birth_date or p.birth_year_only:
        keys.update(f"n:{sound}" for sound in p.sounds)
    return keys
