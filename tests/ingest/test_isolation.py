"""Tenant isolation, tested generically: every resource type × every write route × two institutions.

Hospital A holds hospital B's ids and business identifiers (as an attacker with A's credentials would) and
tries every way a write can reach a resource: a single request, a conditional one, a transaction entry, a
batch entry, a reference, a document's replacement. Each attempt is refused, or — for the conditional routes,
where B's identifiers mean nothing in A's own identifier space — touches only A's own resources; and B's
holdings are exactly as they were. The guard is the write corridor's (``healthplatform.ingest``), so one
matrix covers every door that uses it.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
import pytest

from ehr.models import Resource
from emr.models import DocumentEntry
from tests.fhirapi.client import FHIR_JSON
from tests.fhirapi.samples import TYPES, sample
from tests.fhirapi.tenants import document_body, post

pytestmark = pytest.mark.django_db

WRITTEN_TYPES = [*TYPES, "Patient", "DocumentReference"]


def holdings(source) -> dict:
    """Everything a source system stored, as it is now: resources with versions and bodies, documents."""
    resources = sorted(
        (t, i, v, d, p, orjson.dumps(b, option=orjson.OPT_SORT_KEYS))
        for t, i, v, d, p, b in Resource.objects.filter(source=source).values_list(
            "resource_type", "fhir_id", "version_id", "deleted", "identity_id", "body"
        )
    )
    documents = sorted(
        (str(u), v, s, r)
        for u, v, s, r in DocumentEntry.objects.filter(source=source).values_list(
            "uuid", "version_id", "status", "replaced_by_id"
        )
    )
    return {"resources": resources, "documents": documents}


def stored_body(resource_type: str, fhir_id: str) -> dict:
    if resource_type == "DocumentReference":
        return dict(DocumentEntry.objects.get(uuid=fhir_id).resource)
    return dict(Resource.objects.get(resource_type=resource_type, fhir_id=fhir_id).body)


def their_resource_as_ours(world, resource_type: str) -> dict:
    """B's resource as stored, changed a little and moved to A's patient: what a takeover would write."""
    body = stored_body(resource_type, world.b.ids[resource_type])
    body.pop("meta", None)
    if resource_type == "Patient":
        body["birthDate"] = "1999-09-09"
    elif resource_type == "DocumentReference":
        body["description"] = "overwritten"
    else:
        body["status"] = "entered-in-error" if resource_type != "Encounter" else "cancelled"
        for element in ("subject", "patient"):
            if element in body:
                body[element] = {"reference": f"Patient/{world.a.patient_id}"}
    return body


def ours_with_their_identifier(world, resource_type: str) -> dict:
    """A's own resource about A's patient, carrying B's business identifier."""
    if resource_type == "Patient":
        system, value = world.b.identifiers["Patient"]
        return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], "name": [{"text": "X"}]}
    if resource_type == "DocumentReference":
        body = document_body(f"Patient/{world.a.patient_id}", hospital="hosp-b", text=b"forged")
        return body
    body = sample(resource_type, f"Patient/{world.a.patient_id}", hospital="hosp-b")
    return body


def bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def criteria(world, resource_type: str) -> str:
    system, value = world.b.identifiers[resource_type]
    return f"identifier={quote(system)}|{quote(value)}"


# --- the routes: each returns A's response; "refused" routes must answer 4xx, "own" ones may succeed but only
# on A's own resources -------------------------------------------------------------------------------------


def put_by_id(world, t):
    body = their_resource_as_ours(world, t)
    return world.a.client.put(f"/fhir/{t}/{world.b.ids[t]}", body, content_type=FHIR_JSON)


def delete_by_id(world, t):
    return world.a.client.delete(f"/fhir/{t}/{world.b.ids[t]}")


def _entry(world, t, method: str) -> dict:
    entry = {"request": {"method": method, "url": f"{t}/{world.b.ids[t]}"}}
    if method == "PUT":
        entry["resource"] = their_resource_as_ours(world, t)
    return entry


def transaction_put(world, t):
    return post(world.a.client, "", bundle("transaction", _entry(world, t, "PUT")))


def transaction_delete(world, t):
    return post(world.a.client, "", bundle("transaction", _entry(world, t, "DELETE")))


def batch_put(world, t):
    return post(world.a.client, "", bundle("batch", _entry(world, t, "PUT")))


def batch_delete(world, t):
    return post(world.a.client, "", bundle("batch", _entry(world, t, "DELETE")))


def batch_conditional_delete(world, t):
    return post(
        world.a.client, "", bundle("batch", {"request": {"method": "DELETE", "url": f"{t}?{criteria(world, t)}"}})
    )


def conditional_update(world, t):
    body = ours_with_their_identifier(world, t)
    return world.a.client.put(f"/fhir/{t}?{criteria(world, t)}", body, content_type=FHIR_JSON)


def transaction_conditional_update(world, t):
    entry = {
        "resource": ours_with_their_identifier(world, t),
        "request": {"method": "PUT", "url": f"{t}?{criteria(world, t)}"},
    }
    return post(world.a.client, "", bundle("transaction", entry))


def conditional_create(world, t):
    return post(world.a.client, t, ours_with_their_identifier(world, t), HTTP_IF_NONE_EXIST=criteria(world, t))


def transaction_conditional_create(world, t):
    entry = {
        "resource": ours_with_their_identifier(world, t),
        "request": {"method": "POST", "url": t, "ifNoneExist": criteria(world, t)},
    }
    return post(world.a.client, "", bundle("transaction", entry))


def about_their_patient(world, t):
    """A's write of a fact (or document) about B's patient, or of a source Patient under B's MRN."""
    if t == "Patient":
        return post(world.a.client, "Patient", _their_patient(world))
    if t == "DocumentReference":
        return post(world.a.client, t, document_body(f"Patient/{world.b.patient_id}", hospital="hosp-a", value="D-X"))
    return post(world.a.client, t, sample(t, f"Patient/{world.b.patient_id}", 99))


def _their_patient(world) -> dict:
    body = stored_body("Patient", world.b.patient_id)
    return {k: v for k, v in body.items() if k not in ("id", "meta")}


def in_a_transaction_about_their_patient(world, t):
    if t == "Patient":
        entry = {"resource": _their_patient(world), "request": {"method": "POST", "url": "Patient"}}
    elif t == "DocumentReference":
        body = document_body(f"Patient/{world.b.patient_id}", hospital="hosp-a", value="D-Y")
        entry = {"resource": body, "request": {"method": "POST", "url": t}}
    else:
        entry = {"resource": sample(t, f"Patient/{world.b.patient_id}", 98), "request": {"method": "POST", "url": t}}
    return post(world.a.client, "", bundle("transaction", entry))


def referring_to_theirs(world, t):
    """A's Observation whose focus (Reference(Any)) names B's resource."""
    body = sample("Observation", f"Patient/{world.a.patient_id}", 77)
    body["focus"] = [{"reference": f"{t}/{world.b.ids[t]}"}]
    return post(world.a.client, "Observation", body)


def referring_to_theirs_in_a_batch(world, t):
    body = sample("Observation", f"Patient/{world.a.patient_id}", 76)
    body["focus"] = [{"reference": f"{t}/{world.b.ids[t]}"}]
    return post(
        world.a.client, "", bundle("batch", {"resource": body, "request": {"method": "POST", "url": "Observation"}})
    )


def conditionally_referring_to_theirs(world, t):
    body = sample("Observation", f"Patient/{world.a.patient_id}", 75)
    body["focus"] = [{"reference": f"{t}?{criteria(world, t)}"}]
    entry = {"resource": body, "request": {"method": "POST", "url": "Observation"}}
    return post(world.a.client, "", bundle("transaction", entry))


class _Answer:
    """What a route without an HTTP door answered, shaped as a response for ``refusal_status``."""

    def __init__(self, status: int, body: dict):
        self.status_code, self._body, self.content = status, body, orjson.dumps(body)

    def json(self) -> dict:
        return self._body


def _together(world, t, attempt: dict) -> _Answer:
    """``attempt`` written by ``transactions_apply`` as A's source system — how the HL7 v2 processing writes a
    batch of messages — after a transaction of A's own that is fine alone: refused, neither is written."""
    from django.db import transaction

    from healthplatform.access import Caller
    from healthplatform.errors import PlatformError
    from healthplatform.ingest.apply import transactions_apply
    from healthplatform.ingest.entries import Received

    if t == "DocumentReference":
        pytest.skip("documents are written one message at a time (transactions_apply takes archive writes)")
    own = {
        "resource": sample("Observation", f"Patient/{world.a.patient_id}", 71),
        "request": {"method": "POST", "url": "Observation"},
    }
    bundles = [(bundle("transaction", own), Received("HL7 ORU^R01 T-1", "", kind="hl7v2"))]
    bundles.append((attempt, Received("HL7 ORU^R01 T-2", "", kind="hl7v2")))
    try:
        with transaction.atomic():
            transactions_apply(caller=Caller(world.a.source, world.a.source.client_id), bundles=bundles)
    except PlatformError as error:
        return _Answer(error.status, {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in error.issues]})
    return _Answer(200, {"resourceType": "Bundle", "type": "transaction-response"})


def together_put(world, t):
    return _together(world, t, bundle("transaction", _entry(world, t, "PUT")))


def together_delete(world, t):
    return _together(world, t, bundle("transaction", _entry(world, t, "DELETE")))


def together_about_their_patient(world, t):
    if t == "DocumentReference":
        return _together(world, t, {})
    if t == "Patient":
        entry = {"resource": _their_patient(world), "request": {"method": "POST", "url": "Patient"}}
    else:
        entry = {"resource": sample(t, f"Patient/{world.b.patient_id}", 97), "request": {"method": "POST", "url": t}}
    return _together(world, t, bundle("transaction", entry))


def together_referring_to_theirs(world, t):
    body = sample("Observation", f"Patient/{world.a.patient_id}", 74)
    body["focus"] = [{"reference": f"{t}/{world.b.ids[t]}"}]
    return _together(
        world, t, bundle("transaction", {"resource": body, "request": {"method": "POST", "url": "Observation"}})
    )


def together_conditional_update(world, t):
    entry = {
        "resource": ours_with_their_identifier(world, t),
        "request": {"method": "PUT", "url": f"{t}?{criteria(world, t)}"},
    }
    return _together(world, t, bundle("transaction", entry))


REFUSED = [
    put_by_id,
    delete_by_id,
    transaction_put,
    transaction_delete,
    batch_put,
    batch_delete,
    about_their_patient,
    in_a_transaction_about_their_patient,
    referring_to_theirs,
    referring_to_theirs_in_a_batch,
    conditionally_referring_to_theirs,
    together_put,
    together_delete,
    together_about_their_patient,
    together_referring_to_theirs,
]
# B's identifiers mean nothing in A's identifier space: these may succeed, on A's own resources only.
OWN_SPACE = [
    conditional_update,
    transaction_conditional_update,
    conditional_create,
    transaction_conditional_create,
    batch_conditional_delete,
    together_conditional_update,
]


def refusal_status(response) -> int:
    """The status a request was refused with: the response's, or for a batch its one entry's."""
    if response.status_code == 200 and response.json().get("type") == "batch-response":
        entry = response.json()["entry"][0]["response"]
        assert entry.get("outcome", {}).get("resourceType") == "OperationOutcome", entry
        return int(entry["status"].split()[0])
    assert response.json()["resourceType"] == "OperationOutcome", response.content
    return response.status_code


@pytest.mark.parametrize("resource_type", WRITTEN_TYPES)
@pytest.mark.parametrize("route", REFUSED, ids=lambda r: r.__name__)
def test_another_institutions_write_is_refused_and_changes_nothing(world, resource_type, route):
    before_b, before_a = holdings(world.b.source), holdings(world.a.source)
    response = route(world, resource_type)
    status = refusal_status(response)
    assert 400 <= status < 500, response.content
    assert holdings(world.b.source) == before_b
    assert holdings(world.a.source) == before_a


@pytest.mark.parametrize("resource_type", WRITTEN_TYPES)
@pytest.mark.parametrize("route", OWN_SPACE, ids=lambda r: r.__name__)
def test_another_institutions_identifier_reaches_only_the_writers_own_resources(world, resource_type, route):
    before_b = holdings(world.b.source)
    response = route(world, resource_type)
    assert response.status_code < 500, response.content
    assert world.b.ids[resource_type] not in response.content.decode()  # B's resource is neither changed nor shown
    assert holdings(world.b.source) == before_b
