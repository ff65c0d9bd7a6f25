"""``POST /fhir/`` with a Bundle: a transaction (all or nothing) or a batch (each entry on its own).

Transaction processing follows R4 http.html#trules: entries are applied in the order DELETE, POST, PUT,
GET whatever order they came in; ``urn:uuid`` fullUrls of created entries are replaced by the ids the
server gave them everywhere in the Bundle; conditional references (``Practitioner?identifier=…``) are
resolved to the one resource they match. Patients go first: each is its system's MPI identity, and the
facts of the Bundle are about it. A whole hospital's history of one person (thousands of entries) is one
batch of bulk statements in one database transaction.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl, urlencode

from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from ehr import selectors as archive
from ehr.errors import ResourceError, WriteRace
from ehr.indexing import SPECS
from ehr.services import WriteItem, items_resolve, resources_write, submission_record
from healthplatform.fhirapi.outcome import FHIRError, operation_outcome
from healthplatform.fhirapi.resources.clinical import (
    FHIR_ID,
    clinical_item,
    error_from,
    patient_item,
    references_rewrite,
    rendered,
    writer_of,
)
from healthplatform.fhirapi.resources.documents import binary_content, document_write
from healthplatform.fhirapi.views.base import FHIRView
from healthplatform.fhirapi.views.resources import etag

# The most entries one Bundle may carry (a person's whole history from one hospital fits easily).
MAX_ENTRIES = 20_000
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
# Written to the document store (emr), not the archive: MHD ITI-65 content.
_DOCUMENT_TYPES = ("DocumentReference", "Binary")


class BundleView(FHIRView):
    """``POST /fhir/`` with a transaction or batch Bundle; answers a transaction-response or batch-response."""

    fhir_resource_type = None  # each entry's type is checked on its own (permissions.scope_allows)

    @extend_schema(
        operation_id="fhir_bundle",
        summary="Transaction or batch Bundle",
        request=OpenApiTypes.OBJECT,
        responses={(200, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def post(self, request):
        bundle = request.data
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FHIRError.one(
                400,
                "invalid",
                "POST to the FHIR base takes a Bundle of type transaction or batch",
                expression="Bundle.resourceType",
            )
        kind = bundle.get("type")
        if kind not in ("transaction", "batch"):
            raise FHIRError.one(
                400, "invalid", f"Bundle.type: expected transaction or batch, got {kind!r}", expression="Bundle.type"
            )
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise FHIRError.one(400, "structure", "Bundle.entry: expected an array", expression="Bundle.entry")
        if len(entries) > MAX_ENTRIES:
            raise FHIRError.one(
                413, "too-costly", f"Bundle.entry: at most {MAX_ENTRIES} entries per Bundle", expression="Bundle.entry"
            )
        parsed = [_entry(request, i, e) for i, e in enumerate(entries)] if kind == "transaction" else None
        if kind == "transaction":
            return Response(_transaction(request, parsed))
        return Response(_batch(request, entries))


class _Entry:
    """One parsed Bundle entry: where it is, what it asks, and (after processing) its item."""

    def __init__(self, index: int):
        self.index = index
        self.path = f"Bundle.entry[{index}]"
        self.item: WriteItem | None = None
        self.result: dict | None = None
        self.document = None  # (emr DocumentEntry, created) of a DocumentReference or the Binary it used


def _entry(request, index: int, raw) -> _Entry:
    from healthplatform.fhirapi.permissions import scope_allows

    e = _Entry(index)
    if not isinstance(raw, dict):
        raise FHIRError.one(400, "structure", f"{e.path}: expected an object", expression=e.path)
    req = raw.get("request")
    if not isinstance(req, dict) or not req.get("method") or not req.get("url"):
        raise FHIRError.one(
            400, "required", f"{e.path}.request: method and url are required", expression=f"{e.path}.request"
        )
    e.method = str(req["method"]).upper()
    if e.method not in _ORDER:
        raise FHIRError.one(
            400,
            "not-supported",
            f"{e.path}.request.method: {e.method} is not supported here",
            expression=f"{e.path}.request.method",
        )
    e.url = str(req["url"]).lstrip("/")
    path, _, query = e.url.partition("?")
    parts = path.split("/")
    e.resource_type = parts[0]
    e.fhir_id = parts[1] if len(parts) > 1 else None
    e.criteria = query or None
    e.if_none_exist = req.get("ifNoneExist")
    e.if_match = None
    if req.get("ifMatch"):
        text = str(req["ifMatch"]).removeprefix("W/").strip('"')
        if not text.isdigit():
            raise FHIRError.one(
                400,
                "invalid",
                f'{e.path}.request.ifMatch: expected W/"<versionId>"',
                expression=f"{e.path}.request.ifMatch",
            )
        e.if_match = int(text)
    if e.resource_type in _DOCUMENT_TYPES and e.method != "POST":
        raise FHIRError.one(
            400,
            "not-supported",
            f"{e.path}.request.method: documents are provided with POST "
            "(a correction is a new document that replaces the old one)",
            expression=f"{e.path}.request.method",
        )
    if e.resource_type not in SPECS and e.resource_type not in _DOCUMENT_TYPES:
        raise FHIRError.one(
            400,
            "not-supported",
            f"{e.path}.request.url: {e.resource_type} is not a type this Bundle endpoint writes",
            expression=f"{e.path}.request.url",
        )
    if e.fhir_id is not None and (len(parts) > 2 or not FHIR_ID.match(e.fhir_id)):
        raise FHIRError.one(
            400,
            "invalid",
            f"{e.path}.request.url: expected Type, Type/id or Type?criteria",
            expression=f"{e.path}.request.url",
        )
    action = "read" if e.method in ("GET", "HEAD") else "write"
    if not scope_allows(request, e.resource_type, action):
        raise FHIRError.one(
            403, "forbidden", f"{e.path}: the token has no scope to {action} {e.resource_type}", expression=e.path
        )
    e.resource = raw.get("resource")
    e.full_url = raw.get("fullUrl")
    if e.method in ("POST", "PUT"):
        if not isinstance(e.resource, dict):
            raise FHIRError.one(
                400, "required", f"{e.path}.resource: {e.method} needs a resource", expression=f"{e.path}.resource"
            )
        if e.resource.get("resourceType") != e.resource_type:
            raise FHIRError.one(
                400,
                "invalid",
                f"{e.path}.resource.resourceType: does not match request.url",
                expression=f"{e.path}.resource.resourceType",
            )
    return e


def _transaction(request, entries: list[_Entry]) -> dict:
    writer = writer_of(request)
    for attempt in range(2):
        try:
            with transaction.atomic():
                _apply(request, writer, entries)
            break
        except WriteRace as exc:
            if attempt:
                raise error_from(exc) from None
            for e in entries:
                e.item, e.result = None, None
        except ResourceError as exc:
            raise error_from(exc) from None
    return _response("transaction-response", [e.result for e in entries])


def _apply(request, writer, entries: list[_Entry]) -> None:
    submission = submission_record(
        source=writer.source, actor=writer.actor, request_line=f"POST {request.path}", body=request.body
    )
    ordered = sorted(entries, key=lambda e: (_ORDER[e.method], e.resource_type != "Patient", e.index))
    local: dict[str, str] = {}
    items: list[WriteItem] = []
    # Patients first: the MPI decides each one's identity, and the facts below are about them.
    for e in ordered:
        if e.resource_type == "Patient" and e.method in ("POST", "PUT"):
            target = archive.resource_get("Patient", e.fhir_id) if e.fhir_id else None
            e.item = patient_item(
                writer, e.resource, path=f"{e.path}.resource", method="update" if target else "create", target=target
            )
            if e.full_url:
                local[e.full_url] = f"Patient/{e.item.fhir_id}"
            items.append(e.item)
    clinical = []
    binaries: dict[str, bytes] = {}
    for e in ordered:
        if e.resource_type == "Binary":
            binaries[e.full_url or f"#{e.index}"] = binary_content(e.resource, path=f"{e.path}.resource")
            continue
        if e.resource_type in ("Patient", "DocumentReference") or e.method not in ("POST", "PUT", "DELETE"):
            continue
        if e.method == "DELETE":
            target = _target(e)
            if target is not None:
                e.item = WriteItem(e.resource_type, None, method="delete", target=target, if_match=e.if_match)
                items.append(e.item)
            continue
        item = clinical_item(writer, e.resource_type, e.resource, path=f"{e.path}.resource", local=local)
        if e.method == "POST":
            item.if_none_exist = e.if_none_exist
        else:
            target = _target(e)
            if target is not None:
                item.method, item.target, item.fhir_id = "update", target, target.fhir_id
                item.extra["resolved"] = True
            item.if_match = e.if_match
        e.item = item
        clinical.append(e)
        items.append(item)
    items_resolve([e.item for e in clinical], source=writer.source)
    for e in clinical:
        if e.full_url:
            local[e.full_url] = f"{e.resource_type}/{e.item.fhir_id}"
    # Documents next: their ids are what a SubmissionSet List (ITI-65) refers to.
    used: dict[str, tuple] = {}
    for e in ordered:
        if e.resource_type == "DocumentReference":
            urls = [(c.get("attachment") or {}).get("url") for c in e.resource.get("content") or []]
            e.document = document_write(writer, e.resource, path=f"{e.path}.resource", local=local, binaries=binaries)
            used.update({u: e.document for u in urls if u in binaries})
            if e.full_url:
                local[e.full_url] = f"DocumentReference/{e.document[0].uuid}"
    for e in ordered:
        if e.resource_type == "Binary":
            e.document = used.get(e.full_url or f"#{e.index}")
            if e.document is None:
                raise FHIRError.one(
                    400,
                    "invalid",
                    f"{e.path}: no DocumentReference of this Bundle uses this Binary (attachment.url)",
                    expression=e.path,
                )
            if e.full_url:
                local[e.full_url] = f"Binary/{e.document[0].uuid}"
    # Every written resource's references, the Patients' included (identifier.assigner, generalPractitioner):
    # R4 http.html#trules resolves urn:uuid and conditional references in every entry of a transaction.
    patients = [e for e in ordered if e.resource_type == "Patient" and e.item is not None]
    for e in (*patients, *clinical):
        references_rewrite(e.item.body, local, path=f"{e.path}.resource")
    resources_write(items=items, source=writer.source, actor=writer.actor, submission=submission)
    answer = _Answer(request)
    for e in entries:
        e.result = _result(request, e, answer)


def _target(e: _Entry):
    """The resource a PUT or DELETE entry names (by id or by criteria); None for a conditional PUT that
    matches nothing (then it creates) or a DELETE of nothing."""
    if e.fhir_id:
        target = archive.resource_get(e.resource_type, e.fhir_id)
        if target is None and e.method == "PUT":
            raise ResourceError(
                f"{e.path}.request.url: {e.url} is not known; create it with POST",
                status=404,
                code="not-found",
                expression=f"{e.path}.request.url",
            )
        return target
    if not e.criteria:
        raise ResourceError(
            f"{e.path}.request.url: {e.method} needs Type/id or Type?criteria", expression=f"{e.path}.request.url"
        )
    matches = archive.conditional_matches(e.resource_type, e.criteria)
    if len(matches) > 1:
        raise ResourceError(
            f"{e.path}.request.url: {len(matches)} resources match {e.url}",
            status=412,
            code="multiple-matches",
            expression=f"{e.path}.request.url",
        )
    return matches[0] if matches else None


class _Answer:
    """What every entry's answer shares, worked out once per request: a Bundle of a person's history has
    thousands of entries written at one instant."""

    def __init__(self, request):
        self.base = request.build_absolute_uri("/fhir/")
        self.minimal = "return=minimal" in request.headers.get("Prefer", "")
        self._instants: dict = {}

    def instant(self, when) -> str:
        text = self._instants.get(when)
        if text is None:
            text = self._instants[when] = when.isoformat(timespec="milliseconds")
        return text


def _result(request, e: _Entry, answer: _Answer) -> dict:
    if e.method in ("GET", "HEAD"):
        return _read_entry(request, e)
    if e.document is not None:
        entry, created = e.document
        kind = "Binary" if e.resource_type == "Binary" else "DocumentReference"
        location = f"{kind}/{entry.uuid}" + (f"/_history/{entry.version_id}" if kind == "DocumentReference" else "")
        return {
            "response": {
                "status": "201 Created" if created else "200 OK",
                "location": location,
                "etag": etag(entry.version_id),
            }
        }
    item = e.item
    if item is None:  # a DELETE of nothing
        return {"response": {"status": "204 No Content"}}
    resource = item.resource
    name = f"{resource.resource_type}/{resource.fhir_id}"
    response = {
        "status": _STATUS.get(item.outcome, "200 OK"),
        "location": f"{name}/_history/{resource.version_id}",
        "etag": etag(resource.version_id),
        "lastModified": answer.instant(resource.last_updated),
    }
    out: dict = {"response": response}
    if item.outcome != "deleted":
        out["fullUrl"] = answer.base + name
        if not answer.minimal:
            out["resource"] = rendered(resource)
    return out


_STATUS = {"created": "201 Created", "deleted": "204 No Content"}


def _read_entry(request, e: _Entry) -> dict:
    if e.fhir_id:
        resource = archive.resource_get(e.resource_type, e.fhir_id)
        if resource is None or resource.deleted:
            status = "404 Not Found" if resource is None else "410 Gone"
            return {"response": {"status": status}}
        return {"resource": rendered(resource), "response": {"status": "200 OK", "etag": etag(resource.version_id)}}
    from healthplatform.fhirapi.resources.clinical import identities_for_patient

    query = archive.query_parse(
        e.resource_type, parse_qsl(e.criteria or ""), resolve_patient=identities_for_patient, strict=False
    )
    page = archive.resources_search(query)
    entries = [
        {
            "fullUrl": request.build_absolute_uri(f"/fhir/{r.resource_type}/{r.fhir_id}"),
            "resource": rendered(r),
            "search": {"mode": "match"},
        }
        for r in page.matches
    ]
    inner = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": f"{e.resource_type}?{urlencode(parse_qsl(e.criteria or ''))}"}],
    }
    if entries:
        inner["entry"] = entries
    return {"resource": inner, "response": {"status": "200 OK"}}


def _batch(request, raw_entries: list) -> dict:
    """Each entry on its own: one failing answers its own OperationOutcome, the others still happen."""
    writer = writer_of(request)
    results = []
    for i, raw in enumerate(raw_entries):
        try:
            e = _entry(request, i, raw)
            for attempt in range(2):
                try:
                    with transaction.atomic():
                        _apply(request, writer, [e])
                    break
                except WriteRace:
                    if attempt:
                        raise
                    e.item = None
            results.append(e.result)
        except (FHIRError, ResourceError) as exc:
            err = exc if isinstance(exc, FHIRError) else error_from(exc)
            results.append({"response": {"status": str(err.status), "outcome": operation_outcome(err.issues)}})
    return _response("batch-response", results)


def _response(kind: str, results: list[dict]) -> dict:
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": timezone.now().isoformat(timespec="milliseconds")},
        "type": kind,
    }
    if results:
        bundle["entry"] = results
    return bundle
