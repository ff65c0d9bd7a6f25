"""Nothing acknowledged is lost: the MLLP listener (``manage.py runmllp``, a real process) is killed with
SIGKILL while senders are sending, and restarted; afterwards every message a sender got an AA for is in the
inbox, once — the ones in flight at the kill were never acknowledged, and their resends were stored once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.hl7v2.mllp import MLLPDecoder, frame_encode
from healthplatform.ingest.models import InboxMessage
from tests.celery_worker import test_database_url
from tests.fhirapi.client import register_feed
from tests.ingest.test_mllp_listener import adt

ROOT = Path(__file__).resolve().parents[2]
SENDERS, MESSAGES = 6, 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int, tmp_path: Path) -> subprocess.Popen:
    """A listener process, returned once it says it listens (its log line, not a connection: with another
    listener on the port, a connection would prove nothing about this one)."""
    env = {**os.environ, "DATABASE_URL": test_database_url(), "PLATFORM_DATA_DIR": str(tmp_path), "LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runmllp", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    listening = threading.Event()

    def drain() -> None:  # read the log to its end, or the process would block on a full pipe
        for line in process.stderr:
            if "MLLP listener on" in line:
                listening.set()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 60
    while not listening.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the listener did not start (the port taken?)")
    return process


def _sender(port: int, n: int, acked: list, stop: threading.Event) -> None:
    """Sends its messages one at a time; on a broken connection reconnects and resends the one in flight, as
    an MLLP sender does."""
    i, sock, decoder = 0, None, MLLPDecoder()
    while i < MESSAGES and not stop.is_set():
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                decoder = MLLPDecoder()
            control_id = f"R-{n}-{i}"
            sock.sendall(frame_encode(adt(control_id)))
            answer = None
            while answer is None:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                for event in decoder.feed(data):
                    answer = message_parse(event.payload)
            msa = answer.segment("MSA")
            if msa.value(1) == "AA" and msa.value(2) == control_id:
                acked.append(control_id)
                i += 1
        except OSError:
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.05)
    if sock is not None:
        sock.close()


@pytest.mark.django_db(transaction=True)
def test_every_message_acknowledged_before_a_sigkill_of_the_listener_is_in_the_inbox_once(tmp_path):
    register_feed(name="HIS-A", facility="HOSP-A")
    port = _free_port()
    listener = _start(port, tmp_path)
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(port, n, acked, stop)) for n in range(SENDERS)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acked) < SENDERS * MESSAGES // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        listener.send_signal(signal.SIGKILL)  # no shutdown: whatever was in flight is cut off
        listener.wait(10)
        before_kill = list(acked)
        listener = _start(port, tmp_path)
        for thread in threads:
            thread.join(120)
    finally:
        stop.set()
        listener.terminate()
        listener.wait(30)
    assert len(before_kill) >= SENDERS * MESSAGES // 3
    assert len(acked) == SENDERS * MESSAGES, "every sender got through after the restart"
    stored = list(InboxMessage.objects.values_list("control_id", flat=True))
    assert set(acked) <= set(stored), "an acknowledged message is missing from the inbox"
    assert len(stored) == len(set(stored)), "a resent message was stored twice"


@pytest.mark.django_db(transaction=True)
def test_two_listeners_share_one_port_and_one_carries_on_when_the_other_is_killed(tmp_path):
    # SO_REUSEPORT: a host runs as many listener processes as it has cores on the one port hospitals know, and
    # replaces them one at a time without refusing a connection.
    register_feed(name="HIS-A", facility="HOSP-A")
    port = _free_port()
    first, second = _start(port, tmp_path), _start(port, tmp_path)
    acked: list[str] = []
    give_up = threading.Event()  # a sender with no listener left would retry for ever
    timer = threading.Timer(60, give_up.set)
    timer.start()
    try:
        _sender(port, 0, acked, give_up)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        _sender(port, 1, acked, give_up)
    finally:
        timer.cancel()
        for listener in (first, second):
            if listener.poll() is None:
                listener.terminate()
                listener.wait(30)
    assert len(acked) == 2 * MESSAGES
    assert set(acked) <= set(InboxMessage.objects.values_list("control_id", flat=True))
