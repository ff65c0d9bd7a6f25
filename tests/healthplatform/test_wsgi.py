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
    # frozen after it; the next freeze is after the 10th.
    script = (
        "import gc, healthplatform.wsgi as w\n"
        "from django.test import Client\n"
        "c = Client(); counts = [gc.get_freeze_count()]\n"
        "for n in range(10):\n"
        "    c.get('/healthz'); counts.append(gc.get_freeze_count())\n"
        "print(w.late_objects_freeze.requests, *counts)\n"
    )
    env = {**os.environ, "PLATFORM_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "healthplatform.settings"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    requests, *counts = (int(v) for v in out.stdout.split())
    assert requests == 10
    # counts[n] is the count after n requests: it grows after the 1st and the 10th, and not between (a frozen
    # object freed by its last reference leaves the count, so between freezes it may fall).
    assert counts[1] > counts[0] and counts[10] > counts[9]
    assert all(later <= earlier for earlier, later in itertools.pairwise(counts[1:10])), counts
