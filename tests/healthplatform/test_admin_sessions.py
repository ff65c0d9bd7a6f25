"""The admin's accounts and sessions (issue 18, "Throttling and sessions"): a session lasts a working day and
its cookie dies with the browser; the local demo's administrator cannot log in when the same database runs in
production, and ``check --deploy`` says so."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-administrator-password"


def admin_login(username: str, password: str) -> tuple[Client, object]:
    client = Client()
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    return client, response


def test_an_admin_session_lasts_a_working_day_and_its_cookie_ends_with_the_browser():
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    client, response = admin_login("root", PASSWORD)

    assert response.status_code == 302 and "_auth_user_id" in client.session
    cookie = response.cookies["sessionid"]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # a browser-session cookie
    assert cookie["httponly"] is True
    assert client.session.get_expiry_age() == 10 * 3600  # and the server forgets it after 10 h at most


@pytest.fixture
def demo_admin(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    out = StringIO()
    call_command("demo_admin", stdout=out)
    username, password = re.search(r"user (\S+) password (\S+)", out.getvalue()).groups()
    return username, password


def test_the_demo_administrator_cannot_log_in_in_production(demo_admin, settings):
    username, password = demo_admin
    earlier, response = admin_login(username, password)
    assert response.status_code == 302  # the local demo, as dev.py runs it

    settings.PRODUCTION = True  # the same database, started with PLATFORM_ENV=production
    client, response = admin_login(username, password)

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    # A session the development run left is no way in either.
    assert earlier.get("/admin/").status_code == 302
    # A real administrator still logs in.
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    assert admin_login("root", PASSWORD)[1].status_code == 302


def test_check_deploy_reports_an_active_demo_administrator_as_an_error(demo_admin):
    errors = [m for m in run_checks(include_deployment_checks=True) if m.id == "healthplatform.E001"]
    assert len(errors) == 1 and demo_admin[0] in errors[0].msg and errors[0].is_serious()

    get_user_model().objects.filter(username=demo_admin[0]).update(is_active=False)
    assert not [m for m in run_checks(include_deployment_checks=True) if m.id == "healthplatform.E001"]
