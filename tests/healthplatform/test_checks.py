"""Deployment checks: what `manage.py check --deploy` says about the database server."""

from __future__ import annotations

import pytest
from django.db import connection

from healthplatform.checks import autovacuum_on


@pytest.mark.django_db
def test_autovacuum_off_on_postgresql_is_a_deploy_warning_and_nothing_else_is():
    warnings = autovacuum_on()
    if connection.vendor != "postgresql":
        assert warnings == []
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        off = cursor.fetchone()[0] != "on"
    assert [w.id for w in warnings] == (["healthplatform.W001"] if off else [])


def test_the_check_is_one_of_the_deployment_checks():
    from django.core.checks.registry import registry

    assert autovacuum_on in registry.get_checks(include_deployment_checks=True)
    assert autovacuum_on not in registry.get_checks(include_deployment_checks=False)
