"""PDQm ``$match`` (ITI-119): reading the ``Parameters`` body, and scoring results on FHIR's 0..1 scale.

Score normalisation. The MPI's score is a Fellegi–Sunter weight: the sum of
log2(m/u) over the fields, i.e. log2 of the likelihood ratio "same resident"
vs "different residents". FHIR wants ``Bundle.entry.search.score`` in 0..1, so
we report the posterior probability of a match under a prior that puts even
odds at the review threshold::

    score = 1 / (1 + 2 ** (review_threshold - raw))

With the default bands (review 7, auto-link 18): raw 7 -> 0.5, raw 10 -> 0.89,
raw 18 -> 0.9995, raw 0 -> 0.008, negative -> ~0. It is monotonic in the raw
score (ordering is kept), follows a threshold change made in settings, and has
a meaning a client can reason about. It is *not* the grade: ``certain`` also
needs corroboration (mpi.matching), so a high score without it stays
``probable``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydantic
from fhir.resources.R4B.parameters import Parameters

from healthplatform.fhirapi.outcome import FHIRError, Issue
from healthplatform.ingest.patients import local_ids, patient_demographics
from healthplatform.ingest.validation import validation_issues
from mpi.demographics import Demographics
from mpi.matching import thresholds

DEFAULT_COUNT = 10
MAX_COUNT = 50
# Best first: the grade decides, the score orders within a grade.
GRADE_ORDER = {"certain": 0, "probable": 1, "possible": 2, "certainly-not": 3}
KNOWN_PARAMETERS = frozenset({"resource", "count", "onlyCertainMatches"})


@dataclass(frozen=True)
class MatchRequest:
    """What a $match asks: the demographics to match, how many results, and whether only a certain one."""

    demographics: Demographics
    count: int
    only_certain: bool
    local_ids: tuple[tuple[str, str], ...] = ()


def normalised_score(raw: float) -> float:
    """The raw Fellegi–Sunter score as a probability in 0..1 (see the module docstring)."""
    exponent = thresholds()["review"] - raw
    # 2**1100 overflows a float; far past either side the answer is 0 or 1 anyway.
    if exponent > 60:
        return 0.0
    if exponent < -60:
        return 1.0
    return round(1 / (1 + 2**exponent), 4)


def _error(code: str, path: str, message: str) -> FHIRError:
    return FHIRError.one(400, code, f"{path}: {message}", expression=path)


def match_request(body, *, strict: bool) -> MatchRequest:
    """Validates a $match body (a ``Parameters`` resource, with fhir.resources R4B) into a ``MatchRequest``.

    Every error is a 400 ``FHIRError`` naming the element: pydantic's error
    location becomes the FHIRPath (``Parameters.parameter[0].resource.birthDate``).
    """
    if not isinstance(body, dict):
        raise FHIRError.one(400, "structure", "the body must be a FHIR Parameters resource (a JSON object)")
    if body.get("resourceType") != "Parameters":
        raise _error("invalid", "resourceType", "$match takes a Parameters resource (ITI-119)")
    try:
        parameters = Parameters.model_validate(body)
    except pydantic.ValidationError as exc:
        raise FHIRError(400, validation_issues("Parameters", exc)) from None

    found: dict[str, list[int]] = {}
    for i, parameter in enumerate(parameters.parameter or []):
        found.setdefault(parameter.name, []).append(i)
    unknown = sorted(set(found) - KNOWN_PARAMETERS)
    if unknown and strict:
        raise FHIRError(
            400,
            [
                Issue(
                    "not-supported",
                    f"Parameters.parameter[{found[n][0]}].name: unknown parameter {n!r}",
                    (f"Parameters.parameter[{found[n][0]}].name",),
                )
                for n in unknown
            ],
        )
    for name in KNOWN_PARAMETERS & set(found):
        if len(found[name]) > 1:
            raise _error("invalid", f"Parameters.parameter[{found[name][1]}]", f"{name!r} is given more than once")

    if "resource" not in found:
        raise _error("required", "Parameters.parameter", "the 'resource' parameter (a Patient) is required")
    i = found["resource"][0]
    path = f"Parameters.parameter[{i}].resource"
    patient = parameters.parameter[i].resource
    if patient is None:
        raise _error("required", path, "the 'resource' parameter must carry a Patient resource")
    if patient.get_resource_type() != "Patient":
        raise _error("invalid", f"{path}.resourceType", f"expected Patient, got {patient.get_resource_type()}")

    count = DEFAULT_COUNT
    if "count" in found:
        j = found["count"][0]
        value = parameters.parameter[j].valueInteger
        if value is None or value < 1:
            raise _error("invalid", f"Parameters.parameter[{j}].valueInteger", "count must be a positive integer")
        count = min(value, MAX_COUNT)
    only_certain = False
    if "onlyCertainMatches" in found:
        j = found["onlyCertainMatches"][0]
        value = parameters.parameter[j].valueBoolean
        if value is None:
            raise _error("invalid", f"Parameters.parameter[{j}].valueBoolean", "onlyCertainMatches is a boolean")
        only_certain = value
    return MatchRequest(patient_demographics(patient, path=path), count, only_certain, tuple(local_ids(patient)))
