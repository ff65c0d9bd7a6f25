"""Shared documents through the corridor (IHE MHD): a DocumentReference with its content, into ``emr``.

ITI-65 Provide Document Bundle arrives as a transaction (a SubmissionSet ``List``, the ``DocumentReference``
and its ``Binary``); a DocumentReference may also come alone with its content inline (``attachment.data``).
A replacement (``relatesTo`` code ``replaces``) changes the document it names — superseded — so, like every
change, it is allowed only on documents the writer's own source system stored: the store decides that where it
resolves the target (``emr.services._replace``), so the reference is parsed once, by the store.
"""

from __future__ import annotations

import base64

from emr.errors import DocumentError, DocumentForbidden, DocumentVersionConflict
from emr.services import document_store
from healthplatform.errors import Issue, PlatformError
from healthplatform.ingest.references import references_check, references_rewrite


def document_error(exc: DocumentError, *, path: str = "DocumentReference") -> PlatformError:
    """A store refusal naming the element (under ``path`` inside a Bundle)."""
    element = exc.element or path
    if path != "DocumentReference" and element.startswith("DocumentReference"):
        element = path + element[len("DocumentReference") :]
    status, code = 400, "invalid"
    if isinstance(exc, DocumentVersionConflict):
        status, code = 412, "conflict"
    elif isinstance(exc, DocumentForbidden):
        status, code = 403, "forbidden"
    return PlatformError(status, [Issue(code, f"{element}: {exc.message}", (element,))])


def binary_content(body: dict, *, path: str) -> bytes:
    """The bytes of a Binary entry of an ITI-65 Bundle."""
    data = body.get("data")
    if not isinstance(data, str) or not body.get("contentType"):
        raise PlatformError.one(400, "required", f"{path}: a Binary needs contentType and data", expression=path)
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise PlatformError.one(400, "invalid", f"{path}.data: not base64", expression=f"{path}.data") from None


def document_write(run, body: dict, *, path: str, binaries: dict[str, bytes]):
    """Stores one DocumentReference (its content inline or in a Binary entry of the same Bundle) for the
    writer's own Patient; returns (entry, created)."""
    caller = run.caller
    if caller.source is None:
        raise PlatformError.one(403, "forbidden", f"{path}: documents are sent by a registered source system")
    if not isinstance(body, dict) or body.get("resourceType") != "DocumentReference":
        raise PlatformError.one(
            400, "invalid", f"{path}.resourceType: expected DocumentReference", expression=f"{path}.resourceType"
        )
    body = dict(body)
    subject = body.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference:
        raise PlatformError.one(
            400, "required", f"{path}.subject: a reference to the Patient is required", expression=f"{path}.subject"
        )
    identity = run.patient(reference, path=f"{path}.subject")
    content = None
    contents = body.get("content")
    first = contents[0] if isinstance(contents, list) and contents and isinstance(contents[0], dict) else {}
    if isinstance(first.get("attachment"), dict):
        attachment = dict(first["attachment"])
        url = attachment.get("url")
        if isinstance(url, str) and url in binaries and "data" not in attachment:
            content = binaries[url]
            attachment.pop("url")
            body["content"] = [{**contents[0], "attachment": attachment}, *contents[1:]]
    body["subject"] = {"reference": f"Patient/{identity.uuid}"}
    references_rewrite(run, body, path=path)
    references_check(run)
    try:
        return document_store(
            identity=identity,
            source=caller.source,
            reference=body,
            content=content,
            actor=caller.actor,
            submission=run.submission,
        )
    except DocumentError as exc:
        raise document_error(exc, path=path) from None
