"""The WSGI entry point a gunicorn worker imports: the application, and the import's objects frozen out of the
garbage collector's passes (healthplatform/wsgi.py says why)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_importing_the_entry_point_has_the_application_and_its_startup_objects_frozen(tmp_path):
    script = (
        "import gc; before = gc.get_freeze_count(); import healthplatform.wsgi as w; "
        "print(callable(w.application), before, gc.get_freeze_count())"
    )
    env = {**os.environ, "PLATFORM_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "healthplatform.settings"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    ready, before, after = out.stdout.split()
    assert ready == "True" and int(before) == 0 and int(after) > 10_000


def test_what_a_workers_first_requests_leave_alive_is_frozen_after_the_1st_and_10th_not_between(tmp_path):
    # The first request leaves what it made on first use (URL resolver caches, the middleware's modules):
    # frozen as the 2nd starts (the 1st gone by then); the next freeze is as the 11th starts.
    script = (
        "import gc, healthplatform.wsgi as w\n"
        "from django.test import Client\n"
        "c = Client(); counts = [gc.get_freeze_count()]\n"
        "for n in range(11):\n"
        "    c.get('/healthz'); counts.append(gc.get_freeze_count())\n"
        "print(w.late_objects_freeze.requests, *counts)\n"
    )
    env = {**os.environ, "PLATFORM_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "healthplatform.settings"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    requests, *counts = (int(v) for v in out.stdout.split())
    assert requests == 11
    # counts[n] is the count after n requests: it grows in the 2nd and the 11th, and not between (a frozen
    # object freed by its last reference leaves the count, so between freezes it may fall).
    assert counts[2] > counts[1] and counts[11] > counts[10]
    assert all(later <= earlier for earlier, later in itertools.pairwise(counts[2:11])), counts


def test_the_requests_a_freeze_follows_are_not_frozen_with_it(tmp_path):
    # A request is garbage in cycles (its lazy user, its session) that only the collector frees: frozen with what
    # the worker's first requests left alive, the 1st and the 10th request — their environ, session and form
    # data, a clinician's typed resident numbers — stayed in the worker's memory until it restarted.
    script = (
        "import gc, weakref, healthplatform.wsgi as w\n"
        "from django.core.handlers.wsgi import WSGIRequest\n"
        "from django.test.client import RequestFactory\n"
        "made, init = [], WSGIRequest.__init__\n"
        "def tracked(self, *a, **k):\n"
        "    init(self, *a, **k); made.append(weakref.ref(self))\n"
        "WSGIRequest.__init__ = tracked\n"
        "for n in range(12):\n"
        "    environ = RequestFactory()._base_environ(PATH_INFO='/viewer/login/', REQUEST_METHOD='GET')\n"
        "    response = w.application(environ, lambda *args: None)\n"
        "    b''.join(response); response.close(); del response\n"
        "gc.collect()\n"
        "print(len(made), *[n + 1 for n, ref in enumerate(made) if ref() is not None])\n"
    )
    env = {**os.environ, "PLATFORM_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "healthplatform.settings"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    made, *alive = (int(v) for v in out.stdout.split())
    assert made == 12 and alive == [], f"requests still alive: {alive}"
