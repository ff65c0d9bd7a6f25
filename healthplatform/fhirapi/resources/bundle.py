"""Bundle: search results (``searchset``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.utils import timezone

MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"


@dataclass
class SearchEntry:
    """One ``Bundle.entry`` of a searchset: the resource, where it lives, and (for $match) score and grade."""

    resource: dict
    full_url: str
    mode: str = "match"
    score: float | None = None
    grade: str | None = None

    def as_fhir(self) -> dict:
        search: dict = {"mode": self.mode}
        if self.grade:
            search["extension"] = [{"url": MATCH_GRADE_URL, "valueCode": self.grade}]
        if self.score is not None:
            search["score"] = self.score
        return {"fullUrl": self.full_url, "resource": self.resource, "search": search}


def searchset(entries: list[SearchEntry], *, self_url: str | None = None, total: int | None = None) -> dict:
    """A searchset Bundle. ``total`` only when it is exact and cheap (design: totals only when asked)."""
    bundle: dict = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": timezone.now().isoformat(timespec="milliseconds")},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total
    if self_url:
        bundle["link"] = [{"relation": "self", "url": self_url}]
    # FHIR JSON has no empty arrays (R4 json.html#arrays): no matches, no ``entry``.
    if entries:
        bundle["entry"] = [e.as_fhir() for e in entries]
    return bundle


def history(request, entries: list[dict], resource_url: str, *, count: int, next_before: int | None) -> dict:
    """A history Bundle of one resource's versions, newest first; ``next_before`` links to the older ones."""
    bundle: dict = {
        "resourceType": "Bundle",
        "type": "history",
        "link": [{"relation": "self", "url": request.build_absolute_uri()}],
    }
    if next_before is not None:
        older = f"{resource_url}/_history?_count={count}&_before_version={next_before}"
        bundle["link"].append({"relation": "next", "url": older})
    if entries:
        bundle["entry"] = entries
    return bundle
