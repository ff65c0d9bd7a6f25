"""The fast R4B validation paths (healthplatform.fhirvalidation) decide exactly as fhir_core does."""

import copy
import inspect
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from ehr.indexing import SPECS
from fixtures.fhir_bundles import FHIRBundleGenerator
from fixtures.region import RegionGenerator, RegionSizes
from healthplatform import fhirvalidation


def outcome(resource) -> list | str:
    """The string "valid", or every error as (location, type, message)."""
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except pydantic.ValidationError as exc:
        return [[list(map(str, e["loc"])), e["type"], e["msg"]] for e in exc.errors()]
    return "valid"


# The same function in an interpreter that never imports healthplatform (and says so in the environment):
# there fhir_core's own validators run.
UNPATCHED = f"""
import json, sys
import pydantic
from fhir.resources.R4B import get_fhir_model_class
{inspect.getsource(outcome)}
resources = json.load(open(sys.argv[1], encoding="utf-8"))
print(json.dumps([outcome(r) for r in resources]))
"""


def _nodes(value, found: list) -> list:
    if isinstance(value, (dict, list)):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            _nodes(child, found)
    return found


def mutated(resources: list[dict], count: int, seed: int) -> list[dict]:
    """Resources with one to three faults each: nulls and empty objects in lists, removed or nulled
    elements (required ones among them), a second value of a choice element, a list of one null."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        resource = copy.deepcopy(rng.choice(resources))
        for _ in range(rng.randint(1, 3)):
            node = rng.choice(_nodes(resource, []))
            roll = rng.random()
            if isinstance(node, list) and node:
                node[rng.randrange(len(node))] = None if roll < 0.6 else {}
            elif isinstance(node, dict) and len(node) > 1:
                key = rng.choice([k for k in node if k != "resourceType"])
                if roll < 0.4:
                    del node[key]
                elif roll < 0.6:
                    node[key] = None
                elif roll < 0.8:
                    kind, value = rng.choice([("String", "a"), ("Boolean", True), ("Quantity", {"value": 1})])
                    node["value" + kind] = value
                else:
                    node[key] = [None]
        out.append(resource)
    return out


_OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
_NO_STATUS = {k: v for k, v in _OBS.items() if k != "status"}
_COVERAGE = {
    "resourceType": "Coverage",
    "status": "active",
    "beneficiary": {"reference": "Patient/1"},
    "payor": [{"reference": "Organization/1"}],
}
_EXTENSION = {"extension": [{"url": "http://example.org/x", "valueCode": "unknown"}]}
# What random mutation seldom makes: a field held under its alias or its name (Coverage.class / class_fhir),
# nulls in primitive lists beside their ``_given`` extensions, a required element explained by an extension,
# two or no values of a choice element (false and 0 are values), nested resources.
EDGE_CASES = [
    {**_COVERAGE, "class": [None]},
    {**_COVERAGE, "class_fhir": [None]},
    {**_COVERAGE, "class": [{"type": {"text": "a"}, "value": "v"}], "class_fhir": [None]},
    {**_COVERAGE, "class": [None], "class_fhir": [{"type": {"text": "a"}, "value": "v"}]},
    {"resourceType": "Patient", "name": [None]},
    {"resourceType": "Patient", "name": [{"given": ["a", None], "_given": [None, _EXTENSION]}]},
    {"resourceType": "Patient", "name": [{"given": ["a", None], "_given": [None, None]}]},
    {"resourceType": "Patient", "name": [{"given": ["a"], "given__ext": [None]}]},
    {"resourceType": "Patient", "extension": [None]},
    {"resourceType": "Patient", "contained": [None]},
    {**_OBS, "status": None},
    _NO_STATUS,
    {**_NO_STATUS, "_status": _EXTENSION},
    {**_NO_STATUS, "_status": {}},
    {**_NO_STATUS, "_status": {"extension": []}},
    {**_NO_STATUS, "status__ext": _EXTENSION},
    {**_OBS, "status": ""},
    {**_OBS, "valueString": "a", "valueQuantity": {"value": 1}},
    {**_OBS, "effectiveDateTime": "2020-01-01", "effectivePeriod": {"start": "2020"}},
    {**_OBS, "valueBoolean": False},
    {**_OBS, "valueBoolean": False, "valueInteger": 0},
    {**_OBS, "valueString": "", "valueBoolean": False},
    {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "P/1"}},
    {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "P/1"},
     "medicationCodeableConcept": {"text": "a"}, "medicationReference": {"reference": "Medication/1"}},
    {**_OBS, "component": [{"code": {"text": "c"}, "valueString": "a", "valueInteger": 1}]},
    {"resourceType": "Bundle", "type": "transaction", "entry": [None]},
    {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {**_OBS, "status": None}}]},
    {**_OBS, "code": {"coding": [None, {"code": "x"}]}},
    {**_OBS, "category": {"text": "x"}},
]  # fmt: skip


def test_every_archived_resource_type_validates_through_the_fast_paths():
    for resource_type in [*SPECS, "Bundle", "DocumentReference", "Organization", "Practitioner", "Location"]:
        assert fhirvalidation.in_effect(get_fhir_model_class(resource_type)), resource_type


def test_outcomes_and_messages_equal_fhir_cores_on_mutated_hospital_resources(tmp_path):
    region = RegionGenerator(seed=3, sizes=RegionSizes(institutions=20, residents=120))
    resources = [e["resource"] for b in FHIRBundleGenerator(region, seed=5).bundles(40) for e in b["entry"]]
    corpus = resources + EDGE_CASES + mutated(resources, 3000, seed=11)
    (tmp_path / "corpus.json").write_text(json.dumps(corpus), encoding="utf-8")

    fast = [outcome(r) for r in corpus]
    plain = subprocess.run(
        [sys.executable, "-c", UNPATCHED, str(tmp_path / "corpus.json")],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "HP_FHIR_FAST_VALIDATION": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(plain.stdout) == fast
    # The corpus reaches each kind of fault the fast paths hand back to fhir_core.
    kinds = {e[1] for o in fast if o != "valid" for e in o}
    assert {"list_type", "value_error", "model_field_validation.missing"} <= kinds
    assert fast.count("valid") >= len(resources)
