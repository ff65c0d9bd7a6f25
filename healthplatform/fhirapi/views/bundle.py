"""``POST /fhir/`` with a Bundle: a transaction (all or nothing) or a batch (each entry on its own).

The writes are the platform's write corridor's (``healthplatform.ingest.apply.bundle_apply``: ordering per R4
http.html#trules, ``urn:uuid`` and conditional references, authorisation of every entry). This view parses the
request, answers each GET entry as the very GET it names — the same view, with the same caller, scopes and
search rules as that GET on its own — and renders the transaction-response or batch-response.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, QueryDict
from django.urls import Resolver404, resolve
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from healthplatform.errors import Issue
from healthplatform.fhirapi.authentication import caller_of
from healthplatform.fhirapi.media import FHIR_JSON
from healthplatform.fhirapi.outcome import operation_outcome
from healthplatform.fhirapi.resources.clinical import rendered
from healthplatform.fhirapi.views.base import FHIRView
from healthplatform.fhirapi.views.resources import etag, received, shown
from healthplatform.ingest.apply import EntryResult, bundle_apply
from healthplatform.ingest.entries import Entry

# Headers a GET entry's read inherits from the Bundle's request (who asks, from where, in which language);
# X-Forwarded-For with REMOTE_ADDR, so that its audit names the same client (healthplatform.client_address).
_INHERITED = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_PREFER",
)
_REASONS = {200: "OK", 201: "Created", 204: "No Content"}


class BundleView(FHIRView):
    """``POST /fhir/`` with a transaction or batch Bundle; answers a transaction-response or batch-response."""

    fhir_resource_type = None  # each entry's type is authorised on its own, in the corridor

    @extend_schema(
        operation_id="fhir_bundle",
        summary="Transaction or batch Bundle",
        request=OpenApiTypes.OBJECT,
        responses={(200, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def post(self, request):
        kind, results = bundle_apply(
            caller=caller_of(request), bundle=request.data, received=received(request), read=_Reader(request)
        )
        answer = _Answer(request)
        return Response(_response(f"{kind}-response", [_result(request, r, answer) for r in results]))


@extend_schema(exclude=True)
class BareBaseView(BundleView):
    """``POST /fhir``, the base as clients spell it without the slash: the same endpoint, described once (as
    ``/fhir/``) in the OpenAPI description."""


class _Reader:
    """Reads a GET (or HEAD) entry by dispatching it to the view its URL names, as the Bundle's caller."""

    def __init__(self, request):
        self.request = request

    def __call__(self, entry: Entry) -> dict:
        outer = self.request._request
        path, _, query = entry.url.partition("?")
        sub = HttpRequest()
        sub.method = "GET"
        sub.path = sub.path_info = f"/fhir/{path}"
        sub.META = {key: outer.META[key] for key in _INHERITED if key in outer.META}
        sub.META.update(REQUEST_METHOD="GET", QUERY_STRING=query, HTTP_ACCEPT=FHIR_JSON)
        try:
            sub.GET = QueryDict(query)
        except (SuspiciousOperation, BadRequest):  # more parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS
            # What Django answers such a request itself (a 400), in the entry's place (issue 18, attack).
            issue = Issue("too-costly", "the entry's URL has more search parameters than this server reads")
            return {"response": {"status": "400 Bad Request", "outcome": operation_outcome([issue])}}
        # DRF authenticates a request with these as the given user and token (rest_framework.request):
        # the entry is read as the Bundle's caller, with its token's scopes.
        sub._force_auth_user = self.request.user
        sub._force_auth_token = self.request.auth
        try:
            match = resolve(sub.path_info)
        except Resolver404:  # the catch-all of fhirapi.urls answers every path; kept for a URLconf without it
            return {"response": {"status": "404 Not Found"}}
        sub.resolver_match = match  # as Django's handler sets it: the audit of reads names the route by it
        response = match.func(sub, *match.args, **match.kwargs)
        status = f"{response.status_code} {_REASONS.get(response.status_code, response.reason_phrase)}".strip()
        data = getattr(response, "data", None)
        if response.status_code >= 400:
            out: dict = {"response": {"status": status}}
            if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
                out["response"]["outcome"] = data
            return out
        out = {"response": {"status": status}}
        if response.get("ETag"):
            out["response"]["etag"] = response["ETag"]
        if isinstance(data, dict) and entry.method == "GET":
            out["resource"] = data
        return out


class _Answer:
    """What every entry's answer shares, worked out once per request: a Bundle of a person's history has
    thousands of entries written at one instant."""

    def __init__(self, request):
        self.base = request.build_absolute_uri("/fhir/")
        self._instants: dict = {}
        self._shown: dict[str, bool] = {}
        self.request = request

    def instant(self, when) -> str:
        text = self._instants.get(when)
        if text is None:
            text = self._instants[when] = when.isoformat(timespec="milliseconds")
        return text

    def shown(self, resource_type: str) -> bool:
        if resource_type not in self._shown:
            self._shown[resource_type] = shown(self.request, resource_type)
        return self._shown[resource_type]


_STATUS = {"created": "201 Created", "deleted": "204 No Content", "absent": "204 No Content"}


def _result(request, result: EntryResult, answer: _Answer) -> dict:
    if result.error is not None:
        return {"response": {"status": str(result.error.status), "outcome": operation_outcome(result.error.issues)}}
    if result.read is not None:
        return result.read
    written = result.written
    if written.document is not None:
        entry = written.document
        kind = "Binary" if written.entry.resource_type == "Binary" else "DocumentReference"
        location = f"{kind}/{entry.uuid}" + (f"/_history/{entry.version_id}" if kind == "DocumentReference" else "")
        return {
            "response": {
                "status": "201 Created" if written.outcome == "created" else "200 OK",
                "location": location,
                "etag": etag(entry.version_id),
            }
        }
    if written.outcome == "absent":  # a DELETE of nothing
        return {"response": {"status": "204 No Content"}}
    resource = written.resource
    name = f"{resource.resource_type}/{resource.fhir_id}"
    response = {
        "status": _STATUS.get(written.outcome, "200 OK"),
        "location": f"{name}/_history/{resource.version_id}",
        "etag": etag(resource.version_id),
        "lastModified": answer.instant(resource.last_updated),
    }
    out: dict = {"response": response}
    if written.outcome != "deleted":
        out["fullUrl"] = answer.base + name
        if answer.shown(resource.resource_type):
            out["resource"] = rendered(resource)
    return out


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
