"""Celery tasks of the MPI: thin wrappers that call services."""

from __future__ import annotations

from celery import shared_task

from mpi.models import RematchRun
from mpi.services import rematch_step


@shared_task(name="mpi.rematch", acks_late=True)
def rematch(run_id: int, batch_size: int = 500) -> dict:
    """Re-matches one batch of a run and queues the next; a lost worker resumes from the last committed batch."""
    run = rematch_step(run=RematchRun.objects.get(pk=run_id), batch_size=batch_size)
    if run.status != RematchRun.Status.DONE:
        rematch.delay(run_id, batch_size)
    return {"run": run.pk, "status": run.status, "last_identity_id": run.last_identity_id, "counts": run.counts}
