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


# SQLSTATEs (PostgreSQL Appendix A) that mean a concurrent writer got there first, not a fault of the request:
# unique_violation (the winner's row holds the key), serialization_failure and deadlock_detected (the server
# cancelled one of two transactions waiting on each other). Run again, the request sees the winner's commit.
RACE_SQLSTATES = frozenset({"23505", "40001", "40P01"})


def lost_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost race between concurrent writers, by whichever path it came: Django's wrapped
    errors (``IntegrityError``, ``OperationalError``, the psycopg error as their cause), a raw psycopg error (a
    ``COPY`` or another statement on the driver's own cursor, which Django's wrapping never saw), or SQLite's
    unique constraint (SQLite serialises writers; its unique failure is a lost race all the same)."""
    if isinstance(exc, WriteRace):
        return True
    seen = 0
    while exc is not None and seen < 4:  # Django's error, the driver's below it
        if getattr(exc, "sqlstate", None) in RACE_SQLSTATES:
            return True
        if type(exc).__name__ == "IntegrityError" and str(exc).startswith("UNIQUE constraint failed"):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False
