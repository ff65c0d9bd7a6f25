"""Issue 18: a request whose database connection is killed mid-request gets 503 with ``Retry-After`` (send it
again), never a 500, and nothing of it is stored — on every door: the FHIR API's single writes, its Bundles,
its reads, CDS Hooks and the clinician viewer.

The connection is killed as the server would see an operator's ``pg_terminate_backend`` or a failover: by
another connection, at the moment the request's connection sends the statement named (Django's
``execute_wrapper`` names the moment; the statement then runs on a dead connection).
"""

from __future__ import annotations

import contextlib
import json

import psycopg
import pytest
from django.db import connection

from ehr.models import Resource, Submission
from tests.fhirapi.client import register_feed

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="kills a PostgreSQL backend"),
]

FHIR_JSON = "application/fhir+json"
MRN_SYSTEM = "urn:platform:authority:HOSP-A"


@contextlib.contextmanager
def killed_at(prefix: str):
    """Terminates this thread's database connection (from another connection) just before its first statement
    that starts with ``prefix`` (case-insensitive) is sent."""
    state = {"killed": False}

    def wrapper(execute, sql, params, many, context):
        if not state["killed"] and sql.lstrip().upper().startswith(prefix.upper()):
            state["killed"] = True
            pid = context["connection"].connection.info.backend_pid
            settings = connection.get_connection_params()
            with psycopg.connect(
                **{k: v for k, v in settings.items() if k in ("host", "port", "user", "dbname")}, autocommit=True
            ) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(wrapper):
            yield state
    finally:
        # The test client keeps Django from closing a broken connection at the request's end (it would end a
        # test's transaction); the test's own queries need a new one.
        connection.close()
    assert state["killed"], f"no statement starting with {prefix} was sent"


def _patient(value: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": value}],
        "name": [{"text": "王小明"}],
        "gender": "male",
        "birthDate": "1985-03-12",
    }


def _unavailable(response) -> None:
    assert response.status_code == 503, response.content[:300]
    assert int(response["Retry-After"]) > 0


@pytest.fixture
def feed():
    return register_feed()


@pytest.mark.parametrize(
    "route",
    ["create", "conditional-update", "transaction", "batch"],
)
def test_a_write_whose_connection_is_killed_is_a_503_with_retry_after_and_stores_nothing(feed, route):
    client = feed.client
    client.raise_request_exception = False
    before = Submission.objects.count()
    with killed_at("INSERT"):
        if route == "create":
            response = client.post("/fhir/Patient", _patient("K-1"), content_type=FHIR_JSON)
        elif route == "conditional-update":
            response = client.put(f"/fhir/Patient?identifier={MRN_SYSTEM}|K-1", _patient("K-1"), content_type=FHIR_JSON)
        else:
            entry = {
                "resource": _patient("K-1"),
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN_SYSTEM}|K-1"},
            }
            bundle = {"resourceType": "Bundle", "type": route, "entry": [entry]}
            response = client.post("/fhir/", json.dumps(bundle), content_type=FHIR_JSON)
    _unavailable(response)
    if route != "batch":
        body = response.json()
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "transient"
    assert Submission.objects.count() == before
    assert not Resource.objects.exists()


def test_a_fhir_read_whose_connection_is_killed_is_a_503(feed):
    feed.client.raise_request_exception = False
    with killed_at("SELECT"):
        response = feed.client.get("/fhir/Observation", {"code": "718-7"})
    _unavailable(response)
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_viewer_page_whose_connection_is_killed_is_a_503(client):
    client.raise_request_exception = False
    with killed_at("SELECT"):
        response = client.post("/viewer/login/", {"username": "someone", "password": "wrong"})
    _unavailable(response)


def test_a_cds_hooks_call_whose_connection_is_killed_is_a_503(feed):
    feed.client.raise_request_exception = False
    with killed_at("SELECT"):
        response = feed.client.post(
            "/cds-services/alerts-order-sign", json.dumps({"hook": "order-sign"}), content_type="application/json"
        )
    _unavailable(response)
