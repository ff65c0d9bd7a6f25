"""Who may log in to the viewer: a clinician whose practitioner registration is valid today at an institution
that may practise; nobody else (each refused with a reason they can act on)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from registry.models import Practitioner
from tests.viewer.scenario import PASSWORD


def login(client, username: str, password: str = PASSWORD):
    return client.post("/viewer/login/", {"username": username, "password": password})


def test_a_clinician_logs_in_and_lands_on_the_search(client, region):
    response = login(client, "doctor_a")

    assert response.status_code == 302
    assert response["Location"] == "/viewer/search/"
    page = client.get("/viewer/search/")
    assert page.status_code == 200
    assert "陈医生 · 市第一人民医院" in page.content.decode()


def test_a_clinician_whose_registration_expired_cannot_log_in(client, region):
    response = login(client, "expired_a")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "Your practitioner registration is not valid today" in _english(client, "expired_a")


def test_a_clinician_of_an_inactive_institution_cannot_log_in(client, region):
    response = login(client, "closed")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "inactive or its licence has expired" in _english(client, "closed")


def test_an_administrator_without_a_practitioner_is_sent_to_the_admin(client, region):
    get_user_model().objects.create_superuser("root", password=PASSWORD)

    response = login(client, "root")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "/admin/" in response.content.decode()


def test_a_wrong_password_is_refused(client, region):
    response = login(client, "doctor_a", "not-the-password")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_a_registration_that_expires_during_the_session_locks_the_viewer_at_the_next_page(doctor, region):
    Practitioner.objects.filter(user=region.users.doctor_a).update(valid_until=dt.date.today() - dt.timedelta(days=1))

    response = doctor.get("/viewer/search/")

    assert response.status_code == 302
    assert response["Location"] == "/viewer/login/"
    assert "_auth_user_id" not in doctor.session


@pytest.mark.parametrize(
    "path",
    [
        "/viewer/search/",
        "/viewer/patient/{wang}/",
        "/viewer/patient/{wang}/reason/",
        "/viewer/patient/{wang}/fact/Observation/{glucose}/",
        "/viewer/patient/{wang}/document/{pdf}/",
    ],
)
def test_an_anonymous_request_to_a_viewer_page_goes_to_the_login(client, region, path):
    url = path.format(wang=region.wang, glucose=region.facts.glucose[0], pdf=region.documents.pdf)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/viewer/login/?next=")


def test_an_anonymous_request_for_a_document_content_is_refused(client, region):
    response = client.get(f"/viewer/patient/{region.wang}/document/{region.documents.pdf}/content")

    assert response.status_code == 403


def test_every_form_needs_its_csrf_token(region):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert login(strict, "doctor_a").status_code == 403
    strict.force_login(region.users.doctor_a)
    for path in ("/viewer/search/", f"/viewer/patient/{region.li}/reason/", "/viewer/logout/", "/viewer/language/"):
        assert strict.post(path, {}).status_code == 403, path


def _english(client, username: str) -> str:
    """The login page's refusal in English (the page is in Chinese by default)."""
    response = client.post("/viewer/login/", {"username": username, "password": PASSWORD}, HTTP_ACCEPT_LANGUAGE="en")
    return response.content.decode()
