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
from dataclasses import dataclass, field
from functools import lru_cache

import jellyfish
from django.conf import settings

from mpi.demographics import Profile

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
    "address": {"agree": (0.55, 2e-4), "similar": (0.15, 5e-3), "disagree": (0.3, 0.995)},
}
DEFAULT_THRESHOLDS = {"auto_link": 18.0, "review": 7.0}

NAME_CLOSE = ("exact", "sound", "typo")
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
    # A trusted identifier agrees (decides on its own, after a sanity check).
    identifier_agrees: bool = False

    @property
    def evidence(self) -> dict:
        """What reviewers see: each field's level and weight, and the totals."""
        return {
            "fields": {f: {"level": lvl, "weight": round(self.weights[f], 2)} for f, lvl in self.levels.items()},
            "score": round(self.score, 2),
            "corroborated": self.corroborated,
        }

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
    return "one_edit" if _edit1(a.resident_id, b.resident_id) else "disagree"


def _orders(p: Profile) -> list[tuple[str, str]]:
    """(family, given) readings of a name: known split, or first/last token as the family name."""
    if p.family and (p.given or len(p.tokens) == 1):
        return [(p.family, p.given)]
    t = p.tokens
    if len(t) < 2:
        return [(t[0], "")] if t else []
    return [(t[0], "".join(t[1:])), (t[-1], "".join(t[:-1]))]


def compare_name(a: Profile, b: Profile) -> str | None:
    if not (a.has_name and b.has_name):
        return None
    if a.hanzi and b.hanzi and a.hanzi == b.hanzi:
        return "exact"
    pairs = [(x, y) for x in _orders(a) for y in _orders(b)]
    if not (a.hanzi and b.hanzi) and any(x == y for x, y in pairs):
        # Same Latin spelling in either order (or pinyin of the characters).
        return "exact" if not (a.hanzi or b.hanzi) else "sound"
    if set(a.sounds) & set(b.sounds):
        return "sound"
    if a.hanzi and b.hanzi:
        if len(a.hanzi) == len(b.hanzi) and sum(x != y for x, y in zip(a.hanzi, b.hanzi, strict=True)) == 1:
            return "similar"
    else:
        for (fa, ga), (fb, gb) in pairs:
            if fa and fb and ga and gb and len(fa + ga) >= 5 and _edit1(fa + " " + ga, fb + " " + gb):
                return "typo"
    best = max(
        (jellyfish.jaro_winkler_similarity(f"{fa} {ga}", f"{fb} {gb}") for (fa, ga), (fb, gb) in pairs), default=0
    )
    if best >= 0.92:
        return "similar"
    family_agrees = any(fa and fb and (fa == fb or _sound_eq(fa, fb)) for (fa, _), (fb, _) in pairs)
    given_agrees = any(ga and gb and (ga == gb or _sound_eq(ga, gb)) for (_, ga), (_, gb) in pairs)
    if family_agrees:
        return "family_only"
    if given_agrees:
        return "given_only"
    return "disagree"


def _sound_eq(x: str, y: str) -> bool:
    from mpi.demographics import token_sound

    return token_sound(x) == token_sound(y)


def compare_birth_date(a: Profile, b: Profile) -> str | None:
    da, db = a.birth_date, b.birth_date
    if not (da and db):
        return None
    if a.birth_year_only or b.birth_year_only:
        return "partial" if da.year == db.year else "disagree"
    if da == db:
        return "exact"
    if da.year == db.year and da.month == db.day and da.day == db.month:
        return "swap"
    sa, sb = da.strftime("%Y%m%d"), db.strftime("%Y%m%d")
    if sum(x != y for x, y in zip(sa, sb, strict=True)) == 1 or (
        abs(da.year - db.year) == 1 and (da.month, da.day) == (db.month, db.day)
    ):
        return "typo"
    if da.year == db.year and da.month == db.month:
        return "partial"
    return "disagree"


def compare_phone(a: Profile, b: Profile) -> str | None:
    if not (a.phone and b.phone):
        return None
    if a.phone == b.phone:
        return "agree"
    return "typo" if len(a.phone) == len(b.phone) and _edit1(a.phone, b.phone) else "disagree"


def compare_address(a: Profile, b: Profile) -> str | None:
    if not (a.address and b.address):
        return None
    if a.address == b.address or a.address.endswith(b.address) or b.address.endswith(a.address):
        return "agree"
    ta, tb = set(a.address_tokens), set(b.address_tokens)
    if ta and tb and len(ta & tb) / min(len(ta), len(tb)) >= 0.8:
        return "similar"
    return "disagree"


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
        "health_card": None
        if not (a.health_card and b.health_card)
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
    # A trusted identifier is corroborated by a name or birth date that does
    # not contradict it; otherwise (the sanity check) it goes to review.
    if c.identifier_agrees:
        c.corroborated = name not in ("family_only", "given_only", "disagree") and birth != "disagree"
    elif not identifier_conflict and name in NAME_CLOSE and birth in DATE_CLOSE:
        contact = (
            levels["phone"] in ("agree", "typo")
            or levels["address"] == "agree"
            or levels["document"] == "exact"
            or levels["resident_id"] in ("one_edit", "same_unverified")
        )
        c.corroborated = contact and levels["sex"] != "disagree"
    return c
