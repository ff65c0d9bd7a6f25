"""The alerts' writes: alerts raised on the orders feeds send, and the overrides and acceptances clinicians and
hospital systems record."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q

from ehr.models import Resource
from healthplatform.access import Caller
from healthplatform.alerts import rules as r
from healthplatform.alerts.evaluate import ORDER_TYPES, fact_of, order_alerts
from healthplatform.alerts.models import Alert, Override
from mpi import selectors as mpi
from mpi.models import uuid7

logger = logging.getLogger("healthplatform.alerts")

# Orders that are still to be carried out (R4 medicationrequest-status / request-status).
OPEN_ORDER = frozenset({"active", "draft", "on-hold"})
# The platform evaluates a feed's order over the whole record, whatever the feed's own read scopes: the alert
# is the platform's, raised for the ordering institution.
PLATFORM = Caller(source=None, actor="platform:alerts")


def orders_raise(*, resource_pks: list[int]) -> int:
    """Evaluates the orders (MedicationRequest, ServiceRequest) a feed wrote and keeps their alerts: new ones
    raised, those that no longer hold (the order or the record changed, the order was deleted) withdrawn.
    Idempotent: the same order evaluated again raises nothing new. Returns the number of active alerts on these
    orders."""
    rows = [
        row
        for row in Resource.objects.filter(pk__in=resource_pks, resource_type__in=sorted(ORDER_TYPES))
        if row.identity_id is not None
    ]
    persons = mpi.person_ids_of_identities({row.identity_id for row in rows})
    by_person: dict[int, list] = {}
    for row in rows:
        if not row.deleted and row.body.get("status") in OPEN_ORDER and row.identity_id in persons:
            by_person.setdefault(persons[row.identity_id], []).append(row)
    # Every order named, deleted ones too: what raises nothing now has its active alerts withdrawn.
    references = [f"{row.resource_type}/{row.fhir_id}" for row in rows]
    active = 0
    with transaction.atomic():
        kept: set[str] = set()
        for person_id, orders in by_person.items():
            facts = [fact_of(row) for row in orders]
            for finding in order_alerts(caller=PLATFORM, person_id=person_id, orders=facts):
                order = next(f for f in facts if f.reference == finding.order)
                if not order.institution_id:
                    continue  # staff-entered orders belong to no institution to warn
                _alert_keep(finding, person_id=person_id, institution_id=order.institution_id)
                kept.add(finding.key)
                active += 1
        Alert.objects.filter(order__in=references, status=Alert.Status.ACTIVE).exclude(key__in=sorted(kept)).update(
            status=Alert.Status.WITHDRAWN
        )
    return active


def _alert_keep(finding: r.Finding, *, person_id: int, institution_id: int) -> None:
    values = {
        "person_id": person_id,
        "kind": finding.kind,
        "severity": finding.severity,
        "summary": finding.summary,
        "detail": finding.detail,
        "order": finding.order or "",
        "institution_id": institution_id,
        "evidence": [e.as_json() for e in finding.evidence],
    }
    alert, created = Alert.objects.get_or_create(key=finding.key, defaults={"uuid": uuid7(), **values})
    if not created and alert.status == Alert.Status.WITHDRAWN:
        Alert.objects.filter(pk=alert.pk).update(status=Alert.Status.ACTIVE, **values)


# The facts the rules rest on: correcting or deleting one can end an alert already raised.
EVIDENCE_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "DiagnosticReport",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
    }
)


def alerts_recheck(*, identity_ids: list[int], allergy_identity_ids: list[int] = ()) -> int:
    """The active alerts of these identities' persons (and of persons merged into them) evaluated again on their
    orders: a fact they rest on was corrected or deleted — an allergy refuted, a result entered in error, the
    other institution's prescription stopped. Those that no longer hold are withdrawn (``orders_raise``). An
    allergy recorded or changed (``allergy_identity_ids``) has every open prescription of the person evaluated
    too: a prescription written yesterday at B against an allergy recorded today at A is raised for B. (A new
    result is not: it is what an open test order asked for, not a repeat of it.) Returns the number of active
    alerts on the orders evaluated."""
    person_of = mpi.person_ids_of_identities(set(identity_ids) | set(allergy_identity_ids))
    persons = set(person_of.values())
    if not persons:
        return 0
    allergic = {person_of[i] for i in allergy_identity_ids if i in person_of}
    prescriptions = (
        list(
            Resource.objects.filter(
                identity__person_id__in=sorted(allergic),
                resource_type="MedicationRequest",
                status__in=sorted(OPEN_ORDER),
                deleted=False,
            ).values_list("pk", flat=True)
        )
        if allergic
        else []
    )
    orders = set(
        Alert.objects.filter(
            Q(person_id__in=persons) | Q(person__merged_into_id__in=persons), status=Alert.Status.ACTIVE
        ).values_list("order", flat=True)
    )
    wanted: dict[str, set[str]] = {}
    for order in orders:
        resource_type, _, fhir_id = order.partition("/")
        if resource_type in ORDER_TYPES and fhir_id:
            wanted.setdefault(resource_type, set()).add(fhir_id)
    pks = set(prescriptions)
    if wanted:
        match = Q()
        for resource_type, ids in wanted.items():
            match |= Q(resource_type=resource_type, fhir_id__in=sorted(ids))
        pks |= set(Resource.objects.filter(match).values_list("pk", flat=True))
    return orders_raise(resource_pks=sorted(pks)) if pks else 0


def alerts_recheck_after_commit(identity_ids: list[int], allergy_identity_ids: list[int] = ()) -> None:
    """Queues ``alerts_recheck`` once the transaction that corrected or deleted the facts, or recorded an
    allergy, committed."""
    from healthplatform.alerts.tasks import alerts_recheck as task

    allergy_identity_ids = list(allergy_identity_ids)

    def queue() -> None:
        try:
            task.delay(identity_ids, allergy_identity_ids)
        except Exception:
            logger.exception("alerts: re-checking the alerts of %d identities failed", len(identity_ids))

    transaction.on_commit(queue)


def orders_raise_after_commit(resource_pks: list[int]) -> None:
    """Queues the evaluation of a feed's orders once their transaction committed (the write's answer never
    waits for a worker; with Celery eager, it runs here and a failure is logged, never the write's)."""
    from healthplatform.alerts.tasks import orders_alert

    def queue() -> None:
        try:
            orders_alert.delay(resource_pks)
        except Exception:
            # No patient data in the log: the ids are archive row numbers.
            logger.exception("alerts: evaluating %d orders failed", len(resource_pks))

    transaction.on_commit(queue)


def alert_override(
    *,
    caller: Caller,
    key: str,
    order: str | None = None,
    reason: str = "",
    reason_code: str = "",
    outcome: str = "overridden",
    user=None,
) -> Override:
    """Records that ``caller`` went on despite the alert ``key`` (``outcome`` "overridden", with a reason) or
    took its advice ("accepted"). An overridden alert does not come back for the same order (its key names it)."""
    if outcome not in ("overridden", "accepted"):
        raise ValueError(f"outcome: overridden or accepted, not {outcome!r}")
    with transaction.atomic():
        override = Override.objects.create(
            alert_key=key[:64],
            order=(order or "")[:120],
            outcome=outcome,
            reason=reason[:500],
            reason_code=reason_code[:64],
            actor=caller.actor[:150],
            institution=caller.institution,
            user=user,
        )
        if outcome == "overridden":
            raised = Alert.objects.filter(key=key, status=Alert.Status.ACTIVE)
            if caller.institution is not None:
                # Only the ordering institution (or staff) overrides the alert raised on its order.
                raised = raised.filter(institution=caller.institution)
            raised.update(status=Alert.Status.OVERRIDDEN)
    return override
