"""The registry as an mCSD directory through HTTP: Organization, Practitioner and Location read, search,
paging, and writes by a hospital's own feed (HTTP Basic) and by staff (session)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class

from healthplatform.fhirapi.resources.directory import (
    NAME_REPRESENTATION_EXTENSION,
    PRACTITIONER_ORGANIZATION_EXTENSION,
)
from registry.codes import (
    DEPARTMENT_CODE_SYSTEM,
    INSTITUTION_CODE_SYSTEM,
    INSTITUTION_KIND_SYSTEM,
    INSTITUTION_LEVEL_SYSTEM,
    INSTITUTION_LICENCE_SYSTEM,
    PRACTITIONER_LICENCE_SYSTEM,
    PRACTITIONER_ROLE_SYSTEM,
)
from registry.models import Department, Institution, Practitioner
from tests.fhirapi.client import CONTENT_TYPE, FHIR_JSON, expressions, ids, issues, register_feed, searchset
from tests.registry.factories import (
    TODAY,
    DepartmentFactory,
    InstitutionFactory,
    PractitionerFactory,
    credit_code,
)


@pytest.fixture
def region(db):
    """Two hospitals: ours (with a feed) and another; departments and practitioners at each."""
    ours = InstitutionFactory(
        name="五山人民医院", level=Institution.Level.TERTIARY, address="五山路1号", phone="020-87654321"
    )
    other = InstitutionFactory(name="天河社区卫生服务中心", kind=Institution.Kind.CLINIC, level="community")
    closed = InstitutionFactory(name="旧城医院", active=False)
    medicine = DepartmentFactory(institution=ours, code="03", name="内科")
    surgery = DepartmentFactory(institution=ours, code="04.01", name="普通外科")
    general = DepartmentFactory(institution=other, code="02", name="全科医疗科", active=False)
    zhang = PractitionerFactory(
        institution=ours, department=medicine, name="张伟", name_pinyin="Zhang Wei", licence_number="110440000000001"
    )
    li = PractitionerFactory(
        institution=ours,
        name="李娜",
        name_pinyin="Li Na",
        role=Practitioner.Role.NURSE,
        licence_number="202400000001",
        valid_until=TODAY + dt.timedelta(days=700),
    )
    wang = PractitionerFactory(institution=other, name="王芳", name_pinyin="Wang Fang", active=False)
    return SimpleNamespace(
        ours=ours,
        other=other,
        closed=closed,
        medicine=medicine,
        surgery=surgery,
        general=general,
        zhang=zhang,
        li=li,
        wang=wang,
    )


@pytest.fixture
def hospital(region):
    """The HTTP client of our hospital's HIS feed (HTTP Basic)."""
    return register_feed(institution=region.ours, facility="WUSHAN").client


@pytest.fixture
def staff(client, django_user_model, region):
    """A logged-in staff user's session."""
    client.force_login(django_user_model.objects.create_user("clerk", is_staff=True))
    return client


# --- what every answer must be ---------------------------------------------------------


def resource(response, status: int = 200) -> dict:
    """The body of a successful answer: FHIR JSON, a valid R4 resource."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def post(client, path: str, body: dict, **headers):
    return client.post(path, body, content_type=FHIR_JSON, headers=headers)


def put(client, path: str, body: dict, **headers):
    return client.put(path, body, content_type=FHIR_JSON, headers=headers)


def new_practitioner(licence: str = "110440000000099", **extra) -> dict:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": PRACTITIONER_LICENCE_SYSTEM, "value": licence}],
        "name": [
            {"text": "陈静"},
            {"extension": [{"url": NAME_REPRESENTATION_EXTENSION, "valueCode": "ABC"}], "text": "Chen Jing"},
        ],
        "qualification": [
            {
                "code": {"coding": [{"system": PRACTITIONER_ROLE_SYSTEM, "code": "physician"}]},
                "period": {"start": TODAY.isoformat()},
            }
        ],
        **extra,
    }


# --- read ------------------------------------------------------------------------------


def test_organization_read_is_an_mcsd_facility_with_code_licence_type_address_and_version(staff, region):
    response = staff.get(f"/fhir/Organization/{region.ours.code}")
    org = resource(response)

    assert org["id"] == region.ours.code
    assert {"system": INSTITUTION_CODE_SYSTEM, "value": region.ours.code, "use": "official"} in org["identifier"]
    licence = next(i for i in org["identifier"] if i["system"] == INSTITUTION_LICENCE_SYSTEM)
    assert licence["value"] == region.ours.licence_number
    assert licence["period"] == {
        "start": region.ours.licence_valid_from.isoformat(),
        "end": region.ours.licence_valid_until.isoformat(),
    }
    codings = {(c["system"], c["code"]) for t in org["type"] for c in t["coding"]}
    assert {(INSTITUTION_KIND_SYSTEM, "hospital"), (INSTITUTION_LEVEL_SYSTEM, "tertiary")} <= codings
    assert org["name"] == "五山人民医院"
    assert org["address"][0]["text"] == "五山路1号"
    assert org["address"][0]["district"] == "五山街道"
    assert org["telecom"] == [{"system": "phone", "value": "020-87654321", "use": "work"}]
    assert org["active"] is True
    assert response["ETag"] == f'W/"{org["meta"]["versionId"]}"'
    assert response["Last-Modified"].endswith("GMT")


def test_location_read_serves_the_site_and_each_department_within_it(staff, region):
    site = resource(staff.get(f"/fhir/Location/{region.ours.code}"))
    department = resource(staff.get(f"/fhir/Location/{region.ours.code}-04.01"))

    assert site["managingOrganization"] == {"reference": f"Organization/{region.ours.code}"}
    assert site["physicalType"]["coding"][0]["code"] == "si"
    assert department["id"] == f"{region.ours.code}-04.01"
    assert department["identifier"] == [{"use": "official", "system": DEPARTMENT_CODE_SYSTEM, "value": "04.01"}]
    assert department["name"] == "普通外科"
    assert department["status"] == "active"
    assert department["managingOrganization"] == {"reference": f"Organization/{region.ours.code}"}
    assert department["partOf"] == {"reference": f"Location/{region.ours.code}"}
    assert resource(staff.get(f"/fhir/Location/{region.other.code}-02"))["status"] == "inactive"


def test_practitioner_read_has_licence_both_names_institution_and_qualification_period(hospital, region):
    response = hospital.get(f"/fhir/Practitioner/{region.li.pk}")
    practitioner = resource(response)

    assert practitioner["identifier"] == [
        {"use": "official", "system": PRACTITIONER_LICENCE_SYSTEM, "value": "202400000001"}
    ]
    assert [n["text"] for n in practitioner["name"]] == ["李娜", "Li Na"]
    assert practitioner["name"][1]["extension"][0]["valueCode"] == "ABC"
    assert practitioner["active"] is True
    qualification = practitioner["qualification"][0]
    assert qualification["code"]["coding"][0] == {
        "system": PRACTITIONER_ROLE_SYSTEM,
        "code": "nurse",
        "display": "护士",
    }
    assert qualification["period"] == {
        "start": region.li.valid_from.isoformat(),
        "end": region.li.valid_until.isoformat(),
    }
    assert practitioner["extension"][0] == {
        "url": PRACTITIONER_ORGANIZATION_EXTENSION,
        "valueReference": {"reference": f"Organization/{region.ours.code}"},
    }
    assert response["ETag"] == f'W/"{practitioner["meta"]["versionId"]}"'


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Organization/NO-SUCH-CODE",
        "/fhir/Practitioner/999999",
        "/fhir/Practitioner/not-a-number",
        "/fhir/Location/NOSUCHCODE",
        "/fhir/Location/NOSUCHCODE-03",
    ],
)
def test_an_unknown_id_is_404_not_found(staff, path):
    assert issues(staff.get(path), 404)[0]["code"] == "not-found"


def test_reading_needs_credentials(region):
    assert issues(Client().get(f"/fhir/Organization/{region.ours.code}"), 401)[0]["code"] == "login"


# --- search ----------------------------------------------------------------------------


def test_organization_search_by_each_parameter(hospital, region):
    ours, other, closed = region.ours.code, region.other.code, region.closed.code

    assert ids(hospital.get("/fhir/Organization", {"identifier": f"{INSTITUTION_CODE_SYSTEM}|{ours}"})) == [ours]
    assert ids(hospital.get("/fhir/Organization", {"identifier": other})) == [other]
    licence = f"{INSTITUTION_LICENCE_SYSTEM}|{region.other.licence_number}"
    assert ids(hospital.get("/fhir/Organization", {"identifier": licence})) == [other]
    assert ids(hospital.get("/fhir/Organization", {"identifier": f"urn:other|{ours}"})) == []
    assert ids(hospital.get("/fhir/Organization", {"name": "五山"})) == [ours]
    assert ids(hospital.get("/fhir/Organization", {"name": "人民"})) == []
    assert ids(hospital.get("/fhir/Organization", {"name:contains": "人民"})) == [ours]
    assert ids(hospital.get("/fhir/Organization", {"active": "false"})) == [closed]
    assert sorted(ids(hospital.get("/fhir/Organization", {"active": "true"}))) == sorted([ours, other])
    assert ids(hospital.get("/fhir/Organization", {"type": f"{INSTITUTION_KIND_SYSTEM}|clinic"})) == [other]
    assert ids(hospital.get("/fhir/Organization", {"type": "tertiary"})) == [ours]
    assert len(ids(hospital.get("/fhir/Organization", {"type": "prov"}))) == 3


def test_practitioner_search_by_each_parameter(staff, region):
    zhang, li, wang = str(region.zhang.pk), str(region.li.pk), str(region.wang.pk)

    assert ids(staff.get("/fhir/Practitioner", {"identifier": f"{PRACTITIONER_LICENCE_SYSTEM}|202400000001"})) == [li]
    assert ids(staff.get("/fhir/Practitioner", {"identifier": "110440000000001"})) == [zhang]
    assert ids(staff.get("/fhir/Practitioner", {"name": "张"})) == [zhang]
    assert ids(staff.get("/fhir/Practitioner", {"name": "fang"})) == [wang]  # a word of the pinyin
    assert ids(staff.get("/fhir/Practitioner", {"active": "false"})) == [wang]
    assert ids(staff.get("/fhir/Practitioner", {"organization": f"Organization/{region.other.code}"})) == [wang]
    assert sorted(ids(staff.get("/fhir/Practitioner", {"organization": region.ours.code}))) == sorted([zhang, li])


def test_location_search_by_each_parameter(staff, region):
    ours = region.ours.code

    assert ids(staff.get("/fhir/Location", {"identifier": f"{DEPARTMENT_CODE_SYSTEM}|03"})) == [f"{ours}-03"]
    assert ids(staff.get("/fhir/Location", {"identifier": f"{INSTITUTION_CODE_SYSTEM}|{ours}"})) == [ours]
    assert ids(staff.get("/fhir/Location", {"name": "普通外科"})) == [f"{ours}-04.01"]
    assert ids(staff.get("/fhir/Location", {"organization": f"Organization/{ours}"})) == [
        ours,
        f"{ours}-03",
        f"{ours}-04.01",
    ]
    assert ids(staff.get("/fhir/Location", {"status": "inactive"})) == sorted(
        [region.closed.code, f"{region.other.code}-02"]
    )
    assert ids(staff.get("/fhir/Location", {"status": "suspended"})) == []


def test_summary_count_answers_the_total_without_entries(staff, region):
    body = searchset(staff.get("/fhir/Location", {"organization": region.ours.code, "_summary": "count"}))
    assert body["total"] == 3
    assert "entry" not in body
    assert searchset(staff.get("/fhir/Practitioner", {"_count": "0"}))["total"] == 3


def test_unknown_parameters_are_refused_unless_lenient_handling_is_asked(staff, region):
    assert expressions(staff.get("/fhir/Organization", {"name": "五山", "colour": "blue"}), 400) == ["colour"]

    response = staff.get(
        "/fhir/Organization", {"name": "五山", "colour": "blue"}, headers={"Prefer": "handling=lenient"}
    )
    assert ids(response) == [region.ours.code]
    assert "colour" not in response.json()["link"][0]["url"]


def test_an_invalid_search_value_is_400_naming_the_parameter(staff, region):
    assert expressions(staff.get("/fhir/Organization", {"active": "maybe"}), 400) == ["active"]
    assert expressions(staff.get("/fhir/Location", {"status": "closed"}), 400) == ["status"]


def _walk(client, path: str, params: dict) -> tuple[list[str], int]:
    """Every id of a search, following next links; and how many pages it took."""
    seen, pages, response = [], 0, client.get(path, params)
    while True:
        body = searchset(response)
        pages += 1
        seen += [entry["resource"]["id"] for entry in body.get("entry", [])]
        following = [link["url"] for link in body["link"] if link["relation"] == "next"]
        if not following:
            return seen, pages
        assert "_cursor=" in following[0]
        parts = urlsplit(following[0])
        response = client.get(f"{parts.path}?{parts.query}")


@pytest.mark.parametrize("resource_type", ["Organization", "Practitioner", "Location"])
def test_paging_walks_every_row_exactly_once(staff, region, resource_type):
    for n in range(4):
        institution = InstitutionFactory()
        DepartmentFactory(institution=institution, code=f"0{n + 1}")
        PractitionerFactory(institution=institution)
    expected = {
        "Organization": {i.code for i in Institution.objects.all()},
        "Practitioner": {str(p.pk) for p in Practitioner.objects.all()},
        "Location": {i.code for i in Institution.objects.all()}
        | {f"{d.institution.code}-{d.code}" for d in Department.objects.select_related("institution")},
    }[resource_type]

    seen, pages = _walk(staff, f"/fhir/{resource_type}", {"_count": "2"})

    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert pages == -(-len(expected) // 2)


def test_a_page_of_practitioners_costs_a_fixed_number_of_queries(staff, region, django_assert_max_num_queries):
    for _ in range(10):
        PractitionerFactory(institution=region.ours, department=region.surgery)
    staff.get("/fhir/Practitioner", {"_count": "1"})  # the session and user are loaded once cached
    with django_assert_max_num_queries(4):
        assert len(ids(staff.get("/fhir/Practitioner", {"_count": "20"}))) == 13


# --- writes by the hospital's own feed ------------------------------------------------------


def _org_body(client, code: str) -> tuple[dict, str]:
    response = client.get(f"/fhir/Organization/{code}")
    return resource(response), response["ETag"]


def test_a_feed_updates_its_own_institution_and_the_version_moves(hospital, region):
    org, etag = _org_body(hospital, region.ours.code)
    org["name"] = "五山人民医院（总院）"
    org["telecom"] = [{"system": "phone", "value": "020-11112222"}]

    response = put(hospital, f"/fhir/Organization/{region.ours.code}", org, **{"If-Match": etag})

    updated = resource(response)
    assert updated["name"] == "五山人民医院（总院）"
    assert updated["meta"]["versionId"] != org["meta"]["versionId"]
    assert response["ETag"] == f'W/"{updated["meta"]["versionId"]}"'
    region.ours.refresh_from_db()
    assert (region.ours.name, region.ours.phone) == ("五山人民医院（总院）", "020-11112222")


def test_an_update_with_a_stale_version_is_412_and_changes_nothing(hospital, region):
    org, etag = _org_body(hospital, region.ours.code)
    org["name"] = "第一次修改"
    resource(put(hospital, f"/fhir/Organization/{region.ours.code}", org, **{"If-Match": etag}))
    org["name"] = "第二次修改"

    response = put(hospital, f"/fhir/Organization/{region.ours.code}", org, **{"If-Match": etag})

    assert issues(response, 412)[0]["code"] == "conflict"
    region.ours.refresh_from_db()
    assert region.ours.name == "第一次修改"


def test_a_feed_cannot_update_another_institution_or_its_practitioners(hospital, staff, region):
    org, _ = _org_body(staff, region.other.code)
    org["name"] = "改名"
    assert issues(put(hospital, f"/fhir/Organization/{region.other.code}", org), 403)[0]["code"] == "forbidden"

    practitioner = resource(staff.get(f"/fhir/Practitioner/{region.wang.pk}"))
    practitioner["active"] = True
    assert issues(put(hospital, f"/fhir/Practitioner/{region.wang.pk}", practitioner), 403)[0]["code"] == "forbidden"
    region.other.refresh_from_db()
    region.wang.refresh_from_db()
    assert (region.other.name, region.wang.active) == ("天河社区卫生服务中心", False)


def test_a_feed_cannot_register_a_practitioner_or_department_at_another_institution(hospital, region):
    elsewhere = {"reference": f"Organization/{region.other.code}"}
    body = new_practitioner(extension=[{"url": PRACTITIONER_ORGANIZATION_EXTENSION, "valueReference": elsewhere}])
    assert issues(post(hospital, "/fhir/Practitioner", body), 403)[0]["code"] == "forbidden"

    department = {
        "resourceType": "Location",
        "identifier": [{"system": DEPARTMENT_CODE_SYSTEM, "value": "07"}],
        "name": "儿科",
        "managingOrganization": elsewhere,
    }
    assert issues(post(hospital, "/fhir/Location", department), 403)[0]["code"] == "forbidden"
    assert not Practitioner.objects.filter(licence_number="110440000000099").exists()
    assert not Department.objects.filter(code="07").exists()


def test_a_feed_registers_a_practitioner_at_its_own_institution(hospital, region):
    response = post(hospital, "/fhir/Practitioner", new_practitioner())

    created = resource(response, 201)
    assert response["Location"].endswith(f"/fhir/Practitioner/{created['id']}/_history/{created['meta']['versionId']}")
    practitioner = Practitioner.objects.get(pk=created["id"])
    assert (practitioner.institution, practitioner.name, practitioner.name_pinyin) == (region.ours, "陈静", "Chen Jing")
    assert resource(hospital.get(f"/fhir/Practitioner/{created['id']}")) == created
    assert resource(hospital.get(urlsplit(response["Location"]).path)) == created  # vread of that version
    assert issues(hospital.get(f"/fhir/Practitioner/{created['id']}/_history/1"), 404)[0]["code"] == "not-found"


def test_a_feed_adds_a_department_and_a_conditional_create_finds_it_again(hospital, region):
    department = {
        "resourceType": "Location",
        "identifier": [{"system": DEPARTMENT_CODE_SYSTEM, "value": "07"}],
        "name": "儿科",
        "status": "active",
    }
    created = resource(post(hospital, "/fhir/Location", department), 201)
    assert created["id"] == f"{region.ours.code}-07"

    again = post(hospital, "/fhir/Location", department, **{"If-None-Exist": f"identifier={DEPARTMENT_CODE_SYSTEM}|07"})

    assert resource(again, 200)["id"] == created["id"]
    assert Department.objects.filter(institution=region.ours, code="07").count() == 1


def test_a_feed_renames_its_department(hospital, region):
    path = f"/fhir/Location/{region.ours.code}-03"
    response = hospital.get(path)
    location = resource(response)
    location["name"] = "大内科"
    location["status"] = "inactive"

    updated = resource(put(hospital, path, location, **{"If-Match": response["ETag"]}))

    assert (updated["name"], updated["status"]) == ("大内科", "inactive")
    region.medicine.refresh_from_db()
    assert (region.medicine.name, region.medicine.active) == ("大内科", False)


def test_a_site_location_is_written_through_its_organization(hospital, region):
    site = resource(hospital.get(f"/fhir/Location/{region.ours.code}"))
    assert issues(put(hospital, f"/fhir/Location/{region.ours.code}", site), 405)[0]["code"] == "not-supported"


def test_a_feed_cannot_register_an_institution_or_deactivate_its_own(hospital, staff, region):
    org, _ = _org_body(staff, region.ours.code)
    assert issues(post(hospital, "/fhir/Organization", {**org, "id": None}), 403)[0]["code"] == "forbidden"
    org["active"] = False
    assert issues(put(hospital, f"/fhir/Organization/{region.ours.code}", org), 403)[0]["code"] == "forbidden"


# --- writes by staff ------------------------------------------------------------------


def _new_organization(code: str) -> dict:
    return {
        "resourceType": "Organization",
        "identifier": [
            {"system": INSTITUTION_CODE_SYSTEM, "value": code},
            {
                "system": INSTITUTION_LICENCE_SYSTEM,
                "value": f"{code[8:17]}44010611A1000",
                "period": {"start": (TODAY - dt.timedelta(days=10)).isoformat(), "end": "2030-12-31"},
            },
        ],
        "type": [
            {"coding": [{"system": INSTITUTION_KIND_SYSTEM, "code": "hospital"}]},
            {"coding": [{"system": INSTITUTION_LEVEL_SYSTEM, "code": "secondary"}]},
        ],
        "name": "珠江新城医院",
        "address": [{"text": "珠江西路5号", "district": "冼村街道"}],
    }


def test_staff_register_an_institution_and_a_practitioner_at_any_institution(staff, region):
    code = credit_code(9001)
    created = resource(post(staff, "/fhir/Organization", _new_organization(code)), 201)

    assert created["id"] == code
    institution = Institution.objects.get(code=code)
    assert (institution.division_code, institution.district, institution.address) == (
        "440106",
        "冼村街道",
        "珠江西路5号",
    )

    at_new = {"reference": f"Organization/{code}"}
    body = new_practitioner(extension=[{"url": PRACTITIONER_ORGANIZATION_EXTENSION, "valueReference": at_new}])
    practitioner = resource(post(staff, "/fhir/Practitioner", body), 201)
    assert Practitioner.objects.get(pk=practitioner["id"]).institution == institution


def test_registering_an_existing_institution_again_is_409(staff, region):
    body = _new_organization(region.other.code)
    body["identifier"][1]["value"] = region.other.licence_number
    assert issues(post(staff, "/fhir/Organization", body), 409)[0]["code"] == "duplicate"


def test_staff_update_another_institutions_practitioner(staff, region):
    practitioner = resource(staff.get(f"/fhir/Practitioner/{region.wang.pk}"))
    practitioner["active"] = True

    assert resource(put(staff, f"/fhir/Practitioner/{region.wang.pk}", practitioner))["active"] is True
    region.wang.refresh_from_db()
    assert region.wang.active is True


# --- invalid resources ---------------------------------------------------------------


def test_an_institution_code_with_a_wrong_check_character_is_400_naming_the_element(staff, region):
    code = credit_code(9002)
    body = _new_organization(code[:-1] + ("0" if code[-1] != "0" else "1"))
    body["identifier"][1]["value"] = f"{code[8:17]}44010611A1000"

    assert "Organization.identifier[0].value" in expressions(post(staff, "/fhir/Organization", body), 400)
    assert not Institution.objects.filter(name="珠江新城医院").exists()


def test_a_resource_fhir_rejects_is_400_naming_the_element(staff, region):
    body = {**_new_organization(credit_code(9003)), "active": "maybe"}
    assert expressions(post(staff, "/fhir/Organization", body), 400) == ["Organization.active"]


def test_a_licence_number_of_the_wrong_format_is_400_naming_the_identifier(hospital, region):
    body = new_practitioner(licence="12345")
    assert expressions(post(hospital, "/fhir/Practitioner", body), 400) == ["Practitioner.identifier[0].value"]


def test_a_practitioner_without_a_role_is_400_naming_the_qualification(hospital, region):
    body = new_practitioner()
    del body["qualification"]
    assert expressions(post(hospital, "/fhir/Practitioner", body), 400) == ["Practitioner.qualification"]


def test_the_wrong_resource_type_or_an_id_other_than_the_urls_is_400(hospital, region):
    org, _ = _org_body(hospital, region.ours.code)
    assert expressions(post(hospital, "/fhir/Practitioner", org), 400) == ["Practitioner.resourceType"]
    org["id"] = region.other.code
    assert expressions(put(hospital, f"/fhir/Organization/{region.ours.code}", org), 400) == ["Organization.id"]


def test_the_openapi_schema_lists_the_directory_endpoints(admin_client_zh):
    response = admin_client_zh.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for resource_type in ("Organization", "Practitioner", "Location"):
        assert {f"/fhir/{resource_type}", f"/fhir/{resource_type}/{{id}}"} <= set(paths)
        assert {"get", "post"} <= set(paths[f"/fhir/{resource_type}"])
        assert {"get", "put"} <= set(paths[f"/fhir/{resource_type}/{{id}}"])


def test_a_conditional_practitioner_reference_follows_the_registry_as_it_changes(hospital, region):
    """Directory references are remembered per process for speed, but never a miss, and a registry change
    made here is seen at once."""
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:platform:authority:WUSHAN", "value": "MRN-9"}],
        "name": [{"text": "赵敏"}],
        "gender": "female",
        "birthDate": "1990-01-02",
    }
    patient_id = resource(post(hospital, "/fhir/Patient", patient), 201)["id"]
    licence = "330000000000777"

    def encounter():
        return {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient_id}"},
            "participant": [
                {"individual": {"reference": f"Practitioner?identifier={PRACTITIONER_LICENCE_SYSTEM}|{licence}"}}
            ],
        }

    def participant(response) -> str:
        return resource(response, 201)["participant"][0]["individual"]["reference"]

    assert issues(post(hospital, "/fhir/Encounter", encounter()), 422)[0]["code"] == "not-found"
    first = PractitionerFactory(institution=region.ours, licence_number=licence)
    assert participant(post(hospital, "/fhir/Encounter", encounter())) == f"Practitioner/{first.pk}"
    first.licence_number = "330000000000778"
    first.save()
    second = PractitionerFactory(institution=region.ours, licence_number=licence)
    assert participant(post(hospital, "/fhir/Encounter", encounter())) == f"Practitioner/{second.pk}"


def test_a_source_patients_conditional_references_are_resolved_as_any_resources_are(hospital, region):
    """identifier.assigner and generalPractitioner of a source Patient name the directory like the facts do."""
    org = f"Organization?identifier={INSTITUTION_CODE_SYSTEM}|{region.ours.code}"
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:platform:authority:WUSHAN", "value": "MRN-31", "assigner": {"reference": org}}],
        "name": [{"text": "钱多"}],
        "gender": "male",
        "birthDate": "1971-05-06",
    }
    stored = resource(post(hospital, "/fhir/Patient", patient), 201)
    assert stored["identifier"][0]["assigner"]["reference"] == f"Organization/{region.ours.code}"
    read = hospital.get(f"/fhir/Patient/{stored['id']}")
    assert read.json()["identifier"][0]["assigner"]["reference"] == f"Organization/{region.ours.code}"
    nobody = {
        **patient,
        "generalPractitioner": [{"reference": f"Practitioner?identifier={PRACTITIONER_LICENCE_SYSTEM}|1"}],
    }
    assert issues(post(hospital, "/fhir/Patient", nobody), 422)[0]["code"] == "not-found"


@pytest.mark.django_db
def test_a_conditional_directory_reference_names_one_system_and_one_whole_value():
    from ehr.selectors import identifier_criteria
    from registry.selectors import organization_code_by_identifier

    # An empty value, or several (FHIR's "or"), names no single resource: left to the caller's 400.
    assert identifier_criteria(f"identifier={PRACTITIONER_LICENCE_SYSTEM}|") is None
    assert identifier_criteria(f"identifier={INSTITUTION_CODE_SYSTEM}|") is None
    assert identifier_criteria(f"identifier={INSTITUTION_CODE_SYSTEM}|a,b") is None
    assert identifier_criteria("identifier=|12440106") is None
    assert organization_code_by_identifier("", "12440106") is None
