"""The errors the registry's services raise when a write cannot be done as asked, each with a message
a person can act on (the FHIR API returns it in its OperationOutcome)."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry operation that cannot be done as asked."""


class SourceSystemAuthError(RegistryError):
    """Unknown client, wrong secret, or an inactive feed or institution."""


class DirectoryForbidden(RegistryError):
    """The writer may not change this directory entry (it belongs to another institution)."""


class VersionConflict(RegistryError):
    """The entry changed since the version the writer read (optimistic locking, HTTP If-Match)."""


class DuplicateEntry(RegistryError):
    """The entry already exists (same institution code, department code, or licence number in the role)."""
