"""OperationOutcome: how every FHIR error is told to the client, and the exception that carries it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue``: an issue-type ``code`` (http://hl7.org/fhir/issue-type), a message,
    and the element or parameter it is about."""

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


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


@dataclass
class FHIRError(Exception):
    """An error a FHIR view answers with: the HTTP status and the issues of its OperationOutcome."""

    status: int
    issues: list[Issue]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.message for i in self.issues)

    @classmethod
    def one(cls, status: int, code: str, message: str, *, expression: str | None = None) -> FHIRError:
        return cls(status, [Issue(code, message, (expression,) if expression else ())])


def invalid_parameter(name: str, message: str, *, code: str = "invalid") -> FHIRError:
    """A 400 about one request parameter; the parameter is named in the message and the expression."""
    return FHIRError.one(400, code, f"{name}: {message}", expression=name)
