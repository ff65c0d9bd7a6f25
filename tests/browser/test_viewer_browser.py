"""The clinician viewer in a real Chromium: log in, find a resident, read the alerts and every section, see the
trend chart, open documents, switch language, be refused another institution's resident without a reason, state
one and get in, and see the read in "who has viewed this record"."""

from __future__ import annotations

import os
import re

import pytest

from tests.viewer.scenario import PASSWORD, WANG_ID, region_build

# Where the walkthrough's screenshots go (the closing note describes them); a failing test's own screenshot is
# the conftest's.
SHOTS = os.environ.get("VIEWER_SCREENSHOTS", "")


@pytest.fixture
def region(transactional_db, documents_folder):
    return region_build()


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def log_in(page, live_server, username: str = "doctor_a"):
    page.goto(f"{live_server.url}/viewer/")
    page.wait_for_url(re.compile(r"/viewer/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{live_server.url}/viewer/search/")


def test_a_clinician_finds_a_resident_and_reads_the_record_across_institutions(page, live_server, region):
    log_in(page, live_server)
    page.check("input[name=by][value=resident_id]")
    page.fill("#id_number", WANG_ID)
    page.click("#search-form button[type=submit]")
    page.click("#results a:has-text('王小明')")
    page.wait_for_url(f"{live_server.url}/viewer/patient/{region.wang}/")

    banner = page.locator("#banner")
    assert "王小明" in banner.inner_text()
    assert WANG_ID not in page.content()
    assert "市第一人民医院" in banner.inner_text() and "区中心医院" in banner.inner_text()
    assert page.locator("#alerts").is_visible()
    for section, text in [
        ("#allergies", "青霉素G"),
        ("#active_medications", "二甲双胍片"),
        ("#past_medications", "雷米普利"),
        ("#problems", "2型糖尿病"),
        ("#diagnoses", "肺炎"),
        ("#encounters", "呼吸内科住院"),
        ("#labs", "葡萄糖"),
        ("#reports", "右下肺炎症"),
        ("#documents", "出院小结"),
    ]:
        assert text in page.locator(section).inner_text(), section
    chart = page.locator("#charts svg").first
    assert chart.is_visible()
    assert chart.locator("circle").count() == 4
    assert chart.bounding_box()["width"] > 200
    shot(page, "viewer-patient-page")

    page.click("#labs a.source >> nth=0")
    assert "POST /fhir/Observation" in page.locator("#provenance").inner_text()


def test_documents_open_in_the_page(page, live_server, region):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/viewer/patient/{region.wang}/")
    page.click("#documents a:has-text('出院小结')")
    cda = page.locator("#cda")
    assert "出院诊断" in cda.inner_text() and "二甲双胍" in cda.inner_text()
    assert cda.locator("table td").count() == 2
    shot(page, "viewer-cda-document")

    page.goto(f"{live_server.url}/viewer/patient/{region.wang}/")
    page.click("#documents a:has-text('检验报告单')")
    frame = page.locator("#pdf-frame")
    assert frame.is_visible()
    content = page.request.get(live_server.url + frame.get_attribute("src"))
    assert content.status == 200
    assert content.headers["content-type"] == "application/pdf"
    assert content.body().startswith(b"%PDF")

    page.goto(f"{live_server.url}/viewer/patient/{region.wang}/")
    page.click("#documents a:has-text('门诊病历')")
    assert "主诉：口渴多饮三月。" in page.locator("#text").inner_text()


def test_the_viewer_switches_between_chinese_and_english(page, live_server, region):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/viewer/patient/{region.wang}/")
    assert "检验结果" in page.locator("#labs h2").inner_text()

    page.click("#language-form button")
    page.wait_for_url(f"{live_server.url}/viewer/patient/{region.wang}/")
    assert "Laboratory results" in page.locator("#labs h2").inner_text()
    assert page.locator("html").get_attribute("lang") == "en"

    page.click("#language-form button")
    assert "检验结果" in page.locator("#labs h2").inner_text()


def test_another_institutions_resident_opens_only_with_a_reason_and_the_read_is_shown(page, live_server, region):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/viewer/patient/{region.li}/")
    page.wait_for_url(re.compile(rf"/viewer/patient/{region.li}/reason/"))
    assert page.locator("#reason").is_visible()
    assert page.locator("#allergies").count() == 0
    shot(page, "viewer-reason-needed")

    page.check("input[name=reason][value=emergency]")
    page.click("#reason button[type=submit]")  # the explanation is required: the browser keeps the form
    assert "/reason/" in page.url
    page.fill("textarea[name=text]", "急诊抢救 胸痛")
    page.click("#reason button[type=submit]")
    page.wait_for_url(f"{live_server.url}/viewer/patient/{region.li}/")

    assert page.locator("#break-glass").is_visible()
    assert "原发性高血压" in page.locator("#problems").inner_text()
    viewed = page.locator("#who-has-viewed").inner_text()
    assert "doctor_a" in viewed and "急诊抢救 胸痛" in viewed
    shot(page, "viewer-break-glass")
