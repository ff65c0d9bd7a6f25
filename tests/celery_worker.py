"""A real Celery worker process on the test database, for tests that send tasks through a real broker."""

from __future__ import annotations

import contextlib
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

ROOT = Path(__file__).resolve().parents[1]
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


def require_broker(broker: str) -> str:
    """The broker's URL; skips the test if it is unreachable, or fails it under ``REQUIRE_BROKERS=1`` (CI)."""
    url = BROKERS[broker]
    if not reachable(url):
        message = f"no {broker} broker reachable at {urlsplit(url).netloc}"
        if os.environ.get("REQUIRE_BROKERS") == "1":
            pytest.fail(message + " (REQUIRE_BROKERS=1)")
        pytest.skip(message)
    return url


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


@contextlib.contextmanager
def celery_worker(broker: str, tmp_path: Path, env: dict[str, str] | None = None):
    """Starts ``celery -A healthplatform worker`` on a queue of its own; yields (client, queue, output).

    ``output`` is a list the worker's console output is appended to when it stops: the worker's own
    words explain a timeout better than the timeout does.
    """
    broker_url = require_broker(broker)
    # Results come back through Redis for the Redis broker, and through the broker itself (rpc://) for RabbitMQ.
    backend = broker_url if broker == "redis" else "rpc://"
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker_env = {
        **os.environ,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": backend,
        "DATABASE_URL": test_database_url(),
        "PLATFORM_DATA_DIR": str(tmp_path),
        **(env or {}),
    }
    # A node name of its own: RabbitMQ gives each node's control (pidbox) queue to one connection only, so two
    # workers named celery@<host> (another test run on the machine) would leave the second unable to start.
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "healthplatform", "worker", "--pool=solo", "-Q", queue,
         "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    # Not the current app: the platform's shared tasks (.delay) must keep running through the platform's own app.
    client = Celery("test-client", broker=broker_url, backend=backend, set_as_current=False)
    output: list[str] = []
    try:
        yield client, queue, output
    finally:
        worker.terminate()
        text, _ = worker.communicate(timeout=30)
        output.append(text[-3000:])
        if broker == "rabbitmq":
            with client.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)
        client.close()
