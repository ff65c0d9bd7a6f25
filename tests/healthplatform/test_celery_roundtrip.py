"""A real task through a real broker to a real worker process, and back.

The worker is started as its own process (``celery -A healthplatform worker``)
on the test database, so the test proves the Celery app, the broker, the
worker's Django set-up and the shared database work together. Without a
reachable broker the test is skipped with the reason, unless
``REQUIRE_BROKERS=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tests.celery_worker import BROKERS, celery_worker
from tests.registry.factories import InstitutionFactory


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_health_check_task_runs_in_a_worker_process_through_the_broker(broker, tmp_path):
    InstitutionFactory.create_batch(2)  # committed: the worker must see them through the database
    report, error = None, None
    with celery_worker(broker, tmp_path) as (client, queue, output):
        try:
            report = client.send_task("healthplatform.health_check", queue=queue).get(timeout=90)
        except Exception as exc:
            error = exc
    assert error is None, f"no result from the worker ({error!r}); the worker said:\n{output}"
    assert report["status"] == "ok", output
    assert report["tasks"] == "broker"
    assert report["process"] not in (os.getpid(), None)
    assert report["database"]["name"] == str(connection.settings_dict["NAME"])
    assert report["registry"]["institutions"] == 2
