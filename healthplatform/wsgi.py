"""WSGI entry point (gunicorn healthplatform.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
application = get_wsgi_application()


def startup_objects_freeze() -> None:
    """Moves every object alive now — the modules, settings, URL patterns and models the import made, which live
    as long as the worker — out of reach of the cyclic garbage collector (``gc.freeze``). A full collection walks
    every tracked object: on the patient page of a large record (100,000 objects made and dropped per request)
    one request in ten paid for a walk of the 300,000 the import left, and the page's p95 was twice its p50
    (bench/viewer_speed.py: 280 -> 175 ms at a p50 of 140). Each gunicorn worker imports this module (no
    ``--preload``), so each freezes its own."""
    gc.collect()
    gc.freeze()


startup_objects_freeze()
