"""Celery tasks of the MPI: thin wrappers that call services."""

from __future__ import annotations

from celery import shared_task

from mpi.models import RematchRun
from mpi.services import rematch_step


@shared_task(name="mpi.rematch", bind=True, acks_late=True)
def rematch(self, run_id: int, batch_size: int = 500) -> dict:
    """Re-matches one batch of a run and queues the next on the same queue; a lost worker resumes from
    the last committed batch (the step is idempotent: it starts after ``run.last_identity_id``)."""
    run = rematch_step(run=RematchRun.objects.get(pk=run_id), batch_size=batch_size)
    if run.status != RematchRun.Status.DONE:
        queue = (self.request.delivery_info or {}).get("routing_key")
        rematch.apply_async((run_id, batch_size), queue=queue)
    return {"run": run.pk, "status": run.status, "last_identity_id": run.last_identity_id, "counts": run.counts}
