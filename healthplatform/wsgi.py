"""WSGI entry point (gunicorn healthplatform.wsgi)."""

import gc
import os

import django
from django.core.signals import request_finished, request_started

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
# What get_wsgi_application() does, with the platform's request class: a declared charset that is no
# character set is dropped, the query string is UTF-8 (healthplatform/request_charset.py; issue 18, attack).
django.setup(set_prefix=False)
from healthplatform.request_charset import PlatformWSGIHandler  # noqa: E402  (needs the settings)

application = PlatformWSGIHandler()

# After which of a worker's requests what they left alive is frozen too (see late_objects_freeze).
FREEZE_AFTER_REQUESTS = frozenset({1, 10, 100, 1000})


def startup_objects_freeze() -> None:
    """Moves every object alive now — the modules, settings, URL patterns and models the import made, which live
    as long as the worker — out of reach of the cyclic garbage collector (``gc.freeze``). A full collection walks
    every tracked object: on the patient page of a large record (100,000 objects made and dropped per request)
    one request in ten paid for a walk of the 300,000 the import left, and the page's p95 was twice its p50
    (bench/viewer_speed.py: 280 -> 175 ms at a p50 of 140). Each gunicorn worker imports this module (no
    ``--preload``), so each freezes its own."""
    gc.collect()
    gc.freeze()


class _LateObjectsFreeze:
    """Freezes, after the worker's 1st, 10th, 100th and 1,000th request, what the requests left alive: the
    modules imported on first use (``fhir.resources``' models, pygments' lexers), compiled templates,
    translation catalogues, the registry's caches. They are as long-lived as the import's objects, and after
    the first patient page 54,000 of them sat in the oldest generation: every full collection (one page in
    eight) walked them, 17-20 ms of a 80 ms page (bench/viewer_speed.py, alternating: p95 96 -> 80 ms).
    The freeze runs when the next request starts (``request_started``, before its request is made), not when
    the counted one finishes: at ``request_finished`` that request is still alive (its response holds it), and
    a request is garbage in cycles (its lazy user, its session) that only the collector frees — frozen, the
    1st and the 10th request, their environ, session and form data, stayed until the worker restarted. The
    collection (10-20 ms) so delays the answer of four requests in a worker's life. An object frozen is never
    collected: what a cache drops later (a few kB) stays until the worker restarts."""

    def __init__(self) -> None:
        self.requests = 0
        self.due = False

    def finished(self, **_kwargs) -> None:
        self.requests += 1
        if self.requests in FREEZE_AFTER_REQUESTS:
            self.due = True

    def started(self, **_kwargs) -> None:
        if self.due:
            self.due = False
            startup_objects_freeze()


late_objects_freeze = _LateObjectsFreeze()
startup_objects_freeze()
request_finished.connect(late_objects_freeze.finished, dispatch_uid="healthplatform.wsgi.late_objects_freeze")
request_started.connect(late_objects_freeze.started, dispatch_uid="healthplatform.wsgi.late_objects_freeze_due")
