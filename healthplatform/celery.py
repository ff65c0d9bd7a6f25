"""The Celery application: configured from Django settings, tasks found in every app."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")

app = Celery("healthplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _logging_as_configured(**_kwargs):
    """A worker logs through the platform's LOGGING (settings.py), which Django has applied by now: without a
    receiver of this signal Celery would install handlers of its own (the task loggers' among them), which log a
    failed task's exception text, data and all (healthplatform/log_redaction.py)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
