"""Every FHIR read that sends a resident's data out is an access event of that resident (the audit's
``resources_read``), recorded once, where every FHIR answer passes (``FHIRView.dispatch``) — never by a view.

What is recorded is what went out: the resources of the answer (a read's resource, a searchset's matches and its
``_include``/``_revinclude`` entries, ``$everything``'s page, ``$match``'s Patients, PIXm's ``Parameters``) and the
resource the URL names (``Binary/{id}`` answers the document's bytes, with no resource to read them from). Each
resident whose record they belong to gets one event: who asked (the source system or staff user, their
institution, the client address), what (``Observation search``, ``Patient/$everything``), the request line.
An answer with nobody's data in it (an empty search, ``_summary=count``, the directory, an error) records
nothing. A Bundle's GET entries are answered by the very views they name, each sub-request recorded there; the
Bundle's own answer is a write's and is not recorded again. HEAD answers carry no resource and are not recorded.
"""

from __future__ import annotations

import uuid

from healthplatform.audit.models import AccessEvent
from healthplatform.audit.services import resources_read
from healthplatform.client_address import client_address
from healthplatform.fhirapi.authentication import caller_of
from healthplatform.fhirapi.permissions import interaction_action, view_resource_type

# What each route of fhirapi/urls.py reads, by URL name: the FHIR restful-interaction code (the AuditEvent's
# subtype) and how ``what`` says it. A route not listed that still sends a resident's data out is recorded as
# a "read" (a new route is audited before anyone names it here).
ROUTE_READS: dict[str, tuple[str, str]] = {
    "patient-search": ("search-type", "search"),
    "patient-read": ("read", "read"),
    "patient-match": ("operation", "$match"),
    "patient-pix": ("operation", "$ihe-pix"),
    "patient-everything": ("operation", "$everything"),
    "document-search": ("search-type", "search"),
    "document-read": ("read", "read"),
    "document-history": ("history-instance", "history"),
    "document-vread": ("vread", "vread"),
    "binary-read": ("read", "read"),
    "detectedissue-search": ("search-type", "search"),
    "detectedissue-read": ("read", "read"),
    "type": ("search-type", "search"),
    "instance": ("read", "read"),
    "history": ("history-instance", "history"),
    "vread": ("vread", "vread"),
}
# The request line kept with each event (BALP entity[query]); a URL longer than this is cut.
MAX_REQUEST = 4000


def resources_in(data) -> list[tuple[str, str]]:
    """The (type, id) of every resource in a FHIR answer body: the resource itself, a Bundle's entries (nested
    Bundles too), a Parameters' resources and the Patients its references name (PIXm's ``targetId``)."""
    found: list[tuple[str, str]] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        kind = node.get("resourceType")
        if kind == "Bundle":
            stack.extend(entry.get("resource") for entry in node.get("entry") or () if isinstance(entry, dict))
        elif kind == "Parameters":
            for parameter in node.get("parameter") or ():
                if not isinstance(parameter, dict):
                    continue
                stack.append(parameter.get("resource"))
                reference = (parameter.get("valueReference") or {}).get("reference") or ""
                target_type, _, target_id = reference.rpartition("/")
                if target_type and target_id:
                    found.append((target_type, target_id))
        elif isinstance(kind, str) and isinstance(node.get("id"), str):
            found.append((kind, node["id"]))
    return found


def read_recorded(request, view, response) -> list[uuid.UUID]:
    """Records the read ``response`` answers to ``request`` (see the module's docstring) and returns the golden
    Patient ids of the residents it recorded. Raises when the audit cannot be written: the caller must then not
    send the answer."""
    if request.method == "HEAD" or not 200 <= response.status_code < 300 or interaction_action(request) != "read":
        return []
    resource_type = view_resource_type(view, request)
    refs = resources_in(getattr(response, "data", None))
    named = (getattr(view, "kwargs", None) or {}).get("id")
    if resource_type and named:
        refs.append((resource_type, named))
    if not refs:
        return []
    match = getattr(request, "resolver_match", None)
    action, label = ROUTE_READS.get(getattr(match, "url_name", None) or "", ("read", "read"))
    what = f"{resource_type or 'FHIR'}/{label}" if label.startswith("$") else f"{resource_type or 'FHIR'} {label}"
    return resources_read(
        caller=caller_of(request),
        resources=refs,
        door=AccessEvent.Door.FHIR,
        what=what,
        action=action,
        client_address=client_address(request),
        query=f"{request.method} {request.get_full_path()}"[:MAX_REQUEST],
    )
