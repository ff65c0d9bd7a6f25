"""Scopes limit what is returned, on every read route: a token limited to some types gets no resource of any
other type — not through a search's _include or _revinclude, not through $everything, not through a Bundle's
GET entries, not in a write's answer. One test over every read route × several scope sets."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client

from ehr.indexing import SPECS
from tests.fhirapi.client import FHIR_JSON, basic
from tests.fhirapi.samples import TYPES, sample
from tests.fhirapi.tenants import post

pytestmark = pytest.mark.django_db

# What every answer may carry whatever the scopes: the envelope and the errors.
ENVELOPE = {"Bundle", "OperationOutcome"}
SCOPES = {
    "patient-and-encounter": ("system/Patient.read system/Encounter.read", {"Patient", "Encounter"}),
    "observations": ("system/Patient.read system/Observation.read", {"Patient", "Observation"}),
    "documents": ("system/Patient.read system/DocumentReference.read", {"Patient", "DocumentReference"}),
    "no-patient": ("system/Observation.read system/DiagnosticReport.read", {"Observation", "DiagnosticReport"}),
}


def bearer_client(feed, scope: str) -> Client:
    form = urlencode({"grant_type": "client_credentials", "scope": scope})
    response = Client().post(
        "/oauth/token",
        form,
        content_type="application/x-www-form-urlencoded",
        headers=basic(feed.source.client_id, feed.secret),
    )
    assert response.status_code == 200, response.content
    return Client(headers={"authorization": f"Bearer {response.json()['access_token']}"})


def types_in(node) -> set[str]:
    """Every resourceType anywhere in an answer (entries, included resources, outcomes, nested Bundles)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("resourceType"), str):
            found.add(node["resourceType"])
        for value in node.values():
            found |= types_in(value)
    elif isinstance(node, list):
        for value in node:
            found |= types_in(value)
    return found


def read_urls(world) -> list[str]:
    """Every read route, on hospital A's own data (reads are region-wide; the scopes are what is tested)."""
    a = world.a
    urls = [f"Patient/{a.patient_id}", f"Patient/{a.patient_id}/$everything", f"Patient/{a.patient_id}/_history"]
    for t in TYPES:
        urls += [
            f"{t}?patient={a.patient_id}",
            f"{t}/{a.ids[t]}",
            f"{t}/{a.ids[t]}/_history",
            f"{t}/{a.ids[t]}/_history/1",
        ]
        urls += [f"{t}?_id={a.ids[t]}&_include={t}:{param}" for param in SPECS[t].references]
        urls += [
            f"{t}?_id={a.ids[t]}&_revinclude={source}:{param}"
            for source in TYPES
            for param in SPECS[source].references
            if param in ("encounter", "context", "subject", "patient", "based-on", "result", "prescription")
        ]
    urls += [
        f"DocumentReference?patient={a.patient_id}",
        f"DocumentReference/{a.document_id}",
        f"Binary/{a.document_id}",
    ]
    return urls


@pytest.fixture
def linked(world):
    """A's facts refer to each other (an Observation of the Encounter, a report of the Observation), so that
    includes and revincludes have something to bring."""
    a = world.a
    observation = sample("Observation", f"Patient/{a.patient_id}", 2)
    observation["encounter"] = {"reference": f"Encounter/{a.ids['Encounter']}"}
    response = post(a.client, "Observation", observation)
    assert response.status_code == 201, response.content
    report = sample("DiagnosticReport", f"Patient/{a.patient_id}", 2)
    report["result"] = [{"reference": f"Observation/{response.json()['id']}"}]
    report["encounter"] = {"reference": f"Encounter/{a.ids['Encounter']}"}
    assert post(a.client, "DiagnosticReport", report).status_code == 201
    return world


@pytest.mark.parametrize("scope_set", sorted(SCOPES))
def test_a_token_gets_no_resource_of_a_type_its_scopes_do_not_read_on_any_read_route(linked, scope_set):
    scope, allowed = SCOPES[scope_set]
    client = bearer_client(linked.a.feed, scope)
    leaked = {}
    answered = 0
    for url in read_urls(linked):
        response = client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON)
        assert response.status_code < 500, (url, response.content)
        if response.status_code == 200:
            answered += 1
            extra = types_in(response.json()) - allowed - ENVELOPE
            if extra:
                leaked[url] = extra
    assert leaked == {}
    assert answered > 0
    # The same reads as the GET entries of one batch: each entry answers as its GET alone would.
    entries = [{"request": {"method": "GET", "url": url}} for url in read_urls(linked)]
    response = post(client, "", {"resourceType": "Bundle", "type": "batch", "entry": entries})
    # A token that may write nothing still posts a batch of reads.
    assert response.status_code == 200, response.content
    assert types_in(response.json()) - allowed - ENVELOPE == set()


def test_everything_and_revinclude_leave_out_what_the_token_may_not_read(linked):
    client = bearer_client(linked.a.feed, "system/Patient.read system/Encounter.read")
    everything = client.get(f"/fhir/Patient/{linked.a.patient_id}/$everything")
    assert everything.status_code == 200
    assert types_in(everything.json()) - ENVELOPE == {"Patient", "Encounter"}
    revinclude = client.get(f"/fhir/Encounter?_id={linked.a.ids['Encounter']}&_revinclude=Observation:encounter")
    assert revinclude.status_code == 403
    assert revinclude.json()["issue"][0]["expression"] == ["_revinclude"]
    assert client.get("/fhir/Observation").status_code == 403


def test_a_write_only_token_is_not_answered_with_the_resource_it_wrote(world):
    client = bearer_client(world.a.feed, "system/Observation.write")
    response = post(client, "Observation", sample("Observation", f"Patient/{world.a.patient_id}", 3))
    assert response.status_code == 201 and response.content == b""
    assert response["Location"]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": sample("Observation", f"Patient/{world.a.patient_id}", 4),
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    answer = post(client, "", batch).json()
    assert answer["entry"][0]["response"]["status"] == "201 Created" and "resource" not in answer["entry"][0]
