#!/usr/bin/env python3
"""The two commands of the README, for a machine with only Python 3.11 and pip.

    python3 dev.py run     set up, load a synthetic region, run the platform on http://127.0.0.1:8000
    python3 dev.py test    set up and run the test suite (extra arguments go to pytest)

Set-up is the same for both: a virtual environment in .venv with the exact
versions of constraints.txt (reinstalled only when pyproject.toml or
constraints.txt change), then the database migrations. ``run`` also loads the
demo residents (``manage.py seed_demo``) and prints the clinicians' logins.
``run`` serves the web on one port and HL7 v2 over MLLP on another (``manage.py
runmllp``, which also drains the inbox it fills), and replays a day of the
region's HL7 v2 traffic into it in the background (``manage.py hl7_feed``).
``run --smoke`` is the non-interactive form CI uses: it starts the platform on a
fresh SQLite database, seeds a small region and the demo, replays a small day,
checks that it answers and that the messages arrived and are processed, and stops.
"""

from __future__ import annotations

import argparse
import hashlib
import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


# The first demo resident (fixtures.demo.RESIDENTS), whom the smoke test looks up.
DEMO_RESIDENT, DEMO_HEALTH_CARD = "陈建国", "4401069900000001"

# Our own localhost: never through an http_proxy the environment may set.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd: list, **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def ensure_venv() -> None:
    """Creates .venv and installs the pinned dependencies when they changed."""
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"Python 3.11 is needed (this is {sys.version.split()[0]}): run dev.py with python3.11")
    if not PY.exists():
        say("creating the virtual environment in .venv")
        try:
            run([sys.executable, "-m", "venv", VENV])
        except subprocess.CalledProcessError:
            # Some distributions ship Python without the venv module's pip;
            # virtualenv from PyPI does the same job.
            shutil.rmtree(VENV, ignore_errors=True)
            run([sys.executable, "-m", "pip", "install", "--user", "--quiet", "virtualenv"])
            run([sys.executable, "-m", "virtualenv", "--quiet", VENV])
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    ).hexdigest()
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    say("installing dependencies (pinned by constraints.txt)")
    run([PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([PY, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[dev,deploy]"])
    stamp.write_text(wanted)


def manage(*args, env=None) -> None:
    run([PY, "manage.py", *args], env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage_output(*args, env: dict) -> str:
    """Runs a management command and returns what it printed (exits with its errors if it fails)."""
    result = subprocess.run([str(PY), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr.strip() or result.stdout.strip())
    return result.stdout.strip()


def prepare(env: dict, seed_args: list[str]) -> tuple[str, list[str]]:
    """Migrates, seeds the region if empty, loads the demo residents (what is not loaded yet), and returns the
    demo admin's credentials line and the clinicians' login lines."""
    say("applying database migrations")
    manage("migrate", "--no-input", "-v", "0", env=env)
    say("loading the synthetic region (first run only)")
    manage("seed_region", "--if-empty", *seed_args, env=env)
    say("loading the demo residents through the FHIR API (what is not loaded yet)")
    demo = manage_output("seed_demo", env=env).splitlines()
    for line in demo:
        if not line.startswith("Clinician login"):
            print(f"    {line}", flush=True)
    clinicians = [line for line in demo if line.startswith("Clinician login")]
    return manage_output("demo_admin", env=env), clinicians


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    """Waits until something accepts connections on ``port`` (the MLLP listener is up)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the MLLP listener stopped (exit code {process.returncode}) before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the MLLP listener did not listen on port {port} within {timeout:.0f}s")
        time.sleep(0.3)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the web server stopped (exit code {server.returncode}) before answering {url}")
        try:
            with DIRECT.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the platform did not answer {url} within {timeout:.0f}s")
        time.sleep(0.3)


def smoke_check(base: str, username: str, password: str, clinicians: list[str]) -> None:
    """Logs in to the admin like a person would and opens the institution list."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/admin/login/") as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
    ).encode()
    login = urllib.request.Request(f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"})
    with opener.open(login) as response:
        if "/admin/login/" in response.geturl():
            raise SystemExit("smoke test: the demo admin could not log in")
    with opener.open(f"{base}/admin/registry/institution/") as response:
        body = response.read().decode()
    rows = len(re.findall(r'<th class="field-name">', body))
    if rows == 0:
        raise SystemExit("smoke test: the institution list shows no institutions")
    # The seeded duplicates leave possible matches for review; the queue must list them.
    with opener.open(f"{base}/admin/mpi/reviewitem/") as response:
        reviews = response.read().decode().count('class="review-link"')
    if reviews == 0:
        raise SystemExit("smoke test: the MPI review queue is empty after seeding")
    # The demo residents came in through the FHIR API; the first is found by health card (README, "The demo").
    with opener.open(f"{base}/admin/mpi/person/?q={DEMO_HEALTH_CARD}") as response:
        if DEMO_RESIDENT not in response.read().decode():
            raise SystemExit(f"smoke test: the demo resident {DEMO_RESIDENT} is not in the index")
    if len(clinicians) < 2:
        raise SystemExit("smoke test: the demo made fewer than two clinician logins")
    # The replayed HL7 v2 day is in the inbox, and the listener's drain has processed some of it (messages of
    # types not mapped yet are parked, which is processing too).
    inbox = f"{base}/admin/ingest/inboxmessage/"
    with opener.open(inbox) as response:
        arrived = response.read().decode().count('class="field-control_id"')
    if arrived == 0:
        raise SystemExit("smoke test: no HL7 v2 message arrived in the inbox")
    deadline = time.monotonic() + 180
    while True:
        with opener.open(f"{inbox}?status__exact=processed") as response:
            processed = response.read().decode().count('class="field-control_id"')
        if processed:
            break
        if time.monotonic() > deadline:
            raise SystemExit("smoke test: HL7 v2 messages arrived but none was processed within 180s")
        time.sleep(1)
    say(
        f"smoke test passed: /healthz answered, the demo admin logged in, listed {rows} institutions "
        f"and {reviews} possible duplicate residents to review, found the demo resident {DEMO_RESIDENT}; "
        f"{len(clinicians)} clinician logins; HL7 v2 messages in the inbox, processed ones among the first page "
        f"({processed})"
    )


def cmd_run(args) -> None:
    ensure_venv()
    env = dict(os.environ)
    if args.smoke:
        data_dir = tempfile.mkdtemp(prefix="healthplatform-smoke-")
        env.update({"PLATFORM_DATA_DIR": data_dir, "DEBUG": "true"})
        env.pop("DATABASE_URL", None)
        env.pop("CELERY_BROKER_URL", None)
        seed_args = ["--institutions", "20", "--physicians", "40", "--nurses", "60", "--pharmacists", "5",
                     "--technicians", "5", "--residents", "200"]  # fmt: skip
        port, feed_residents = free_port(), "30"
    else:
        seed_args = []
        port, feed_residents = args.port, "200"
    mllp_port = args.mllp_port if not args.smoke and port_free(args.mllp_port) else free_port()
    credentials, clinicians = prepare(env, seed_args)
    base = f"http://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []

    def start(*command: str) -> subprocess.Popen:
        process = subprocess.Popen([str(PY), "manage.py", *command], cwd=ROOT, env=env)
        processes.append(process)
        return process

    # The web server; beside it the MLLP listener, which also starts the processing of what it stores: with a
    # broker set, one inbox_drain task per commit for the Celery workers; without one (the laptop set-up, Celery
    # eager) a drain thread inside the listener's process. That thread rather than an ``inbox_process --follow``
    # beside it: on SQLite every process that writes queues for the one write lock, and a drain woken by the
    # listener's own commits is one writer fewer than a poller and never polls an idle inbox.
    server = start("runserver", f"127.0.0.1:{port}", *(["--noreload"] if args.smoke else []))
    listener = start("runmllp", "--port", str(mllp_port))
    try:
        wait_for(f"{base}/healthz", server)
        wait_for_port(mllp_port, listener)
        # The demo day of HL7 v2 traffic, replayed in the background once the listener is up.
        feed = start("hl7_feed", "--port", str(mllp_port), "--residents", feed_residents, "--connections", "4")
        logins = "".join(f"  {line}\n" for line in clinicians)
        worker = (
            "  With CELERY_BROKER_URL set the messages wait for a worker: .venv/bin/celery -A healthplatform worker\n"
            if env.get("CELERY_BROKER_URL")
            else ""
        )
        print(
            f"\n  Platform: {base}/admin/\n  {credentials}\n{logins}"
            '  The demo residents to open, and the alerts each shows: README.md, "The demo".\n'
            f"  HL7 v2 over MLLP: 127.0.0.1:{mllp_port}; a day of the region's traffic is being replayed into it.\n"
            f"  Feed monitor (the inbox): {base}/admin/ingest/inboxmessage/\n{worker}",
            flush=True,
        )
        if args.smoke:
            if feed.wait(timeout=300):
                raise SystemExit(f"smoke test: the HL7 v2 replay failed (exit code {feed.returncode})")
            user, password = re.search(r"user (\S+) password (\S+)", credentials).groups()
            smoke_check(base, user, password, clinicians)
            return
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        if args.smoke:
            shutil.rmtree(env["PLATFORM_DATA_DIR"], ignore_errors=True)


def cmd_test(args) -> None:
    ensure_venv()
    result = subprocess.run([str(PY), "-m", "pytest", *args.pytest_args], cwd=ROOT)
    sys.exit(result.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="set up and run the platform with a synthetic region")
    p_run.add_argument("--port", type=int, default=8000)
    p_run.add_argument("--mllp-port", type=int, default=2575, help="the MLLP listener's port (a free one if taken)")
    p_run.add_argument("--smoke", action="store_true", help="start on a fresh database, check, stop (CI)")
    p_run.set_defaults(func=cmd_run)
    p_test = sub.add_parser("test", help="set up and run the tests; extra arguments go to pytest")
    p_test.set_defaults(func=cmd_test)
    args, extra = parser.parse_known_args()
    if extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    args.func(args)


if __name__ == "__main__":
    main()
