"""The alerts' Celery tasks: thin, each calls one service."""

from celery import shared_task


@shared_task(name="healthplatform.alerts.orders_alert")
def orders_alert(resource_pks: list[int]) -> int:
    """Raises the alerts of the orders a feed wrote (archive row ids). Idempotent: may run twice."""
    from healthplatform.alerts.services import orders_raise

    return orders_raise(resource_pks=resource_pks)


@shared_task(name="healthplatform.alerts.alerts_recheck")
def alerts_recheck(identity_ids: list[int], allergy_identity_ids: list[int] | None = None) -> int:
    """Evaluates again the active alerts of these MPI identities' persons (a fact was corrected or deleted), and
    the open prescriptions of those with an allergy recorded or changed."""
    from healthplatform.alerts.services import alerts_recheck as recheck

    return recheck(identity_ids=identity_ids, allergy_identity_ids=allergy_identity_ids or [])
