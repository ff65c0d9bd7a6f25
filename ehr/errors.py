"""The archive's domain errors: what the archive refuses, said so a person can act on it, with the HTTP status
and FHIR issue type an API answers with and the element or parameter at fault."""

from __future__ import annotations


class ResourceError(Exception):
    """A write or search the archive refuses; ``status`` is the HTTP status a FHIR API answers with."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid", expression: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code, self.expression = message, status, code, expression


class WriteRace(ResourceError):
    """A concurrent writer stored the same business identifier or conditional create first: run the whole
    request again (it will now find the winner's resource)."""

    def __init__(self):
        super().__init__(
            "a concurrent write of the same resources won the race; send the request again",
            status=409,
            code="conflict",
        )
