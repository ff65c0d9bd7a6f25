"""A real task through a real broker to a real worker process, and back.

The worker is started as its own process (``celery -A healthplatform worker``)
on the test database, so the test proves the Celery app, the broker, the
worker's Django set-up and the shared database work together. Without a
reachable broker the test is skipped with the reason, unless
``REQUIRE_BROKERS=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from celery import Celery
from django.db import connection

from tests.registry.factories import InstitutionFactory

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    "redis": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "rabbitmq": os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2):
            return True
    except OSError:
        return False


def test_database_url() -> str:
    """A DATABASE_URL for the database this test run uses (the test database, not the real one)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"])
    return f"postgresql://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_health_check_task_runs_in_a_worker_process_through_the_broker(broker, tmp_path):
    broker_url = BROKERS[broker]
    if not reachable(broker_url):
        message = f"no {broker} broker reachable at {urlsplit(broker_url).netloc}"
        if os.environ.get("REQUIRE_BROKERS") == "1":
            pytest.fail(message + " (REQUIRE_BROKERS=1)")
        pytest.skip(message)
    InstitutionFactory.create_batch(2)  # committed: the worker must see them through the database

    # Results come back through Redis for the Redis broker, and through the
    # broker itself (rpc://) for RabbitMQ.
    backend = broker_url if broker == "redis" else "rpc://"
    queue = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": backend,
        "DATABASE_URL": test_database_url(),
        "PLATFORM_DATA_DIR": str(tmp_path),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "healthplatform", "worker", "--pool=solo", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    client = Celery("roundtrip-client", broker=broker_url, backend=backend)
    report, error = None, None
    try:
        result = client.send_task("healthplatform.health_check", queue=queue)
        report = result.get(timeout=90)
    except Exception as exc:  # the worker's own words explain a timeout better than the timeout
        error = exc
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
        if broker == "rabbitmq":
            with client.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)
        client.close()

    assert error is None, f"no result from the worker ({error!r}); the worker said:\n{output[-3000:]}"
    assert report["status"] == "ok", output
    assert report["tasks"] == "broker"
    assert report["process"] not in (os.getpid(), None)
    assert report["database"]["name"] == str(connection.settings_dict["NAME"])
    assert report["registry"]["institutions"] == 2
