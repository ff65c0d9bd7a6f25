"""Shared documents through the FHIR API (IHE MHD): what the document views parse from a request.

ITI-65 Provide Document Bundle is a transaction (written by the platform's write corridor,
``healthplatform.ingest.documents``); ITI-67 Find Document References is a DocumentReference search; ITI-68
Retrieve Document reads the content at the attachment's ``Binary/<id>`` url.
"""

from __future__ import annotations

import datetime as dt

from healthplatform.fhirapi.outcome import FHIRError


def search_dates(values: list[str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``date=ge…&date=lt…`` of an ITI-67 search as an inclusive lower and exclusive upper bound."""
    from ehr.indexing import date_range

    low = high = None
    for value in values:
        prefix, text = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", value)
        found = date_range(text)
        if found is None:
            raise FHIRError.one(400, "invalid", f"date: '{value}' is not a FHIR date", expression="date")
        start, end = found
        if prefix in ("ge", "eq"):
            low = start
        if prefix == "gt":
            low = end + dt.timedelta(microseconds=1)
        if prefix in ("le", "eq"):
            high = end + dt.timedelta(microseconds=1)
        if prefix == "lt":
            high = start
    return low, high
