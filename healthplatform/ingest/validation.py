"""Validation of incoming resources with the FHIR R4 models (``fhir.resources.R4B``), errors naming the element."""

from __future__ import annotations

import re

import orjson
import pydantic
from fhir.resources.R4B import get_fhir_model_class

from healthplatform.errors import Issue, PlatformError
from healthplatform.fhirvalidation import element_path

# FHIR ids (R4 datatypes.html#id).
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# What no FHIR string may hold (R4 datatypes.html#string: Unicode characters, no NUL) and what PostgreSQL stores
# neither in text nor in jsonb: U+0000, and a lone surrogate (a JSON escape such as "\\ud800" decodes to one; it
# is no Unicode character, and a body read in UTF-16 let it through to the database: a 500).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_TEXT = "holds the NUL character (U+0000) or a lone surrogate (U+D800-U+DFFF), which no FHIR string may"
# At most this many issues per refusal: a body with a thousand errors gets the first ones.
MAX_ISSUES = 20


def validation_issues(resource_type: str, error: pydantic.ValidationError) -> list[Issue]:
    """One ``invalid`` issue per pydantic error, naming the element. The input value is never echoed."""
    issues = []
    for err in error.errors(include_input=False, include_url=False)[:MAX_ISSUES]:
        path = element_path(resource_type, err.get("loc", ()))
        message = " ".join(str(err.get("msg", "invalid value")).split())
        issues.append(Issue("invalid" if err.get("type") != "missing" else "required", f"{path}: {message}", (path,)))
    return issues or [Issue("invalid", f"{resource_type}: invalid resource", (resource_type,))]


def resource_validated(resource_type: str, body, *, path: str):
    """Validates a resource with the R4B model of its type and returns the model; every error names its
    element under ``path`` (``Observation`` for a single request, ``Bundle.entry[3].resource`` in a Bundle)."""
    if not isinstance(body, dict):
        raise PlatformError.one(400, "structure", f"{path}: expected a JSON object", expression=path)
    if body.get("resourceType") != resource_type:
        raise PlatformError.one(
            400,
            "invalid",
            f"{path}.resourceType: expected {resource_type}, got {body.get('resourceType')!r}",
            expression=f"{path}.resourceType",
        )
    if "id" in body and not (isinstance(body["id"], str) and FHIR_ID.match(body["id"])):
        raise PlatformError.one(400, "invalid", f"{path}.id: not a FHIR id", expression=f"{path}.id")
    try:
        return get_fhir_model_class(resource_type).model_validate(body)
    except pydantic.ValidationError as exc:
        issues = validation_issues(resource_type, exc)
        if path != resource_type:
            issues = [
                Issue(
                    i.code,
                    i.message.replace(resource_type, path, 1),
                    tuple(e.replace(resource_type, path, 1) for e in i.expression),
                )
                for i in issues
            ]
        raise PlatformError(400, issues) from None
    except (TypeError, AttributeError, ValueError, RecursionError):
        # fhir_core's own checks raise these, not a ValidationError, on some wrong JSON types (a number where a
        # url belongs) and on nesting deeper than Python's stack.
        raise PlatformError.one(
            400,
            "structure",
            f"{path}: a value of the wrong JSON type (a number or an object where text belongs), or nested too deep",
            expression=path,
        ) from None


def unstorable_at(data, root: str = "") -> str | None:
    """Where a parsed JSON value first holds U+0000 or a lone surrogate in a string or a member name
    (``Patient.name[0].text``, a FHIRPath-like path from ``root``), else None."""
    stack = [(data, root or "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return path
        elif isinstance(node, dict):
            for key, value in node.items():
                if _UNSTORABLE.search(key):
                    return f"{path} (a member name)"
                stack.append((value, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
    return None


def unstorable_possible(data) -> bool:
    """Whether ``data`` may hold U+0000 or a lone surrogate anywhere, answered without a walk in Python: orjson
    writes a NUL as the escape ``\\u0000`` and refuses a lone surrogate (or anything it cannot write: an integer
    beyond 64 bits, a Decimal — then the answer is "maybe"). 40 µs on a 60-entry Bundle, where walking each
    entry took 3.8 ms of the write path's ~80 (bench/fhir_speed.py profile)."""
    try:
        return b"\\u0000" in orjson.dumps(data)
    except TypeError:
        return True


def unstorable_outside_entries(data) -> str | None:
    """``unstorable_at`` for a request body, a Bundle's entries left out: each entry is checked on its own
    (``entries.bundle_entry``), so that a batch answers a bad entry in its place and applies the others."""
    if not isinstance(data, dict):
        return unstorable_at(data)
    root = data.get("resourceType") if isinstance(data.get("resourceType"), str) else ""
    if root == "Bundle":
        data = {key: value for key, value in data.items() if key != "entry"}
    return unstorable_at(data, root[:64])
