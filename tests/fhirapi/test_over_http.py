"""A hospital system over a real socket: the platform served by a live HTTP server (pytest-django's
``live_server``) and called with ``requests``, as a hospital's FHIR client calls it: an OAuth2 token, a
transaction Bundle of the synthetic region's generator, every resource read back."""

from __future__ import annotations

import base64

import pytest
import requests

from fixtures.fhir_bundles import FHIRBundleGenerator, institution_oid
from fixtures.loading import region_load
from fixtures.region import RegionGenerator, RegionSizes
from registry.models import Institution, SourceSystem
from registry.services import source_system_register

pytestmark = pytest.mark.django_db(transaction=True)

FHIR_JSON = "application/fhir+json"
TINY = RegionSizes(institutions=8, physicians=24, nurses=24, pharmacists=4, technicians=4, residents=30)


@pytest.fixture
def hospital(live_server):
    """A loaded region, one resident's typical Bundle from their hospital, and that hospital's credentials."""
    region = RegionGenerator(seed=5, sizes=TINY)
    region_load(region)
    gen = FHIRBundleGenerator(region, seed=5)
    resident = next(region.residents())
    institution = gen.senders(resident)[0]
    source, secret = source_system_register(
        institution=Institution.objects.get(code=institution.code),
        kind=SourceSystem.Kind.HIS,
        name="HIS",
        sending_application="HIS",
        sending_facility=institution_oid(institution),
    )
    return {"url": live_server.url, "auth": (source.client_id, secret), "bundle": gen.bundle_for(resident, institution)}


def _token(hospital, scope: str) -> str:
    answer = requests.post(
        f"{hospital['url']}/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=hospital["auth"],
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"
    return answer.json()["access_token"]


def _same_resource(sent, stored, where: str, local: dict[str, str], resolve) -> None:
    """``stored`` is ``sent`` with Bundle-local references rewritten (``urn:uuid:…`` to the entry's ``Type/id``,
    ``Practitioner?identifier=…`` to the one resource ``resolve`` finds by searching); the caller drops id and
    meta. Values keep their JSON types (true stays true, not 1)."""
    if isinstance(sent, dict):
        assert set(sent) == set(stored), where
        for key, value in sent.items():
            if key == "reference" and isinstance(value, str):
                expected = local[value] if value in local else resolve(value) if "?" in value else value
                assert stored[key] == expected, where
            else:
                _same_resource(value, stored[key], f"{where}.{key}", local, resolve)
    elif isinstance(sent, list):
        assert len(sent) == len(stored), where
        for i, (a, b) in enumerate(zip(sent, stored, strict=True)):
            _same_resource(a, b, f"{where}[{i}]", local, resolve)
    else:
        assert (type(sent), sent) == (type(stored), stored), where


def test_a_transaction_sent_over_http_reads_back_resource_by_resource(hospital):
    token = _token(hospital, "system/*.read system/*.write")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    bundle = hospital["bundle"]
    answer = requests.post(f"{hospital['url']}/fhir/", json=bundle, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith(FHIR_JSON)
    result = answer.json()
    assert result["type"] == "transaction-response"
    assert len(result["entry"]) == len(bundle["entry"])

    locations = [e["response"]["location"].split("/_history/")[0] for e in result["entry"]]
    local = {e["fullUrl"]: where for e, where in zip(bundle["entry"], locations, strict=True) if "fullUrl" in e}

    def resolve(conditional: str) -> str:
        """A conditional reference (``Practitioner?identifier=…``), searched for over HTTP: its one match."""
        found = requests.get(f"{hospital['url']}/fhir/{conditional}", headers=headers, timeout=10).json()
        assert len(found.get("entry", [])) == 1, conditional
        resource = found["entry"][0]["resource"]
        return f"{resource['resourceType']}/{resource['id']}"

    documents = 0
    for sent, where in zip(bundle["entry"], locations, strict=True):
        read = requests.get(f"{hospital['url']}/fhir/{where}", headers=headers, timeout=10)
        assert read.status_code == 200, (where, read.text)
        assert read.headers["ETag"].startswith('W/"')
        stored = read.json()
        assert stored["resourceType"] == sent["resource"]["resourceType"]
        if stored["resourceType"] == "DocumentReference":
            # ITI-68: the content is served as the Binary the attachment names, byte for byte.
            attachment = stored["content"][0]["attachment"]
            binary = requests.get(f"{hospital['url']}/fhir/{attachment['url']}", headers=headers, timeout=10)
            assert binary.status_code == 200, binary.text
            assert binary.json()["data"] == sent["resource"]["content"][0]["attachment"]["data"]
            documents += 1
        else:
            for key in ("id", "meta"):
                stored.pop(key)
            if stored["resourceType"] == "Patient":
                # The source Patient gains its link to the person's golden record, and nothing else changes.
                assert stored.pop("link")[0]["other"]["reference"].startswith("Patient/")
            _same_resource({k: v for k, v in sent["resource"].items() if k != "id"}, stored, where, local, resolve)
    assert documents >= 1

    patient = next(where for where in locations if where.startswith("Patient/"))
    everything = requests.get(f"{hospital['url']}/fhir/{patient}/$everything", headers=headers, timeout=30)
    assert everything.status_code == 200, everything.text
    found = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in everything.json()["entry"]}
    assert set(locations) <= found


def test_over_http_a_wrong_token_a_wrong_format_and_a_bad_entry_get_operation_outcomes(hospital):
    url = hospital["url"]
    bundle = hospital["bundle"]
    missing = requests.post(f"{url}/fhir/", json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert "WWW-Authenticate" in missing.headers

    token = _token(hospital, "system/*.read")
    read_only = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
    refused = requests.post(f"{url}/fhir/", json=bundle, headers=read_only, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"

    headers = {"Authorization": f"Bearer {_token(hospital, 'system/*.*')}", "Content-Type": FHIR_JSON}
    xml = requests.get(f"{url}/fhir/metadata", headers={**headers, "Accept": "application/fhir+xml"}, timeout=10)
    assert xml.status_code == 406
    assert xml.json()["resourceType"] == "OperationOutcome"

    broken = {**bundle, "entry": [dict(e) for e in bundle["entry"]]}
    last = len(broken["entry"]) - 1
    broken["entry"][last] = {**broken["entry"][last], "resource": {**broken["entry"][last]["resource"], "status": 7}}
    answer = requests.post(f"{url}/fhir/", json=broken, headers=headers, timeout=30)
    assert answer.status_code == 400, answer.text
    assert any(f"Bundle.entry[{last}].resource" in e for i in answer.json()["issue"] for e in i.get("expression", []))
    # All or nothing: none of the Bundle's resources was written.
    mrn = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")["request"]["url"]
    search = requests.get(f"{url}/fhir/{mrn}", headers=headers, timeout=10)
    assert search.status_code == 200, search.text
    assert search.json()["type"] == "searchset"
    assert not search.json().get("entry"), search.text
    observation = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    facts = f"{url}/fhir/Observation?identifier={observation['identifier'][0]['system']}|" + (
        f"{observation['identifier'][0]['value']}&_summary=count"
    )
    assert requests.get(facts, headers=headers, timeout=10).json()["total"] == 0
    assert requests.post(f"{url}/fhir/", json=bundle, headers=headers, timeout=30).status_code == 200
    assert len(requests.get(f"{url}/fhir/{mrn}", headers=headers, timeout=10).json()["entry"]) == 1
    assert requests.get(facts, headers=headers, timeout=10).json()["total"] == 1

    body = base64.b64encode(b"not json").decode()
    garbage = requests.post(f"{url}/fhir/", data=body, headers=headers, timeout=10)
    assert garbage.status_code == 400
    assert garbage.json()["resourceType"] == "OperationOutcome"
