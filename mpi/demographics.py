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
# Common English diminutives and their full forms: registrars type either.
# A nickname sounds like its full name (matching level "sound", not "exact").
_NICKNAME_GROUPS = {
    "william": "bill billy will willy liam",
    "robert": "bob bobby rob robbie bert",
    "richard": "dick rick ricky rich richie",
    "james": "jim jimmy jamie",
    "john": "jack johnny jon",
    "joseph": "joe joey",
    "thomas": "tom tommy",
    "charles": "charlie chuck chas",
    "michael": "mike mikey mick mickey",
    "edward": "ed eddie ted teddy ned",
    "henry": "harry hank",
    "anthony": "tony",
    "daniel": "dan danny",
    "david": "dave davy",
    "christopher": "chris kit",
    "matthew": "matt",
    "nicholas": "nick nicky",
    "stephen": "steve stevie",
    "steven": "steve stevie",
    "andrew": "andy drew",
    "benjamin": "ben benny",
    "samuel": "sam sammy",
    "alexander": "alex alec sandy",
    "peter": "pete",
    "patrick": "pat paddy",
    "lawrence": "larry",
    "raymond": "ray",
    "ronald": "ron ronnie",
    "donald": "don donnie",
    "gerald": "gerry jerry",
    "frederick": "fred freddie",
    "margaret": "maggie meg peggy marge",
    "elizabeth": "liz lizzie beth betty betsy eliza libby",
    "katherine": "kate katie kathy kat kitty",
    "catherine": "cathy cate",
    "jennifer": "jen jenny",
    "susan": "sue susie suzy",
    "patricia": "pat patty trish tricia",
    "deborah": "debbie deb",
    "barbara": "barb babs",
    "rebecca": "becky becca",
    "victoria": "vicky tori",
    "christine": "chris chrissy tina",
    "jessica": "jess jessie",
    "abigail": "abby",
    "dorothy": "dot dottie dolly",
    "eleanor": "ellie nell nora",
    "amelia": "millie",
    "mildred": "millie",
    "charlotte": "lottie",
    "harriet": "hattie",
    "isabella": "izzy",
    "isabel": "izzy",
    "helen": "nell",
    "alexandra": "alex sasha",
    "samantha": "sam",
    "josephine": "jo josie",
    "theresa": "terri tess",
    "judith": "judy",
    "kimberly": "kim",
    "pamela": "pam",
    "cynthia": "cindy",
    "mary": "molly polly mae mamie",
    "olivia": "liv livvy",
    "sarah": "sally sadie",
    "ann": "annie nan nancy",
    "anne": "annie nan",
    "frances": "fran frankie fanny",
    "francis": "frank frankie",
    "virginia": "ginny",
    "caroline": "carrie carol",
    "jacqueline": "jackie",
    "nathaniel": "nate nat",
    "nathan": "nate",
    "zachary": "zach zack",
    "timothy": "tim timmy",
    "kenneth": "ken kenny",
    "gregory": "greg",
    "jeffrey": "jeff",
    "philip": "phil",
    "leonard": "len lenny leo",
    "walter": "walt wally",
    "albert": "al bert",
    "eugene": "gene",
    "vincent": "vince vinny",
}


def _nickname_index() -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for full, nicks in _NICKNAME_GROUPS.items():
        for nick in nicks.split():
            index.setdefault(nick, []).append(full)  # "chris": christopher and christine
    return {nick: tuple(fulls) for nick, fulls in index.items()}


NICKNAMES = _nickname_index()
# CJK unified ideographs, compatibility ideographs, and extensions B-H (rare characters in names: 𬌗).
_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN_TOKEN_RE = re.compile(r"[a-z]+")
# Words that are not part of anyone's name but that registrars type into the name field.
_NAME_NOISE = frozenset({"mr", "mrs", "ms", "miss", "dr", "jr", "jnr", "sr", "snr", "ii", "iii", "iv"})
_GENERATIONS = {
    "jr": "jr", "jnr": "jr", "junior": "jr", "ii": "ii", "sr": "sr", "snr": "sr", "senior": "sr", "iii": "iii",
    "iv": "iv",
}  # fmt: skip


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
    readings: tuple[tuple[str, str], ...] = ()  # plausible (family, given) readings of the name
    sounds: tuple[str, ...] = ()  # sound keys of the readings (family and given sorted)
    sex: str | None = None
    birth_date: dt.date | None = None
    birth_year_only: bool = False
    phone: str | None = None
    address: str | None = None
    address_tokens: tuple[str, ...] = ()
    resident_id: str | None = None  # as received, normalised; trusted only if resident_id_valid
    resident_id_valid: bool = False
    health_card: str | None = None
    health_card_valid: bool = False
    documents: tuple[tuple[str, str], ...] = ()
    # A name given before the resident has one ("BABY BOY A SMITH", "李娜之子"): its exact text,
    # order marks included, or "" for a real name.
    placeholder: str = ""
    generation: str = ""  # Jr., Sr., II, III: a father and son can share every other part of the name
    # Every word and initial of the name, sorted (or the characters): two names are the same in full
    # only if these are equal ("Zoë R. Williams" is not "Zoë Williams" in full).
    full: str = ""
    # Middle names (Latin names of three or more words), for telling "Catherine Patricia" from "Katherine Claire".
    middle: tuple[str, ...] = ()
    middle_all: tuple[str, ...] = ()  # middle names with initials kept ("Patricia J." -> ("j",))
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
            "readings": [list(r) for r in self.readings],
            "placeholder": self.placeholder,
            "generation": self.generation,
            "full": self.full,
            "middle": list(self.middle),
            "middle_all": list(self.middle_all),
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
            "health_card_valid": self.health_card_valid,
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
            readings=tuple(tuple(r) for r in data.get("readings", ())),
            placeholder=data.get("placeholder", ""),
            generation=data.get("generation", ""),
            full=data.get("full", ""),
            middle=tuple(data.get("middle", ())),
            middle_all=tuple(data.get("middle_all", ())),
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
            # Profiles stored before validity was kept: a stored card was valid if it has the card's form.
            health_card_valid=data.get("health_card_valid", bool(HEALTH_CARD_RE.match(data.get("health_card") or ""))),
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
    if not token.isascii():
        return token  # another script: the word itself is its sound key
    syllables = pinyin_split(token)
    if syllables:
        return "".join(_fuzzy_syllable(s) for s in syllables)
    return jellyfish.metaphone(token).lower() or token


def _latin_tokens(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    plain = re.sub(r"['’`]", "", plain)  # O'Neill, D’Angelo: one word
    plain = re.sub(r"(?<=[^\W\d_])-(?=[^\W\d_])", "", plain)  # Smith-Jones, Harris-Clarke: one family name
    # "Mc Donald", "Mac Leod": the prefix belongs to the word after it ("O" alone is an initial).
    plain = re.sub(r"\b(mc|mac)\s+(?=[^\W\d_]{2})", r"\1", plain)
    # Letters of any script (Cyrillic, Hangul, Arabic…) make words too; only Latin ones get phonetic keys.
    return [t for t in re.findall(r"[^\W\d_]+", plain) if t not in _NAME_NOISE]


# Words of the names hospitals give newborns and unidentified patients before they have a name.
_PLACEHOLDER_LATIN = frozenset({"baby", "babe", "infant", "newborn", "boy", "girl", "twin", "unknown", "unnamed", "nn"})
_PLACEHOLDER_CJK = re.compile(r"之子|之女|之儿|婴|宝宝|新生儿|无名|未知|双胎|[大二小]宝")


def _placeholder(raw: str) -> str:
    """The normalised text of a placeholder name (order marks like A/B, 1/2, 大/二 kept), or ""."""
    text = unicodedata.normalize("NFKC", raw).lower()
    words = re.findall(r"[a-z]+|[0-9]+", text)
    if _PLACEHOLDER_CJK.search(text) or (_PLACEHOLDER_LATIN & set(words) and len(words) >= 2):
        return " ".join(re.findall(r"[a-z]+|[0-9]+|[\u3400-\u9fff]", text))
    return ""


def _without_initials(tokens: list[str]) -> list[str]:
    return [t for t in tokens if len(t) > 1] or tokens


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


def _sound_pairs(family: str, given: str) -> list[str]:
    """Sound keys of a (family, given) reading; a nickname also sounds like each full name it stands for.
    Sorted, so that family and given exchanged (split fields, or "Xiaoming Wang") sound the same."""
    family_sound = token_sound(family)
    return [" ".join(sorted((family_sound, token_sound(g)))) for g in (given, *NICKNAMES.get(given, ()))]


def _split_readings(family_tokens: list[str], given_tokens: list[str]) -> list[tuple[str, str]]:
    given_tokens = _without_initials(given_tokens)
    family = "".join(family_tokens)
    readings = [(family, "".join(given_tokens))]
    if len(given_tokens) > 1:
        readings.append((family, given_tokens[0]))  # the first given name without middle names
    return readings


def _unordered_readings(tokens: list[str]) -> list[tuple[str, str]]:
    """(family, given) readings of a Latin name whose order is unknown: "Xiaoming Wang", "WANG XIAO MING",
    "Matthew James Brown", "BROWN MATTHEW". The family name is the first or the last word; middle names
    may be left out by another registrar."""
    if len(tokens) == 1:
        return [(tokens[0], "")]
    readings = [(tokens[0], "".join(tokens[1:])), (tokens[-1], "".join(tokens[:-1]))]
    if len(tokens) > 2:
        readings += [(tokens[-1], tokens[0]), (tokens[0], tokens[1])]
    return list(dict.fromkeys(readings))


def _name_profile(profile: Profile, d: Demographics) -> None:
    raw = unicodedata.normalize("NFKC", d.name or "").strip()
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
        profile.readings = ((family, given),)
    else:
        family_tokens, given_tokens = _latin_tokens(family_raw), _latin_tokens(given_raw)
        if not (family_tokens and given_tokens) and "," in raw:
            # "BROWN, Matthew J.": the family name before the comma (HL7 and registrars alike).
            head, _, tail = raw.partition(",")
            family_tokens, given_tokens = _latin_tokens(head), _latin_tokens(tail)
        if family_tokens and given_tokens:
            profile.tokens = (*family_tokens, *given_tokens)
            profile.readings = tuple(_split_readings(family_tokens, given_tokens))
            profile.family, profile.given = profile.readings[0]
            profile.middle = tuple(_without_initials(given_tokens)[1:])
            profile.middle_all = tuple(given_tokens[1:])
        else:
            tokens = _without_initials(_latin_tokens(raw))
            profile.tokens = tuple(tokens)
            profile.readings = tuple(_unordered_readings(tokens)) if tokens else ()
            if len(tokens) == 1:
                profile.family = tokens[0]
            profile.middle = tuple(tokens[1:-1])
            profile.middle_all = tuple(_latin_tokens(raw)[1:-1])
    profile.sounds = tuple(dict.fromkeys(k for f, g in profile.readings for k in _sound_pairs(f, g)))
    profile.placeholder = _placeholder(raw)
    profile.full = profile.hanzi or " ".join(sorted(_latin_tokens(raw)))
    words = re.findall(r"[a-z]+", unicodedata.normalize("NFKC", f"{raw} {given_raw}").lower())
    profile.generation = next((_GENERATIONS[w] for w in words if w in _GENERATIONS), "")


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
        parts = [p for p in re.split(r"[\s/.\-年月日]+", text) if p]
        if len(parts) in (2, 3) and all(p.isdigit() for p in parts) and len(parts[0]) == 4:
            # "2001-1-1", "1980/5/3", "1980年5月3日": separators make unpadded parts unambiguous.
            parts = [parts[0], *(p.zfill(2) for p in parts[1:])]
        digits = "".join(parts)
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
    """Digits only, at most the last 10: the number without country code or trunk prefix, so that
    "+86 138 0013 8000", "13800138000", "+44 7700 900123" and "07700 900123" each compare equal."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", value or ""))
    return digits[-10:] if len(digits) >= 5 else None


# Administrative prefixes that some systems type and others leave out.
_ADDRESS_PREFIX_RE = re.compile(r"^(.{2,8}?(省|自治区))?(.{2,8}?市)?(.{2,8}?(区|县))?")
_ADDRESS_TOKEN_RE = re.compile(r"[0-9]+|[a-z]+|[\u3400-\u9fff]")


# Street designators as postal services abbreviate them (USPS Publication 28, Royal Mail): a clerk
# types either form.
_STREET_WORDS = {
    "street": "st", "str": "st", "road": "rd", "avenue": "ave", "av": "ave", "drive": "dr", "lane": "ln",
    "court": "ct", "place": "pl", "boulevard": "blvd", "terrace": "ter", "crescent": "cres", "close": "cl",
    "square": "sq", "highway": "hwy", "parkway": "pkwy", "circle": "cir", "apartment": "apt", "suite": "ste",
    "north": "n", "south": "s", "east": "e", "west": "w", "flat": "apt", "unit": "apt", "no": "",
}  # fmt: skip
# Each abbreviation's spelled-out forms, for recognising a designator typed wrong ("Mckail Rcescent").
STREET_WORDS_SPELLED = {
    short: tuple(w for w, s in _STREET_WORDS.items() if s == short and len(w) >= 4)
    for short in set(_STREET_WORDS.values())
}


def _latin_address_tokens(value: str) -> tuple[str, ...]:
    plain = unicodedata.normalize("NFKD", value.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    words = re.findall(r"[a-z]+|[0-9]+", plain)
    return tuple(w for w in (_STREET_WORDS.get(w, w) for w in words) if w)


def normalize_address(value: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(comparable text, tokens): NFKC, lower case, no spaces or punctuation; CJK province/city/district
    dropped; Latin street designators abbreviated the postal way (Lane -> ln)."""
    text = unicodedata.normalize("NFKC", value or "").lower()
    if not re.sub(r"[\s,，.。#\-/]", "", text):
        return None, ()
    if _CJK_RE.search(text):
        text = re.sub(r"[\s,，.。#\-/]", "", text)
        text = _ADDRESS_PREFIX_RE.sub("", text, count=1) or text
        return text, tuple(_ADDRESS_TOKEN_RE.findall(text))
    tokens = _latin_address_tokens(value or "")
    return " ".join(tokens) or None, tokens


MAX_IDENTIFIER_LENGTH = 64
# Longer than any name or address a registrar types; matching a longer one would be quadratic work.
MAX_NAME_LENGTH, MAX_ADDRESS_LENGTH = 200, 500


def profile_build(d: Demographics, *, today: dt.date | None = None) -> Profile:
    """Normalises and checks demographics; what is wrong is flagged in ``profile.flags``, never fixed silently.
    An identifier too long to be one (over 64 characters), a name over 200 or an address over 500 is refused
    with ``DemographicsError``."""
    for element, value in [("resident_id", d.resident_id), ("health_card", d.health_card)] + [
        (f"documents.{kind}", value) for kind, value in d.documents
    ]:
        if value and len(str(value).strip()) > MAX_IDENTIFIER_LENGTH:
            raise DemographicsError(f"{element} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    for element, value, limit in (
        ("name", d.name, MAX_NAME_LENGTH),
        ("family_name", d.family_name, MAX_NAME_LENGTH),
        ("given_name", d.given_name, MAX_NAME_LENGTH),
        ("address", d.address, MAX_ADDRESS_LENGTH),
    ):
        if value and len(value.strip()) > limit:
            raise DemographicsError(f"{element} is longer than {limit} characters")
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
        p.health_card_valid = bool(HEALTH_CARD_RE.match(card))
        if not p.health_card_valid:
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
    if p.health_card and p.health_card_valid:
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
