"""FHIR R4 renderings of stored documents (pure functions: no HTTP, no writes)."""

from __future__ import annotations

import base64
import copy

from emr.codes import DOCUMENT_CLASS_SYSTEM, class_coding
from emr.models import DocumentEntry, DocumentVersion
from emr.selectors import document_content


def document_reference_resource(entry: DocumentEntry, version: DocumentVersion | None = None) -> dict:
    """The DocumentReference of ``entry`` (its current version, or ``version``) as the platform serves it.

    The JSON is the one received, with the platform's id and meta; the subject is the identity the
    document was stored under, and the attachment points at the content's Binary with its size, SHA-1
    hash and MIME type. relatesTo is kept as sent: R4 has only the replacing side ("replaces"), so the
    replaced-by link is not rendered (the replaced document says ``status: superseded``).
    """
    resource = copy.deepcopy(version.resource if version is not None else entry.resource)
    resource["subject"] = {"reference": f"Patient/{entry.identity.uuid}"}
    contents = resource.get("content") or [{}]
    attachment = contents[0].setdefault("attachment", {})
    attachment.pop("data", None)
    attachment.update(
        contentType=entry.content_type, url=f"Binary/{entry.uuid}", size=entry.size, hash=entry.hash_base64
    )
    resource["content"] = contents
    # A class read from the LOINC type is made explicit, so consumers can filter by category alone.
    categories = resource.get("category") or []
    if not any(c.get("system") == DOCUMENT_CLASS_SYSTEM for cat in categories for c in cat.get("coding") or []):
        resource["category"] = [*categories, {"coding": [class_coding(entry.class_code)]}]
    return resource


def binary_resource(entry: DocumentEntry) -> dict:
    """The content of ``entry`` as a FHIR Binary (base64 data), its access governed by the DocumentReference."""
    handle, content_type, _size = document_content(entry)
    with handle:
        data = handle.read()
    return {
        "resourceType": "Binary",
        "id": str(entry.uuid),
        "meta": {"lastUpdated": entry.created_at.isoformat(timespec="milliseconds")},
        "contentType": content_type,
        # R4 Binary.securityContext: read access to the bytes follows access to the document.
        "securityContext": {"reference": f"DocumentReference/{entry.uuid}"},
        "data": base64.b64encode(data).decode("ascii"),
    }
