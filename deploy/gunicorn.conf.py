"""gunicorn's configuration for the web process: ``gunicorn -c deploy/gunicorn.conf.py healthplatform.wsgi``.

The one place gunicorn is configured (deploy/Procfile, deploy/compose.yaml and the tests start it with this
file); every value is read from the environment, so a deployment sets variables, not flags.

Logs (issue 18): no patient data. The access line names the path, never the query string — search parameters
are patient data (``Patient?identifier=…``, PIXm's ``sourceIdentifier``), as is a viewer URL's ``next=`` in a
Referer — so the format uses ``%(U)s`` (the path alone), not ``%(r)s`` (the request line) or ``%(q)s``, and no
``%(f)s``. Both of gunicorn's logs pass the platform's filter (healthplatform/log_redaction.py): exception
messages reduced to their class and a database error's SQLSTATE and constraint, client-typed runs of a path
masked.
"""

import os
import sys
from pathlib import Path

from gunicorn.glogging import Logger

# The config is loaded before the application, from wherever gunicorn was started.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from healthplatform.log_redaction import PatientDataFilter


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name}: expected at least {minimum}, got {value}")
    return value


bind = [f"0.0.0.0:{_int('PORT', 8000)}"]
workers = _int("WEB_CONCURRENCY", 4)
# A worker silent for this long is killed and replaced; a request's own limits (a Bundle's) stay below it.
timeout = _int("GUNICORN_TIMEOUT", 60)
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Who, what path, status, bytes, milliseconds, and the request id a load balancer sets; never the query.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms %({x-request-id}i)s'


class PlatformLogger(Logger):
    """gunicorn's logger with the platform's patient-data filter on each of its handlers."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, PatientDataFilter) for f in handler.filters):
                    handler.addFilter(PatientDataFilter())


logger_class = PlatformLogger
