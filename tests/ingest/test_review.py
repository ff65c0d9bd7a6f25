"""What the attack on the write corridor found (a review with two hospitals' credentials and bad input), one
test each: every one answered wrongly — a cross-institution change, a lost entry, or a 500 — before its fix."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from ehr import selectors as archive_selectors
from ehr.models import Resource
from emr.models import DocumentEntry
from tests.fhirapi.client import issues
from tests.fhirapi.samples import patient_body, sample
from tests.fhirapi.tenants import document_body, post, world_build
from tests.ingest.test_scopes import bearer_client


def ok(response, status=200) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def batch(*entries) -> dict:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def transaction(*entries) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def create(resource: dict) -> dict:
    return {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_first_entry_is_refused_still_writes_the_others(documents_folder):
    """The request's Submission was made inside the first entry's transaction; its rollback took the row along
    and every later entry failed on its foreign key (a 500 with real commits)."""
    world = world_build()
    foreign = sample("Observation", f"Patient/{world.a.patient_id}", 30)
    foreign["encounter"] = {"reference": f"Encounter/{world.b.ids['Encounter']}"}
    good = sample("Observation", f"Patient/{world.a.patient_id}", 31)
    answer = ok(post(world.a.client, "", batch(create(foreign), create(good))))
    assert [e["response"]["status"] for e in answer["entry"]] == ["403", "201 Created"]
    assert Resource.objects.filter(identifier_value="Obs-31").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("conditional", [True, False], ids=["if-none-exist", "plain-resend"])
def test_concurrent_identical_creates_all_get_a_success_and_make_one_resource(documents_folder, conditional):
    """COPY's unique-key violation came as psycopg's own error, not Django's IntegrityError: the losers of the
    race got 500 on PostgreSQL instead of the stored resource."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises all writers)")
    world = world_build()
    body = sample("Encounter", f"Patient/{world.a.patient_id}", 700)
    headers = {"HTTP_IF_NONE_EXIST": "identifier=urn:hosp-a:encounter|Enc-700"} if conditional else {}
    statuses: list[int] = []
    start = threading.Barrier(6)

    def send():
        from django.db import connection as thread_connection

        start.wait()
        try:
            statuses.append(post(world.a.client, "Encounter", body, **headers).status_code)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 5 + [201]
    assert Resource.objects.filter(resource_type="Encounter", identifier_value="Enc-700").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["Patient/{b}#/{a}", "Patient/{b}/_history/{a}", "Patient/{b}/../{a}"])
def test_a_patient_reference_is_parsed_as_the_index_parses_it(world, spelling):
    """The last path segment was taken as the patient: ``Patient/<B>#/<A>`` filed the fact under A's patient
    and stored a reference naming B's."""
    reference = spelling.format(a=world.a.patient_id, b=world.b.patient_id)
    body = sample("Observation", reference, 40)
    assert issues(post(world.a.client, "Observation", body), 400)[0]["expression"] == ["Observation.subject"]
    assert not Resource.objects.filter(identifier_value="Obs-40").exists()


@pytest.mark.django_db
def test_a_patient_reference_is_stored_as_the_identitys_own_id(world):
    body = sample("Observation", f"Patient/{world.a.patient_id.upper()}", 41)
    body["performer"] = [{"reference": f"http://elsewhere/fhir/Patient/{world.a.patient_id.upper()}"}]
    stored = ok(post(world.a.client, "Observation", body), 201)
    assert stored["subject"]["reference"] == f"Patient/{world.a.patient_id}"
    assert stored["performer"][0]["reference"] == f"Patient/{world.a.patient_id}"


@pytest.mark.django_db
def test_too_many_reads_in_one_bundle_are_refused_up_front(world, monkeypatch):
    monkeypatch.setattr("healthplatform.ingest.apply.MAX_READS", 3)
    reads = [{"request": {"method": "GET", "url": f"Patient/{world.a.patient_id}"}} for _ in range(4)]
    assert issues(post(world.a.client, "", batch(*reads)), 413)[0]["code"] == "too-costly"


@pytest.mark.django_db
def test_an_include_that_would_bring_too_many_resources_is_refused(world, monkeypatch):
    monkeypatch.setattr(archive_selectors, "MAX_INCLUDED", 1)
    for n in (50, 51):
        observation = sample("Observation", f"Patient/{world.a.patient_id}", n)
        observation["encounter"] = {"reference": f"Encounter/{world.a.ids['Encounter']}"}
        ok(post(world.a.client, "Observation", observation), 201)
    query = f"Encounter?_id={world.a.ids['Encounter']}&_revinclude=Observation:encounter"
    refusal = issues(world.a.client.get(f"/fhir/{query}"), 400)
    assert (refusal[0]["code"], refusal[0]["expression"]) == ("too-costly", ["_revinclude"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r["identifier"][0].update(system=None),
        lambda r: r["code"]["coding"][0].update(system=None),
        lambda r: r.update(extension=[{"url": 42, "valueString": "x"}]),
        lambda r: r.update(extension=_nested(150)),
    ],
    ids=["identifier-system-null", "coding-system-null", "url-a-number", "nested-150-deep"],
)
def test_wrong_json_types_and_deep_nesting_never_get_a_500(world, damage):
    """A null system (which the R4 models take for an absent one) is stored; the others are refused."""
    body = sample("Observation", f"Patient/{world.a.patient_id}", 60)
    damage(body)
    response = post(world.a.client, "Observation", body)
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


def _nested(depth: int) -> list:
    node: dict = {"url": "urn:x", "valueString": "leaf"}
    for _ in range(depth):
        node = {"url": "urn:x", "extension": [node]}
    return [node]


@pytest.mark.django_db
def test_a_document_with_a_null_attachment_gets_a_400(world):
    body = document_body(f"Patient/{world.a.patient_id}", hospital="hosp-a", value="DOC-N")
    body["content"] = [{"attachment": None}]
    assert 400 <= post(world.a.client, "DocumentReference", body).status_code < 500


@pytest.mark.django_db
def test_a_deleted_fact_is_not_brought_back_about_another_patient(world):
    """Reviving a deleted resource by posting its business identifier about another person made the first
    person's history part of the second person's resource."""
    a = world.a
    other = ok(post(a.client, "Patient", patient_body("HOSP-A-9", name="赵六", birthDate="1950-02-02")), 201)
    observation_id = a.ids["Observation"]
    assert a.client.delete(f"/fhir/Observation/{observation_id}").status_code == 204
    again = sample("Observation", f"Patient/{other['id']}")  # the same business identifier, Obs-1
    refusal = issues(post(a.client, "Observation", again), 409)
    assert refusal[0]["expression"] == ["Observation.identifier[0]"]
    assert Resource.objects.get(fhir_id=observation_id).deleted
    # About the same patient it comes back, as a new version of the same resource.
    revived = ok(post(a.client, "Observation", sample("Observation", f"Patient/{a.patient_id}")), 201)
    assert revived["id"] == observation_id and revived["meta"]["versionId"] == "3"


@pytest.mark.django_db
def test_a_write_only_token_gets_no_document_back(world):
    client = bearer_client(world.a.feed, "system/DocumentReference.write")
    response = post(
        client, "DocumentReference", document_body(f"Patient/{world.a.patient_id}", hospital="hosp-a", value="W")
    )
    assert response.status_code == 201 and response.content == b"" and response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("result", ["_summary=count", "_count=1", "_sort=date"])
def test_conditional_criteria_refuse_result_parameters(world, result):
    """``DELETE Encounter?class=AMB&_summary=count`` deleted nothing and answered 204 although two matched."""
    ok(post(world.a.client, "Encounter", sample("Encounter", f"Patient/{world.a.patient_id}", 2)), 201)
    entry = {"request": {"method": "DELETE", "url": f"Encounter?class=AMB&{result}"}}
    answer = ok(post(world.a.client, "", batch(entry)))["entry"][0]["response"]
    assert answer["status"] == "400" and answer["outcome"]["issue"][0]["code"] == "not-supported"
    criteria = f"identifier=urn:hosp-a:condition|Con-1&{result}"
    body = sample("Condition", f"Patient/{world.a.patient_id}", 5)
    assert post(world.a.client, "Condition", body, HTTP_IF_NONE_EXIST=criteria).status_code == 400


@pytest.mark.django_db
def test_a_transaction_changes_each_resource_once(world):
    a = world.a
    observation = dict(Resource.objects.get(fhir_id=a.ids["Observation"]).body)
    url = f"Observation/{a.ids['Observation']}"
    twice = transaction(
        {"request": {"method": "DELETE", "url": url}},
        {"resource": {**observation, "status": "amended"}, "request": {"method": "PUT", "url": url}},
    )
    assert issues(post(a.client, "", twice), 400)[0]["expression"] == ["Bundle.entry[1]"]
    deleted_and_resent = transaction({"request": {"method": "DELETE", "url": url}}, create(observation))
    assert issues(post(a.client, "", deleted_and_resent), 400)[0]["code"] == "invalid"
    same_identifier = transaction(
        create(sample("Procedure", f"Patient/{a.patient_id}", 80)),
        create(sample("Procedure", f"Patient/{a.patient_id}", 80)),
    )
    assert issues(post(a.client, "", same_identifier), 400)[0]["expression"] == [
        "Bundle.entry[1].resource.identifier[0]"
    ]
    assert Resource.objects.get(fhir_id=a.ids["Observation"]).version_id == 1


@pytest.mark.django_db
def test_a_transaction_whose_read_fails_writes_nothing(world):
    written = create(sample("Observation", f"Patient/{world.a.patient_id}", 90))
    failing = {"request": {"method": "GET", "url": "Observation?nonsense=1"}}
    refusal = issues(post(world.a.client, "", transaction(written, failing)), 400)
    assert "Bundle.entry[1]" in refusal[0]["diagnostics"]
    assert not Resource.objects.filter(identifier_value="Obs-90").exists()
    fine = {"request": {"method": "GET", "url": "Observation?identifier=urn:hosp-a:observation|Obs-90"}}
    answer = ok(post(world.a.client, "", transaction(written, fine)))
    assert answer["entry"][1]["resource"]["entry"][0]["resource"]["id"] == answer["entry"][0]["resource"]["id"]


@pytest.mark.django_db
def test_a_restful_full_url_names_the_entrys_own_type(world):
    observation = sample("Observation", f"Patient/{world.a.patient_id}", 95)
    entry = {**create(observation), "fullUrl": f"Encounter/{world.b.ids['Encounter']}"}
    condition = sample("Condition", f"Patient/{world.a.patient_id}", 95)
    condition["encounter"] = {"reference": f"Encounter/{world.b.ids['Encounter']}"}
    refusal = issues(post(world.a.client, "", transaction(entry, create(condition))), 400)
    assert refusal[0]["expression"] == ["Bundle.entry[0].fullUrl"]


@pytest.mark.django_db
def test_a_document_body_never_returns_for_a_replaced_document_of_another_source(world):
    """Probing a document another source already replaced said which document replaced it."""
    b = world.b
    first = document_body(f"Patient/{b.patient_id}", hospital="hosp-b", value="DOC-2", text=b"v2")
    first["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{b.document_id}"}}]
    replacement = ok(post(b.client, "DocumentReference", first), 201)
    probe = document_body(f"Patient/{world.a.patient_id}", hospital="hosp-a", value="DOC-P", text=b"p")
    probe["relatesTo"] = [{"code": "replaces", "target": {"reference": f"http://x/DocumentReference/{b.document_id}"}}]
    response = post(world.a.client, "DocumentReference", probe)
    assert response.status_code == 403 and replacement["id"] not in response.content.decode()
    assert DocumentEntry.objects.get(uuid=b.document_id).replaced_by.uuid.hex == replacement["id"].replace("-", "")
