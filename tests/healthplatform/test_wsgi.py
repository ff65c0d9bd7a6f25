"""The WSGI entry point a gunicorn worker imports: the application, and the import's objects frozen out of the
garbage collector's passes (healthplatform/wsgi.py says why)."""

from __future__ import annotations

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
