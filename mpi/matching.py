"""Record linkage: how much two profiles say they are the same resident.

Fellegi–Sunter: each field is compared into an agreement *level*; each level
has m (probability of that level when the two records are the same person)
and u (probability when they are not), and contributes log2(m/u) to the score.
The m/u below are configured from published linkage studies and from what
registration clerks get wrong, not fitted to our synthetic data; a region can
override any of them with ``settings.MPI_MATCH_WEIGHTS`` and the bands with
``settings.MPI_MATCH_THRESHOLDS`` (then run ``manage.py rematch``).

The score alone is not trusted to auto-link. Fellegi–Sunter assumes fields
disagree independently, and households break that: twins share a birth date,
address, phone and surname. So an automatic link also needs *corroboration*
(``Comparison.corroborated``): either a trusted identifier agrees, or the name
and the birth date both agree closely and a contact field or document agrees
too. Everything else that scores high goes to review, never to a silent link.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import jellyfish
from django.conf import settings

from mpi.demographics import NICKNAMES, STREET_WORDS_SPELLED, Profile, token_sound

# (m, u) per field and level. Levels are ordered from strongest agreement to
# strongest disagreement; "missing" (either side absent) weighs 0 and is not listed.
DEFAULT_WEIGHTS: dict[str, dict[str, tuple[float, float]]] = {
    "resident_id": {
        # Both numbers valid and consistent with their records, and equal.
        "exact": (0.97, 1e-7),
        # Equal, but flagged on at least one side (bad check character, date conflict).
        "same_unverified": (0.02, 1e-5),
        # One typing error (one character or two adjacent swapped), one side invalid.
        "one_edit": (0.02, 1e-4),
        # Two valid numbers that differ: different people, or a corrected duplicate number.
        "disagree": (0.004, 0.9999),
        # Different, and one of them failed its checks: weak evidence, never a conflict on its own
        # (a mistyped number, or a family member's number used by mistake).
        "unverified_disagree": (0.05, 0.9999),
    },
    "health_card": {"exact": (0.95, 1e-7), "disagree": (0.04, 0.9999)},
    "document": {"exact": (0.95, 1e-7), "disagree": (0.05, 0.9999)},
    "name": {
        "exact": (0.88, 8e-4),
        # Same sound: homophone characters, traditional characters, pinyin-only, order swapped.
        "sound": (0.07, 3e-3),
        # One typing error in a Latin name (Jonh/John), or sounds alike by fuzzy rules.
        "typo": (0.02, 1e-3),
        # Characters differ in one place, or close by Jaro–Winkler: a typo or a sibling.
        "similar": (0.015, 2e-2),
        # Two slips: the given name the same and a long family name two keystrokes off (Thompson/Thomspon
        # with a letter lost), or one keystroke in each part (Michaael Allen/Michael Allem).
        "slips": (0.01, 2e-3),
        "family_only": (0.004, 0.06),
        "given_only": (0.002, 0.002),
        "disagree": (0.003, 0.92),
    },
    "birth_date": {
        "exact": (0.94, 4e-5),
        "swap": (0.008, 3e-5),  # day and month exchanged
        "typo": (0.02, 6e-4),  # one digit, or one year off with the same day and month
        "partial": (0.01, 1e-2),  # same year (and month) where one side knows no more
        "disagree": (0.02, 0.9993),
    },
    "sex": {"agree": (0.985, 0.5), "disagree": (0.015, 0.5)},
    "phone": {"agree": (0.65, 1e-4), "typo": (0.02, 1e-4), "disagree": (0.33, 0.9998)},
    "address": {
        "agree": (0.55, 2e-4),
        # The same words and one number one keystroke off: a house number or postcode mistyped, or the
        # neighbour's door (random pairs of generated addresses: ~1e-5).
        "slip": (0.03, 2e-4),
        "similar": (0.12, 5e-3),
        "disagree": (0.3, 0.995),
    },
}
DEFAULT_THRESHOLDS = {"auto_link": 18.0, "review": 7.0}
# A name exactly agreeing with an exact birth date links without a contact field only if at most
# this many identities in the index sound like it: then the expected number of other residents
# with that name born on the same day (count / ~29,000 birth dates) stays below 0.001. A name one
# slip or one sound off (with an address that is similar) needs both spellings that rare.
RARE_NAME_MAX = 30

NAME_CLOSE = ("exact", "sound", "typo")
_CJK_ADDRESS = re.compile(r"[\u3400-\u9fff]")
DATE_CLOSE = ("exact", "swap", "typo")


@lru_cache(maxsize=1)
def _configured() -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    merged = {f: dict(levels) for f, levels in DEFAULT_WEIGHTS.items()}
    for fname, levels in getattr(settings, "MPI_MATCH_WEIGHTS", {}).items():
        merged.setdefault(fname, {}).update({lvl: tuple(mu) for lvl, mu in levels.items()})
    weights = {f: {lvl: math.log2(m / u) for lvl, (m, u) in levels.items()} for f, levels in merged.items()}
    thresholds = {**DEFAULT_THRESHOLDS, **getattr(settings, "MPI_MATCH_THRESHOLDS", {})}
    return weights, thresholds


def weights() -> dict[str, dict[str, float]]:
    """log2(m/u) per field and level, with the settings' overrides applied."""
    return _configured()[0]


def thresholds() -> dict[str, float]:
    """The score bands: ``auto_link`` and ``review``."""
    return _configured()[1]


@dataclass
class Comparison:
    """The outcome of comparing two profiles: per-field levels and weights, the score, and corroboration."""

    levels: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    corroborated: bool = False
    # A field says outright that these are different people (a different valid number, a wholly
    # different name, middle names or generation that disagree). A person whose
    # identities conflict with a record is never auto-linked to it, whatever its best identity says.
    conflict: bool = False
    # A trusted identifier agrees (decides on its own, after a sanity check).
    identifier_agrees: bool = False
    # Name and birth date agree exactly (or the name up to a slip, the address similar) and nothing
    # contradicts them, but no contact field agrees either: corroborated only if the name is rare
    # enough in the index (linkage.candidates_find).
    rare_name_eligible: bool = False
    rare_name: bool = False
    # The name sounds of both records, each of which must be rare for the rare-name rule to corroborate.
    rare_name_sounds: tuple[str, ...] = ()
    # Name, birth date and sex would corroborate if a contact field agreed: another identity of the
    # same person may supply it (linkage.person_verdict).
    needs_contact: bool = False
    contact_from_person: bool = False
    # No birth date on one side: corroborated by the whole name, the sex and a household contact that agree
    # with nothing contradicting; only if no identity of the person has another birth date
    # (linkage.person_verdict) and no other person fits as well (linkage.second_links).
    without_birth_date: bool = False
    # The person already has another record of the same assigning authority under another given name
    # that only resembles this one (linkage.person_verdict): twins at one hospital; not corroborated.
    same_authority: bool = False
    # Corroborated by the given name alone, with the birth date, sex, phone and address: another family name.
    surname_change: bool = False
    # Corroborated only by the whole name with a spelled-out middle name and the exact birth date, no
    # contact agreeing: kept only if the name is uncommon in the index (linkage.person_verdict).
    whole_name: bool = False

    @property
    def evidence(self) -> dict:
        """What reviewers see: each field's level and weight, and the totals."""
        return {
            "fields": {f: {"level": lvl, "weight": round(self.weights[f], 2)} for f, lvl in self.levels.items()},
            "score": round(self.score, 2),
            "corroborated": self.corroborated,
            **({"rare_name": True} if self.rare_name else {}),
            **({"contact_from_person": True} if self.contact_from_person else {}),
            **({"without_birth_date": True} if self.without_birth_date else {}),
            **({"same_authority": True} if self.same_authority else {}),
            **({"whole_name": True} if self.whole_name else {}),
            **({"surname_change": True} if self.surname_change else {}),
        }

    @property
    def contact_agrees(self) -> bool:
        return self.levels.get("phone") in ("agree", "typo") or self.levels.get("address") == "agree"

    def band(self) -> str:
        """``auto_link``, ``review`` or ``new``."""
        limits = thresholds()
        if self.score >= limits["auto_link"] and self.corroborated:
            return "auto_link"
        if self.score >= limits["review"]:
            return "review"
        return "new"


def _edit1(a: str, b: str) -> bool:
    """One keystroke apart: a wrong, missing or extra character, or two adjacent ones swapped."""
    if len(a) == len(b):
        return jellyfish.damerau_levenshtein_distance(a, b) <= 1
    return abs(len(a) - len(b)) == 1 and jellyfish.levenshtein_distance(a, b) == 1


def compare_resident_id(a: Profile, b: Profile) -> str | None:
    if not (a.resident_id and b.resident_id):
        return None
    if a.resident_id == b.resident_id:
        return "exact" if a.resident_id_valid and b.resident_id_valid else "same_unverified"
    if a.resident_id_valid and b.resident_id_valid:
        return "disagree"
    # One side is invalid: a typing error is likely if they differ by one keystroke.
    return "one_edit" if _edit1(a.resident_id, b.resident_id) else "unverified_disagree"


def _orders(p: Profile) -> list[tuple[str, str]]:
    """(family, given) readings of a name (profiles stored before readings existed fall back to the tokens)."""
    if p.readings:
        return [tuple(r) for r in p.readings]
    if p.family and (p.given or len(p.tokens) == 1):
        return [(p.family, p.given)]
    t = p.tokens
    if len(t) < 2:
        return [(t[0], "")] if t else []
    return [(t[0], "".join(t[1:])), (t[-1], "".join(t[:-1]))]


def compare_name(a: Profile, b: Profile) -> str | None:
    if not (a.has_name and b.has_name):
        return None
    if a.placeholder or b.placeholder:
        # "BABY BOY A SMITH" and "BABY BOY B SMITH" are twins; a placeholder and a real name say nothing
        # for or against beyond their difference. Only the same placeholder, marks included, agrees, in
        # whatever order it was written ("THOMPSON, BABY GIRL" on a chart label).
        return "sound" if sorted(a.placeholder.split()) == sorted(b.placeholder.split()) else "disagree"
    level = _name_level(a, b)
    if level in (*NAME_CLOSE, "slips") and (_name_parts_conflict(a, b) or _words_conflict(a, b)):
        return "similar"
    return level


def _words_conflict(a: Profile, b: Profile) -> bool:
    """Each name has a word the other lacks, and no word of one is the other's up to a slip, a sound or a
    diminutive: John Paul Smith and John Paul Jones, which agree on one reading (family name first, the
    last word a middle name) and are two families. A word on one side only (a middle name left out, one
    half of a double surname) is no conflict."""
    if a.hanzi or b.hanzi:
        return False
    wa, wb = {t for t in a.tokens if len(t) > 1}, {t for t in b.tokens if len(t) > 1}
    only_a, only_b = wa - wb, wb - wa
    return bool(only_a and only_b) and not any(_words_close(x, y) for x in only_a for y in only_b)


def _words_close(x: str, y: str) -> bool:
    """Two name words that may be one: a slip even in a short word (Lee/Ler, as the typo level takes it),
    two in a long one keeping its first letter, the same sound, a diminutive, or a short form of the other
    (Kate/Katherine, Chris/Christopher, which the table may not hold)."""
    return (
        _part_close(x, y)
        or _edit1(x, y)
        or (min(len(x), len(y)) >= 6 and x[0] == y[0] and jellyfish.damerau_levenshtein_distance(x, y) <= 2)
        or (min(len(x), len(y)) >= 3 and (x.startswith(y) or y.startswith(x)))
        or any(_sound_eq(x, full) for full in NICKNAMES.get(y, ()))
        or any(_sound_eq(y, full) for full in NICKNAMES.get(x, ()))
        or bool(set(NICKNAMES.get(x, ())) & set(NICKNAMES.get(y, ())))  # Lizzie and Beth: both Elizabeth
    )


def _name_parts_conflict(a: Profile, b: Profile) -> bool:
    """Middle names (Catherine Patricia, Katherine Claire) or generations (Jr., Sr.) that tell apart two
    people whose first and family names agree."""
    if a.middle and b.middle and not _middles_agree(a.middle, b.middle):
        return True
    return bool(a.generation and b.generation and a.generation != b.generation)


def _full_names_agree(a: Profile, b: Profile) -> bool:
    """The whole name agrees, middle names included: the same words, or the same number of middle names
    where each is spelled out on one side and its initial on the other (Patricia J. / Patricia Jessica)."""
    if a.full == b.full:
        return True
    if a.hanzi or b.hanzi or not a.middle_all or len(a.middle_all) != len(b.middle_all):
        return False
    return all(
        x == y or (len(x) == 1 and y.startswith(x)) or (len(y) == 1 and x.startswith(y))
        for x, y in zip(a.middle_all, b.middle_all, strict=True)
    )


def _middles_agree(x: tuple[str, ...], y: tuple[str, ...]) -> bool:
    sx, sy = {token_sound(t) for t in x}, {token_sound(t) for t in y}
    return bool(sx & sy) or any(a[0] == b[0] for a in x for b in y if len(a) == 1 or len(b) == 1)


def _name_level(a: Profile, b: Profile) -> str:
    if a.hanzi and b.hanzi and a.hanzi == b.hanzi:
        return "exact"
    pairs = [(x, y) for x in _orders(a) for y in _orders(b)]
    if not (a.hanzi and b.hanzi) and any(sorted(x) == sorted(y) for x, y in pairs):
        # Same Latin spelling, in either order (or the pinyin of the characters).
        return "exact" if not (a.hanzi or b.hanzi) else "sound"
    if set(a.sounds) & set(b.sounds):
        return "sound"
    if a.hanzi and b.hanzi:
        if len(a.hanzi) == len(b.hanzi) and sum(x != y for x, y in zip(a.hanzi, b.hanzi, strict=True)) == 1:
            return "similar"
    else:
        for (fa, ga), (fb, gb) in pairs:
            if (
                fa
                and fb
                and ga
                and gb
                and min(len(fa + ga), len(fb + gb)) >= 5
                and (_edit1(f"{fa} {ga}", f"{fb} {gb}") or _edit1(f"{fa} {ga}", f"{gb} {fb}"))
            ):
                return "typo"
        if any(fa and fb and ga and gb and _two_slips(fa, ga, fb, gb) for (fa, ga), (fb, gb) in pairs):
            return "slips"
    best = max(
        (jellyfish.jaro_winkler_similarity(f"{fa} {ga}", f"{fb} {gb}") for (fa, ga), (fb, gb) in pairs), default=0
    )
    if best >= 0.92:
        return "similar"
    if any(fa and fb and ga and gb and _part_close(fa, fb) and _part_close(ga, gb) for (fa, ga), (fb, gb) in pairs):
        # Each part is the other's up to one slip (Baer/Baker) or a diminutive (Pat/Patricia): two errors
        # in one name, not a wholly different name, so no conflict that would keep the records apart.
        return "similar"
    family_agrees = any(fa and fb and (fa == fb or _sound_eq(fa, fb)) for (fa, _), (fb, _) in pairs)
    given_agrees = any(ga and gb and (ga == gb or _sound_eq(ga, gb)) for (_, ga), (_, gb) in pairs)
    if family_agrees:
        return "family_only"
    if given_agrees:
        return "given_only"
    return "disagree"


def _given_names_agree_apart(a: Profile, b: Profile) -> bool:
    """The given names are spelled the same in a reading where neither is a word that either record may hold
    as its family name, nor a middle name: "Christopher Williams" (order unknown) and "PHILIP, Williams" share
    Williams, which may be a family name; "Emma Rose Clarke" and "Lily Rose Hughes" a middle name; "CLARKE,
    Emma" and "HUGHES, Emma" a given name. Names that only sound alike are twins' (Katherine Clarke-Hughes
    and Kathryn Clarke)."""
    apart = {f for f, _ in _orders(a)} | {f for f, _ in _orders(b)} | set(a.middle_all) | set(b.middle_all)
    return any(ga and ga == gb and ga not in apart for (_, ga) in _orders(a) for (_, gb) in _orders(b))


def _a_clerks_slip(a: Profile, b: Profile) -> bool:
    """A reading of each name where each part is the same, a diminutive, or one letter typed in, left out or
    two swapped in a part of five letters or more (Jessixca, Zarlia, Browwne), keeping its first letter. Not
    one letter typed for another, nor names that only sound alike: twins are named Aidan and Aiden, Jon and
    Jan, Mia and Mya, Eric and Erik, Mason and Jason, and with the order of a name unknown either part may
    be the given name."""

    def close(x: str, y: str) -> bool:
        return x == y or (
            x[0] == y[0] and (x in NICKNAMES.get(y, ()) or y in NICKNAMES.get(x, ()) or _letter_in_or_out(x, y))
        )

    return any(
        fa and fb and ga and gb and close(fa, fb) and close(ga, gb)
        for (fa, ga) in _orders(a)
        for (fb, gb) in _orders(b)
    )


def _letter_in_or_out(x: str, y: str) -> bool:
    """One letter more, or two neighbours swapped, in a word of five letters or more: a slip of the hand
    (Jessixca/Jessica, Zarlia/Zarila), never one letter for another (Aidan/Aiden)."""
    substituted = len(x) == len(y) and sum(p != q for p, q in zip(x, y, strict=True)) == 1
    return max(len(x), len(y)) >= 5 and _edit1(x, y) and not substituted


def _middle_initials_agree(a: Profile, b: Profile) -> bool:
    """Middle names or initials on one side only, or on both with the same initials in the same order."""
    if not (a.middle_all and b.middle_all):
        return True
    return len(a.middle_all) == len(b.middle_all) and all(
        x[0] == y[0] for x, y in zip(a.middle_all, b.middle_all, strict=True)
    )


def _two_slips(fa: str, ga: str, fb: str, gb: str) -> bool:
    """The same given name (or a diminutive of it) and a family name of six letters or more two keystrokes
    off, or one keystroke in each part (parts of five letters or more); each part keeps its first letter
    (Harris/Morris, Carter/Porter are other families)."""
    if fa[0] != fb[0] or ga[0] != gb[0]:
        return False
    if ga == gb or ga in NICKNAMES.get(gb, ()) or gb in NICKNAMES.get(ga, ()):
        return min(len(fa), len(fb)) >= 6 and jellyfish.damerau_levenshtein_distance(fa, fb) <= 2
    return min(len(fa), len(fb), len(ga), len(gb)) >= 5 and _edit1(fa, fb) and _edit1(ga, gb)


def given_names_differ(a: Profile, b: Profile) -> bool:
    """One family name and two different given names that may only sound alike (Kathryn / Katherine,
    一鸣 / 一明): what twins look like. Not a registrar's slip: the same given name, a diminutive of it
    (Dave / David) or one keystroke off (Jon / John) with the family name typed either way."""
    if a.hanzi and b.hanzi:
        return a.hanzi != b.hanzi and a.hanzi[0] == b.hanzi[0]
    family_pairs = [
        (ga, gb)
        for (fa, ga), (fb, gb) in ((x, y) for x in _orders(a) for y in _orders(b))
        if fa and fb and ga and gb and (fa == fb or _edit1(fa, fb))
    ]
    if any(
        ga == gb or ga in NICKNAMES.get(gb, ()) or gb in NICKNAMES.get(ga, ()) or _edit1(ga, gb)
        for ga, gb in family_pairs
    ):
        return False
    return any(_sound_eq(ga, gb) for ga, gb in family_pairs)


def _part_close(x: str, y: str) -> bool:
    """One name part agrees with another: the same, the same sound, a diminutive of it, or one keystroke off."""
    return (
        x == y
        or _sound_eq(x, y)
        or x in NICKNAMES.get(y, ())
        or y in NICKNAMES.get(x, ())
        or (min(len(x), len(y)) >= 4 and _edit1(x, y))
    )


def _sound_eq(x: str, y: str) -> bool:
    return token_sound(x) == token_sound(y)


def compare_birth_date(a: Profile, b: Profile) -> str | None:
    da, db = a.birth_date, b.birth_date
    if not (da and db):
        return None
    if a.birth_year_only or b.birth_year_only:
        return "partial" if da.year == db.year else "disagree"
    if da == db:
        return "exact"
    # 1 January is what registrars type when only the year is known.
    if da.year == db.year and ((da.month, da.day) == (1, 1) or (db.month, db.day) == (1, 1)):
        return "partial"
    if da.year == db.year and da.month == db.day and da.day == db.month:
        return "swap"
    sa, sb = da.strftime("%Y%m%d"), db.strftime("%Y%m%d")
    differ = [i for i, (x, y) in enumerate(zip(sa, sb, strict=True)) if x != y]
    if (
        len(differ) == 1
        # Two adjacent digits keyed the wrong way round (day 12/21, 1978/1987); in the year only within a
        # decade: 1958/1985 is as likely a father and his son of the same name.
        or (
            len(differ) == 2
            and differ[1] == differ[0] + 1
            and sa[differ[0]] == sb[differ[1]]
            and sa[differ[1]] == sb[differ[0]]
            and (differ[0] >= 4 or abs(da.year - db.year) <= 9)
        )
        or (abs(da.year - db.year) == 1 and (da.month, da.day) == (db.month, db.day))
    ):
        return "typo"
    if da.year == db.year and da.month == db.month:
        return "partial"
    return "disagree"


def compare_phone(a: Profile, b: Profile) -> str | None:
    if not (a.phone and b.phone):
        return None
    short, long = sorted((a.phone, b.phone), key=len)
    if a.phone == b.phone or (len(short) >= 7 and long.endswith(short)):
        return "agree"  # the same number with and without its area code
    return "typo" if len(a.phone) == len(b.phone) and _edit1(a.phone, b.phone) else "disagree"


def compare_address(a: Profile, b: Profile) -> str | None:
    if not (a.address and b.address):
        return None
    if a.address == b.address:
        return "agree"
    short_text, long_text = sorted((a.address, b.address), key=lambda t: (len(t), t))
    if _CJK_ADDRESS.search(a.address) or _CJK_ADDRESS.search(b.address):
        if len(short_text) >= 6 and long_text.endswith(short_text) and not long_text[-len(short_text) - 1].isdigit():
            return "agree"  # the same address with and without its province/city/district (CJK, no spaces)
        return _address_tokens_level(a.address_tokens, b.address_tokens)
    # In a fixed order: the greedy alignment of tokens then gives one answer whichever record comes first.
    return _latin_address_level(*sorted((a.address_tokens, b.address_tokens)))


def _address_tokens_level(ta: tuple[str, ...], tb: tuple[str, ...]) -> str:
    """Word for word: agree when one is the other without its tail ("182 York Ln" and "182 York Ln,
    Riverton"; three tokens or more, a number among them), similar when four words in five are shared."""
    if not (ta and tb):
        return "disagree"
    short, long = sorted((ta, tb), key=lambda t: (len(t), t))
    if len(short) >= 3 and any(t.isdigit() for t in short) and long[: len(short)] == short:
        return "agree"
    return "similar" if len(set(ta) & set(tb)) / min(len(set(ta)), len(set(tb))) >= 0.8 else "disagree"


# An address of more words than this, or with a longer word, is compared word for word only (the
# alignment and the edit distances are quadratic).
ADDRESS_TOKENS_ALIGNED = 24
ADDRESS_WORD_ALIGNED = 40


@lru_cache(maxsize=8192)  # one registration compares its record with a candidate's identities twice
def _latin_address_level(ta: tuple[str, ...], tb: tuple[str, ...]) -> str:
    """Latin addresses, up to typing slips in their words.

    ``agree``: one is the other from its first word on, up to slips in the words (Templeton/Tempelton,
    "Gle n Ayre", "Mckail Rcescent") and without its tail (the town, the postcode): "182 York Ln" and
    "182 Sattion Road, Riverton". Or every number is matched and what is left of the words differs by a
    letter or two once the spaces are gone ("Thehammo n dvillage"). Numbers are never fuzzy here.
    ``slip``: the same words, and one number one keystroke off (a house number or a postcode mistyped, or
    the neighbour's door). ``similar``: four words in five the same, or the words a slip or two further
    apart (12 Mill Road and 12 Hill Road are two streets: similar at most, never agree).
    """
    if not (ta and tb):
        return "disagree"
    if max(len(ta), len(tb)) > ADDRESS_TOKENS_ALIGNED or max(map(len, ta + tb)) > ADDRESS_WORD_ALIGNED:
        return _address_tokens_level(ta, tb)
    partner, left_a, left_b = _address_alignment(ta, tb)
    for whole, left, other, other_left, other_paired in (
        (ta, left_a, tb, left_b, partner.values()),
        (tb, left_b, ta, left_a, partner.keys()),
    ):
        if (
            not left
            and partner.get(0) == 0  # both begin with the same word or number
            and len(whole) >= 3
            and any(t.isdigit() for t in whole)
            and any(len(t) >= 3 and not t.isdigit() for t in whole)
            and _only_a_tail(other, other_left, other_paired)
        ):
            return "agree"

    # What is left of each, letters run together (spaces typed in the wrong place vanish) with designators
    # spelled out (st: street, so that "Pohlmanfstreet" is one slip from "Pohlman St"; not the one-letter
    # ones, n: north, as often a letter split off a word), and the numbers left over.
    def letters(x: tuple[str, ...], positions) -> str:
        return "".join(
            STREET_WORDS_SPELLED.get(t, (t,))[0] if len(t) > 1 else t
            for t in (x[i] for i in positions)
            if not t.isdigit()
        )

    numbers_a, numbers_b = ([x[i] for i in left if x[i].isdigit()] for x, left in ((ta, left_a), (tb, left_b)))
    numbers_same = not numbers_a and not numbers_b
    number_slip = len(numbers_a) == len(numbers_b) == 1 and _edit1(numbers_a[0], numbers_b[0])
    if numbers_same or number_slip:
        words_a, words_b = letters(ta, left_a), letters(tb, left_b)
        longest = max(len(words_a), len(words_b))
        # A slip, not another word: long enough, and the first letter kept (Mill/Hill, Millbrook/Hillbrook).
        allowed = 0 if longest < 6 or words_a[:1] != words_b[:1] else 1 if longest < 16 else 2
        slips = _bounded_distance(words_a, words_b, allowed + 1)
        if slips <= allowed and any(t.isdigit() for t in ta):
            return "agree" if numbers_same else "slip"
        if numbers_same and longest >= 5 and slips <= allowed + 1:
            return "similar"
        # A long address compared whole, letters only: a word split wrong may have been taken for another's
        # slip. Similar at most: two letters can make another street of the same town.
        if (
            sum(map(len, ta)) >= 30
            and sum(map(len, tb)) >= 30
            and _bounded_distance(letters(ta, range(len(ta))), letters(tb, range(len(tb))), 2) <= 2
        ):
            return "similar"
    matched = min(len(ta) - len(left_a), len(tb) - len(left_b))
    return "similar" if matched / min(len(ta), len(tb)) >= 0.8 else "disagree"


def _only_a_tail(tokens: tuple[str, ...], unpaired: list[int], paired: Iterable[int]) -> bool:
    """The tokens of the longer address that found no counterpart all come after the last one that did, and
    name no flat: the town or postcode left off; not a flat number ("100 Main St Apt 12"), a letter after the
    house number or a "North" in the middle."""
    if not unpaired:
        return True
    return min(unpaired) > max(paired, default=-1) and not any(tokens[i] in ("apt", "ste") for i in unpaired)


def _bounded_distance(x: str, y: str, limit: int) -> int:
    """Damerau–Levenshtein distance, or ``limit + 1`` when the lengths alone rule out ``limit``."""
    if abs(len(x) - len(y)) > limit:
        return limit + 1
    return jellyfish.damerau_levenshtein_distance(x, y)


@lru_cache(maxsize=65536)  # an index's street and town words repeat: most pairs were seen before
def _address_word_close(x: str, y: str) -> bool:
    """The same word up to one keystroke: words of five letters or more with the first letter kept
    (Camdn/Camden; not Mill/Hill, Millbrook/Hillbrook); numbers only exactly; a designator's abbreviation
    compared in its spelled-out forms, where any one slip will do (cres: crescent, rcescent)."""
    if x == y:
        return True
    if x.isdigit() or y.isdigit():
        return False
    designator = x in STREET_WORDS_SPELLED or y in STREET_WORDS_SPELLED
    xs = (x, *STREET_WORDS_SPELLED.get(x, ()))
    ys = (y, *STREET_WORDS_SPELLED.get(y, ()))
    return any(
        abs(len(u) - len(v)) <= 1 and min(len(u), len(v)) >= 5 and (u[0] == v[0] or designator) and _edit1(u, v)
        for u in xs
        for v in ys
    )


def _address_alignment(ta: tuple[str, ...], tb: tuple[str, ...]) -> tuple[dict[int, int], list[int], list[int]]:
    """Pairs tokens of two addresses: the same token, a word one keystroke off, or one word typed as two
    (or two as one). Returns the partner in ``tb`` of each paired position of ``ta`` (for two tokens typed
    as one, their first) and the positions of each that found none."""
    partner: dict[int, int] = {}
    left_a, left_b = list(range(len(ta))), list(range(len(tb)))
    for close in (str.__eq__, _address_word_close):
        for i in list(left_a):
            for j in left_b:
                if close(ta[i], tb[j]):
                    partner[i] = j
                    left_a.remove(i)
                    left_b.remove(j)
                    break
    for x, left_x, y, left_y, x_is_a in ((ta, left_a, tb, left_b, True), (tb, left_b, ta, left_a, False)):
        for i in list(left_x):
            if i + 1 in left_x and not x[i].isdigit() and not x[i + 1].isdigit():
                # "Ironbarkcrescent": the designator run into the street name is spelled out, not abbreviated.
                joined = [x[i] + w for w in (x[i + 1], *STREET_WORDS_SPELLED.get(x[i + 1], ()))]
                j = next((j for j in left_y if any(_address_word_close(w, y[j]) for w in joined)), None)
                if j is not None:
                    left_x.remove(i)
                    left_x.remove(i + 1)
                    left_y.remove(j)
                    if x_is_a:
                        partner[i] = partner[i + 1] = j
                    else:
                        partner[j] = i
    return partner, left_a, left_b


def compare_documents(a: Profile, b: Profile) -> str | None:
    da, db = dict(a.documents), dict(b.documents)
    shared = da.keys() & db.keys()
    if not shared:
        return None
    return "exact" if any(da[k] == db[k] for k in shared) else "disagree"


def compare(a: Profile, b: Profile) -> Comparison:
    """Compares two profiles field by field. Symmetric: ``compare(a, b)`` and ``compare(b, a)`` agree."""
    w = weights()
    c = Comparison()
    levels = {
        "resident_id": compare_resident_id(a, b),
        # A card number that failed its form check ("N/A", "0") neither agrees nor conflicts.
        "health_card": None
        if not (a.health_card and b.health_card and a.health_card_valid and b.health_card_valid)
        else ("exact" if a.health_card == b.health_card else "disagree"),
        "document": compare_documents(a, b),
        "name": compare_name(a, b),
        "birth_date": compare_birth_date(a, b),
        "sex": None if not (a.sex and b.sex) else ("agree" if a.sex == b.sex else "disagree"),
        "phone": compare_phone(a, b),
        "address": compare_address(a, b),
    }
    for fname, level in levels.items():
        if level is None:
            continue
        c.levels[fname] = level
        c.weights[fname] = w[fname][level]
    c.score = sum(c.weights.values())
    name, birth = levels["name"], levels["birth_date"]
    c.identifier_agrees = levels["resident_id"] == "exact" or (
        levels["health_card"] == "exact" and levels["resident_id"] in (None, "exact")
    )
    identifier_conflict = levels["resident_id"] == "disagree" or levels["health_card"] == "disagree"
    placeholder = bool(a.placeholder or b.placeholder)
    c.conflict = (
        identifier_conflict
        or (not placeholder and name == "disagree")
        or (name == "similar" and (_name_parts_conflict(a, b) or _words_conflict(a, b)))
    )
    # A trusted identifier is corroborated by a name or birth date that does
    # not contradict it; otherwise (the sanity check) it goes to review.
    if c.identifier_agrees:
        c.corroborated = name not in ("family_only", "given_only", "disagree") and birth != "disagree"
    elif not identifier_conflict and name in NAME_CLOSE and (birth in DATE_CLOSE or birth == "partial"):
        contact = (
            levels["phone"] in ("agree", "typo")
            or levels["address"] == "agree"
            # One number of the address mistyped (a house number, a postcode), with the very birth date.
            or (levels["address"] == "slip" and birth == "exact")
            or levels["document"] == "exact"
            or levels["resident_id"] in ("one_edit", "same_unverified")
        )
        # A birth date known only by its year needs the name to sound the same, not just be close. A
        # placeholder ("BABY GIRL THOMPSON") names nobody: only the exact birth date joins two of them
        # (two babies of one mother, born ten days apart, differ by one digit).
        birth_ok = birth == "exact" if placeholder else birth in DATE_CLOSE or name in ("exact", "sound")
        # A wrong sex is a clerk's slip when name and birth date agree exactly; otherwise a sibling.
        sex_ok = levels["sex"] != "disagree" or (name == "exact" and birth == "exact")
        contact_conflict = levels["phone"] == "disagree" or levels["address"] == "disagree"
        # Both records spell out the same middle name (an initial alone is a one-in-twenty coincidence)
        # and the whole name agrees, with the exact birth date: another resident sharing first, middle and
        # family name and the day of birth is far rarer than a new phone or a move, so one contact that
        # disagrees does not keep them apart (Mary Ellen Walsh, WALSH, Mary Ellen). Both disagreeing does.
        whole_name = (
            name == "exact"
            and birth == "exact"
            and _full_names_agree(a, b)
            and any(x == y and len(x) > 1 for x in a.middle_all for y in b.middle_all)
            and levels["sex"] != "disagree"
            and not (levels["phone"] == "disagree" and levels["address"] == "disagree")
            and levels["document"] != "disagree"
        )
        c.corroborated = (contact and birth_ok and sex_ok) or whole_name
        c.whole_name = c.corroborated and not (contact and birth_ok and sex_ok)
        c.needs_contact = not c.corroborated and birth_ok and sex_ok
        c.rare_name_eligible = (
            not c.corroborated
            and (
                # Middle names and initials too: namesakes often differ only there.
                (name == "exact" and _full_names_agree(a, b))
                # A slip or a sound in a Latin name and an address that is only similar (a word, a postcode
                # mistyped): a clerk's two slips, or two residents with names one slip apart, born on one day,
                # at nearly one address. Only when both spellings are rare (``rare_name_sounds``), the slip is a
                # hand's (``_a_clerks_slip``) and the initials agree: twins are named Aidan and Aiden, John A.
                # and John B., 思琪 and 思琦, and a placeholder names nobody.
                or (
                    name in ("sound", "typo")
                    and levels["address"] == "similar"
                    and not (a.hanzi or b.hanzi or placeholder)
                    and _a_clerks_slip(a, b)
                    and _middle_initials_agree(a, b)
                )
            )
            and birth == "exact"
            and levels["sex"] != "disagree"
            and not contact_conflict
            and levels["document"] != "disagree"
        )
        if c.rare_name_eligible:
            c.rare_name_sounds = tuple(sorted(set(a.sounds) | set(b.sounds)))
    elif not identifier_conflict and name == "slips" and birth == "exact":
        # Two slips in the name are a clerk's at most when everything else agrees: the very birth date, the
        # sex, and the phone or the address, with nothing disagreeing.
        c.corroborated = (
            (levels["phone"] in ("agree", "typo") or levels["address"] == "agree")
            and levels["sex"] != "disagree"
            and levels["phone"] != "disagree"
            and levels["address"] != "disagree"
            and levels["document"] != "disagree"
        )
    elif not identifier_conflict and name == "given_only" and birth == "exact" and not placeholder:
        # A family name changed (a marriage or a divorce, a child given the other parent's name): the same
        # given name, the very birth date, the sex, and the phone and the address both agree, nothing
        # disagrees. Twins differ in the given name; a relative of the household in the birth date.
        c.corroborated = c.surname_change = (
            levels["sex"] == "agree"
            and a.phone == b.phone  # the very number: linkage.phone_private counts its holders
            and levels["address"] == "agree"
            and levels["document"] != "disagree"
            and not (a.hanzi or b.hanzi)  # a Chinese family name is kept for life: 张一诺 and 李一诺 are two
            and not _name_parts_conflict(a, b)
            and _middle_initials_agree(a, b)
            and _given_names_agree_apart(a, b)
        )
    elif not identifier_conflict and name == "exact" and birth is None:
        # A registration without a birth date (an emergency, a pharmacy) is the same resident when the
        # whole name, middle names included, and a phone or address agree and nothing disagrees. The one
        # other person who fits is a same-named relative at that address (a father and son, Jr./Sr.):
        # a generation written on either side, a middle name on one side only, or a person holding
        # another birth date keeps it from linking.
        c.corroborated = c.without_birth_date = (
            _full_names_agree(a, b)
            and not (a.generation or b.generation)
            and levels["sex"] == "agree"
            and (levels["phone"] == "agree" or levels["address"] == "agree")
            and levels["phone"] != "disagree"
            and levels["address"] != "disagree"
            and levels["document"] != "disagree"
        )
    return c
