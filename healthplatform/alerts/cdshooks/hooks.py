"""The CDS services the platform offers, what a call to one must be, and its answer.

Three services (§ "Discovery"), one per hook:

- ``alerts-patient-view`` (``patient-view``): the alerts of the record as it stands (drug–allergy on active
  medications, free-text allergies, duplicate medications across institutions, the alerts raised on the orders
  the caller's institution's feeds sent — another institution's are its own, as on DetectedIssue) and one
  information card listing the tests still inside their retest window;
- ``alerts-order-select`` (``order-select``): the alerts the newly selected draft orders (``context.selections``)
  raise — a repeated test, a drug against an allergy, a drug another institution already prescribed;
- ``alerts-order-sign`` (``order-sign``): the same for every draft order about to be signed.

A draft order is named ``{institution code}:{Type}/{id}`` (the caller's institution and the id the hospital gave
it): its alerts keep their ids from ``order-select`` to ``order-sign``, and an alert overridden for it (feedback)
does not come back for it. Orders of other types (NutritionOrder, …) are accepted and not checked.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field

from healthplatform.access import Caller
from healthplatform.alerts import rules as r
from healthplatform.alerts.cdshooks import cards
from healthplatform.alerts.cdshooks.patients import PatientError, Resident, resident_of
from healthplatform.alerts.evaluate import ORDER_TYPES, order_alerts, order_fact, record_alerts

# R4 datatypes.html#id
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
MAX_ORDERS = 100
MAX_STRING = 1000
# The types of facts the rules read: a caller whose scopes do not let it read them all gets 403 rather than
# fewer alerts than the record holds (silence would read as "nothing to warn about").
RULE_TYPES = (
    "AllergyIntolerance",
    "DiagnosticReport",
    "MedicationDispense",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
)
PREFETCH = {"patient": "Patient/{{context.patientId}}"}


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str

    def as_json(self) -> dict:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(PREFETCH),
            "usageRequirements": (
                "Authenticate as a registered source system (OAuth2 client credentials bearer token from /oauth/token "
                "or HTTP Basic). context.patientId: a platform Patient id, your own MRN as system|value (or the value "
                "alone), or prefetch the Patient with its identifiers."
            ),
        }


SERVICES = {
    s.id: s
    for s in (
        Service(
            "alerts-patient-view",
            "patient-view",
            "区域健康信息平台 · 患者提醒 (regional record alerts)",
            "Alerts over the resident's record across every institution of the region: drug–allergy, duplicate "
            "medication, allergies recorded as free text, alerts raised on orders; and the test results still inside "
            "their retest window.",
        ),
        Service(
            "alerts-order-select",
            "order-select",
            "区域健康信息平台 · 医嘱提醒 (regional order alerts, on selection)",
            "Alerts on the newly selected draft orders (MedicationRequest, ServiceRequest) against the resident's "
            "regional record: duplicate test (with mutual recognition of results), drug–allergy, duplicate medication.",
        ),
        Service(
            "alerts-order-sign",
            "order-sign",
            "区域健康信息平台 · 医嘱提醒 (regional order alerts, on signing)",
            "Alerts on every draft order about to be signed (MedicationRequest, ServiceRequest) against the resident's "
            "regional record: duplicate test, drug–allergy, duplicate medication.",
        ),
    )
}


def discovery() -> dict:
    return {"services": [s.as_json() for s in SERVICES.values()]}


class HookError(Exception):
    """A request the service cannot answer: the HTTP status and what is wrong (the body's ``error``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> HookError:
    return HookError(400, message)


@dataclass
class DraftOrder:
    resource_type: str
    id: str
    body: dict

    @property
    def local(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass
class HookCall:
    """A validated call: the service, the hook instance, the patient as named, the draft orders to check."""

    service: Service
    hook_instance: str
    patient_id: str
    prefetched_patient: dict | None
    orders: list[DraftOrder] = field(default_factory=list)  # those to check (order-select: the selections)


def _string(value, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{name}: a non-empty string is required")
    if len(value) > MAX_STRING:
        raise bad(f"{name}: longer than {MAX_STRING} characters")
    return value


def _object(value, name: str, *, required: bool = True) -> dict | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise bad(f"{name}: a JSON object is required")
    return value


def _fhir_authorization(body: dict) -> None:
    """``fhirAuthorization`` is checked for its shape (§ "Passing the Access Token") and never used: the rules
    read the platform's own record, not the client's FHIR server. A token is never logged or stored."""
    auth = _object(body.get("fhirAuthorization"), "fhirAuthorization", required=False)
    server = _string(body.get("fhirServer"), "fhirServer", required=False)
    if server is not None and not server.startswith(("https://", "http://")):
        raise bad("fhirServer: the base URL of the client's FHIR server (https://…)")
    if auth is None:
        return
    if server is None:
        raise bad("fhirServer: required when fhirAuthorization is given")
    for name in ("access_token", "token_type", "scope", "subject"):
        _string(auth.get(name), f"fhirAuthorization.{name}")
    if auth["token_type"] != "Bearer":  # noqa: S105 (a token type, not a secret)
        raise bad("fhirAuthorization.token_type: Bearer")
    expires = auth.get("expires_in")
    if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
        raise bad("fhirAuthorization.expires_in: a non-negative integer")


def _draft_orders(context: dict) -> list[DraftOrder]:
    bundle = _object(context.get("draftOrders"), "context.draftOrders")
    if bundle.get("resourceType") != "Bundle":
        raise bad("context.draftOrders: a FHIR Bundle (resourceType Bundle) of draft orders")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise bad("context.draftOrders.entry: an array")
    if len(entries) > MAX_ORDERS:
        raise bad(f"context.draftOrders: at most {MAX_ORDERS} orders in one call")
    orders, seen = [], set()
    for n, entry in enumerate(entries):
        where = f"context.draftOrders.entry[{n}]"
        resource = _object(entry.get("resource") if isinstance(entry, dict) else None, f"{where}.resource")
        kind, fhir_id = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str) or not RESOURCE_TYPE.match(kind):
            raise bad(f"{where}.resource.resourceType: a FHIR resource type is required")
        if not isinstance(fhir_id, str) or not FHIR_ID.match(fhir_id):
            raise bad(f"{where}.resource.id: a FHIR id is required (selections and feedback name the order by it)")
        if (kind, fhir_id) in seen:
            raise bad(f"{where}.resource: {kind}/{fhir_id} is in the Bundle twice")
        seen.add((kind, fhir_id))
        orders.append(DraftOrder(kind, fhir_id, resource))
    return orders


def _selected(context: dict, orders: list[DraftOrder]) -> list[DraftOrder]:
    selections = context.get("selections")
    if not isinstance(selections, list) or not selections:
        raise bad("context.selections: an array of the newly selected orders (Type/id) is required")
    by_reference = {o.local: o for o in orders}
    chosen = []
    for n, selection in enumerate(selections):
        if not isinstance(selection, str) or selection not in by_reference:
            raise bad(f"context.selections[{n}]: must name an order of context.draftOrders as Type/id")
        if by_reference[selection] not in chosen:
            chosen.append(by_reference[selection])
    return chosen


def call_parse(service: Service, body) -> HookCall:
    """The call a request body makes, or ``HookError`` (400) saying what is wrong (§ "Calling a CDS Service")."""
    body = _object(body, "the request body")
    hook = _string(body.get("hook"), "hook")
    if hook != service.hook:
        raise bad(f"hook: the service {service.id} answers {service.hook}, not {hook[:60]!r}")
    hook_instance = _string(body.get("hookInstance"), "hookInstance")
    try:
        uuid.UUID(hook_instance)
    except ValueError:
        raise bad("hookInstance: a UUID is required") from None
    _fhir_authorization(body)
    context = _object(body.get("context"), "context")
    _string(context.get("userId"), "context.userId")
    patient_id = _string(context.get("patientId"), "context.patientId").strip()
    _string(context.get("encounterId"), "context.encounterId", required=False)
    prefetch = _object(body.get("prefetch"), "prefetch", required=False) or {}
    patient = prefetch.get("patient")
    if patient is not None and not isinstance(patient, dict):
        raise bad("prefetch.patient: a FHIR Patient (a JSON object)")
    call = HookCall(service=service, hook_instance=hook_instance, patient_id=patient_id, prefetched_patient=patient)
    if service.hook in ("order-select", "order-sign"):
        orders = _draft_orders(context)
        call.orders = _selected(context, orders) if service.hook == "order-select" else orders
    return call


def resident(caller: Caller, call: HookCall) -> Resident:
    try:
        return resident_of(caller, call.patient_id, call.prefetched_patient)
    except PatientError as exc:
        raise bad(str(exc)) from None


def order_reference(caller: Caller, order: DraftOrder) -> str:
    """How the platform names a draft order: ``{institution code}:{Type}/{id}`` (``platform:`` for staff)."""
    institution = caller.institution
    return f"{institution.code if institution else 'platform'}:{order.local}"


def answer(request, caller: Caller, call: HookCall, person: Resident, *, now: dt.datetime) -> dict:
    """The cards of a validated call (§ "CDS Service Response"), critical first."""
    if call.service.hook == "patient-view":
        found = record_alerts(caller=caller, person_id=person.person_id, now=now)
        answer_cards = [cards.card(request, f, person_uuid=person.uuid) for f in found.findings]
        if recent := cards.recent_tests_card(request, found.recent_tests, person_uuid=person.uuid):
            answer_cards.append(recent)
        return {"cards": answer_cards}
    checked = [o for o in call.orders if o.resource_type in ORDER_TYPES]
    if not checked:
        return {"cards": []}
    by_reference = {order_reference(caller, o): o for o in checked}
    facts = [order_fact(caller, o.body, reference=ref, now=now) for ref, o in by_reference.items()]
    findings: list[r.Finding] = order_alerts(caller=caller, person_id=person.person_id, orders=facts, now=now)
    answer_cards = []
    for finding in findings:
        order = by_reference.get(finding.order or "")
        named = (order.resource_type, order.id) if order else None
        answer_cards.append(cards.card(request, finding, person_uuid=person.uuid, order=named))
    return {"cards": answer_cards}
