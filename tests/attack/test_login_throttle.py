"""Guessing a clinician's (or an administrator's) password: django-axes locks the (username, address) pair out
of both password logins (healthplatform.login_throttle). Issue 18: 30 wrong admin passwords, then the right one,
logged in; and the per-address count let one attacker behind a NAT lock every clinician there out."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.viewer.scenario import PASSWORD

pytestmark = pytest.mark.django_db
LOGINS = {"viewer": ("/viewer/login/", "doctor_a"), "admin": ("/admin/login/", "root")}
HOSPITAL_NAT = "203.0.113.9"


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def login(request, region):
    url, username = LOGINS[request.param]
    if request.param == "admin":
        get_user_model().objects.create_superuser(username, password=PASSWORD)
        get_user_model().objects.create_superuser("root2", password=PASSWORD)
    return url, username


@pytest.mark.parametrize("login", LOGINS, indirect=True)
def test_thirty_wrong_passwords_lock_the_user_out_at_that_address_even_with_the_right_one(login, caplog):
    url, username = login
    attacker = Client(REMOTE_ADDR=HOSPITAL_NAT)
    with caplog.at_level(logging.INFO):
        for n in range(30):
            response = attacker.post(url, {"username": username, "password": f"guess-{n}"})
            assert response.status_code in (200, 429) and not logged_in(attacker)
        response = attacker.post(url, {"username": username, "password": PASSWORD})

    assert not logged_in(attacker)
    # The login page again, saying why in the user's language (zh-hans), as 429 with Retry-After: not a 403 page.
    assert response.status_code == 429 and response["Retry-After"] == "900"
    assert "该用户从此地址登录失败次数过多：请 15 分钟后再试。" in response.content.decode()
    assert 'name="username"' in response.content.decode()
    # The lockout is logged, naming the user and the address, never a password tried.
    lockouts = [r.getMessage() for r in caplog.records if "Locking out" in r.getMessage()]
    assert lockouts and username in lockouts[0] and HOSPITAL_NAT in lockouts[0]
    assert not any("guess-" in r.getMessage() or PASSWORD in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("login", LOGINS, indirect=True)
def test_a_locked_out_pair_does_not_lock_out_the_user_elsewhere_nor_colleagues_behind_the_same_address(login):
    url, username = login
    attacker = Client(REMOTE_ADDR=HOSPITAL_NAT)
    for n in range(25):  # past the old per-address limit (20) too
        attacker.post(url, {"username": username, "password": f"guess-{n}"})

    elsewhere = Client(REMOTE_ADDR="198.51.100.4")
    assert elsewhere.post(url, {"username": username, "password": PASSWORD}).status_code == 302
    assert logged_in(elsewhere)
    colleague = "doctor_c" if username == "doctor_a" else "root2"
    same_nat = Client(REMOTE_ADDR=HOSPITAL_NAT)
    assert same_nat.post(url, {"username": colleague, "password": PASSWORD}).status_code == 302
    assert logged_in(same_nat)


def test_x_forwarded_for_from_an_untrusted_peer_does_not_reset_the_lockout(region):
    url, username = LOGINS["viewer"]
    for n in range(6):
        Client(REMOTE_ADDR=HOSPITAL_NAT, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}").post(
            url, {"username": username, "password": f"guess-{n}"}
        )
    retry = Client(REMOTE_ADDR=HOSPITAL_NAT, HTTP_X_FORWARDED_FOR="10.9.9.99")
    assert retry.post(url, {"username": username, "password": PASSWORD}).status_code == 429
    assert not logged_in(retry)
