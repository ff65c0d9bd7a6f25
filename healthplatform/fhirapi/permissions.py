"""Permissions of the FHIR views: who may call at all, and what a bearer token's scopes let it do."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from healthplatform.fhirapi.authentication import caller_of

# FHIR operations that change nothing (OperationDefinition.affectsState false). FHIR R4
# operations.html lets them be invoked by GET; a client POSTs them when the parameters do not fit
# in a URL ($match takes a whole Patient), so a POST of one is still a read. Likewise
# POST [type]/_search (R4 http.html#search).
READ_OPERATIONS = frozenset(
    {"_search", "$match", "$ihe-pix", "$everything", "$validate", "$lookup", "$validate-code", "$translate", "$expand"}
)


def interaction_action(request) -> str:
    """What a request does, for scope checking: "read" (GET, HEAD, state-free operations) or "write"."""
    if request.method in ("GET", "HEAD"):
        return "read"
    last_segment = request.path.rstrip("/").rsplit("/", 1)[-1]
    if request.method == "POST" and last_segment in READ_OPERATIONS:
        return "read"
    return "write"


def scope_allows(request, resource_type: str, action: str) -> bool:
    """May this request ``action`` ("read" or "write") resources of ``resource_type``? The caller's answer
    (``healthplatform.access.Caller.may``: the source system's allow-list and the token's scopes); an
    unauthenticated request may do nothing."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return False
    return caller_of(request).may(resource_type, action)


def view_resource_type(view, request) -> str | None:
    """The resource type a view serves: its ``fhir_resource_type`` attribute, or what that method answers."""
    resource_type = getattr(view, "fhir_resource_type", None)
    if callable(resource_type):
        resource_type = resource_type(request, **getattr(view, "kwargs", {}))
    return resource_type


class IsAttributable(BasePermission):
    """The request is attributed to a source system or a staff user (see ``authentication``)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)


class HasFHIRScope(BasePermission):
    """A bearer token's scopes allow the interaction on the view's resource type (SMART ``system/`` scopes).

    A view without a resource type (``/metadata``, a Bundle POST) only needs
    an authenticated caller here; a Bundle view checks each entry itself with
    ``scope_allows``.
    """

    message = "the access token's scopes do not allow this interaction"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        resource_type = view_resource_type(view, request)
        if resource_type is None:
            return True
        action = interaction_action(request)
        if scope_allows(request, resource_type, action):
            return True
        # Instances are made per request (APIView.get_permissions), so the message is this request's.
        self.message = (
            f"the access token's scopes do not allow {action} of {resource_type}: "
            f"it needs system/{resource_type}.{action} (or system/*.{action})"
        )
        return False
