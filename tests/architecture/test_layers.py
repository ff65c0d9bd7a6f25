"""The layering of ../shared/DESIGN.md, checked on every import statement of the code (module-level and
inside functions alike): dependencies point from doors to corridors to stores, and from ehr/emr to mpi and
registry; never back.

- The stores (``mpi``, ``registry``, ``ehr``, ``emr``) import no corridor (``healthplatform.ingest``,
  ``.record``, ``.alerts``, ``.audit``) and no door (``healthplatform.fhirapi``, ``.viewer``) — their admin
  pages included: they say what they show (``record_kind``), and the audit logs the reads.
- ``mpi`` and ``registry`` import neither ``ehr`` nor ``emr``; ``ehr`` and ``emr`` import neither each other
  nor anything above them.
- The corridors import no door.
- A door does not write across stores itself: the FHIR API imports no store's write services for the
  archive, the documents or the MPI (it calls the write corridor).
- Reads do not import writes: ``mpi.selectors``, ``mpi.linkage`` and ``ehr.selectors`` import no services.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORES = ("mpi", "registry", "ehr", "emr")
CORRIDORS = ("healthplatform.ingest", "healthplatform.record", "healthplatform.alerts", "healthplatform.audit")
DOORS = ("healthplatform.fhirapi", "healthplatform.viewer")
# What each part may not import (module prefixes).
FORBIDDEN = {
    "mpi": (*CORRIDORS, *DOORS, "ehr", "emr"),
    "registry": (*CORRIDORS, *DOORS, "ehr", "emr", "mpi"),
    "ehr": (*CORRIDORS, *DOORS, "emr"),
    "emr": (*CORRIDORS, *DOORS, "ehr"),
    "healthplatform.ingest": DOORS,
    "healthplatform.record": DOORS,
    "healthplatform.audit": DOORS,
    "healthplatform.fhirapi": ("ehr.services", "emr.services", "mpi.services"),
}
# Reads never import writes (CONVENTIONS: selectors read, services write; the MPI's linkage rules are reads).
for _reader, _writes in (
    ("mpi.selectors", "mpi.services"),
    ("mpi.linkage", "mpi.services"),
    ("ehr.selectors", "ehr.services"),
):
    FORBIDDEN[_reader] = (*FORBIDDEN[_reader.split(".")[0]], _writes)
ALLOWED: set[tuple[str, str]] = set()  # (module name suffix, import prefix) the rules above let through


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    package = _module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _part_of(module: str) -> str | None:
    for part in sorted(FORBIDDEN, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return None


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _sources() -> list[Path]:
    folders = [ROOT / s for s in STORES] + [ROOT / "healthplatform"]
    return sorted(p for folder in folders for p in folder.rglob("*.py") if "migrations" not in p.parts)


def violations() -> list[str]:
    found = []
    for path in _sources():
        module = _module_name(path)
        part = _part_of(module)
        if part is None:
            continue
        for line, imported in _imports(path):
            for forbidden in FORBIDDEN[part]:
                if not _within(imported, forbidden):
                    continue
                if any(module.endswith("." + kind) and _within(imported, allowed) for kind, allowed in ALLOWED):
                    continue
                found.append(f"{path.relative_to(ROOT)}:{line} ({part}) imports {imported}")
    return sorted(set(found))


def test_no_part_imports_what_the_design_forbids():
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("ehr.services", "from emr.models import DocumentEntry", True),
        ("mpi.selectors", "from ehr import selectors", True),
        ("registry.models", "import mpi.models", True),
        ("healthplatform.ingest.apply", "from healthplatform.fhirapi.outcome import FHIRError", True),
        ("healthplatform.fhirapi.views.x", "from ehr.services import resources_write", True),
        ("ehr.selectors", "    from healthplatform.record import person_record", True),
        ("emr.admin", "from healthplatform.audit.admin import ReadLoggedAdmin", True),
        ("ehr.services", "from mpi.models import uuid7", False),
        ("healthplatform.fhirapi.views.x", "from healthplatform.ingest.apply import bundle_apply", False),
        ("mpi.linkage", "from mpi.services.links import move", True),
        ("ehr.services", "from ehr.selectors import conditional_matches", False),
    ],
)
def test_the_check_sees_a_forbidden_import(tmp_path, monkeypatch, module, source, expected):
    """The check itself: a forbidden import is found (in a function body too), an allowed one is not."""
    *package, name = module.split(".")
    folder = tmp_path.joinpath(*package)
    folder.mkdir(parents=True)
    body = f"def f():\n{source}\n" if source.startswith(" ") else source + "\n"
    (folder / f"{name}.py").write_text(body)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    monkeypatch.setattr(f"{__name__}.STORES", tuple(s for s in STORES if (tmp_path / s).exists()))
    if not (tmp_path / "healthplatform").exists():
        (tmp_path / "healthplatform").mkdir()
    assert bool(violations()) is expected
