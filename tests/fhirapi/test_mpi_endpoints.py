"""The MPI's FHIR face through HTTP: PDQm search and $match, read, PIXm, content negotiation, auth, access log."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from fhir.resources.R4B.parameters import Parameters

from healthplatform.fhirapi.resources.patient import REPORTED_BY
from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.selectors import identifier_systems, system_of_authority
from mpi.services import identity_register, person_merge
from registry.models import SourceSystem
from registry.services import source_system_rotate_secret
from tests.fhirapi.client import CONTENT_TYPE, FHIR_JSON, basic, expressions, issues, searchset
from tests.fhirapi.client import ids as patient_ids

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
# Two hospitals' assigning authorities (OIDs) and a third that registers a duplicate.
HOSPITAL_A, HOSPITAL_B, HOSPITAL_C = "1.2.156.999.1", "1.2.156.999.2", "1.2.156.999.3"
RESIDENT_SYSTEM = identifier_systems()["resident_id"]
WANG_ID = make_resident_id("440106", dt.date(1985, 3, 12), 123)
LI_ID = make_resident_id("440106", dt.date(1990, 7, 21), 124)


@pytest.fixture
def region(db):
    """王小明 known at two hospitals (one sends the name split), and 李娜 at one."""
    wang_a = identity_register(
        assigning_authority=HOSPITAL_A,
        local_id="A-1001",
        demographics=Demographics(
            name="王小明",
            sex="male",
            birth_date="1985-03-12",
            resident_id=WANG_ID,
            phone="13812345678",
            address="广东省广州市天河区五山路1号",
        ),
    )
    wang_b = identity_register(
        assigning_authority=HOSPITAL_B,
        local_id="B-2002",
        demographics=Demographics(
            family_name="王", given_name="小明", sex="M", birth_date="19850312", resident_id=WANG_ID
        ),
    )
    li = identity_register(
        assigning_authority=HOSPITAL_A,
        local_id="A-1002",
        demographics=Demographics(name="李娜", sex="female", birth_date="1990-07-21", resident_id=LI_ID),
    )
    # The setup itself is what the tests rely on: one person for both of 王小明's records.
    assert wang_a.person.pk == wang_b.person.pk != li.person.pk
    return SimpleNamespace(wang=wang_a.person, li=li.person)


@pytest.fixture
def staff(client, django_user_model):
    """A logged-in staff user's session."""
    user = django_user_model.objects.create_user("clerk", is_staff=True)  # no password: no slow hashing
    client.force_login(user)
    return client


def entries(response) -> list[dict]:
    return searchset(response).get("entry", [])  # a valid FHIR R4 Bundle, Patients included


def match_body(patient: dict, **extra) -> dict:
    parameters = [{"name": "resource", "resource": {"resourceType": "Patient", **patient}}]
    parameters += [{"name": k, **v} for k, v in extra.items()]
    return {"resourceType": "Parameters", "parameter": parameters}


def post_match(client, body, **kwargs):
    return client.post("/fhir/Patient/$match", body, content_type=FHIR_JSON, **kwargs)


# --- PDQm search (ITI-78) ------------------------------------------------------------


def test_search_by_resident_id_returns_one_golden_patient_with_every_mrn(staff, region):
    found = entries(staff.get("/fhir/Patient", {"identifier": f"{RESIDENT_SYSTEM}|{WANG_ID}"}))

    assert len(found) == 1
    patient = found[0]["resource"]
    assert patient["id"] == str(region.wang.uuid)
    assert found[0]["fullUrl"].endswith(f"/fhir/Patient/{region.wang.uuid}")
    assert found[0]["search"]["mode"] == "match"
    ids = {(i["system"], i["value"]) for i in patient["identifier"]}
    assert {
        (RESIDENT_SYSTEM, WANG_ID),
        (f"urn:oid:{HOSPITAL_A}", "A-1001"),
        (f"urn:oid:{HOSPITAL_B}", "B-2002"),
    } <= ids
    mrns = [i for i in patient["identifier"] if i["value"] in ("A-1001", "B-2002")]
    assert all(i["type"]["coding"][0]["code"] == "MR" for i in mrns)
    assert patient["name"] == [{"use": "official", "text": "王小明", "family": "王", "given": ["小明"]}]
    assert patient["gender"] == "male"
    assert patient["birthDate"] == "1985-03-12"
    assert patient["telecom"][0]["value"] == "13812345678"
    assert [a["text"] for a in patient["address"]] == ["广东省广州市天河区五山路1号"]
    assert patient["address"][0]["extension"][0]["url"] == REPORTED_BY  # who reported it (survivorship)
    assert patient["active"] is True


def test_search_by_mrn_with_its_system_or_in_any_system(staff, region):
    assert patient_ids(staff.get("/fhir/Patient", {"identifier": f"urn:oid:{HOSPITAL_B}|B-2002"})) == [
        str(region.wang.uuid)
    ]
    assert patient_ids(staff.get("/fhir/Patient", {"identifier": "B-2002"})) == [str(region.wang.uuid)]
    # The same value under another hospital's system is another patient's number, or nobody's.
    assert patient_ids(staff.get("/fhir/Patient", {"identifier": f"urn:oid:{HOSPITAL_A}|B-2002"})) == []


def test_search_by_family_and_birthdate(staff, region):
    wang = [str(region.wang.uuid)]
    assert patient_ids(staff.get("/fhir/Patient", {"family": "王", "birthdate": "1985-03-12"})) == wang
    assert patient_ids(staff.get("/fhir/Patient", {"family": "王", "birthdate": "eq1985-03-12"})) == wang
    assert patient_ids(staff.get("/fhir/Patient", {"family": "李", "birthdate": "1985-03-12"})) == []


def test_search_by_gender(staff, region):
    assert patient_ids(staff.get("/fhir/Patient", {"gender": "female"})) == [str(region.li.uuid)]
    assert patient_ids(staff.get("/fhir/Patient", {"gender": "male"})) == [str(region.wang.uuid)]


def test_search_summary_count_and_count_zero_answer_the_total_only(staff, region, monkeypatch):
    for extra in ({"_summary": "count"}, {"_count": "0"}):
        body = searchset(staff.get("/fhir/Patient", {"gender": "female", **extra}))
        assert (body["total"], body.get("entry")) == (1, None)
        assert "_summary=count" in body["link"][0]["url"] or "_count=0" in body["link"][0]["url"]
    assert searchset(staff.get("/fhir/Patient", {"family": "王", "_summary": "count"}))["total"] == 1
    assert (
        searchset(staff.get("/fhir/Patient", {"family": "李", "birthdate": "1985-03-12", "_summary": "count"}))["total"]
        == 0
    )
    # Counting is bounded: criteria broader than the limit are refused, not counted through the whole index.
    from healthplatform.fhirapi.views import patient as patient_views

    monkeypatch.setattr(patient_views, "TOTAL_LIMIT", 1)
    assert searchset(staff.get("/fhir/Patient", {"gender": "female", "_summary": "count"}))["total"] == 1
    monkeypatch.setattr(patient_views, "TOTAL_LIMIT", 0)
    refusal = issues(staff.get("/fhir/Patient", {"gender": "female", "_count": "0"}), 400)
    assert (refusal[0]["code"], refusal[0]["expression"]) == ("too-costly", ["_count"])
    monkeypatch.undo()
    # Other _summary values: 400 (strict handling is the default), the full answer under lenient handling (the
    # self link drops it).
    assert expressions(staff.get("/fhir/Patient", {"gender": "female", "_summary": "text"}), 400) == ["_summary"]
    lenient = searchset(
        staff.get("/fhir/Patient", {"gender": "female", "_summary": "text"}, headers={"Prefer": "handling=lenient"})
    )
    assert patient_ids_of(lenient) == [str(region.li.uuid)] and "_summary" not in lenient["link"][0]["url"]


def patient_ids_of(body: dict) -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry", [])]


@pytest.mark.parametrize("value", ["1985-13-45", "12/03/1985", "lt1985-03-12"])
def test_search_with_a_bad_birthdate_is_400_naming_birthdate(staff, region, value):
    response = staff.get("/fhir/Patient", {"birthdate": value})
    assert expressions(response, 400) == ["birthdate"]


def test_unknown_search_parameter_is_refused_unless_handling_is_lenient(staff, region):
    assert expressions(staff.get("/fhir/Patient", {"family": "李", "shoe-size": "42"}), 400) == ["shoe-size"]
    strict = staff.get("/fhir/Patient", {"family": "李", "shoe-size": "42"}, headers={"prefer": "handling=strict"})
    assert expressions(strict, 400) == ["shoe-size"]

    response = staff.get("/fhir/Patient", {"family": "李", "shoe-size": "42"}, headers={"prefer": "handling=lenient"})
    assert patient_ids(response) == [str(region.li.uuid)]
    assert "shoe-size" not in response.json()["link"][0]["url"]  # the self link shows what was applied


def test_search_without_any_criterion_is_refused(staff, region):
    assert issues(staff.get("/fhir/Patient"), 400)[0]["code"] == "required"


def test_count_limits_the_results(staff, region):
    assert len(entries(staff.get("/fhir/Patient", {"birthdate": "1985-03-12"}))) == 1
    assert entries(staff.get("/fhir/Patient", {"birthdate": "1985-03-12", "_count": "0"})) == []
    assert expressions(staff.get("/fhir/Patient", {"gender": "male", "_count": "many"}), 400) == ["_count"]


def test_empty_parameters_are_ignored(staff, region):
    assert patient_ids(staff.get("/fhir/Patient", {"gender": "female", "birthdate": "", "family": ""})) == [
        str(region.li.uuid)
    ]


def test_search_query_count_does_not_grow_with_the_results(staff, region):
    identity_register(
        assigning_authority=HOSPITAL_C,
        local_id="C-7",
        demographics=Demographics(name="赵强", sex="male", birth_date="1970-01-02"),
    )
    with CaptureQueriesContext(connection) as one:
        assert len(entries(staff.get("/fhir/Patient", {"gender": "female"}))) == 1
    with CaptureQueriesContext(connection) as two:
        assert len(entries(staff.get("/fhir/Patient", {"gender": "male"}))) == 2
    assert len(two.captured_queries) == len(one.captured_queries)


# --- read -------------------------------------------------------------------------------


def test_read_returns_the_golden_patient(staff, region):
    response = staff.get(f"/fhir/Patient/{region.li.uuid}")
    assert response.status_code == 200
    patient = response.json()
    assert (patient["resourceType"], patient["id"], patient["active"]) == ("Patient", str(region.li.uuid), True)
    assert {"system": RESIDENT_SYSTEM, "value": LI_ID} in [
        {"system": i["system"], "value": i["value"]} for i in patient["identifier"]
    ]


@pytest.mark.parametrize("id_", ["01a212ea-8abe-780d-aaf0-864d857a4d92", "not-a-uuid"])
def test_read_of_an_unknown_patient_is_404_outcome(staff, region, id_):
    assert issues(staff.get(f"/fhir/Patient/{id_}"), 404)[0]["code"] == "not-found"


def test_read_of_a_merged_person_is_inactive_and_points_to_the_survivor(staff, region):
    duplicate = identity_register(
        assigning_authority=HOSPITAL_C,
        local_id="C-1",
        demographics=Demographics(name="王晓明", sex="male", birth_date="1985-03-21"),
    ).person
    assert duplicate.pk != region.wang.pk
    person_merge(survivor=region.wang, duplicate=duplicate, actor="test", reason="same resident")

    patient = staff.get(f"/fhir/Patient/{duplicate.uuid}").json()
    assert patient["active"] is False
    assert patient["link"] == [{"other": {"reference": f"Patient/{region.wang.uuid}"}, "type": "replaced-by"}]
    survivor = staff.get(f"/fhir/Patient/{region.wang.uuid}").json()
    assert (f"urn:oid:{HOSPITAL_C}", "C-1") in {(i["system"], i["value"]) for i in survivor["identifier"]}


# --- PDQm $match (ITI-119) ---------------------------------------------------------------


def test_match_puts_the_resident_first_as_certain_with_a_score_in_0_1(staff, region):
    body = match_body(
        {
            "name": [{"family": "王", "given": ["小明"]}],
            "gender": "male",
            "birthDate": "1985-03-12",
            "identifier": [{"system": RESIDENT_SYSTEM, "value": WANG_ID}],
        }
    )
    found = entries(post_match(staff, body))

    assert found[0]["resource"]["id"] == str(region.wang.uuid)
    search = found[0]["search"]
    assert search["mode"] == "match"
    assert search["extension"] == [{"url": MATCH_GRADE, "valueCode": "certain"}]
    assert 0.5 < search["score"] <= 1
    assert all(0 <= e["search"]["score"] <= 1 for e in found)
    assert str(region.li.uuid) not in [e["resource"]["id"] for e in found[:1]]


def test_match_grades_a_doubtful_candidate_below_certain(staff, region):
    # The right name with two digits of the birth date swapped, and nothing else: worth showing, not sure.
    found = entries(post_match(staff, match_body({"name": [{"text": "王小明"}], "birthDate": "1985-03-21"})))
    assert found[0]["resource"]["id"] == str(region.wang.uuid)
    assert found[0]["search"]["extension"][0]["valueCode"] in ("probable", "possible")
    assert 0 <= found[0]["search"]["score"] < 1


def test_match_by_a_local_mrn_puts_its_person_first_as_certain(staff, region):
    mrn = {"system": system_of_authority(HOSPITAL_B), "value": "B-2002"}
    # The MRN alone is enough to ask with.
    found = entries(post_match(staff, match_body({"identifier": [mrn]})))
    assert [e["resource"]["id"] for e in found] == [str(region.wang.uuid)]
    assert found[0]["search"]["extension"][0]["valueCode"] == "certain"
    # With demographics that contradict the person behind the MRN, it is only probable.
    body = match_body({"identifier": [mrn], "name": [{"text": "赵大海"}], "birthDate": "1950-01-01"})
    assert entries(post_match(staff, body))[0]["search"]["extension"][0]["valueCode"] == "probable"
    # An MRN nobody registered finds nothing, and says so with an empty Bundle.
    unknown = {"system": system_of_authority(HOSPITAL_B), "value": "B-9999"}
    assert entries(post_match(staff, match_body({"identifier": [unknown]}))) == []


def test_match_for_a_stranger_has_nothing_certain(staff, region):
    # Shares 王小明's birth date, nothing else.
    body = match_body({"name": [{"text": "张丽华"}], "gender": "female", "birthDate": "1985-03-12"})
    grades = [e["search"]["extension"][0]["valueCode"] for e in entries(post_match(staff, body))]
    assert "certain" not in grades


def test_match_with_only_certain_matches(staff, region):
    only_certain = {"onlyCertainMatches": {"valueBoolean": True}}
    doubtful = {"name": [{"text": "王小明"}], "birthDate": "1985-03-21"}
    assert entries(post_match(staff, match_body(doubtful))) != []
    assert entries(post_match(staff, match_body(doubtful, **only_certain))) == []
    sure = {**doubtful, "identifier": [{"system": RESIDENT_SYSTEM, "value": WANG_ID}]}
    found = entries(post_match(staff, match_body(sure, **only_certain)))
    assert [e["resource"]["id"] for e in found] == [str(region.wang.uuid)]


@pytest.mark.parametrize(
    ("body", "element"),
    [
        ({"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": 3}]}, "Parameters.parameter"),
        (
            match_body({"name": [{"text": "王小明"}], "birthDate": "12/03/1985"}),
            "Parameters.parameter[0].resource.birthDate",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "resource",
                        "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
                    }
                ],
            },
            "Parameters.parameter[0].resource.resourceType",
        ),
        ({"resourceType": "Patient", "name": [{"text": "王小明"}]}, "resourceType"),
        (match_body({"name": [{"text": "王小明"}], "gender": "bloke"}), "Parameters.parameter[0].resource.gender"),
        (match_body({"gender": "male", "birthDate": "1985-03-12"}), "Parameters.parameter[0].resource.name"),
        (match_body({"name": [{"text": "王小明"}]}, count={"valueInteger": 0}), "Parameters.parameter[1].valueInteger"),
    ],
    ids=["missing-resource", "birthdate-format", "not-a-patient", "not-parameters", "gender", "no-name-no-id", "count"],
)
def test_match_with_a_bad_body_is_400_naming_the_element(staff, region, body, element):
    assert element in expressions(post_match(staff, body), 400)


def test_match_with_a_body_that_is_not_json_is_400(staff, region):
    assert issues(post_match(staff, "{not json"), 400)[0]["code"] == "structure"


# --- PIXm (ITI-83) ------------------------------------------------------------------------


def pix(client, source: str, *targets: str, **kwargs):
    return client.get("/fhir/Patient/$ihe-pix", {"sourceIdentifier": source, "targetSystem": list(targets)}, **kwargs)


def targets_of(response) -> tuple[set[tuple[str, str]], list[str]]:
    assert response.status_code == 200, response.content
    body = response.json()
    Parameters.model_validate(body)
    identifiers = {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in body["parameter"]
        if p["name"] == "targetIdentifier"
    }
    ids = [p["valueReference"]["reference"] for p in body["parameter"] if p["name"] == "targetId"]
    return identifiers, ids


def test_pix_returns_both_mrns_and_the_resident_id(staff, region):
    identifiers, ids = targets_of(pix(staff, f"urn:oid:{HOSPITAL_A}|A-1001"))
    assert {
        (f"urn:oid:{HOSPITAL_A}", "A-1001"),
        (f"urn:oid:{HOSPITAL_B}", "B-2002"),
        (RESIDENT_SYSTEM, WANG_ID),
    } <= identifiers
    assert ("urn:oid:" + HOSPITAL_A, "A-1002") not in identifiers  # 李娜's number at the same hospital
    assert ids == [f"Patient/{region.wang.uuid}"]


def test_pix_target_system_restricts_the_domains(staff, region):
    # A bare OID and its urn:oid: form name the same domain.
    identifiers, ids = targets_of(pix(staff, f"{RESIDENT_SYSTEM}|{WANG_ID}", HOSPITAL_B))
    assert identifiers == {(f"urn:oid:{HOSPITAL_B}", "B-2002")}
    assert ids == [f"Patient/{region.wang.uuid}"]


@pytest.mark.parametrize(
    ("source", "targets", "status", "code", "text"),
    [
        (f"urn:oid:{HOSPITAL_A}|A-9999", (), 404, "not-found", "sourceIdentifier Patient Identifier not found"),
        ("urn:oid:1.2.3.4.5|A-1001", (), 400, "code-invalid", "sourceIdentifier Assigning Authority not found"),
        (f"urn:oid:{HOSPITAL_A}|A-1001", ("urn:oid:1.2.3.4.5",), 403, "code-invalid", "targetSystem not found"),
    ],
    ids=["unknown-identifier", "unknown-authority", "unknown-target"],
)
def test_pix_failures_follow_iti_83(staff, region, source, targets, status, code, text):
    issue = issues(pix(staff, source, *targets), status)[0]
    assert (issue["code"], issue["details"]["text"], issue["diagnostics"]) == (code, text, text)


def test_pix_needs_exactly_one_source_identifier_with_a_system(staff, region):
    assert expressions(staff.get("/fhir/Patient/$ihe-pix"), 400) == ["sourceIdentifier"]
    assert expressions(pix(staff, "A-1001"), 400) == ["sourceIdentifier"]


# --- content negotiation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ({}, None),
        ({}, "application/fhir+json"),
        ({}, "application/json"),
        ({}, "*/*"),
        ({"_format": "json"}, "text/html"),
    ],
)
def test_json_is_served_for_json_or_any_accept(staff, region, query, accept):
    headers = {"accept": accept} if accept else {}
    response = staff.get(f"/fhir/Patient/{region.li.uuid}", query, headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE


@pytest.mark.parametrize(("query", "accept"), [({}, "application/fhir+xml"), ({"_format": "xml"}, "*/*")])
def test_xml_is_406(staff, region, query, accept):
    response = staff.get(f"/fhir/Patient/{region.li.uuid}", query, headers={"accept": accept})
    assert issues(response, 406)[0]["code"] == "not-supported"


@pytest.mark.parametrize("content_type", ["application/xml", "text/plain"])
def test_match_in_another_media_type_is_415(staff, region, content_type):
    response = staff.post("/fhir/Patient/$match", "<Parameters/>", content_type=content_type)
    assert issues(response, 415)[0]["code"] == "not-supported"


def test_unknown_endpoint_is_a_404_outcome(staff, region):
    assert issues(staff.get("/fhir/Questionnaire"), 404)[0]["code"] == "not-supported"


# --- authentication and attribution ------------------------------------------------------


def test_without_credentials_it_is_401_with_a_challenge(client, region):
    response = client.get(f"/fhir/Patient/{region.li.uuid}")
    assert issues(response, 401)[0]["code"] == "login"
    # OAuth2 is the way in (Basic is the legacy path): the challenge names Bearer.
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_session_of_a_user_who_is_not_staff_is_401(client, region, django_user_model):
    client.force_login(django_user_model.objects.create_user("patient"))
    assert issues(client.get(f"/fhir/Patient/{region.li.uuid}"), 401)[0]["code"] == "login"


def test_source_system_basic_credentials_are_accepted_and_a_wrong_secret_is_not(region, feed):
    good = Client(headers=basic(feed.source.client_id, feed.secret))
    assert good.get(f"/fhir/Patient/{region.li.uuid}").status_code == 200
    bad = Client(headers=basic(feed.source.client_id, feed.secret + "x"))
    assert issues(bad.get(f"/fhir/Patient/{region.li.uuid}"), 401)[0]["code"] == "login"


def test_a_cached_credential_check_still_sees_rotation_and_deactivation(region, feed):
    url = f"/fhir/Patient/{region.li.uuid}"
    client = Client(headers=basic(feed.source.client_id, feed.secret))
    assert client.get(url).status_code == 200
    # The hash no longer verifies anything, but the successful check is remembered (no slow hasher again)...
    SourceSystem.objects.filter(pk=feed.source.pk).update(secret_hash="!")
    assert client.get(url).status_code == 200
    # ...while a rotation takes effect at once,
    new_secret = source_system_rotate_secret(source_system=SourceSystem.objects.get(pk=feed.source.pk))
    assert client.get(url).status_code == 401
    rotated = Client(headers=basic(feed.source.client_id, new_secret))
    assert rotated.get(url).status_code == 200
    # and so does a deactivation.
    SourceSystem.objects.filter(pk=feed.source.pk).update(active=False)
    assert rotated.get(url).status_code == 401


def test_access_log_attributes_each_request_and_holds_no_identifier(region, feed, caplog):
    client = Client(headers=basic(feed.source.client_id, feed.secret))
    with caplog.at_level(logging.INFO, logger="healthplatform.access"):
        client.get("/fhir/Patient", {"identifier": f"{RESIDENT_SYSTEM}|{WANG_ID}", "family": "王"})
        client.get("/fhir/Patient/$ihe-pix", {"sourceIdentifier": f"urn:oid:{HOSPITAL_A}|A-1001"})
        post_match(client, match_body({"name": [{"text": "王小明"}], "birthDate": "1985-03-12"}))
        Client().get("/fhir/Patient", {"identifier": WANG_ID})

    records = [r for r in caplog.records if r.name == "healthplatform.access"]
    assert len(records) == 4
    lines = [r.getMessage() for r in records]
    assert f"client={feed.source.client_id} method=GET path=/fhir/Patient status=200" in lines[0]
    # The resident read is named by their golden Patient id (and counted), nothing else of them.
    assert lines[0].endswith(f"resources=1 persons=1 read={region.wang.uuid}")
    assert "path=/fhir/Patient/$ihe-pix status=200" in lines[1]
    assert "method=POST path=/fhir/Patient/$match status=200" in lines[2]
    assert "client=- method=GET path=/fhir/Patient status=401" in lines[3]
    for line in lines:
        for secret in (WANG_ID, "A-1001", "B-2002", "王", "1985-03-12", feed.secret):
            assert secret not in line


def test_openapi_schema_still_generates_and_lists_the_fhir_operations(admin_client_zh):
    response = admin_client_zh.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/fhir/Patient", "/fhir/Patient/{id}", "/fhir/Patient/$match", "/fhir/Patient/$ihe-pix"} <= set(paths)
