"""The terminology the platform reads on every write and every alert evaluation, kept as per-process snapshots:

- the drug terminology the alerts read: what ingredients (ATC level 5) a coded medication contains, and what
  ATC groups a coded allergen covers — from the ATC classification itself, the region's drug dictionary
  (``DrugIngredient``) and the allergen classes (``DrugClassMember``);
- each source system's code map (``code_map``): which code systems are its own local ones and the standard
  coding each of its local codes translates to (``ConceptMapEntry``), read by the write corridor for every
  coding of every fact a feed sends.

Both are small (thousands of rows) and read far more often than they change, so one snapshot is kept per
process (per source system for the code maps) and rebuilt when it changes here (registry.apps connects the
signals) or when it is older than ``SNAPSHOT_SECONDS`` (a change made in another process).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from registry.codes import ATC_SYSTEM
from registry.models import CodeSystem, Concept, ConceptMapEntry, DrugClassMember, DrugIngredient

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


# --- code maps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandardCoding:
    """The standard coding a local code translates to (a FHIR Coding's system, code and display)."""

    system: str
    code: str
    display: str


@dataclass(frozen=True)
class CodeMap:
    """One source system's local code systems and how its local codes translate.

    ``systems`` are the code systems whose codings are the source's own local codes: the code systems
    registered as its own (``CodeSystem.source_system``) and every ``local_system`` its map entries name,
    less any URL registered as a standard terminology (a map cannot make LOINC a hospital's local codes). A
    coding without a system is a local code of whoever sent it, so ``""`` is always one of them.
    """

    source_id: int
    systems: frozenset[str] = frozenset({""})
    exact: dict[tuple[str, str], StandardCoding] = field(default_factory=dict)  # (local system, code) →
    any_system: dict[str, StandardCoding] = field(default_factory=dict)  # code → (map entries without a system)

    def is_local(self, system: str) -> bool:
        return system in self.systems

    def translate(self, system: str, code: str) -> StandardCoding | None:
        """The standard coding of one of the source's local codes, by ``registry.selectors.concept_translate``'s
        rule: an entry of the very local system wins; an entry made without a system serves the code whatever
        local system it arrives with (many senders fill CWE-3 / Coding.system inconsistently)."""
        return self.exact.get((system, code)) or self.any_system.get(code)


def standard_systems() -> frozenset[str]:
    """The URLs of the code systems registered as standard terminologies (no source system)."""
    return frozenset(CodeSystem.objects.filter(source_system__isnull=True).values_list("url", flat=True))


def code_map_load(source_id: int, *, standard: frozenset[str] | None = None) -> CodeMap:
    """The source system's code map as it is in the database now (three queries; two given ``standard``, the
    standard terminologies' URLs)."""
    if standard is None:
        standard = standard_systems()
    systems = set(CodeSystem.objects.filter(source_system_id=source_id).values_list("url", flat=True))
    exact: dict[tuple[str, str], StandardCoding] = {}
    any_system: dict[str, StandardCoding] = {}
    rows = ConceptMapEntry.objects.filter(source_system_id=source_id).values_list(
        "local_system", "local_code", "concept__code_system__url", "concept__code", "concept__display"
    )
    for local_system, local_code, url, code, display in rows:
        coding = StandardCoding(url, code, display)
        if local_system:
            systems.add(local_system)
            exact[(local_system, local_code)] = coding
        else:
            any_system[local_code] = coding
    return CodeMap(source_id, frozenset((systems - standard) | {""}), exact, any_system)


_code_maps: dict[int, tuple[float, CodeMap]] = {}
_standard: tuple[float, frozenset[str]] | None = None


def code_map(source_id: int) -> CodeMap:
    """The source system's code map from this process's snapshot (at most ``SNAPSHOT_SECONDS`` old)."""
    global _standard
    held = _code_maps.get(source_id)
    now = time.monotonic()
    if held is not None and held[0] > now:
        return held[1]
    with _lock:
        if _standard is None or _standard[0] <= now:
            _standard = (now + SNAPSHOT_SECONDS, standard_systems())
        found = code_map_load(source_id, standard=_standard[1])
        if len(_code_maps) > 10_000:
            _code_maps.clear()
        _code_maps[source_id] = (now + SNAPSHOT_SECONDS, found)
        return found


def code_maps_forget(**kwargs) -> None:
    """Drops every source's code map (a signal receiver: a code system, concept or map entry changed in this
    process)."""
    global _standard
    _code_maps.clear()
    _standard = None
