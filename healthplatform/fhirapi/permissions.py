"""Permissions of the FHIR views."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


class IsAttributable(BasePermission):
    """The request is attributed to a source system or a staff user (see ``authentication``)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)
