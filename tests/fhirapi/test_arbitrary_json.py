"""Issue 18: any JSON at all — any shape, at any element of any resource type the platform writes, alone or
inside a Bundle entry — sent to every write route is answered with a 4xx OperationOutcome or written; never a
500. Hypothesis draws the values: JSON of every kind (null, booleans, numbers of any size, text with any
character, arrays, objects nested a few levels), put under the real element names of each type's R4 model
(so that the validation and the corridor's own walks meet them, not only the parser), and under names no model
has.
"""

from __future__ import annotations

import json

import hypothesis
import pytest
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import strategies as st

from healthplatform.ingest.entries import WRITABLE_TYPES
from tests.fhirapi.client import register_feed

FHIR_JSON = "application/fhir+json"
TYPES = sorted(WRITABLE_TYPES)
SETTINGS = hypothesis.settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)

# Text as senders get it wrong: any character (NUL and control characters too), references and criteria.
TEXT = st.text(max_size=12) | st.sampled_from(
    ["Patient/x", "Patient?identifier=urn:platform:authority:HOSP-A|A-1", "urn:uuid:1", "#", "", "Patient?", "%00"]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=12
)


def _element_names(resource_type: str) -> list[str]:
    """The JSON names of the type's elements (``valueQuantity``, ``_status``), from its R4 model."""
    return sorted({field.alias or name for name, field in get_fhir_model_class(resource_type).model_fields.items()})


def _resource(resource_type: str):
    """A body that says it is a ``resource_type``, with arbitrary values under some of its elements' names, and
    now and then a name no model has."""
    names = _element_names(resource_type)
    return st.builds(
        lambda fields, extra: {"resourceType": resource_type, **fields, **extra},
        st.dictionaries(st.sampled_from(names), VALUES, max_size=5),
        st.dictionaries(TEXT, VALUES, max_size=1),
    )


RESOURCES = st.sampled_from(TYPES).flatmap(_resource)
ENTRIES = st.builds(
    lambda method, url, resource, extra: {"request": {"method": method, "url": url}, "resource": resource, **extra},
    st.sampled_from(["POST", "PUT", "DELETE", "GET", "PATCH"]) | TEXT,
    st.sampled_from([*TYPES, "Patient?identifier=urn:platform:authority:HOSP-A|A-1", "Observation/1"]) | TEXT,
    RESOURCES | VALUES,
    st.dictionaries(st.sampled_from(["fullUrl", "request", "resource", "search"]), VALUES, max_size=1),
)
BUNDLES = st.builds(
    lambda kind, entries: {"resourceType": "Bundle", "type": kind, "entry": entries},
    st.sampled_from(["transaction", "batch"]),
    st.lists(ENTRIES | VALUES, max_size=4) | VALUES,
)


@pytest.fixture
def client(db) -> Client:
    client = register_feed().client
    client.raise_request_exception = False
    return client


def _answered(response) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        OperationOutcome.model_validate(response.json())


@SETTINGS
@hypothesis.given(body=RESOURCES | VALUES, route=st.sampled_from(["create", "update", "conditional-update"]))
def test_any_json_to_a_type_route_is_answered_never_a_server_error(client, body, route):
    resource_type = body.get("resourceType") if isinstance(body, dict) else "Observation"
    data = json.dumps(body)
    if route == "create":
        response = client.post(f"/fhir/{resource_type}", data, content_type=FHIR_JSON)
    elif route == "update":
        response = client.put(f"/fhir/{resource_type}/x-1", data, content_type=FHIR_JSON)
    else:
        response = client.put(
            f"/fhir/{resource_type}?identifier=urn:platform:authority:HOSP-A|A-1", data, content_type=FHIR_JSON
        )
    _answered(response)


@SETTINGS
@hypothesis.given(body=BUNDLES | VALUES)
def test_any_json_as_a_bundle_is_answered_never_a_server_error(client, body):
    response = client.post("/fhir/", json.dumps(body), content_type=FHIR_JSON)
    _answered(response)
    if response.status_code == 200 and response.json().get("type") == "batch-response":
        for entry in response.json().get("entry", []):
            assert not entry["response"]["status"].startswith("5"), entry
