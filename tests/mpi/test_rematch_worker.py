"""Re-matching as a Celery job: a real worker, through Redis, re-queueing itself batch by batch."""

from __future__ import annotations

import time

import pytest

from mpi.demographics import Demographics
from mpi.models import Identity, RematchRun
from mpi.services import identity_register, rematch_start
from tests.celery_worker import celery_worker


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_rematch_job_runs_every_batch_in_a_worker_with_new_thresholds(tmp_path):
    people = [("王小明", "1980-05-03", "13800138000"), ("李娜", "1990-01-02", "13900139000")]
    for name, birth, phone in people:
        for authority in ("H1", "H2"):
            identity_register(
                assigning_authority=authority,
                local_id=name,
                demographics=Demographics(name=name, birth_date=birth, phone=phone, sex="female"),
            )
    assert Identity.objects.values("person").distinct().count() == 2
    run = rematch_start(actor="test")
    # The worker runs with an auto-link threshold no score reaches: every automatic link must come apart.
    with celery_worker("redis", tmp_path, env={"MPI_AUTO_LINK_THRESHOLD": "500"}) as (client, queue, output):
        client.send_task("mpi.rematch", args=(run.pk, 1), queue=queue)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status == RematchRun.Status.DONE:
                break
            time.sleep(0.3)
    assert run.status == RematchRun.Status.DONE, output
    assert run.last_identity_id == Identity.objects.order_by("-pk").first().pk
    assert Identity.objects.values("person").distinct().count() == 4
