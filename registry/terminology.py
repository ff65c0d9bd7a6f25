"""The drug terminology the alerts read: what ingredients (ATC level 5) a coded medication contains, and what ATC
groups a coded allergen covers — from the ATC classification itself, the region's drug dictionary
(``DrugIngredient``) and the allergen classes (``DrugClassMember``).

It is small (thousands of rows) and read for every alert evaluation, so one snapshot is kept per process and
rebuilt when it changes here (registry.apps connects the signals) or when it is older than ``SNAPSHOT_SECONDS``
(a change made in another process).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from registry.codes import ATC_SYSTEM
from registry.models import Concept, DrugClassMember, DrugIngredient

SNAPSHOT_SECONDS = 60.0


def atc_groups(code: str) -> tuple[str, ...]:
    """The ATC groups a code belongs to, itself included, broadest first: J01CA04 → J, J01, J01C, J01CA, J01CA04."""
    return tuple(code[:n] for n in (1, 3, 4, 5, 7) if n <= len(code))


@dataclass(frozen=True)
class DrugTerminology:
    """One snapshot of the drug terminology."""

    # (system, code) of a drug-dictionary product → its ingredients' ATC level-5 codes
    ingredients: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # (system, code) of an allergen or drug class → the ATC groups it takes in
    classes: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # ATC code (any level) → (display, English display)
    atc_names: dict[str, tuple[str, str]] = field(default_factory=dict)

    def medication_ingredients(self, codings) -> frozenset[str]:
        """The ATC level-5 ingredients of a medication's codings (an ATC level-5 code is its own ingredient)."""
        found: set[str] = set()
        for system, code in codings:
            if system == ATC_SYSTEM and len(code) == 7:
                found.add(code)
            else:
                found |= self.ingredients.get((system, code), frozenset())
        return frozenset(found)

    def allergen_groups(self, codings) -> frozenset[str]:
        """The ATC groups (of any level) an allergen's codings name: an ATC code itself, a product's
        ingredients, a class's members. Empty: the allergen is not coded in a drug terminology."""
        found: set[str] = set()
        for system, code in codings:
            if system == ATC_SYSTEM and code:
                found.add(code)
            found |= self.ingredients.get((system, code), frozenset())
            found |= self.classes.get((system, code), frozenset())
        return frozenset(found)

    def atc_name(self, code: str, *, english: bool = False) -> str:
        names = self.atc_names.get(code)
        if not names:
            return code
        return (names[1] or names[0]) if english else names[0]


_lock = threading.Lock()
_snapshot: tuple[float, DrugTerminology] | None = None


def drug_terminology() -> DrugTerminology:
    """The current snapshot (built on first use, at most ``SNAPSHOT_SECONDS`` old)."""
    global _snapshot
    held = _snapshot
    now = time.monotonic()
    if held is not None and held[0] > now:
        return held[1]
    with _lock:
        ingredients: dict[tuple[str, str], set[str]] = {}
        for system, code, atc in DrugIngredient.objects.values_list(
            "drug__code_system__url", "drug__code", "ingredient__code"
        ):
            ingredients.setdefault((system, code), set()).add(atc)
        classes: dict[tuple[str, str], set[str]] = {}
        for system, code, prefix in DrugClassMember.objects.values_list(
            "drug_class__code_system__url", "drug_class__code", "atc_prefix"
        ):
            classes.setdefault((system, code), set()).add(prefix)
        names = {
            code: (display, display_en)
            for code, display, display_en in Concept.objects.filter(code_system__url=ATC_SYSTEM).values_list(
                "code", "display", "display_en"
            )
        }
        terminology = DrugTerminology(
            ingredients={k: frozenset(v) for k, v in ingredients.items()},
            classes={k: frozenset(v) for k, v in classes.items()},
            atc_names=names,
        )
        _snapshot = (now + SNAPSHOT_SECONDS, terminology)
        return terminology


def drug_terminology_forget(**kwargs) -> None:
    """Drops the snapshot (a signal receiver: the terminology changed in this process)."""
    global _snapshot
    _snapshot = None
