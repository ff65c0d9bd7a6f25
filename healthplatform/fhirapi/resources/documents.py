"""Shared documents through the FHIR API (IHE MHD): DocumentReference and Binary over the ``emr`` store.

ITI-65 Provide Document Bundle arrives as a transaction Bundle (a SubmissionSet ``List``, the
``DocumentReference`` and its ``Binary``); ITI-67 Find Document References is a DocumentReference search;
ITI-68 Retrieve Document reads the content at the attachment's ``Binary/<id>`` url.
"""

from __future__ import annotations

import base64
import datetime as dt

from emr.errors import DocumentError, DocumentVersionConflict
from emr.services import document_store
from healthplatform.fhirapi.outcome import FHIRError, Issue
from healthplatform.fhirapi.resources.clinical import Writer, patient_reference, references_rewrite


def document_error(exc: DocumentError, *, path: str = "DocumentReference") -> FHIRError:
    """A store refusal as an OperationOutcome naming the element (under ``path`` inside a Bundle)."""
    element = exc.element or path
    if path != "DocumentReference" and element.startswith("DocumentReference"):
        element = path + element[len("DocumentReference") :]
    status = 412 if isinstance(exc, DocumentVersionConflict) else 400
    return FHIRError(
        status, [Issue("invalid" if status == 400 else "conflict", f"{element}: {exc.message}", (element,))]
    )


def binary_content(body: dict, *, path: str) -> bytes:
    """The bytes of a Binary entry of an ITI-65 Bundle."""
    data = body.get("data")
    if not isinstance(data, str) or not body.get("contentType"):
        raise FHIRError.one(400, "required", f"{path}: a Binary needs contentType and data", expression=path)
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise FHIRError.one(400, "invalid", f"{path}.data: not base64", expression=f"{path}.data") from None


def document_write(writer: Writer, body: dict, *, path: str, local: dict[str, str], binaries: dict[str, bytes]):
    """Stores one DocumentReference (its content inline or in a Binary entry of the same Bundle) for the
    writer's own Patient; returns (entry, created)."""
    if writer.source is None:
        raise FHIRError.one(403, "forbidden", f"{path}: documents are sent by a registered source system")
    if not isinstance(body, dict) or body.get("resourceType") != "DocumentReference":
        raise FHIRError.one(
            400, "invalid", f"{path}.resourceType: expected DocumentReference", expression=f"{path}.resourceType"
        )
    body = dict(body)
    identity = patient_reference(writer, body.get("subject"), path=f"{path}.subject", local=local)
    content = None
    contents = body.get("content")
    if isinstance(contents, list) and contents and isinstance(contents[0], dict):
        attachment = dict(contents[0].get("attachment") or {})
        url = attachment.get("url")
        if isinstance(url, str) and url in binaries and "data" not in attachment:
            content = binaries[url]
            attachment.pop("url")
            body["content"] = [{**contents[0], "attachment": attachment}, *contents[1:]]
    body["subject"] = {"reference": f"Patient/{identity.uuid}"}
    references_rewrite(body, local, path=path)
    try:
        return document_store(
            identity=identity, source=writer.source, reference=body, content=content, actor=writer.actor
        )
    except DocumentError as exc:
        raise document_error(exc, path=path) from None


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
