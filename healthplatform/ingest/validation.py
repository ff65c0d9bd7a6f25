"""Validation of incoming resources with the FHIR R4 models (``fhir.resources.R4B``), errors naming the element."""

from __future__ import annotations

import re

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from healthplatform.errors import Issue, PlatformError
from healthplatform.fhirvalidation import element_path

# FHIR ids (R4 datatypes.html#id).
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
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
