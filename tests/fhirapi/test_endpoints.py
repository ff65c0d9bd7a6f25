"""One set of tests for every resource type the FHIR API serves (NetBox's generic API tests): read, vread,
history, search, bad input on create and authorisation.

Each type is declared once in ``ENDPOINTS``: how to get an instance of it from the ``world`` fixture (two
hospitals, tests/fhirapi/tenants.py), a search that finds that instance, the body of a create that is not
valid R4, which interactions it does not serve, with the reason, and who reads it (a source system; the audit,
staff only). A generic test skips, naming the
reason, what a type does not serve; ``test_an_interaction_a_type_does_not_serve_is_a_4xx_operation_outcome``
checks that the API says so too. A known bug of one type is declared with it (``Endpoint.bugs``) and turns
that type's case of the test into a strict xfail.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from healthplatform.alerts.models import Alert
from healthplatform.audit.models import AccessEvent
from mpi.models import Identity, uuid7
from registry.codes import DEPARTMENT_CODE_SYSTEM, INSTITUTION_CODE_SYSTEM, PRACTITIONER_LICENCE_SYSTEM
from registry.models import Practitioner
from tests.fhirapi.client import CONTENT_TYPE, FHIR_JSON, expressions, issues, searchset
from tests.fhirapi.samples import CODES, TYPES, patient_body, sample
from tests.fhirapi.tenants import document_body
from tests.ingest.test_scopes import bearer_client
from tests.registry.factories import PractitionerFactory

UNKNOWN_ID = "no-such-id-0"


@dataclass(frozen=True)
class NotServed:
    """An interaction a type does not serve, and why."""

    reason: str


@dataclass(frozen=True)
class ServedElsewhere(NotServed):
    """An interaction of the type that another declaration of it serves (the reason names which)."""


@dataclass(frozen=True)
class Endpoint:
    """What the FHIR API serves of one resource type, declared once for every generic test."""

    name: str  # the test id: the type, or "Patient-source" / "Patient-golden"
    resource_type: str
    instance: Callable[[SimpleNamespace], str]  # world -> the id of an instance
    search: Callable[[SimpleNamespace, str], str] | NotServed  # (world, id) -> "Type?query" that finds the id
    create: Callable[[SimpleNamespace], tuple[dict, str]] | NotServed  # world -> (invalid body, element it names)
    history: bool | NotServed = True
    vread: bool | NotServed = True
    versioned: bool = True  # the read carries meta.versionId and the ETag W/"<versionId>"
    reader: Callable[[SimpleNamespace], Client] = lambda world: world.a.client  # who reads and searches it
    sources_read: bool | NotServed = True  # a source system with the type's read scope reads it
    bugs: dict[str, str] = field(default_factory=dict)  # test function -> the known bug that makes it fail

    def served(self, interaction: str):
        """The declaration of an interaction; skips the test, naming the reason, when it is not served."""
        value = getattr(self, interaction)
        if isinstance(value, NotServed):
            pytest.skip(f"{self.name} {interaction}: {value.reason}")
        return value


# --- how each type gets its instance, its search and its bad create ---------------------------------------


def _clinical(resource_type: str) -> Endpoint:
    param, token = CODES[resource_type]

    def bad_create(world) -> tuple[dict, str]:
        body = sample(resource_type, f"Patient/{world.a.patient_id}", 90, hospital=world.a.hospital)
        body["identifier"][0]["period"] = {"start": "not a date"}
        return body, f"{resource_type}.identifier[0].period"

    return Endpoint(
        name=resource_type,
        resource_type=resource_type,
        instance=lambda world: world.a.ids[resource_type],
        search=lambda world, _: f"{resource_type}?patient={world.a.patient_id}&{param}={token}",
        create=bad_create,
    )


def _list_body(world, n: int = 1) -> dict:
    """A List of hospital A's Observation (what an MHD SubmissionSet is); samples.py has none."""
    return {
        "resourceType": "List",
        "identifier": [{"system": f"urn:{world.a.hospital}:list", "value": f"LIS-{n}"}],
        "status": "current",
        "mode": "working",
        "subject": {"reference": f"Patient/{world.a.patient_id}"},
        "date": "2024-05-03",
        "entry": [{"item": {"reference": f"Observation/{world.a.ids['Observation']}"}}],
    }


def _list_instance(world) -> str:
    response = world.a.client.post("/fhir/List", _list_body(world), content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _bad_list(world) -> tuple[dict, str]:
    body = _list_body(world, 90)
    body["date"] = "not a date"
    return body, "List.date"


def _golden_id(world) -> str:
    return str(Identity.objects.select_related("person").get(uuid=world.a.patient_id).person.uuid)


def _mrn_query(world, _) -> str:
    system, value = world.a.identifiers["Patient"]
    return f"Patient?identifier={system}|{value}"


def _bad_patient(world) -> tuple[dict, str]:
    system, _ = world.a.identifiers["Patient"]
    return patient_body(f"{world.a.authority}-90", system=system, birthDate="not a date"), "Patient.birthDate"


def _bad_document(world) -> tuple[dict, str]:
    body = document_body(f"Patient/{world.a.patient_id}", hospital=world.a.hospital, value="DOC-90")
    body["status"] = 42  # a code is a string
    return body, "DocumentReference.status"


def _practitioner(world) -> str:
    return str(PractitionerFactory(institution=world.a.source.institution).pk)


def _practitioner_query(_, practitioner_id: str) -> str:
    licence = Practitioner.objects.get(pk=practitioner_id).licence_number
    return f"Practitioner?identifier={PRACTITIONER_LICENCE_SYSTEM}|{licence}"


def _institution_code(world) -> str:
    return world.a.source.institution.code


def _staff(world) -> Client:
    """A staff session (the audit's only readers through the API), one per world."""
    if not hasattr(world, "staff"):
        world.staff = Client()
        world.staff.force_login(get_user_model().objects.create_user("auditor", is_staff=True))
    return world.staff


def _access_event(world) -> str:
    """The access event of hospital A's read of its Observation."""
    assert fhir_get(world.a.client, f"Observation/{world.a.ids['Observation']}").status_code == 200
    return str(AccessEvent.objects.latest("pk").pk)


def _alert(world) -> str:
    """An alert raised on hospital A's ServiceRequest, resting on its Observation: a row as the alert rules keep it
    (tests/alerts/test_detectedissue.py raises real ones through a feed's orders)."""
    order, observation = world.a.ids["ServiceRequest"], world.a.ids["Observation"]
    alert, _ = Alert.objects.get_or_create(
        key="0" * 31 + "1",
        defaults={
            "uuid": uuid7(),
            "person": Identity.objects.get(uuid=world.a.patient_id).person,
            "kind": "duplicate-test",
            "severity": "warning",
            "summary": "重复检查：血常规 2 天前已在本院完成",
            "order": f"ServiceRequest/{order}",
            "institution": world.a.source.institution,
            "evidence": [{"reference": f"Observation/{observation}", "resourceType": "Observation", "display": "CBC"}],
        },
    )
    return str(alert.uuid)


DIRECTORY_HISTORY = NotServed("the registry keeps only the current version (vread serves that one)")
ENDPOINTS: list[Endpoint] = [
    *(_clinical(t) for t in TYPES),
    Endpoint(
        name="List",
        resource_type="List",
        instance=_list_instance,
        search=lambda world, _: f"List?patient={world.a.patient_id}&item=Observation/{world.a.ids['Observation']}",
        create=_bad_list,
    ),
    Endpoint(
        name="Patient-source",
        resource_type="Patient",
        instance=lambda world: world.a.patient_id,
        search=ServedElsewhere("a Patient search (PDQm ITI-78) answers golden Patients: see Patient-golden"),
        create=_bad_patient,
    ),
    Endpoint(
        name="Patient-golden",
        resource_type="Patient",
        instance=_golden_id,
        search=_mrn_query,
        create=ServedElsewhere("POST Patient registers a source Patient: see Patient-source"),
        history=NotServed("the golden Patient is the MPI's person, not an archived resource: it has no versions"),
        vread=NotServed("the golden Patient has no versions"),
        versioned=False,
    ),
    Endpoint(
        name="DocumentReference",
        resource_type="DocumentReference",
        instance=lambda world: world.a.document_id,
        search=lambda world, _: f"DocumentReference?patient={world.a.patient_id}&status=current",
        create=_bad_document,
    ),
    Endpoint(
        name="Binary",
        resource_type="Binary",
        instance=lambda world: world.a.document_id,
        search=NotServed("Binary is read by id only (MHD ITI-68); documents are found as DocumentReference"),
        create=NotServed("a Binary is stored with its DocumentReference (ITI-65 transaction), never on its own"),
        history=NotServed("a Binary is the content of a DocumentReference, whose history it has"),
        vread=NotServed("a Binary is the content of a DocumentReference, whose versions it has"),
        versioned=False,
    ),
    Endpoint(
        name="DetectedIssue",
        resource_type="DetectedIssue",
        instance=_alert,
        search=lambda world, _: f"DetectedIssue?patient={world.a.patient_id}",
        create=NotServed("an alert is raised by the platform's rules on the orders feeds send, never written"),
        history=NotServed("an alert is kept as raised (its status changes in place): it has no versions"),
        vread=NotServed("an alert has no versions"),
        versioned=False,
        sources_read=NotServed(
            "DetectedIssue.read alone does not read an alert: it tells of the facts the rules read, whose read scopes "
            "it needs too (tests/attack/test_alerts_tenancy.py)"
        ),
    ),
    Endpoint(
        name="Organization",
        resource_type="Organization",
        instance=_institution_code,
        search=lambda _, code: f"Organization?identifier={INSTITUTION_CODE_SYSTEM}|{code}",
        create=lambda _: ({"resourceType": "Organization", "name": "新医院", "active": "maybe"}, "Organization.active"),
        history=DIRECTORY_HISTORY,
    ),
    Endpoint(
        name="Practitioner",
        resource_type="Practitioner",
        instance=_practitioner,
        search=_practitioner_query,
        create=lambda _: ({"resourceType": "Practitioner", "active": "maybe"}, "Practitioner.active"),
        history=DIRECTORY_HISTORY,
    ),
    Endpoint(
        name="Location",
        resource_type="Location",
        instance=_institution_code,  # the institution's site
        search=lambda _, code: f"Location?identifier={INSTITUTION_CODE_SYSTEM}|{code}",
        create=lambda _: (
            {
                "resourceType": "Location",
                "identifier": [{"system": DEPARTMENT_CODE_SYSTEM, "value": "07"}],
                "name": "儿科",
                "status": 5,
            },
            "Location.status",
        ),
        history=DIRECTORY_HISTORY,
    ),
    Endpoint(
        name="AuditEvent",
        resource_type="AuditEvent",
        instance=_access_event,
        search=lambda world, _: f"AuditEvent?patient={world.a.patient_id}",
        create=NotServed("the audit is written by the platform as it answers reads; nobody writes an AuditEvent"),
        history=NotServed("an access event never changes: it has no versions"),
        vread=NotServed("an access event never changes: it has no versions"),
        versioned=False,
        reader=_staff,
        sources_read=NotServed("the audit is read by the platform's staff only (tests/audit: a source system's 403)"),
    ),
]


def cases(test: str) -> list:
    """Every endpoint as a parameter of ``test``; a strict xfail for an endpoint with a known bug in it."""
    return [
        pytest.param(
            e,
            id=e.name,
            marks=[pytest.mark.xfail(strict=True, reason=e.bugs[test])] if test in e.bugs else [],
        )
        for e in ENDPOINTS
    ]


def each_endpoint(test):
    return pytest.mark.parametrize("endpoint", cases(test.__name__))(test)


# --- what every answer must be -----------------------------------------------------------------------------


def fhir_get(client: Client, url: str, **headers):
    # Binary answers FHIR JSON (the Binary resource) only when asked for it; the others always do.
    return client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON, **headers)


def resource_of(response, resource_type: str) -> dict:
    """The body of a successful read: 200, FHIR JSON, a valid R4 resource of that type."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    assert body["resourceType"] == resource_type
    get_fhir_model_class(resource_type).model_validate(body)
    return body


def not_found(response) -> None:
    """404 with a valid R4 OperationOutcome (``issues`` validates it) saying not-found or not-supported."""
    assert issues(response, 404)[0]["code"] in ("not-found", "not-supported")


def found_ids(body: dict, resource_type: str) -> list[str]:
    return [
        e["resource"]["id"]
        for e in body.get("entry", [])
        if e["resource"]["resourceType"] == resource_type and e.get("search", {}).get("mode", "match") == "match"
    ]


def self_link(body: dict) -> list[tuple[str, str]]:
    url = next(link["url"] for link in body["link"] if link["relation"] == "self")
    return parse_qsl(urlsplit(url).query)


def other_type_scope(endpoint: Endpoint) -> str:
    other = "Encounter" if endpoint.resource_type == "Observation" else "Observation"
    return f"system/{other}.read"


def read_instance(endpoint: Endpoint, world) -> tuple[str, dict]:
    """An instance's id and its current version as hospital A reads it."""
    instance = endpoint.instance(world)
    return instance, resource_of(
        fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{instance}"), endpoint.resource_type
    )


# --- read --------------------------------------------------------------------------------------------------


@each_endpoint
def test_read_is_valid_r4_fhir_json_with_the_version_as_etag(world, endpoint):
    instance = endpoint.instance(world)
    response = fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{instance}")
    body = resource_of(response, endpoint.resource_type)
    assert body["id"] == instance
    if endpoint.versioned:
        assert response["ETag"] == f'W/"{body["meta"]["versionId"]}"'


@each_endpoint
def test_read_of_an_unknown_id_is_404_operation_outcome(world, endpoint):
    not_found(fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{UNKNOWN_ID}"))


# --- vread -------------------------------------------------------------------------------------------------


@each_endpoint
def test_vread_of_the_current_version_is_that_version(world, endpoint):
    endpoint.served("vread")
    instance, read = read_instance(endpoint, world)
    version = read["meta"]["versionId"]
    response = fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{instance}/_history/{version}")
    assert resource_of(response, endpoint.resource_type) == read
    assert response["ETag"] == f'W/"{version}"'


@each_endpoint
def test_vread_of_a_version_that_does_not_exist_is_404_operation_outcome(world, endpoint):
    endpoint.served("vread")
    instance, read = read_instance(endpoint, world)
    later = int(read["meta"]["versionId"]) + 1
    not_found(fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{instance}/_history/{later}"))
    not_found(fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{UNKNOWN_ID}/_history/1"))


# --- history -----------------------------------------------------------------------------------------------


@each_endpoint
def test_history_is_a_valid_r4_history_bundle_newest_first(world, endpoint):
    endpoint.served("history")
    instance, read = read_instance(endpoint, world)
    response = fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{instance}/_history")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    Bundle.model_validate(body)
    assert body["type"] == "history"
    newest = body["entry"][0]
    assert newest["resource"] == read
    assert newest["response"]["etag"] == f'W/"{read["meta"]["versionId"]}"'
    not_found(fhir_get(endpoint.reader(world), f"{endpoint.resource_type}/{UNKNOWN_ID}/_history"))


# --- search ------------------------------------------------------------------------------------------------


def _search(endpoint: Endpoint, world) -> tuple[str, str]:
    """The instance id and the search that finds it."""
    query = endpoint.served("search")
    instance = endpoint.instance(world)
    return instance, query(world, instance)


@each_endpoint
def test_search_finds_the_instance_in_a_valid_r4_searchset(world, endpoint):
    instance, query = _search(endpoint, world)
    body = searchset(fhir_get(endpoint.reader(world), query))
    assert instance in found_ids(body, endpoint.resource_type)


@each_endpoint
def test_search_refuses_an_unknown_parameter_naming_it(world, endpoint):
    _, query = _search(endpoint, world)
    assert expressions(fhir_get(endpoint.reader(world), f"{query}&colour=red"), 400) == ["colour"]
    strict = fhir_get(endpoint.reader(world), f"{query}&colour=red", HTTP_PREFER="handling=strict")
    assert expressions(strict, 400) == ["colour"]


@each_endpoint
def test_lenient_search_ignores_an_unknown_parameter(world, endpoint):
    instance, query = _search(endpoint, world)
    body = searchset(fhir_get(endpoint.reader(world), f"{query}&colour=red", HTTP_PREFER="handling=lenient"))
    assert instance in found_ids(body, endpoint.resource_type)


@each_endpoint
def test_lenient_search_leaves_the_ignored_parameter_out_of_the_self_link(world, endpoint):
    _, query = _search(endpoint, world)
    body = searchset(fhir_get(endpoint.reader(world), f"{query}&colour=red", HTTP_PREFER="handling=lenient"))
    applied = self_link(body)
    assert "colour" not in [name for name, _ in applied]
    assert set(parse_qsl(urlsplit(query).query)) <= set(applied)


# --- bad input on create -----------------------------------------------------------------------------------


@each_endpoint
def test_create_of_a_body_that_is_not_valid_r4_is_400_naming_the_element(world, endpoint):
    body, element = endpoint.served("create")(world)
    response = world.a.client.post(f"/fhir/{endpoint.resource_type}", body, content_type=FHIR_JSON)
    named = expressions(response, 400)
    assert any(e == element or e.startswith(f"{element}.") for e in named), named


@each_endpoint
def test_create_in_another_content_type_is_415(world, endpoint):
    endpoint.served("create")
    xml = f'<{endpoint.resource_type} xmlns="http://hl7.org/fhir"/>'
    response = world.a.client.post(f"/fhir/{endpoint.resource_type}", xml, content_type="application/fhir+xml")
    assert issues(response, 415)[0]["code"] == "not-supported"


@each_endpoint
def test_create_of_a_body_that_is_not_json_is_400(world, endpoint):
    endpoint.served("create")
    response = world.a.client.post(f"/fhir/{endpoint.resource_type}", b"{not json", content_type=FHIR_JSON)
    assert issues(response, 400)


# --- authorisation -----------------------------------------------------------------------------------------


def _read_and_search_urls(endpoint: Endpoint, world) -> list[str]:
    instance = endpoint.instance(world)
    urls = [f"{endpoint.resource_type}/{instance}"]
    if not isinstance(endpoint.search, NotServed):
        urls.append(endpoint.search(world, instance))
    return urls


@each_endpoint
def test_without_credentials_read_and_search_are_401_with_a_challenge(world, endpoint):
    for url in _read_and_search_urls(endpoint, world):
        response = fhir_get(Client(), url)
        assert issues(response, 401)[0]["code"] == "login", url
        assert response["WWW-Authenticate"].startswith("Bearer"), url


@each_endpoint
def test_a_token_without_a_scope_for_the_type_is_403_on_read_and_search(world, endpoint):
    client = bearer_client(world.a.feed, other_type_scope(endpoint))
    for url in _read_and_search_urls(endpoint, world):
        found = issues(fhir_get(client, url), 403)
        assert found[0]["code"] == "forbidden", url
        assert f"system/{endpoint.resource_type}.read" in found[0]["diagnostics"], url


@each_endpoint
def test_a_token_with_the_types_read_scope_reads_and_searches(world, endpoint):
    endpoint.served("sources_read")
    client = bearer_client(world.a.feed, f"system/{endpoint.resource_type}.read")
    for url in _read_and_search_urls(endpoint, world):
        response = fhir_get(client, url)
        assert response.status_code == 200, (url, response.content)


# --- what is not served is said so ---------------------------------------------------------------------------


INTERACTIONS = ("search", "create", "history", "vread")
NOT_SERVED = [
    pytest.param(e, name, id=f"{e.name}-{name}")
    for e in ENDPOINTS
    for name in INTERACTIONS
    if isinstance(getattr(e, name), NotServed) and not isinstance(getattr(e, name), ServedElsewhere)
]


@pytest.mark.parametrize(("endpoint", "interaction"), NOT_SERVED)
def test_an_interaction_a_type_does_not_serve_is_a_4xx_operation_outcome(world, endpoint, interaction):
    """What a declaration says is not served, the API says too: an OperationOutcome, never a 5xx or a page."""
    path = f"/fhir/{endpoint.resource_type}"
    instance = endpoint.instance(world)
    response = {
        "search": lambda c: fhir_get(c, f"{endpoint.resource_type}?_id={instance}"),
        "create": lambda c: c.post(path, {"resourceType": endpoint.resource_type}, content_type=FHIR_JSON),
        "history": lambda c: fhir_get(c, f"{endpoint.resource_type}/{instance}/_history"),
        "vread": lambda c: fhir_get(c, f"{endpoint.resource_type}/{instance}/_history/1"),
    }[interaction](world.a.client)
    assert 400 <= response.status_code < 500, response.content
    assert issues(response, response.status_code)


def test_every_type_the_capability_statement_serves_is_declared_here(client, db):
    statement = client.get("/fhir/metadata").json()
    served = {r["type"] for r in statement["rest"][0]["resource"]}
    assert served == {e.resource_type for e in ENDPOINTS}


def test_binary_answers_the_documents_own_bytes_unless_fhir_json_is_asked_for(world):
    response = world.a.client.get(f"/fhir/Binary/{world.a.document_id}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    as_fhir = resource_of(fhir_get(world.a.client, f"Binary/{world.a.document_id}"), "Binary")
    assert base64.b64decode(as_fhir["data"]) == b"".join(response.streaming_content)
