"""Guessing a clinician's (or an administrator's) password: both password logins go through the source systems'
throttle of failed authentications per address (healthplatform.login_throttle). Failed before its fix (branch
attack16): a thousand guesses were a thousand password checks."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.viewer.scenario import PASSWORD

pytestmark = pytest.mark.django_db
LOGINS = {"viewer": ("/viewer/login/", "doctor_a"), "admin": ("/admin/login/", "root")}


@pytest.mark.usefixtures("region")
@pytest.mark.parametrize("login", LOGINS)
def test_an_address_that_keeps_failing_is_refused_even_the_right_password(settings, login):
    settings.AUTH_FAILURES_MAX = 3
    url, username = LOGINS[login]
    if login == "admin":
        get_user_model().objects.create_superuser(username, password=PASSWORD)
    attacker = Client()
    for guess in ("123456", "password", "doctor_a1"):
        response = attacker.post(url, {"username": username, "password": guess})
        assert response.status_code == 200 and "_auth_user_id" not in attacker.session
    response = attacker.post(url, {"username": username, "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in attacker.session
    if login == "viewer":
        assert "该地址登录失败次数过多" in response.content.decode()  # the reason, in the viewer's language
    # Another address is not locked out (counted per address, never per username).
    elsewhere = Client(REMOTE_ADDR="10.0.0.7")
    assert elsewhere.post(url, {"username": username, "password": PASSWORD}).status_code == 302
