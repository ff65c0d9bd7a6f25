"""OperationOutcome: how every FHIR error is told to the client.

The exception is the platform's own ``PlatformError`` (``healthplatform.errors``): the write corridor and the
FHIR views raise the same class, so a refusal reads the same whichever of them made it.
"""

from __future__ import annotations

from healthplatform.errors import Issue, PlatformError

FHIRError = PlatformError

__all__ = ["FHIRError", "Issue", "invalid_parameter", "operation_outcome"]


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


def invalid_parameter(name: str, message: str, *, code: str = "invalid") -> FHIRError:
    """A 400 about one request parameter; the parameter is named in the message and the expression."""
    return FHIRError.one(400, code, f"{name}: {message}", expression=name)
