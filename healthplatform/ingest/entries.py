"""What the corridor is asked to do: one ``Entry`` per interaction, whichever door it came through.

A FHIR single request is one entry (``Entry.single``); a transaction or batch Bundle is one entry per
``Bundle.entry`` (``bundle_entries``); an HL7 v2 message becomes the entries its v2-to-FHIR mapping makes. The
paths an entry carries say where an error points: ``Observation.subject`` for a single request,
``Bundle.entry[3].resource.subject`` inside a Bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson
from django.conf import settings

from ehr.indexing import SPECS, reference_target
from healthplatform.errors import PlatformError
from healthplatform.ingest.validation import FHIR_ID, UNSTORABLE_TEXT, unstorable_at, unstorable_possible

# Written to the document store (emr), not the archive: MHD ITI-65 content.
DOCUMENT_TYPES = ("DocumentReference", "Binary")
# The types an entry may write: the archive's (source Patients included) and the documents.
WRITABLE_TYPES = frozenset(SPECS) | frozenset(DOCUMENT_TYPES)
METHODS = ("DELETE", "POST", "PUT", "GET", "HEAD")


def max_entries(kind: str) -> int:
    """The most entries a Bundle of ``kind`` may carry (settings ``FHIR_TRANSACTION_MAX_ENTRIES``,
    ``FHIR_BATCH_MAX_ENTRIES``: chosen so that one at the limit is answered well inside the time budget)."""
    return settings.FHIR_BATCH_MAX_ENTRIES if kind == "batch" else settings.FHIR_TRANSACTION_MAX_ENTRIES


def max_resource_bytes(resource_type: str | None) -> int:
    """The largest resource of this type, in bytes of its JSON (settings ``FHIR_MAX_RESOURCE_BYTES`` and
    ``FHIR_MAX_RESOURCE_BYTES_BY_TYPE``)."""
    return settings.FHIR_MAX_RESOURCE_BYTES_BY_TYPE.get(resource_type or "", settings.FHIR_MAX_RESOURCE_BYTES)


def resource_too_large(resource_type: str | None, size: int, *, expression: str) -> PlatformError | None:
    """The 413 for a resource of ``size`` bytes past its type's limit (None when it fits): R4 has no status of
    its own for it; HTTP's 413 Content Too Large (RFC 9110 §15.5.14) with issue type too-costly says what to do."""
    limit = max_resource_bytes(resource_type)
    if size <= limit:
        return None
    return PlatformError.one(
        413,
        "too-costly",
        f"{expression}: a resource of type {resource_type} is at most {limit:,} bytes here (this one is {size:,})",
        expression=expression,
    )


def _json_size(resource) -> int:
    try:
        return len(orjson.dumps(resource))
    except TypeError:  # an integer beyond 64 bits (orjson.JSONEncodeError is a TypeError)
        return len(json.dumps(resource, ensure_ascii=False).encode())


@dataclass
class Received:
    """The request or message as received, kept once as the provenance of everything written from it."""

    request_line: str  # "POST /fhir/", "PUT /fhir/Observation/…", "HL7 ORU^R01"
    body: bytes | str
    kind: str = "fhir"  # ehr.Submission.Kind: "hl7v2" for an inbox message (its body stays in the inbox)
    # Set by the corridor: the Submission row the writes point to (the inbox row names it).
    submission: object = None


@dataclass
class Entry:
    """One interaction: ``method`` on ``resource_type`` (by ``fhir_id``, by ``criteria`` or neither), with
    its ``resource`` for POST and PUT."""

    method: str
    resource_type: str
    fhir_id: str | None = None
    criteria: str | None = None  # the query of a conditional update or delete (``identifier=…``)
    resource: dict | None = None
    full_url: str | None = None
    if_match: int | None = None
    if_none_exist: str | None = None
    url: str = ""
    index: int = 0  # its place in the Bundle (0 for a single request)
    single: bool = False  # a single request, not a Bundle entry

    @property
    def path(self) -> str:
        """The entry itself (``Bundle.entry[3]``), or the resource type of a single request."""
        return self.resource_type if self.single else f"Bundle.entry[{self.index}]"

    @property
    def resource_path(self) -> str:
        return self.resource_type if self.single else f"{self.path}.resource"

    @property
    def url_path(self) -> str | None:
        """Where the request's URL is named (None for a single request: the URL is the request's own)."""
        return None if self.single else f"{self.path}.request.url"

    @property
    def is_read(self) -> bool:
        return self.method in ("GET", "HEAD")


def _refuse(status: int, code: str, message: str, expression: str) -> PlatformError:
    return PlatformError.one(status, code, f"{expression}: {message}", expression=expression)


def bundle_entries(bundle) -> tuple[str, list]:
    """A transaction or batch Bundle's type and its entries, each an ``Entry`` or, for an entry that cannot be
    parsed, the ``PlatformError`` saying why (a batch answers it in place; a transaction refuses them all)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise PlatformError.one(
            400,
            "invalid",
            "POST to the FHIR base takes a Bundle of type transaction or batch",
            expression="Bundle.resourceType",
        )
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise PlatformError.one(
            400, "invalid", f"Bundle.type: expected transaction or batch, got {kind!r}", expression="Bundle.type"
        )
    raw = bundle.get("entry") or []
    if not isinstance(raw, list):
        raise PlatformError.one(400, "structure", "Bundle.entry: expected an array", expression="Bundle.entry")
    # Before any entry is looked at: a Bundle too large to be answered inside the time budget is refused whole.
    if len(raw) > (limit := max_entries(kind)):
        raise PlatformError.one(
            413,
            "too-costly",
            f"Bundle.entry: at most {limit:,} entries per {kind} Bundle (this one has {len(raw):,}); split it",
            expression="Bundle.entry",
        )
    entries: list = []
    clean = not unstorable_possible(raw)  # then no entry needs its own walk
    for index, item in enumerate(raw):
        try:
            entries.append(bundle_entry(index, item, unstorable_checked=clean))
        except PlatformError as exc:
            entries.append(exc)
    return kind, entries


def bundle_entry(index: int, raw, *, unstorable_checked: bool = False) -> Entry:
    """One ``Bundle.entry`` as an ``Entry`` (R4 bundle.html: request.method and request.url, the resource for
    POST and PUT, ifMatch and ifNoneExist)."""
    path = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise _refuse(400, "structure", "expected an object", path)
    where = None if unstorable_checked else unstorable_at(raw, path)
    if where is not None:
        raise _refuse(400, "invalid", UNSTORABLE_TEXT, where)
    req = raw.get("request")
    if not isinstance(req, dict) or not req.get("method") or not req.get("url"):
        raise _refuse(400, "required", "method and url are required", f"{path}.request")
    method = str(req["method"]).upper()
    if method not in METHODS:
        raise _refuse(400, "not-supported", f"{method} is not supported here", f"{path}.request.method")
    url = str(req["url"]).lstrip("/")
    entry = Entry(method=method, resource_type="", url=url, index=index)
    if method in ("GET", "HEAD"):
        # Reads are answered by the door that reads (the FHIR API runs them as the read they name).
        entry.resource_type = url.partition("?")[0].partition("/")[0]
        return entry
    where, _, query = url.partition("?")
    parts = where.split("/")
    entry.resource_type = parts[0]
    entry.fhir_id = parts[1] if len(parts) > 1 else None
    entry.criteria = query or None
    if entry.resource_type not in WRITABLE_TYPES:
        raise _refuse(
            400, "not-supported", f"{entry.resource_type} is not a type this server writes", f"{path}.request.url"
        )
    if entry.fhir_id is not None and (len(parts) > 2 or not FHIR_ID.match(entry.fhir_id)):
        raise _refuse(400, "invalid", "expected Type, Type/id or Type?criteria", f"{path}.request.url")
    if req.get("ifNoneExist") is not None:
        if not isinstance(req["ifNoneExist"], str):
            raise _refuse(400, "invalid", "expected a query string", f"{path}.request.ifNoneExist")
        entry.if_none_exist = req["ifNoneExist"]
    if req.get("ifMatch"):
        text = str(req["ifMatch"]).removeprefix("W/").strip('"')
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise _refuse(400, "invalid", 'expected W/"<versionId>"', f"{path}.request.ifMatch")
        entry.if_match = int(text)
    entry.resource = raw.get("resource")
    full_url = raw.get("fullUrl")
    entry.full_url = full_url if isinstance(full_url, str) and full_url else None
    named = reference_target({"reference": entry.full_url}) if entry.full_url else None
    if named is not None and not entry.full_url.startswith("urn:") and named[0] != entry.resource_type:
        # A RESTful fullUrl names the entry's own type (R4 bundle.html#bundle-unique): references to it are
        # rewritten to the entry's resource, which must be what they say they name.
        raise _refuse(
            400, "invalid", f"names a {named[0]}, but the entry is a {entry.resource_type}", f"{path}.fullUrl"
        )
    if method in ("POST", "PUT"):
        if not isinstance(entry.resource, dict):
            raise _refuse(400, "required", f"{method} needs a resource", f"{path}.resource")
        if entry.resource.get("resourceType") != entry.resource_type:
            raise _refuse(400, "invalid", "does not match request.url", f"{path}.resource.resourceType")
        too_large = resource_too_large(entry.resource_type, _json_size(entry.resource), expression=f"{path}.resource")
        if too_large is not None:
            raise too_large
    return entry
