"""The Celery application: configured from Django settings, tasks found in every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")

app = Celery("healthplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
