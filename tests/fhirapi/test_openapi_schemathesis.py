"""Every operation of the API's own OpenAPI description (/api/schema/), fuzzed by schemathesis: no input,
however wrong, makes the FHIR API answer with a server error (issue 4).

The Django app is called in-process through WSGI, in the test's database transaction, as a registered
source system (HTTP Basic) that has a Patient, an Observation and a document on file; each operation
whose path names an ``id`` is also tried with the id of a row that exists, so read, update, history and
delete run on real data and not only into 404s. Generation is derandomized (fixed seed) and bounded so
the run stays well under two minutes, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace

import hypothesis
import pytest
import schemathesis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fhirapi.client import basic, register_feed

FHIR_JSON = "application/fhir+json"
# No 5xx, and what is answered has the media type and shape the description declares. Not (yet)
# status_code_conformance: the 4xx OperationOutcomes are not declared on every operation.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 25
SEED = 20240501

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # NUL bytes and any UTF-8 character in generated strings, valid and invalid inputs both: said here, not
        # left to the defaults, so that nobody narrows them by accident (issue 18: the run passed while a NUL
        # in any body string was a 500, because none reached the archive).
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            "allow-x00": True,
            "codec": "utf-8",
            "mode": "all",
        },
    }
)
# Besides what the description declares, every operation with a body is sent with these Content-Types too:
# what careless and hostile senders send (multipart without a boundary, a charset the bytes are not in, or one
# that does not exist). Each must be a 4xx, like the body itself.
ODD_CONTENT_TYPES = [
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "application/x-www-form-urlencoded",
    "application/fhir+json; charset=utf-16",
    "application/fhir+json; charset=no-such-charset",
    "text/plain",
]
_ODD_TRIED: set[tuple[str, str]] = set()
# A character no FHIR string may hold: every string of a generated body and query gets it. (A lone surrogate,
# the other, cannot be sent as text; tests/fhirapi/test_request_bodies.py sends it as a JSON escape.)
UNSTORABLE = ["\x00"]


class _InTestTransaction(WSGIHandler):
    """Django's WSGI app, minus the per-request connection recycling: like Django's own test Client, it must
    not close the connection that holds the test's transaction (close_old_connections would, as the
    connection is not in autocommit inside the test's atomic block)."""

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            return super().__call__(environ, start_response)
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


# The DSTU2 name of FHIR JSON, which the API still parses: the same bytes as application/json.
schemathesis.serializer.alias("application/json+fhir", "application/json")


@schemathesis.serializer("x-application/hl7-v2+er7")
def _er7(ctx, value):
    """An HL7 v2 message for POST /hl7v2: whatever bytes were generated, as they are."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


APP = _InTestTransaction()
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP, config=CONFIG)


@pytest.fixture
def on_file(db, settings, tmp_path):
    """A hospital feed with a Patient, an Observation and a document about it; ids of what exists, by type."""
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    feed = register_feed()
    authorization = basic(feed.source.client_id, feed.secret)["authorization"]
    client = feed.client

    def created(path: str, body: dict) -> str:
        response = client.post(f"/fhir/{path}", body, content_type=FHIR_JSON)
        assert response.status_code == 201, response.content
        return response.json()["id"]

    patient_id = created(
        "Patient",
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:platform:authority:HOSP-A", "value": "A-1"}],
            "name": [{"text": "王小明"}],
            "gender": "male",
            "birthDate": "1985-03-12",
        },
    )
    observation_id = created(
        "Observation",
        {
            "resourceType": "Observation",
            "identifier": [{"system": "urn:hosp-a:observation", "value": "OBS-1"}],
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": "2024-05-01T10:00:00+08:00",
            "valueQuantity": {"value": 13.2, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
        },
    )
    text = "出院小结：血红蛋白 13.2 g/dL。".encode()
    document_id = created(
        "DocumentReference",
        {
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:hosp-a:doc", "value": "DOC-1"},
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "date": "2024-05-03T10:00:00+08:00",
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "data": base64.b64encode(text).decode(),
                        "size": len(text),
                        "hash": base64.b64encode(hashlib.sha1(text).digest()).decode(),  # noqa: S324 - FHIR's hash
                    }
                }
            ],
        },
    )
    yield SimpleNamespace(
        authorization=authorization,
        ids={"Patient": patient_id, "Observation": observation_id, "DocumentReference": document_id},
    )
    cache.clear()


def _known_id(case, ids: dict[str, str]) -> str | None:
    """The id of an existing row for this operation's path, if there is one."""
    path = case.operation.path
    if path.startswith("/fhir/{type}"):
        return ids.get(case.path_parameters.get("type"))
    for resource_type, known in ids.items():
        if path.startswith(f"/fhir/{resource_type}/"):
            return known
    if path.startswith("/fhir/Binary/"):
        return ids["DocumentReference"]
    return None


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_no_input_makes_a_server_error(case, on_file):
    headers = {"Authorization": on_file.authorization}
    case.call_and_validate(headers=headers, checks=CHECKS)
    known = _known_id(case, on_file.ids)
    if "id" in (case.path_parameters or {}) and known is not None:
        case.path_parameters = {**case.path_parameters, "id": known}
        case.call_and_validate(headers=headers, checks=CHECKS)
    for char in UNSTORABLE:
        _with_char_call(case, char, headers)
    operation = (case.method, case.operation.path)
    if case.body is not None and not isinstance(case.body, bytes) and operation not in _ODD_TRIED:
        _ODD_TRIED.add(operation)  # the first body of each operation: the Content-Type is what is tried
        for content_type in ODD_CONTENT_TYPES:
            response = case.call(headers={**headers, "Content-Type": content_type})
            assert response.status_code < 500, (content_type, response.status_code, response.text[:300])


def _with_char(value, char: str):
    """``value`` with ``char`` inside every string of it (member names too)."""
    if isinstance(value, str):
        return value[: len(value) // 2] + char + value[len(value) // 2 :]
    if isinstance(value, list):
        return [_with_char(v, char) for v in value]
    if isinstance(value, dict):
        return {_with_char(k, char): _with_char(v, char) for k, v in value.items()}
    return value


def _with_char_call(case, char: str, headers: dict) -> None:
    """The case again with ``char`` in every string of its body and its query: a 4xx, never a 500."""
    body = case.body if isinstance(case.body, (dict, list, str)) else None
    if body is None and not case.query:
        return
    variant = case.derive(query=_with_char(case.query, char) if case.query else None)
    if body is not None:
        variant.body = _with_char(body, char)
    response = variant.call(headers=headers)
    assert response.status_code < 500, (repr(char), response.status_code, response.text[:300])
