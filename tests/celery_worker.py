"""A real Celery worker process on the test database, for tests that send tasks through a real broker."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
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


@dataclass
class Worker:
    """A running worker process: the client that sends it tasks, its queue, its process (the leader of a process
    group of its own, so that a test can kill it and anything it forked at once) and its console output."""

    client: Celery
    queue: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    def kill(self) -> None:
        """SIGKILL to the worker's whole process group, as the OOM killer or a lost host does: no warm shutdown,
        no message acknowledged or requeued by the worker itself, no database connection closed cleanly."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)


@contextlib.contextmanager
def celery_worker_process(broker: str, tmp_path: Path, env: dict[str, str] | None = None, queue: str | None = None):
    """Starts ``celery -A healthplatform worker`` on ``queue`` (default: a queue of its own) in a process group of
    its own; yields a ``Worker``. Two of them given one queue share its tasks (each has a node name of its own:
    two of one name collide on RabbitMQ, where each node's control queue is exclusive to it)."""
    broker_url = require_broker(broker)
    # Results come back through Redis for the Redis broker, and through the broker itself (rpc://) for RabbitMQ.
    backend = broker_url if broker == "redis" else "rpc://"
    own_queue = queue is None
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    worker_env = {
        **os.environ,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": backend,
        "DATABASE_URL": test_database_url(),
        "PLATFORM_DATA_DIR": str(tmp_path),
        **(env or {}),
    }
    # A node name of its own: RabbitMQ gives each node's control (pidbox) queue to one connection only, so two
    # workers of one name (two on a shared queue, or another test run on the machine) cannot both start.
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "healthplatform", "worker", "--pool=solo", "-Q", queue,
         "-n", f"{uuid.uuid4().hex[:8]}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel=WARNING"],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    # Not the current app: the platform's shared tasks (.delay) must keep running through the platform's own app.
    client = Celery("test-client", broker=broker_url, backend=backend, set_as_current=False)
    worker = Worker(client, queue, process)
    try:
        yield worker
    finally:
        if process.poll() is None:
            process.terminate()
        text, _ = process.communicate(timeout=30)
        worker.output.append((text or "")[-3000:])
        if broker == "rabbitmq" and own_queue:
            with client.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)
        client.close()


@contextlib.contextmanager
def celery_worker(broker: str, tmp_path: Path, env: dict[str, str] | None = None):
    """Starts ``celery -A healthplatform worker`` on a queue of its own; yields (client, queue, output).

    ``output`` is a list the worker's console output is appended to when it stops: the worker's own
    words explain a timeout better than the timeout does.
    """
    with celery_worker_process(broker, tmp_path, env) as worker:
        yield worker.client, worker.queue, worker.output
