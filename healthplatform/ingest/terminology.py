"""Local codes translated at write time: every coding of a fact in one of the writing source system's local
code systems gains, right after it in the same coding list, the standard coding the registry maps it to
(``registry.terminology.CodeMap``), so that searches by standard code, the alerts and the viewer see one
vocabulary. The original stays first and untouched (``userSelected`` as the sender set it); a standard coding
already in the list is not added again, so translating twice is translating once. A local code no map entry
translates is stored as sent and counted per source system (``registry.models.UnmappedCode``) for the
terminology team.

``CodeTranslation`` is one run's translation (``ingest.apply.Run``): the writer's code map from the
per-process snapshot (no query per coding, nor per Bundle), and the unmapped codes the run received, counted
by one statement inside the write's transaction. ``codes_retranslate_step`` brings stored facts up to a map
that changed since they were written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from ehr.models import Submission
from ehr.selectors import facts_after
from ehr.services import WriteItem, resources_lock, resources_write
from registry.selectors import source_ids_with_code_maps
from registry.services import unmapped_codes_clear_mapped, unmapped_codes_count
from registry.terminology import CodeMap, code_map, code_map_load

# The elements of a Coding (R4 datatypes.html#Coding), primitive extensions included: a JSON object with a
# ``code`` and nothing else is a Coding. (Quantity, its only look-alike, also has ``value``, ``unit`` or
# ``comparator``; the BackboneElements named ``code`` hold a CodeableConcept, not a string.)
CODING_KEYS = frozenset(
    {"id", "extension", "system", "version", "code", "display", "userSelected"}
    | {"_system", "_version", "_code", "_display", "_userSelected"}
)
# Who a re-translation's new versions are attributed to (``Resource.actor``, ``ResourceVersion.actor``).
RETRANSLATION_ACTOR = "platform:codes_retranslate"

Rewrite = Callable[[dict, str, object], None]


def _is_coding(node) -> bool:
    return type(node) is dict and type(node.get("code")) is str and node.keys() <= CODING_KEYS


def _set(node: dict, key: str, value) -> None:
    node[key] = value


@dataclass
class CodeTranslation:
    """One run's translation: the writer's code map and the unmapped local codes received so far, as
    (local system, code) → [occurrences, display as first sent]."""

    code_map: CodeMap
    unmapped: dict[tuple[str, str], list] = field(default_factory=dict)

    @classmethod
    def of(cls, source_id: int) -> CodeTranslation:
        return cls(code_map(source_id))

    def resource(self, body: dict, rewrite: Rewrite = _set) -> bool:
        """Adds the standard codings of ``body``'s local codes, anywhere in it (contained resources and
        extensions too); a coding list that gains one is replaced through ``rewrite(node, key, new list)``,
        so that a run can undo it. Returns whether anything was added."""
        changed = False
        stack: list = [body]
        while stack:
            node = stack.pop()
            if type(node) is list:
                stack.extend(x for x in node if type(x) is dict or type(x) is list)
                continue
            for key, value in node.items():
                kind = type(value)
                if kind is list:
                    codings = False
                    for x in value:
                        if type(x) is dict:
                            if _is_coding(x):
                                codings = True
                                if "extension" in x:
                                    stack.append(x["extension"])
                            else:
                                stack.append(x)
                        elif type(x) is list:
                            stack.append(x)
                    if codings:
                        # CodeableConcept.coding, or a list of bare Codings (meta.tag, ImagingStudy.modality).
                        changed |= self._codings(node, key, value, rewrite)
                elif kind is dict:
                    if _is_coding(value):
                        # A single Coding (Encounter.class, an extension's valueCoding) has no list to take a
                        # second coding: R4 gives it no place for a translation. It is kept as sent, and an
                        # unmapped one is still counted.
                        self._standard(value)
                        if "extension" in value:
                            stack.append(value["extension"])
                    else:
                        stack.append(value)
        return changed

    def translated(self, body: dict) -> dict:
        """A translated copy of ``body`` (a stored fact), counting nothing."""
        copied = copy.deepcopy(body)
        CodeTranslation(self.code_map).resource(copied)
        return copied

    def _standard(self, coding: dict):
        """The standard coding of a local code (None: not a local code, or unmapped — then counted)."""
        system = coding.get("system") or ""
        if not isinstance(system, str) or not self.code_map.is_local(system):
            return None
        code = coding["code"]
        found = self.code_map.translate(system, code)
        if found is None:
            held = self.unmapped.get((system, code))
            if held is None:
                display = coding.get("display")
                self.unmapped[(system, code)] = [1, display if isinstance(display, str) else ""]
            else:
                held[0] += 1
        return found

    def _codings(self, node: dict, key: str, codings: list, rewrite: Rewrite) -> bool:
        out: list = []
        present: set | None = None
        for coding in codings:
            out.append(coding)
            found = self._standard(coding) if _is_coding(coding) else None
            if found is None:
                continue
            if present is None:
                present = {(c.get("system"), c.get("code")) for c in codings if isinstance(c, dict)}
            if (found.system, found.code) in present:
                continue  # the sender sent it too, or this run (or an earlier one) added it
            present.add((found.system, found.code))
            out.append({"system": found.system, "code": found.code, "display": found.display})
        if len(out) == len(codings):
            return False
        rewrite(node, key, out)
        return True

    def unmapped_count(self) -> None:
        """Counts the unmapped codes this run received (inside the write's transaction: a write refused or
        rolled back counts nothing)."""
        if self.unmapped:
            counts = {k: (n, display) for k, (n, display) in self.unmapped.items()}
            unmapped_codes_count(source_id=self.code_map.source_id, counts=counts)


# --- re-translation after a map changed --------------------------------------------------------


@dataclass
class RetranslationStep:
    """Where a re-translation is: the last fact examined (resume after it) and what it did so far."""

    after: int
    examined: int = 0
    translated: int = 0  # facts that gained a standard coding: a new version each
    busy: int = 0  # facts a feed was writing at that moment (skipped: run again to cover them)
    cleared: int = 0  # unmapped-code rows removed because their codes are mapped now
    done: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def codes_retranslate_step(*, source_id: int | None, after: int = 0, batch_size: int = 500) -> RetranslationStep:
    """Re-translates the next ``batch_size`` stored facts after primary key ``after`` of one source system (or,
    ``source_id`` None, of every source system that has map entries) with the maps as they are now, in one
    transaction; when none is left, removes the unmapped-code rows the maps now translate.

    Idempotent and resumable: a fact already carrying its standard codings is left as it is, so a step run
    twice (a lost worker, a restarted command) or a whole run started again changes nothing more.

    A fact that gains a coding is written as a **new version** attributed to ``RETRANSLATION_ACTOR``, not
    rewritten in place: the version a client read (and may hold an ETag of) did not have the coding, history
    says when and by whom the fact's content changed, and the archive's usual update path re-indexes it. The
    version keeps the fact's submission, the hospital message that carried its clinical content.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    source_ids = [source_id] if source_id is not None else source_ids_with_code_maps()
    step = RetranslationStep(after=after)
    maps: dict[int, CodeMap] = {}

    def map_of(source: int) -> CodeMap:
        # As the map is now, not this process's snapshot of up to a minute ago.
        if source not in maps:
            maps[source] = code_map_load(source)
        return maps[source]

    with transaction.atomic():
        page = facts_after(source_ids=source_ids, after=after, limit=batch_size) if source_ids else []
        wanted = [pk for pk, source, body in page if CodeTranslation(map_of(source)).resource(copy.deepcopy(body))]
        step.examined = len(page)
        step.after = page[-1][0] if page else after
        # Read again under lock; a row a feed's transaction holds is skipped, not waited for: waiting on rows in
        # another order than that transaction takes them could deadlock it, and its own write translates.
        locked = resources_lock(pks=wanted, skip_locked=True)
        step.busy = len(wanted) - len(locked)
        groups: dict[int | None, list[WriteItem]] = {}
        for resource in locked:
            body = copy.deepcopy(resource.body)
            if resource.deleted or not CodeTranslation(map_of(resource.source_id)).resource(body):
                continue
            item = WriteItem(resource.resource_type, body, method="update", target=resource)
            item.if_match = resource.version_id
            groups.setdefault(resource.submission_id, []).append(item)
        submissions = Submission.objects.only("id").in_bulk([s for s in groups if s is not None])
        for submission_id, items in groups.items():
            submission = submissions.get(submission_id)
            resources_write(items=items, source=None, actor=RETRANSLATION_ACTOR, submission=submission)
            step.translated += len(items)
        if len(page) < batch_size:
            step.done = True
            step.cleared = sum(unmapped_codes_clear_mapped(code_map=map_of(s)) for s in source_ids)
    return step
