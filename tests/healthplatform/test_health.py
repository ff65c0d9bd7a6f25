"""The health endpoint and the in-process (eager) task mode of the laptop defaults."""

import pytest
from django.conf import settings

from healthplatform.tasks import health_check
from tests.registry.factories import InstitutionFactory

pytestmark = pytest.mark.django_db


def test_healthz_reports_ok_and_counts_without_internal_details(client):
    InstitutionFactory()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "registry": {"institutions": 1, "practitioners": 0, "source_systems": 0, "concepts": 0},
    }


@pytest.mark.skipif(not settings.CELERY_TASK_ALWAYS_EAGER, reason="a broker is configured: tasks are not eager")
def test_without_a_broker_tasks_run_in_process():
    InstitutionFactory()
    result = health_check.delay()
    assert result.get(timeout=1)["tasks"] == "in-process"
    assert result.get()["registry"]["institutions"] == 1
