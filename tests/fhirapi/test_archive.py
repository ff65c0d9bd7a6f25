"""The health archive through the FHIR API, over HTTP: every clinical type gets the same create, read,
vread, update, history, search, delete and error tests; then source Patients, bundles and the races that
the database must settle."""

from __future__ import annotations

import base64
import threading

import pytest
from django.db import connection
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from ehr.models import Resource, ResourceVersion
from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.fhirapi.client import issues as outcome
from tests.fhirapi.samples import CODES, MRN_A, TYPES, patient_body, provide_document_bundle, sample


@pytest.fixture
def hosp(db):
    """Hospital A's feed (assigning authority HOSP-A) with one registered Patient."""
    feed = register_feed(facility="HOSP-A")
    response = post(feed.client, "Patient", patient_body("A-1"))
    assert response.status_code == 201, response.content
    feed.patient_id = response.json()["id"]
    return feed


def post(client, path, body, **headers):
    return client.post(f"/fhir/{path}", body, content_type=FHIR_JSON, **headers)


def put(client, path, body, **headers):
    return client.put(f"/fhir/{path}", body, content_type=FHIR_JSON, **headers)


def ok(response, status=200) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(FHIR_JSON)
    return response.json()


def search(client, query: str) -> list[dict]:
    body = ok(client.get(f"/fhir/{query}"))
    Bundle.model_validate(body)
    return [e["resource"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]


# --- every clinical type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", TYPES)
def test_create_read_vread_update_history_and_delete(hosp, resource_type):
    created = post(hosp.client, resource_type, sample(resource_type, f"Patient/{hosp.patient_id}"))
    body = ok(created, 201)
    get_fhir_model_class(resource_type).model_validate(body)
    rid = body["id"]
    assert created["Location"].endswith(f"/fhir/{resource_type}/{rid}/_history/1")
    assert created["ETag"] == 'W/"1"' and body["meta"]["versionId"] == "1"

    read = hosp.client.get(f"/fhir/{resource_type}/{rid}")
    assert ok(read)["id"] == rid and read["ETag"] == 'W/"1"'

    changed = {**body, "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">v2</div>'}}
    updated = put(hosp.client, f"{resource_type}/{rid}", changed, HTTP_IF_MATCH='W/"1"')
    assert ok(updated)["meta"]["versionId"] == "2" and updated["ETag"] == 'W/"2"'
    # A stale If-Match is refused, and nothing is written.
    assert outcome(put(hosp.client, f"{resource_type}/{rid}", changed, HTTP_IF_MATCH='W/"1"'), 412)
    assert ok(hosp.client.get(f"/fhir/{resource_type}/{rid}/_history/1"))["meta"]["versionId"] == "1"
    history = ok(hosp.client.get(f"/fhir/{resource_type}/{rid}/_history"))
    Bundle.model_validate(history)
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']

    assert hosp.client.delete(f"/fhir/{resource_type}/{rid}").status_code == 204
    assert outcome(hosp.client.get(f"/fhir/{resource_type}/{rid}"), 410)[0]["code"] == "deleted"
    assert search(hosp.client, f"{resource_type}?_id={rid}") == []
    # Versions 1 and 2 moved to the history table; the deletion is the current version.
    assert ResourceVersion.objects.filter(resource__fhir_id=rid).count() == 2


@pytest.mark.parametrize("resource_type", TYPES)
def test_search_by_patient_code_date_and_identifier(hosp, resource_type):
    first = ok(post(hosp.client, resource_type, sample(resource_type, f"Patient/{hosp.patient_id}", 1)), 201)
    other = post(hosp.client, "Patient", patient_body("A-2", name="李娜", birthDate="1990-07-21", gender="female"))
    other_id = ok(other, 201)["id"]
    ok(post(hosp.client, resource_type, sample(resource_type, f"Patient/{other_id}", 2)), 201)
    param, token = CODES[resource_type]
    mine = search(hosp.client, f"{resource_type}?patient={hosp.patient_id}&{param}={token}")
    assert [r["id"] for r in mine] == [first["id"]]
    assert len(search(hosp.client, f"{resource_type}?{param}={token}")) == 2
    assert search(hosp.client, f"{resource_type}?{param}=no-such-code") == []
    ident = first["identifier"][0]
    assert [r["id"] for r in search(hosp.client, f"{resource_type}?identifier={ident['system']}|{ident['value']}")] == [
        first["id"]
    ]
    from ehr.indexing import SPECS

    date_param = SPECS[resource_type].date_param
    assert len(search(hosp.client, f"{resource_type}?{date_param}=ge2024-05-01&{date_param}=lt2024-05-03")) == 2
    assert search(hosp.client, f"{resource_type}?{date_param}=gt2024-06-01") == []
    count = ok(hosp.client.get(f"/fhir/{resource_type}?{param}={token}&_summary=count"))
    assert count["total"] == 2 and "entry" not in count
    assert len(search(hosp.client, f"{resource_type}?{param}={token}&_summary=false")) == 2
    assert outcome(hosp.client.get(f"/fhir/{resource_type}?{param}={token}&_summary=text"), 400)


@pytest.mark.parametrize("resource_type", TYPES)
def test_invalid_resources_are_refused_naming_the_element(hosp, resource_type):
    body = sample(resource_type, f"Patient/{hosp.patient_id}")
    body["status"] = 42 if "status" in body else None
    body = {k: v for k, v in body.items() if v is not None}
    body["identifier"] = [{"system": "urn:x", "value": "v", "period": {"start": "not a date"}}]
    issues = outcome(post(hosp.client, resource_type, body), 400)
    assert any(e.startswith(f"{resource_type}.identifier[0].period") for i in issues for e in i.get("expression", []))
    wrong_type = outcome(post(hosp.client, resource_type, {**body, "resourceType": "Basic"}), 400)
    assert wrong_type[0]["expression"] == [f"{resource_type}.resourceType"]
    missing = {k: v for k, v in sample(resource_type, "x").items() if k not in ("subject", "patient")}
    assert outcome(post(hosp.client, resource_type, missing), 400)[0]["code"] in ("required", "invalid")
    assert Resource.objects.filter(resource_type=resource_type).count() == 0


# --- rules of the archive --------------------------------------------------------------------------------


def test_a_post_resending_a_business_identifier_never_overwrites_and_never_duplicates(hosp):
    body = sample("Observation", f"Patient/{hosp.patient_id}")
    first = ok(post(hosp.client, "Observation", body), 201)
    again = ok(post(hosp.client, "Observation", body), 200)
    assert again["id"] == first["id"] and again["meta"]["versionId"] == "1"  # the same fact: nothing changes
    corrected = {**body, "valueQuantity": {**body["valueQuantity"], "value": 12.1}, "status": "amended"}
    refused = outcome(post(hosp.client, "Observation", corrected), 409)
    assert refused[0]["code"] == "duplicate" and refused[0]["expression"] == ["Observation.identifier[0]"]
    assert f"Observation/{first['id']}" in refused[0]["diagnostics"]
    assert ok(hosp.client.get(f"/fhir/Observation/{first['id']}"))["valueQuantity"]["value"] == 13.2
    # The correction is an update: by id, or conditional on the business identifier.
    criteria = "identifier=urn:hosp-a:observation|Obs-1"
    fixed = ok(put(hosp.client, f"Observation?{criteria}", corrected), 200)
    assert fixed["id"] == first["id"] and fixed["meta"]["versionId"] == "2"
    assert ok(hosp.client.get(f"/fhir/Observation/{first['id']}/_history/1"))["valueQuantity"]["value"] == 13.2
    assert Resource.objects.filter(resource_type="Observation").count() == 1


def test_conditional_create_finds_the_existing_resource(hosp):
    body = sample("Condition", f"Patient/{hosp.patient_id}")
    criteria = "identifier=urn:hosp-a:condition|Con-1"
    first = ok(post(hosp.client, "Condition", body, HTTP_IF_NONE_EXIST=criteria), 201)
    second = post(hosp.client, "Condition", {**body, "onsetDateTime": "2020-01-01"}, HTTP_IF_NONE_EXIST=criteria)
    assert ok(second, 200)["id"] == first["id"] and second.json()["onsetDateTime"] == "2024-05-01"


def test_a_source_system_writes_only_about_its_own_patients(hosp):
    other = register_feed(facility="HOSP-B")
    body = sample("Observation", f"Patient/{hosp.patient_id}")
    assert outcome(post(other.client, "Observation", body), 403)[0]["code"] == "forbidden"
    # Nor may it register a Patient under another hospital's assigning authority.
    assert outcome(post(other.client, "Patient", patient_body("A-9")), 422)[0]["expression"] == ["Patient.identifier"]


def test_golden_patient_links_every_source_patient_and_patient_read_shows_the_person(hosp):
    other = register_feed(facility="HOSP-B")
    b = ok(
        post(
            other.client,
            "Patient",
            patient_body(
                "B-7", system="urn:platform:authority:HOSP-B", telecom=[{"system": "phone", "value": "13812345678"}]
            ),
        ),
        201,
    )
    a = ok(hosp.client.get(f"/fhir/Patient/{hosp.patient_id}"))
    golden_ref = next(link["other"]["reference"] for link in a["link"] if link["type"] == "refer")
    golden = ok(hosp.client.get(f"/fhir/{golden_ref}"))
    seealso = {link["other"]["reference"] for link in golden["link"] if link["type"] == "seealso"}
    assert f"Patient/{hosp.patient_id}" in seealso
    assert (f"Patient/{b['id']}" in seealso) == (
        next(link["other"]["reference"] for link in b["link"] if link["type"] == "refer") == golden_ref
    )


def test_search_by_patient_spans_every_identity_of_the_person(hosp):
    from mpi.models import Identity
    from mpi.services import person_merge, person_unmerge

    other = register_feed(facility="HOSP-B")
    b = ok(
        post(
            other.client,
            "Patient",
            patient_body("B-1", system="urn:platform:authority:HOSP-B", name="王晓明", birthDate="1970-01-01"),
        ),
        201,
    )
    ok(post(hosp.client, "Observation", sample("Observation", f"Patient/{hosp.patient_id}", 1)), 201)
    ok(
        post(
            other.client,
            "Observation",
            {
                **sample("Observation", f"Patient/{b['id']}", 2),
                "identifier": [{"system": "urn:hosp-b:obs", "value": "1"}],
            },
        ),
        201,
    )
    a_identity = Identity.objects.get(uuid=hosp.patient_id)
    b_identity = Identity.objects.get(uuid=b["id"])
    assert a_identity.person_id != b_identity.person_id
    assert len(search(hosp.client, f"Observation?patient={hosp.patient_id}")) == 1
    merge = person_merge(survivor=a_identity.person, duplicate=b_identity.person, actor="test", reason="same")
    assert len(search(hosp.client, f"Observation?patient={hosp.patient_id}")) == 2
    assert len(search(hosp.client, f"Observation?patient={b['id']}")) == 2
    person_unmerge(merge=merge, actor="test", reason="not the same")
    assert len(search(hosp.client, f"Observation?patient={hosp.patient_id}")) == 1


def test_paging_walks_every_match_once_by_keyset_links(hosp):
    for n in range(7):
        body = sample("Observation", f"Patient/{hosp.patient_id}", n)
        body["effectiveDateTime"] = f"2024-05-0{n % 3 + 1}T10:00:00+08:00"
        ok(post(hosp.client, "Observation", body), 201)
    for sort in ("_id", "-date", "date"):
        seen, url = [], f"/fhir/Observation?patient={hosp.patient_id}&_count=3&_sort={sort}"
        while url:
            body = ok(hosp.client.get(url))
            seen += [e["resource"]["id"] for e in body.get("entry", [])]
            url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        assert len(seen) == len(set(seen)) == 7
        if sort != "_id":
            dates = [ok(hosp.client.get(f"/fhir/Observation/{i}"))["effectiveDateTime"] for i in seen]
            assert dates == sorted(dates, reverse=sort.startswith("-"))


def test_unknown_search_parameter_is_refused_or_ignored_under_lenient_handling(hosp):
    assert outcome(hosp.client.get("/fhir/Observation?colour=red"), 400)[0]["expression"] == ["colour"]
    issues = outcome(hosp.client.get("/fhir/Observation?colour=red", HTTP_PREFER="handling=strict"), 400)
    assert issues[0]["expression"] == ["colour"]
    body = ok(hosp.client.get("/fhir/Observation?colour=red&_count=5", HTTP_PREFER="handling=lenient"))
    assert body["entry"][-1]["search"]["mode"] == "outcome"
    assert "colour" not in body["link"][0]["url"] and "_count=5" in body["link"][0]["url"]
    assert outcome(hosp.client.get("/fhir/Observation?date=yesterday"), 400)[0]["expression"] == ["date"]


# --- bundles ---------------------------------------------------------------------------------------------


def history_bundle(mrn: str, n: int, *, bad_at: int | None = None) -> dict:
    """A transaction: a Patient, an Encounter, n Observations of that encounter and a DiagnosticReport."""
    entries = [
        {
            "fullUrl": "urn:uuid:p",
            "resource": patient_body(mrn),
            "request": {"method": "PUT", "url": f"Patient?identifier={MRN_A}|{mrn}"},
        },
        {
            "fullUrl": "urn:uuid:e",
            "resource": {**sample("Encounter", "urn:uuid:p", 1)},
            "request": {"method": "POST", "url": "Encounter"},
        },
    ]
    results = []
    for i in range(n):
        obs = sample("Observation", "urn:uuid:p", i)
        obs["encounter"] = {"reference": "urn:uuid:e"}
        if i == bad_at:
            obs["status"] = 42  # a code is a string
        entries.append(
            {
                "fullUrl": f"urn:uuid:o{i}",
                "resource": obs,
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": f"identifier=urn:hosp-a:observation|Obs-{i}",
                },
            }
        )
        results.append({"reference": f"urn:uuid:o{i}"})
    report = sample("DiagnosticReport", "urn:uuid:p", 1)
    report["result"] = results
    entries.append(
        {"fullUrl": "urn:uuid:r", "resource": report, "request": {"method": "POST", "url": "DiagnosticReport"}}
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_transaction_writes_everything_resolving_urn_uuid_references_and_reads_back(hosp):
    response = ok(post(hosp.client, "", history_bundle("A-50", 5)))
    Bundle.model_validate(response)
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 8
    patient_id = response["entry"][0]["resource"]["id"]
    encounter_id = response["entry"][1]["resource"]["id"]
    report = response["entry"][-1]["resource"]
    obs_ids = [e["resource"]["id"] for e in response["entry"][2:7]]
    assert [r["reference"] for r in report["result"]] == [f"Observation/{i}" for i in obs_ids]
    assert report["subject"]["reference"] == f"Patient/{patient_id}"
    found = ok(hosp.client.get(f"/fhir/DiagnosticReport?patient={patient_id}&_include=DiagnosticReport:result"))
    assert {e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "include"} == set(obs_ids)
    revinc = ok(hosp.client.get(f"/fhir/Encounter?_id={encounter_id}&_revinclude=Observation:encounter"))
    assert len([e for e in revinc["entry"] if e["search"]["mode"] == "include"]) == 5
    # Round trip: what was sent is what is read back (plus id and meta).
    for sent, got in zip(history_bundle("A-50", 5)["entry"][2:7], response["entry"][2:7], strict=True):
        read = ok(hosp.client.get(f"/fhir/Observation/{got['resource']['id']}"))
        assert read["code"] == sent["resource"]["code"] and read["valueQuantity"] == sent["resource"]["valueQuantity"]
    # The same transaction again creates nothing new: the Patient is its MRN, the rest conditional creates.
    again = ok(post(hosp.client, "", history_bundle("A-50", 5)))
    assert [e["response"]["status"] for e in again["entry"][2:7]] == ["200 OK"] * 5
    assert Resource.objects.filter(resource_type="Observation").count() == 5


def test_a_transaction_with_one_bad_entry_writes_nothing(hosp):
    before = Resource.objects.count()
    issues = outcome(post(hosp.client, "", history_bundle("A-60", 4, bad_at=2)), 400)
    assert any(e.startswith("Bundle.entry[4].resource.status") for i in issues for e in i.get("expression", []))
    assert Resource.objects.count() == before


def test_a_batch_answers_each_entry_on_its_own(hosp):
    good = sample("Observation", f"Patient/{hosp.patient_id}", 1)
    bad = {**sample("Observation", f"Patient/{hosp.patient_id}", 2), "status": 5}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Observation"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": f"Observation?patient={hosp.patient_id}"}},
        ],
    }
    response = ok(post(hosp.client, "", bundle))
    Bundle.model_validate(response)
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses[0] == "201 Created" and statuses[1] == "400" and statuses[2] == "200 OK"
    assert response["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert len(response["entry"][2]["resource"]["entry"]) == 1


def test_bad_bundles_get_an_outcome(hosp):
    assert outcome(post(hosp.client, "", {"resourceType": "Bundle", "type": "collection"}), 400)
    assert outcome(post(hosp.client, "", {"resourceType": "Patient"}), 400)
    unknown = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Questionnaire"}, "request": {"method": "POST", "url": "Questionnaire"}}
        ],
    }
    assert outcome(post(hosp.client, "", unknown), 400)[0]["expression"] == ["Bundle.entry[0].request.url"]
    dangling = history_bundle("A-70", 1)
    dangling["entry"][2]["resource"]["encounter"] = {"reference": "urn:uuid:nowhere"}
    # A reference in the content that names nothing: 422 (issue 19), not 400.
    assert outcome(post(hosp.client, "", dangling), 422)[0]["code"] == "not-found"
    malformed = hosp.client.post("/fhir/", b"{not json", content_type=FHIR_JSON)
    assert outcome(malformed, 400)


# --- races the database settles --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_conditional_creates_make_one_resource():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises all writers)")
    feed = register_feed(facility="HOSP-A")
    patient_id = ok(post(feed.client, "Patient", patient_body("A-1")), 201)["id"]
    body = sample("Observation", f"Patient/{patient_id}")
    body["identifier"] = [{"system": "urn:other", "value": "x"}]
    statuses, barrier = [], threading.Barrier(2)

    def create(i):
        # Each thread's first (business) identifier differs: only the conditional key can stop a duplicate.
        mine = {
            **body,
            "identifier": [{"system": "urn:thread", "value": str(i)}, {"system": "urn:other", "value": "x"}],
        }
        try:
            barrier.wait()
            response = post(feed.client, "Observation", mine, HTTP_IF_NONE_EXIST="identifier=urn:other|x")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 201]
    assert Resource.objects.filter(resource_type="Observation").count() == 1


# --- documents (MHD), $everything, metadata ----------------------------------------------------------------


def test_provide_find_and_retrieve_a_document_mhd(hosp, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    text = "出院小结：血红蛋白 13.2 g/dL。".encode()
    response = ok(post(hosp.client, "", provide_document_bundle(f"Patient/{hosp.patient_id}", text)))
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 3
    doc_location = response["entry"][1]["response"]["location"]
    doc_id = doc_location.split("/")[1]
    assert response["entry"][2]["response"]["location"] == f"Binary/{doc_id}"
    submission_set = ok(
        hosp.client.get(f"/fhir/{response['entry'][0]['response']['location'].rsplit('/_history', 1)[0]}")
    )
    assert submission_set["entry"][0]["item"]["reference"] == f"DocumentReference/{doc_id}"
    # ITI-67: find it by patient, class and date; ITI-68: the bytes come back exactly.
    found = search(hosp.client, f"DocumentReference?patient={hosp.patient_id}&status=current&date=ge2024-05-01")
    assert [d["id"] for d in found] == [doc_id]
    assert search(hosp.client, f"DocumentReference?patient={hosp.patient_id}&date=lt2024-05-01") == []
    url = found[0]["content"][0]["attachment"]["url"]
    raw = hosp.client.get(f"/fhir/{url}", HTTP_ACCEPT="text/plain")
    assert raw.status_code == 200 and raw["Content-Type"].startswith("text/plain")
    assert b"".join(raw.streaming_content) == text
    as_fhir = ok(hosp.client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON))
    assert base64.b64decode(as_fhir["data"]) == text
    everything = ok(hosp.client.get(f"/fhir/Patient/{hosp.patient_id}/$everything"))
    assert doc_id in {e["resource"]["id"] for e in everything["entry"] if e["resource"]["resourceType"] != "Patient"}
    # A hash that does not match the bytes is refused, naming the element; nothing is written.
    bad = provide_document_bundle(f"Patient/{hosp.patient_id}", text, doc_id="DOC-2")
    bad["entry"][1]["resource"]["content"][0]["attachment"]["hash"] = base64.b64encode(b"x" * 20).decode()
    issues = outcome(post(hosp.client, "", bad), 400)
    assert any("Bundle.entry[1].resource.content[0].attachment.hash" in e for i in issues for e in i["expression"])
    assert search(hosp.client, "List?identifier=urn:hosp-a:submission|S-DOC-2") == []


def test_a_documents_history_and_each_version_are_readable(hosp, settings, tmp_path):
    from emr.models import DocumentEntry
    from emr.services import document_retire

    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    response = ok(post(hosp.client, "", provide_document_bundle(f"Patient/{hosp.patient_id}", b"report")))
    doc_id = response["entry"][1]["response"]["location"].split("/")[1]
    document_retire(entry=DocumentEntry.objects.get(uuid=doc_id), actor="records office", reason="wrong patient")

    history = ok(hosp.client.get(f"/fhir/DocumentReference/{doc_id}/_history"))
    Bundle.model_validate(history)
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["resource"]["status"] for e in history["entry"]] == ["entered-in-error", "current"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]
    first = ok(hosp.client.get(f"/fhir/DocumentReference/{doc_id}/_history/1"))
    assert first == history["entry"][1]["resource"]
    # Paged one version at a time, the next link leads to the older version and no further.
    page = ok(hosp.client.get(f"/fhir/DocumentReference/{doc_id}/_history?_count=1"))
    assert [e["resource"]["meta"]["versionId"] for e in page["entry"]] == ["2"]
    older = next(link["url"] for link in page["link"] if link["relation"] == "next")
    last = ok(hosp.client.get(older))
    assert [e["resource"]["meta"]["versionId"] for e in last["entry"]] == ["1"]
    assert not [link for link in last["link"] if link["relation"] == "next"]
    assert outcome(hosp.client.get(f"/fhir/DocumentReference/{doc_id}/_history/3"), 404)[0]["code"] == "not-found"
    assert outcome(hosp.client.get("/fhir/DocumentReference/nothing-here/_history"), 404)[0]["code"] == "not-found"


def test_everything_returns_the_whole_person_across_institutions_in_pages(hosp):
    response = ok(post(hosp.client, "", history_bundle("A-80", 6)))
    patient_id = response["entry"][0]["resource"]["id"]
    seen, url = [], f"/fhir/Patient/{patient_id}/$everything?_count=4"
    while url:
        body = ok(hosp.client.get(url))
        Bundle.model_validate(body)
        seen += [(e["resource"]["resourceType"], e["resource"]["id"]) for e in body.get("entry", [])]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    types = [t for t, _ in seen]
    assert types.count("Observation") == 6 and types.count("Encounter") == 1 and types.count("DiagnosticReport") == 1
    assert types[:2] == ["Patient", "Patient"]  # the golden Patient, then the source Patient
    assert types.count("DocumentReference") == 0
    assert len(seen) == len(set(seen))
    golden = seen[0][1]
    again = ok(hosp.client.get(f"/fhir/Patient/{golden}/$everything?_count=100"))
    assert {e["resource"]["id"] for e in again["entry"]} == {i for _, i in seen}


def test_metadata_is_an_r4_capability_statement_of_what_is_served(client, db):
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    body = ok(client.get("/fhir/metadata"))
    CapabilityStatement.model_validate(body)
    assert body["fhirVersion"] == "4.0.1"
    served = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(TYPES) <= set(served) and {
        "Patient",
        "DocumentReference",
        "Binary",
        "Organization",
        "Practitioner",
        "Location",
    } <= set(served)
    observation = {p["name"] for p in served["Observation"]["searchParam"]}
    assert {"patient", "code", "date", "category", "status", "identifier", "_lastUpdated"} <= observation
    # Every declared search parameter is really accepted (strict handling would refuse an unknown one).


def test_oversized_payload_and_wrong_content_type_get_an_outcome_and_write_nothing(hosp, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = sample("Observation", f"Patient/{hosp.patient_id}")
    body["note"] = [{"text": "x" * 5000}]
    assert outcome(post(hosp.client, "Observation", body), 413)[0]["code"] == "too-costly"
    as_xml = hosp.client.post("/fhir/Observation", "<Observation/>", content_type="application/fhir+xml")
    assert outcome(as_xml, 415)[0]["code"] == "not-supported"
    assert Resource.objects.filter(resource_type="Observation").count() == 0


def test_conditional_update_creates_then_updates_the_one_match(hosp):
    body = sample("Procedure", f"Patient/{hosp.patient_id}")
    url = "Procedure?identifier=urn:hosp-a:procedure|Pro-1"
    first = ok(put(hosp.client, url, body), 201)
    changed = {**body, "status": "entered-in-error"}
    second = ok(put(hosp.client, url, changed), 200)
    assert second["id"] == first["id"] and second["meta"]["versionId"] == "2"
    ok(
        post(hosp.client, "Procedure", {**body, "identifier": [{"system": "urn:hosp-a:procedure", "value": "Pro-2"}]}),
        201,
    )
    assert outcome(put(hosp.client, "Procedure?code=80146002", body), 412)[0]["code"] == "multiple-matches"
