"""How the platform refuses something: an HTTP status and issues that say what is wrong and where.

The corridors (``ingest``, ``record``) raise ``PlatformError``; each door tells it in its own terms — the FHIR
API as an OperationOutcome, the HL7 v2 listener as an AE/AR acknowledgement with ERR segments. Issue codes are
FHIR's issue types (http://hl7.org/fhir/issue-type), which HL7 v2 table 0357 maps onto.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One problem: an issue-type ``code``, a message a person can act on, and the element or parameter it is
    about (a FHIRPath such as ``Bundle.entry[3].resource.subject``)."""

    code: str
    message: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def as_fhir(self) -> dict:
        issue: dict = {"severity": self.severity, "code": self.code, "details": {"text": self.message}}
        # IHE profiles test ``diagnostics`` (PIXm ITI-83 §3.83.4.2.2), generic clients read
        # ``details.text``: the same human-readable message goes in both.
        issue["diagnostics"] = self.message
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class PlatformError(Exception):
    """A refusal: the HTTP status it is answered with and its issues (never patient data in the messages)."""

    status: int
    issues: list[Issue]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.message for i in self.issues)

    @classmethod
    def one(cls, status: int, code: str, message: str, *, expression: str | None = None) -> PlatformError:
        return cls(status, [Issue(code, message, (expression,) if expression else ())])


def reference_not_found(where: str, message: str) -> PlatformError:
    """A reference inside a body that names nothing here: 422, not 404 (the request's own target exists; its
    content refers to what does not: R4 http.html#create, "422 Unprocessable Entity"), naming the element.
    Every unresolvable reference of the write corridor (literal, conditional, ``urn:uuid``, Patient) is this."""
    return PlatformError.one(422, "not-found", f"{where}: {message}", expression=where)
