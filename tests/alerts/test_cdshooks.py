"""CDS Hooks 2.0 over HTTP (healthplatform/alerts/cdshooks): discovery, patient-view, order-select and order-sign
answered with cards from the alert rules on the scenario region (tests/alerts/scenario.py), feedback recorded as
overrides and acceptances, every request and answer validated against the specification's JSON shapes
(tests/alerts/cdshooks_schema.json), and bad input refused with 400 and a reason — never a 500."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthplatform.alerts.cdshooks.cards import OVERRIDE_REASON_SYSTEM, SOURCE_LABEL, card_uuid
from healthplatform.alerts.models import Override
from healthplatform.audit.models import AccessEvent
from mpi import selectors as mpi
from mpi.models import Person
from registry.codes import ALLERGEN_CLASS_SYSTEM
from tests.alerts.scenario import Resident, allergy, atc, drug_order, lab, prescription, region, service_order
from tests.fhirapi.client import basic
from tests.ingest.test_scopes import bearer_client

pytestmark = pytest.mark.django_db
POTASSIUM = "2823-3"
SIGN, SELECT, VIEW = "alerts-order-sign", "alerts-order-select", "alerts-patient-view"
HOOKS = {SIGN: "order-sign", SELECT: "order-select", VIEW: "patient-view"}
SCHEMA = json.loads((Path(__file__).parent / "cdshooks_schema.json").read_text())
_formats = jsonschema.FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    # RFC 3339 section 5.6 (jsonschema checks it only with an extra package installed).
    return not isinstance(value, str) or dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def valid(shape: str, body) -> None:
    """``body`` is a valid CDS Hooks ``shape`` (discovery, request, response, feedback)."""
    jsonschema.validate(body, {**SCHEMA, "$ref": f"#/$defs/{shape}"}, format_checker=_formats)


# --- helpers ---------------------------------------------------------------------------------------------------


def hook_body(
    service: str, patient_id: str, *orders: dict, selections: list[str] | None = None, check: bool = True, **extra
) -> dict:
    """A hook call's body (valid against the specification's shape unless ``check`` is off: bad input)."""
    context: dict = {"userId": "Practitioner/dr-wang", "patientId": patient_id}
    if service != VIEW:
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        }
    if selections is not None:
        context["selections"] = selections
    body = {"hook": HOOKS[service], "hookInstance": str(uuid.uuid4()), "context": context, **extra}
    if check:
        valid("request", body)
    return body


def call(client: Client, service: str, body, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(f"/cds-services/{service}", data, content_type="application/json", **headers)


def cards(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    valid("response", body)
    return body["cards"]


def refused(response, status: int = 400) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error, str) and error
    return error


def feedback(client: Client, service: str, *items: dict):
    body = {"feedback": list(items)}
    valid("feedback", body)
    return client.post(f"/cds-services/{service}/feedback", json.dumps(body), content_type="application/json")


def overridden(card: dict, code: str = "skin-test-negative", comment: str = "皮试阴性，已观察30分钟") -> dict:
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": OVERRIDE_REASON_SYSTEM, "code": code}, "userComment": comment},
        "outcomeTimestamp": "2026-03-01T08:30:00Z",
    }


def source_patient_id(clinic, resident: Resident) -> str:
    return str(mpi.identity_by_local_id(clinic.facility, f"{clinic.facility}-{resident.key}").uuid)


def golden_id(clinic, resident: Resident) -> str:
    return str(Person.objects.get(pk=resident.person_id(clinic)).uuid)


@pytest.fixture
def clinics():
    return region()


@pytest.fixture
def allergic(clinics):
    """A resident with a penicillin allergy recorded at hospital A, known at hospital B (its MRN there)."""
    a, b, _ = clinics
    resident = Resident("cds1", sequence=2)  # an even sequence digit: a woman's number (the scenario sends female)
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN"), criticality="high"))
    b.send(resident)
    return resident


AMOXICILLIN = drug_order(atc("J01CA04"), order_id="rx-1", name="阿莫西林胶囊")


# --- discovery -------------------------------------------------------------------------------------------------


def test_discovery_lists_the_three_services_without_credentials():
    response = Client().get("/cds-services")
    assert response.status_code == 200
    body = response.json()
    valid("discovery", body)
    assert {(s["id"], s["hook"]) for s in body["services"]} == {
        (SIGN, "order-sign"),
        (SELECT, "order-select"),
        (VIEW, "patient-view"),
    }
    assert all(s["prefetch"] == {"patient": "Patient/{{context.patientId}}"} for s in body["services"])


# --- order-sign and order-select -------------------------------------------------------------------------------


def test_order_sign_of_a_drug_the_resident_is_allergic_to_answers_a_critical_card(clinics, allergic):
    _, b, _ = clinics
    response = call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN))
    (card,) = cards(response)
    assert card["indicator"] == "critical"
    assert len(card["summary"]) < 140 and "市第一人民医院" in card["summary"]
    assert card["source"]["label"] == SOURCE_LABEL
    assert card["source"]["topic"]["code"] == "drug-allergy"
    assert "市第一人民医院" in card["detail"]  # the evidence: where the allergy was recorded
    assert [r["code"] for r in card["overrideReasons"]] == [
        "aware",
        "tolerated-before",
        "skin-test-negative",
        "clinically-necessary",
    ]
    assert all(r["display"] for r in card["overrideReasons"])
    (suggestion,) = card["suggestions"]
    assert suggestion["isRecommended"] is True and card["selectionBehavior"] == "at-most-one"
    assert suggestion["actions"] == [
        {"type": "delete", "description": "撤销 MedicationRequest/rx-1", "resourceId": "MedicationRequest/rx-1"}
    ]
    (link,) = card["links"]
    assert link["type"] == "absolute"
    assert link["url"] == f"http://testserver/viewer/patient/{golden_id(b, allergic)}/"


def test_a_cards_uuid_is_stable_from_order_select_to_order_sign(clinics, allergic):
    _, b, _ = clinics
    mrn = f"HOSP-B-{allergic.key}"
    (selected,) = cards(
        call(b.feed.client, SELECT, hook_body(SELECT, mrn, AMOXICILLIN, selections=["MedicationRequest/rx-1"]))
    )
    (signed,) = cards(call(b.feed.client, SIGN, hook_body(SIGN, mrn, AMOXICILLIN)))
    (again,) = cards(call(b.feed.client, SIGN, hook_body(SIGN, mrn, AMOXICILLIN)))
    assert selected["uuid"] == signed["uuid"] == again["uuid"]
    other = drug_order(atc("J01CA04"), order_id="rx-2")
    (second,) = cards(call(b.feed.client, SIGN, hook_body(SIGN, mrn, other)))
    assert second["uuid"] != signed["uuid"]  # another order, another alert


def test_order_select_checks_the_selections_only(clinics):
    a, b, _ = clinics
    resident = Resident("cds2")
    a.send(resident, lab(POTASSIUM, 4.1, "mmol/L", days_ago=2, low=3.5, high=5.3, display="钾"))
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")))
    b.send(resident)
    test = service_order(POTASSIUM, order_id="lab-1")
    body = hook_body(SELECT, f"HOSP-B-{resident.key}", test, AMOXICILLIN, selections=["ServiceRequest/lab-1"])
    (card,) = cards(call(b.feed.client, SELECT, body))
    assert card["source"]["topic"]["code"] == "duplicate-test" and card["indicator"] == "warning"
    assert "4.1 mmol/L" in card["detail"] and "3.5–5.3" in card["detail"]
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "ServiceRequest/lab-1"
    both = cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{resident.key}", test, AMOXICILLIN)))
    assert sorted(c["source"]["topic"]["code"] for c in both) == ["drug-allergy", "duplicate-test"]
    assert both[0]["indicator"] == "critical"  # critical first


def test_orders_of_other_types_and_orders_without_alerts_answer_no_cards(clinics, allergic):
    _, b, _ = clinics
    diet = {"resourceType": "NutritionOrder", "id": "diet-1", "status": "draft", "intent": "order"}
    azithromycin = drug_order(atc("J01FA10"), order_id="rx-9")
    assert cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", diet, azithromycin))) == []
    assert cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}"))) == []


def test_a_drug_another_institution_already_prescribed_is_a_duplicate_medication_card(clinics):
    a, b, _ = clinics
    resident = Resident("cds3")
    a.send(resident, prescription(atc("C10AA05"), days_ago=10, name="阿托伐他汀钙片"))
    b.send(resident)
    order = drug_order(atc("C10AA05"), order_id="rx-5", name="阿托伐他汀")
    (card,) = cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{resident.key}", order)))
    assert card["source"]["topic"]["code"] == "duplicate-medication"
    assert [r["code"] for r in card["overrideReasons"]][:2] == ["aware", "combination-intended"]


# --- patient-view --------------------------------------------------------------------------------------------


def test_patient_view_answers_the_records_alerts_and_the_tests_inside_their_window(clinics):
    a, b, _ = clinics
    resident = Resident("cds4")
    a.send(resident, allergy((ALLERGEN_CLASS_SYSTEM, "PEN")), allergy(None, text="磺胺类？家属口述"))
    a.send(resident, lab(POTASSIUM, 4.1, "mmol/L", days_ago=2, display="钾"))
    b.send(resident, prescription(atc("J01CA04"), days_ago=1, name="阿莫西林"))
    found = cards(call(b.feed.client, VIEW, hook_body(VIEW, f"HOSP-B-{resident.key}")))
    topics = [(c["source"]["topic"]["code"], c["indicator"]) for c in found]
    assert topics == [("drug-allergy", "critical"), ("drug-allergy", "warning"), ("duplicate-test", "info")]
    recent = found[-1]
    assert "1 项" in recent["summary"] and "4.1 mmol/L" in recent["detail"]
    assert "suggestions" not in recent and "suggestions" not in found[0]  # nothing is being ordered
    assert "磺胺类？家属口述" in found[1]["summary"]


def test_every_hook_call_is_a_read_of_the_residents_record_in_the_audit(clinics, allergic):
    _, b, _ = clinics
    cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)))
    cards(call(b.feed.client, VIEW, hook_body(VIEW, f"HOSP-B-{allergic.key}")))
    events = AccessEvent.objects.filter(person_id=allergic.person_id(b), door="cds-hooks").order_by("pk")
    assert [e.what for e in events] == ["CDS Hooks order-sign", "CDS Hooks patient-view"]
    assert {(e.actor, e.institution_id, e.source_id) for e in events} == {
        (b.source.client_id, b.institution.pk, b.source.pk)
    }


def test_english_when_the_client_asks_for_it(clinics, allergic):
    _, b, _ = clinics
    response = call(
        b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN), HTTP_ACCEPT_LANGUAGE="en"
    )
    (card,) = cards(response)
    assert card["suggestions"][0]["label"] == "Remove this order"
    assert card["overrideReasons"][2]["display"] == "Skin test negative"


# --- who context.patientId names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "source Patient id",
        "golden Patient id",
        "own MRN as system|value",
        "own MRN alone",
        "resident id number",
        "person system",
        "prefetched Patient",
    ],
)
def test_the_patient_is_named_by_a_platform_id_an_own_mrn_a_national_document_or_the_prefetch(clinics, allergic, name):
    _, b, _ = clinics
    mrn = f"HOSP-B-{allergic.key}"
    prefetch = None
    patient_id = {
        "source Patient id": lambda: source_patient_id(b, allergic),
        "golden Patient id": lambda: golden_id(b, allergic),
        "own MRN as system|value": lambda: f"urn:platform:authority:HOSP-B|{mrn}",
        "own MRN alone": lambda: mrn,
        "resident id number": lambda: f"urn:oid:2.16.156.10011.1.3|{allergic.resident_id}",
        "person system": lambda: f"urn:platform:person|{golden_id(b, allergic)}",
        "prefetched Patient": lambda: "ehr-internal-77",
    }[name]()
    if name == "prefetched Patient":
        prefetch = {
            "patient": {
                "resourceType": "Patient",
                "id": "ehr-internal-77",
                "identifier": [
                    {"system": "urn:his:other", "value": "x"},
                    {"system": "urn:platform:authority:HOSP-B", "value": mrn},
                ],
            }
        }
    body = hook_body(SIGN, patient_id, AMOXICILLIN, **({"prefetch": prefetch} if prefetch else {}))
    (card,) = cards(call(b.feed.client, SIGN, body))
    assert card["indicator"] == "critical"


def test_another_institutions_mrn_names_no_one(clinics, allergic):
    _, _, c = clinics
    assert "names no resident" in refused(
        call(c.feed.client, SIGN, hook_body(SIGN, f"urn:platform:authority:HOSP-B|HOSP-B-{allergic.key}", AMOXICILLIN))
    )
    assert "names no resident" in refused(
        call(c.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN))
    )


# --- feedback ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_overridden_card_does_not_come_back_for_the_same_order_over_a_real_socket(live_server, clinics, allergic):
    _, b, _ = clinics
    auth = (b.source.client_id, b.feed.secret)
    token = requests.post(
        f"{live_server.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=auth, timeout=10
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def sign(order):
        answer = session.post(
            f"{live_server.url}/cds-services/{SIGN}", json=hook_body(SIGN, f"HOSP-B-{allergic.key}", order), timeout=10
        )
        assert answer.status_code == 200, answer.text
        valid("response", answer.json())
        return answer.json()["cards"]

    (card,) = sign(AMOXICILLIN)
    body = {"feedback": [overridden(card)]}
    valid("feedback", body)
    answer = session.post(f"{live_server.url}/cds-services/{SIGN}/feedback", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 1}
    assert sign(AMOXICILLIN) == []  # overridden for this order: not again
    assert len(sign(drug_order(atc("J01CA04"), order_id="rx-2"))) == 1  # another order: it warns again
    (row,) = Override.objects.all()
    assert (row.outcome, row.reason_code, row.actor, row.institution_id) == (
        "overridden",
        "skin-test-negative",
        b.source.client_id,
        b.institution.pk,
    )
    assert row.alert_key == uuid.UUID(card["uuid"]).hex
    assert "皮试阴性" in row.reason and "已观察30分钟" in row.reason


def test_an_accepted_card_is_recorded_and_still_warns(clinics, allergic):
    _, b, _ = clinics
    body = hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)
    (card,) = cards(call(b.feed.client, SIGN, body))
    item = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-03-01T08:31:00.52Z",
    }
    assert feedback(b.feed.client, SIGN, item).json() == {"recorded": 1}
    assert Override.objects.get().outcome == "accepted"
    assert len(cards(call(b.feed.client, SIGN, body))) == 1


def test_one_hospitals_override_does_not_silence_another_hospitals_card(clinics, allergic):
    """Card ids are computable from what a hospital can read; an override counts only for the institution that
    made it (healthplatform.alerts.evaluate._overridden)."""
    _, b, c = clinics
    c.send(allergic)
    (card,) = cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)))
    assert feedback(c.feed.client, SIGN, overridden(card)).status_code == 200
    (again,) = cards(call(b.feed.client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)))
    assert again["uuid"] == card["uuid"]


@pytest.mark.parametrize(
    ("item", "names"),
    [
        ({"card": "not-a-uuid", "outcome": "overridden", "outcomeTimestamp": "2026-03-01T08:30:00Z"}, "card"),
        ({"card": str(uuid.uuid4()), "outcome": "ignored", "outcomeTimestamp": "2026-03-01T08:30:00Z"}, "outcome"),
        ({"card": str(uuid.uuid4()), "outcome": "overridden"}, "outcomeTimestamp"),
        ({"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "yesterday"}, "outcomeTimestamp"),
        (
            {"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "2026-03-01T08:30:00Z"},
            "acceptedSuggestions",
        ),
        (
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "outcomeTimestamp": "2026-03-01T08:30:00Z",
                "overrideReason": {"reason": {"code": "x"}},
            },
            "overrideReason.reason",
        ),
    ],
)
def test_malformed_feedback_is_400_naming_what_is_wrong_and_records_nothing(clinics, item, names):
    _, b, _ = clinics
    good = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-03-01T08:30:00Z"}
    body = json.dumps({"feedback": [good, item]})
    response = b.feed.client.post(f"/cds-services/{SIGN}/feedback", body, content_type="application/json")
    assert names in refused(response)
    assert not Override.objects.exists()


# --- bad input -----------------------------------------------------------------------------------------------


def _without(path: str):
    def change(body):
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node[p]
        del node[last]

    return change


def _setting(path: str, value):
    def change(body):
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node[p]
        node[last] = value

    return change


BAD = [
    ("no hook", _without("hook"), "hook"),
    ("no hookInstance", _without("hookInstance"), "hookInstance"),
    ("hookInstance not a UUID", _setting("hookInstance", "1"), "hookInstance"),
    ("no context", _without("context"), "context"),
    ("context not an object", _setting("context", ["x"]), "context"),
    ("no patientId", _without("context.patientId"), "context.patientId"),
    ("no userId", _without("context.userId"), "context.userId"),
    ("wrong hook for the service", _setting("hook", "patient-view"), "hook"),
    ("unknown patient", _setting("context.patientId", "no-such-mrn"), "context.patientId"),
    ("unknown platform id", _setting("context.patientId", str(uuid.uuid4())), "context.patientId"),
    ("no draftOrders", _without("context.draftOrders"), "context.draftOrders"),
    ("draftOrders not a Bundle", _setting("context.draftOrders", {"resourceType": "List"}), "context.draftOrders"),
    ("draftOrders an order", _setting("context.draftOrders", AMOXICILLIN), "context.draftOrders"),
    ("entry not an array", _setting("context.draftOrders.entry", {"resource": AMOXICILLIN}), "entry"),
    (
        "order without id",
        _setting("context.draftOrders.entry", [{"resource": {"resourceType": "MedicationRequest"}}]),
        "entry[0].resource.id",
    ),
    (
        "order without type",
        _setting("context.draftOrders.entry", [{"resource": {"id": "rx-1"}}]),
        "entry[0].resource.resourceType",
    ),
    ("entry without resource", _setting("context.draftOrders.entry", [{"fullUrl": "x"}]), "entry[0].resource"),
    (
        "the same order twice",
        _setting("context.draftOrders.entry", [{"resource": AMOXICILLIN}, {"resource": AMOXICILLIN}]),
        "twice",
    ),
    (
        "fhirAuthorization without fhirServer",
        _setting(
            "fhirAuthorization",
            {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read", "subject": "cds"},
        ),
        "fhirServer",
    ),
    ("prefetch patient not an object", _setting("prefetch", {"patient": "Patient/1"}), "prefetch.patient"),
    ("NUL in a string", _setting("context.userId", "dr\x00wang"), "NUL"),
]


@pytest.mark.parametrize(("change", "names"), [pytest.param(c, n, id=i) for i, c, n in BAD])
def test_a_malformed_hook_call_is_400_with_a_reason(clinics, allergic, change, names):
    _, b, _ = clinics
    body = hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)
    change(body)
    assert names in refused(call(b.feed.client, SIGN, body))
    assert not AccessEvent.objects.filter(door="cds-hooks").exists()


def test_order_select_needs_selections_naming_its_draft_orders(clinics, allergic):
    _, b, _ = clinics
    mrn = f"HOSP-B-{allergic.key}"
    assert "selections" in refused(call(b.feed.client, SELECT, hook_body(SELECT, mrn, AMOXICILLIN, check=False)))
    body = hook_body(SELECT, mrn, AMOXICILLIN, selections=["MedicationRequest/rx-404"])
    assert "selections[0]" in refused(call(b.feed.client, SELECT, body))


def test_a_body_that_is_not_json_is_400(clinics):
    _, b, _ = clinics
    assert "not JSON" in refused(call(b.feed.client, SIGN, b"{not json"))
    assert "not JSON" in refused(call(b.feed.client, SIGN, b"\xff\xfe"))
    assert "object" in refused(call(b.feed.client, SIGN, "[1, 2]"))


def test_an_unknown_service_is_404_and_a_get_of_a_service_is_405(clinics):
    _, b, _ = clinics
    assert "no CDS service" in refused(call(b.feed.client, "no-such-service", {}), 404)
    assert refused(
        b.feed.client.post("/cds-services/no-such-service/feedback", "{}", content_type="application/json"), 404
    )
    assert refused(b.feed.client.get("/cds-services/a/b/c"), 404)
    assert refused(b.feed.client.get(f"/cds-services/{SIGN}"), 405)


def test_without_credentials_a_hook_and_feedback_are_401_with_a_challenge(clinics, allergic):
    body = hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)
    for path in (f"/cds-services/{SIGN}", f"/cds-services/{SIGN}/feedback"):
        response = Client().post(path, json.dumps(body), content_type="application/json")
        assert "authentication" in refused(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
    wrong = Client(headers=basic(clinics[1].source.client_id, "wrong secret"))
    assert refused(call(wrong, SIGN, body), 401)


def test_a_token_whose_scopes_do_not_cover_what_the_rules_read_is_403(clinics, allergic):
    _, b, _ = clinics
    client = bearer_client(b.feed, "system/Observation.read")
    assert "AllergyIntolerance" in refused(
        call(client, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)), 403
    )
    reader = bearer_client(b.feed, "system/*.read")
    assert len(cards(call(reader, SIGN, hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN)))) == 1


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "hook",
    "hookInstance",
    "context",
    "fhirServer",
    "fhirAuthorization",
    "prefetch",
    "context.patientId",
    "context.userId",
    "context.draftOrders",
    "context.draftOrders.entry",
    "context.selections",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    service=st.sampled_from([SIGN, SELECT, VIEW]),
    junk=st.one_of(
        st.binary(max_size=60).map(lambda raw: ("raw", raw)),
        JSON_VALUES.map(lambda value: ("whole", value)),
        st.tuples(st.sampled_from(FIELDS), JSON_VALUES).map(lambda pair: ("field", pair)),
    ),
)
def test_junk_is_never_a_server_error(clinics, allergic, service, junk):
    _, b, _ = clinics
    kind, value = junk
    if kind == "raw":
        body = value
    elif kind == "whole":
        body = json.dumps(value)
    else:
        body = hook_body(SIGN, f"HOSP-B-{allergic.key}", AMOXICILLIN, selections=["MedicationRequest/rx-1"])
        body["hook"] = HOOKS[service]
        field, replacement = value
        *parents, last = field.split(".")
        node = body
        for p in parents:
            node = node[p]
        node[last] = replacement
        body = json.dumps(body)
    response = call(b.feed.client, service, body)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        valid("response", response.json())
    else:
        refused(response)
    fed = b.feed.client.post(f"/cds-services/{service}/feedback", body, content_type="application/json")
    assert fed.status_code in (200, 400), fed.content


def test_card_uuid_is_the_finding_key_as_a_uuid():
    key = "0123456789abcdef0123456789abcdef"
    assert uuid.UUID(card_uuid(key)).hex == key
    assert uuid.UUID(card_uuid("not hex"))  # never fails
