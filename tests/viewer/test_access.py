"""The access rule: a clinician opens a resident their institution knows; any other only with a stated reason,
recorded and marked break-the-glass in the audit, and holding for that resident for a few hours of the session."""

from __future__ import annotations

import datetime as dt

from django.test import Client

from healthplatform.audit.models import AccessEvent
from healthplatform.viewer.reasons import SESSION_KEY
from tests.viewer.scenario import PASSWORD


def reads(person: str):
    return list(AccessEvent.objects.filter(person__uuid=person).order_by("at", "pk"))


def test_a_resident_known_at_the_clinicians_institution_opens_and_the_read_is_recorded(doctor, region):
    response = doctor.get(f"/viewer/patient/{region.wang}/", REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 200
    [event] = reads(region.wang)
    assert (event.door, event.actor, event.what) == ("viewer", "doctor_a", "viewer patient page")
    assert event.institution == region.a.institution
    assert (event.break_glass, event.reason, event.client_address) == (False, "", "10.1.2.3")


def test_another_institutions_resident_needs_a_reason(doctor, region):
    response = doctor.get(f"/viewer/patient/{region.li}/")

    assert response.status_code == 302
    assert response["Location"].startswith(f"/viewer/patient/{region.li}/reason/")
    assert reads(region.li) == []
    fact = doctor.get(f"/viewer/patient/{region.li}/fact/Condition/{region.li_fact}/")
    assert fact.status_code == 302 and "/reason/" in fact["Location"]
    assert reads(region.li) == []


def test_a_stated_reason_opens_the_record_and_every_read_carries_it(doctor, region):
    form = doctor.get(f"/viewer/patient/{region.li}/reason/?next=/viewer/patient/{region.li}/")
    assert form.status_code == 200
    assert "李娜" in form.content.decode()

    response = doctor.post(
        f"/viewer/patient/{region.li}/reason/",
        {"reason": "referral", "text": "转诊单 2024-118", "next": f"/viewer/patient/{region.li}/"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/viewer/patient/{region.li}/"
    page = doctor.get(f"/viewer/patient/{region.li}/")
    assert page.status_code == 200
    assert 'id="break-glass"' in page.content.decode()
    doctor.get(f"/viewer/patient/{region.li}/fact/Condition/{region.li_fact}/")

    asked, *events = reads(region.li)
    assert (asked.what, asked.action, asked.break_glass) == ("viewer reason page", "search-type", False)
    assert [e.what for e in events] == ["viewer patient page", f"viewer fact page Condition/{region.li_fact}"]
    for event in events:
        assert (event.break_glass, event.reason, event.reason_text) == (True, "referral", "转诊单 2024-118")


def test_a_reason_needs_its_kind_and_its_explanation(doctor, region):
    response = doctor.post(f"/viewer/patient/{region.li}/reason/", {"reason": "referral", "text": ""})

    assert response.status_code == 200
    assert doctor.get(f"/viewer/patient/{region.li}/").status_code == 302
    response = doctor.post(f"/viewer/patient/{region.li}/reason/", {"reason": "curiosity", "text": "看看"})
    assert response.status_code == 200
    assert doctor.get(f"/viewer/patient/{region.li}/").status_code == 302


def test_a_reason_holds_for_one_resident_only(doctor, region):
    doctor.post(f"/viewer/patient/{region.li}/reason/", {"reason": "emergency", "text": "急诊抢救"})

    assert doctor.get(f"/viewer/patient/{region.li}/").status_code == 200
    assert doctor.get(f"/viewer/patient/{region.zhangs[1]}/").status_code == 302


def test_a_reason_expires_after_its_hours(doctor, region):
    doctor.post(f"/viewer/patient/{region.li}/reason/", {"reason": "emergency", "text": "急诊抢救"})
    session = doctor.session
    held = session[SESSION_KEY]
    held[region.li]["until"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    session[SESSION_KEY] = held
    session.save()

    assert doctor.get(f"/viewer/patient/{region.li}/").status_code == 302


def test_a_reason_does_not_survive_the_login_session(doctor, region):
    doctor.post(f"/viewer/patient/{region.li}/reason/", {"reason": "emergency", "text": "急诊抢救"})
    doctor.post("/viewer/logout/")
    doctor.post("/viewer/login/", {"username": "doctor_a", "password": PASSWORD})

    assert doctor.get(f"/viewer/patient/{region.li}/").status_code == 302


def test_a_clinician_of_an_institution_that_knows_no_one_needs_a_reason_for_everyone(client, region):
    client.post("/viewer/login/", {"username": "doctor_c", "password": PASSWORD})

    assert client.get(f"/viewer/patient/{region.wang}/").status_code == 302
    assert client.get(f"/viewer/patient/{region.wang}/document/{region.documents.pdf}/content").status_code == 403


def test_a_source_patient_id_or_merged_person_leads_to_the_persons_page(doctor, region):
    response = doctor.get(f"/viewer/patient/{region.wang_sources[1]}/")

    assert response.status_code == 302
    assert response["Location"] == f"/viewer/patient/{region.wang}/"


def test_an_unknown_resident_is_not_found(doctor, region):
    assert doctor.get("/viewer/patient/00000000-0000-7000-8000-000000000000/").status_code == 404


def test_the_page_shows_who_has_viewed_the_record(doctor, region):
    client = Client()
    client.post("/viewer/login/", {"username": "doctor_c", "password": PASSWORD})
    client.post(f"/viewer/patient/{region.wang}/reason/", {"reason": "consultation", "text": "会诊 心内科"})
    client.get(f"/viewer/patient/{region.wang}/")

    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()

    section = page[page.index('id="who-has-viewed"') :]
    assert "doctor_c" in section and "doctor_a" in section
    assert "会诊 心内科" in section
    assert "五山社区卫生服务中心" in section
