"""The document store's domain errors: what is wrong, said so a person can act on it, and which element it is about."""

from __future__ import annotations


class DocumentError(Exception):
    """A document that cannot be stored, changed or read as asked.

    ``element`` is the FHIRPath of the element at fault (``DocumentReference.content[0].attachment.hash``),
    so the FHIR layer can put it in ``OperationOutcome.issue.expression``; ``None`` when no element is.
    """

    def __init__(self, message: str, element: str | None = None):
        super().__init__(message)
        self.message = message
        self.element = element

    def __str__(self) -> str:
        return f"{self.element}: {self.message}" if self.element else self.message


class DocumentVersionConflict(DocumentError):
    """A change made against a version that is no longer the current one (optimistic locking, FHIR If-Match)."""

    def __init__(self, message: str, *, current_version: int):
        super().__init__(message, element="DocumentReference.meta.versionId")
        self.current_version = current_version


class DocumentForbidden(DocumentError):
    """A change of a document its writer may not make: only the source system that stored a document replaces
    it."""
