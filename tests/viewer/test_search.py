"""Finding a resident: by health card number, by resident identity number, by name and birth date; several
matches are listed (never guessed), none says so; what the clinician typed reaches no log."""

from __future__ import annotations

import logging

from healthplatform.audit.models import AccessEvent
from tests.viewer.scenario import BIRTH, WANG_CARD, WANG_ID, ZHANG_BIRTH, ZHANG_IDS


def search(client, **data):
    return client.post("/viewer/search/", data)


def test_the_search_page_is_a_form_posted_with_its_csrf_token(doctor):
    page = doctor.get("/viewer/search/").content.decode()

    assert 'method="post"' in page
    assert "csrfmiddlewaretoken" in page


def test_a_health_card_number_finds_the_resident(doctor, region):
    response = search(doctor, by="health_card", number=WANG_CARD)

    page = response.content.decode()
    assert page.count('class="result"') == 1
    assert f"/viewer/patient/{region.wang}/" in page
    assert "known at your institution" in _en(doctor, by="health_card", number=WANG_CARD)


def test_a_resident_identity_number_finds_the_resident_and_shows_it_masked(doctor, region):
    page = search(doctor, by="resident_id", number=WANG_ID.lower()).content.decode()

    assert page.count('class="result"') == 1
    assert f"/viewer/patient/{region.wang}/" in page
    listed = page[page.index('id="results"') :]
    assert WANG_ID not in listed
    assert WANG_ID[:4] + "*" * 10 + WANG_ID[-4:] in listed


def test_a_name_and_birth_date_find_the_resident(doctor, region):
    page = search(doctor, by="name", name="王小明", birth_date=BIRTH.isoformat()).content.decode()

    assert page.count('class="result"') == 1
    assert f"/viewer/patient/{region.wang}/" in page


def test_namesakes_born_on_one_day_are_listed_never_guessed(doctor, region):
    response = search(doctor, by="name", name="张伟", birth_date=ZHANG_BIRTH.isoformat())

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('class="result"') == 2
    assert 'id="ambiguous"' in page
    for person in region.zhangs:
        assert f"/viewer/patient/{person}/" in page
    known = _en(doctor, by="name", name="张伟", birth_date=ZHANG_BIRTH.isoformat())
    assert "known at your institution" in known and "needs a reason" in known


def test_nothing_found_says_so(doctor, region):
    page = search(doctor, by="health_card", number="HC99999999999").content.decode()

    assert 'id="no-results"' in page
    assert 'class="result"' not in page


def test_a_mistyped_identity_number_is_refused_with_the_reason(doctor, region):
    wrong = WANG_ID[:17] + ("0" if WANG_ID[17] != "0" else "1")

    page = search(doctor, by="resident_id", number=wrong).content.decode()

    assert "check character" in page
    assert 'id="results"' not in page


def test_a_name_alone_is_not_enough(doctor, region):
    page = search(doctor, by="name", name="张伟").content.decode()

    assert 'id="results"' not in page
    assert 'class="errorlist"' in page


def test_the_residents_listed_are_recorded_as_found_in_a_search(doctor, region):
    search(doctor, by="name", name="张伟", birth_date=ZHANG_BIRTH.isoformat())

    rows = AccessEvent.objects.filter(action="search-type")
    assert {str(r.person.uuid) for r in rows} == set(region.zhangs)
    assert {r.actor for r in rows} == {"doctor_a"}


def test_nothing_a_clinician_types_reaches_any_log(doctor, region, caplog):
    caplog.set_level(logging.DEBUG)
    search(doctor, by="resident_id", number=ZHANG_IDS[0])
    search(doctor, by="name", name="张伟", birth_date=ZHANG_BIRTH.isoformat())
    search(doctor, by="health_card", number="HC99999999999")
    doctor.get(f"/viewer/patient/{region.wang}/")

    logged = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    for typed in (ZHANG_IDS[0], "张伟", ZHANG_BIRTH.isoformat(), "HC99999999999", WANG_ID, "王小明"):
        assert typed not in logged


def _en(client, **data) -> str:
    return client.post("/viewer/search/", data, HTTP_ACCEPT_LANGUAGE="en").content.decode()
