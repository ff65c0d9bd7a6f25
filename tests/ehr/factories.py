"""Builders for the archive's own tests: resources written straight through ``ehr.services.resources_write``
(no HTTP, no validation layer), about identities the MPI registered, and searches parsed as the API parses
them."""

from __future__ import annotations

import itertools

from ehr.selectors import Page, Query, query_parse, resources_search
from ehr.services import WriteItem, resources_write
from mpi.selectors import identity_ids_of_patient
from tests.emr.factories import identity, source_system
from tests.fhirapi.samples import sample

__all__ = ["create", "identity", "patient", "search", "source_system", "write"]

_births = itertools.count(1)


def patient(authority: str = "HOSP-A", local_id: str | None = None, **demographics):
    """A registered identity of a person of their own (a name and birth date no one else here has)."""
    n = next(_births)
    demographics.setdefault("name", f"患者{'甲乙丙丁戊己庚辛壬癸'[n % 10]}{'子丑寅卯辰巳午未申酉'[n // 10 % 10]}")
    demographics.setdefault("birth", f"19{40 + n % 50:02d}-0{n % 9 + 1}-1{n % 9}")
    return identity(authority, local_id or f"{authority}-{n}", **demographics)


def write(source, *items: WriteItem) -> list[WriteItem]:
    """Writes the items as one batch of ``source`` (no Submission: provenance is not what is tested)."""
    return resources_write(items=list(items), source=source, actor="test", submission=None)


def create(source, resource_type: str, who, n: int = 1, **fields) -> WriteItem:
    """Creates one resource of ``resource_type`` about the identity ``who`` (tests/fhirapi/samples.py's
    sample, business identifier n, ``fields`` put over it; a field given None is left out) and returns
    the written item."""
    body = sample(resource_type, f"Patient/{who.uuid}", n)
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    return write(source, WriteItem(resource_type, body, identity_id=who.pk))[0]


def search(resource_type: str, query: str | list[tuple[str, str]], *, strict: bool = True, **kwargs) -> Page:
    """A search as the API runs it: ``Observation?code=…`` parsed (patients resolved through the MPI) and run."""
    pairs = query if isinstance(query, list) else parse(query)
    q = parsed(resource_type, pairs, strict=strict)
    for name, value in kwargs.items():
        setattr(q, name, value)
    return resources_search(q, with_total=True)


def parsed(resource_type: str, pairs: list[tuple[str, str]], *, strict: bool = True) -> Query:
    return query_parse(resource_type, pairs, resolve_patient=identity_ids_of_patient, strict=strict)


def parse(query: str) -> list[tuple[str, str]]:
    """``a=1&b=2`` as pairs, values kept as written (a ``+`` in a time zone stays a plus)."""
    return [tuple(part.split("=", 1)) for part in query.split("&") if part]
