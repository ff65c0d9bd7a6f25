"""The patient page: the banner, each section with its institution and date and a link to its source, the
displays (standard first, the local word secondary), the trend chart, the filters, the empty state."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from mpi.identifiers import make_resident_id
from tests.viewer.scenario import WANG_ID


@pytest.fixture
def page(doctor, region):
    response = doctor.get(f"/viewer/patient/{region.wang}/")
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, name: str) -> str:
    start = page.index(f'id="{name}"')
    end = page.find("</section>", start)
    return page[start:end]


def test_the_banner_names_the_resident_with_the_number_masked_and_who_knows_them(page):
    banner = section(page, "banner")
    assert "王小明" in banner
    assert "男" in banner
    assert WANG_ID not in page
    assert f"{WANG_ID[:4]}{'*' * 10}{WANG_ID[-4:]}" in banner
    assert "市第一人民医院" in banner and "区中心医院" in banner


@pytest.mark.parametrize(
    ("name", "shown", "institution"),
    [
        ("allergies", "青霉素G", "市第一人民医院"),
        ("active_medications", "二甲双胍片", "市第一人民医院"),
        ("past_medications", "雷米普利", "区中心医院"),
        ("problems", "2型糖尿病", "市第一人民医院"),
        ("diagnoses", "肺炎", "区中心医院"),
        ("encounters", "呼吸内科住院", "区中心医院"),
        ("labs", "葡萄糖", "区中心医院"),
        ("reports", "右下肺炎症，较前吸收", "区中心医院"),
        ("documents", "出院小结", "区中心医院"),
    ],
)
def test_each_section_shows_its_items_with_institution_date_and_source(page, region, name, shown, institution):
    part = section(page, name)
    assert shown in part
    assert institution in part
    assert re.search(r"\d{4}-\d{2}-\d{2}", part)
    if name != "documents":
        assert f"/viewer/patient/{region.wang}/fact/" in part


def test_a_translated_code_shows_the_standard_display_with_the_local_one_secondary(page):
    labs = section(page, "labs")
    assert '<span class="display">葡萄糖</span> <span class="secondary">(空腹血糖（本院）)</span>' in labs


def test_results_of_one_test_from_two_institutions_share_one_trend_chart_with_its_range(page):
    labs = section(page, "labs")
    assert labs.count("<svg") == 1
    chart = labs[labs.index("<svg") : labs.index("</svg>")]
    assert chart.count("<circle") == 4
    assert 'class="band"' in chart
    assert "3.9–6.1" in labs
    assert chart.count('class="pt high"') == 3


def test_a_trend_charts_the_latest_results_and_the_table_counts_them_all(doctor, region, monkeypatch):
    from healthplatform.viewer import page as patient_page

    monkeypatch.setattr(patient_page, "CHART_POINTS", 3)  # the region's glucose has 4 results
    labs = section(doctor.get(f"/viewer/patient/{region.wang}/").content.decode(), "labs")

    chart = labs[labs.index("<svg") : labs.index("</svg>")]
    assert chart.count("<circle") == 3
    assert "最近 3 次（共 4 次）" in labs
    by_test = labs[labs.index('id="lab-tests"') :]
    assert "<td>4</td>" in by_test[: by_test.index("</table>")]
    assert labs.count('<tr class="fact"') == 1 + 4  # the test's row, and every result still listed


def test_the_institution_filter_narrows_every_section(doctor, region):
    code = region.b.institution.code
    whole = doctor.get(f"/viewer/patient/{region.wang}/?institution={code}").content.decode()
    page = whole[whole.index('id="allergies"') :]  # the alerts stay whole: a filter never hides a warning

    assert "雷米普利" in page and "肺炎" in page
    assert "二甲双胍片" not in page and "青霉素G" not in page
    assert "门诊病历" not in section(page, "documents")
    assert "出院小结" in section(page, "documents")


def test_the_period_filter_narrows_every_section(doctor, region):
    import datetime as dt

    since = (dt.date.today() - dt.timedelta(days=30)).isoformat()
    whole = doctor.get(f"/viewer/patient/{region.wang}/?from={since}").content.decode()
    page = whole[whole.index('id="allergies"') :]

    assert "二甲双胍片" in page
    assert "雷米普利" not in page and "肺炎" not in section(page, "diagnoses")
    assert section(page, "labs").count('<tr class="fact"') == 2 + 1  # two results, one test row


def test_a_filter_that_keeps_nothing_says_so(doctor, region):
    page = doctor.get(f"/viewer/patient/{region.wang}/?from=1990-01-01&to=1990-12-31").content.decode()

    assert 'id="filtered-empty"' in page


def test_a_resident_with_no_data_shows_the_empty_state(doctor, region):
    page = doctor.get(f"/viewer/patient/{region.zhao}/").content.decode()

    assert 'id="empty-record"' in page
    assert 'id="allergies"' not in page
    assert 'id="who-has-viewed"' in page


def test_a_section_shows_its_latest_rows_and_a_link_to_all(doctor, region, monkeypatch):
    monkeypatch.setattr("healthplatform.viewer.page.SECTION_ROWS", 2)
    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()
    results = section(page, "labs")
    assert "?show=results" in results

    full = doctor.get(f"/viewer/patient/{region.wang}/?show=results").content.decode()
    assert "?show=results" not in section(full, "labs")


def test_the_fact_page_shows_the_resource_and_its_provenance_never_the_submission_body(doctor, region):
    fact_id = region.facts.glucose[2]
    response = doctor.get(f"/viewer/patient/{region.wang}/fact/Observation/{fact_id}/")

    page = response.content.decode()
    assert response.status_code == 200
    provenance = section(page, "provenance")
    assert "区中心医院" in provenance
    assert "POST /fhir/Observation" in provenance
    assert "GLU-B" in page  # the archived resource, with its local coding
    assert "resourceType" in page


def test_a_fact_of_another_resident_is_not_found_under_this_one(doctor, region):
    response = doctor.get(f"/viewer/patient/{region.zhao}/fact/Observation/{region.facts.glucose[0]}/")

    assert response.status_code == 404


def test_the_page_switches_to_english(doctor, region):
    response = doctor.post("/viewer/language/", {"language": "en", "next": f"/viewer/patient/{region.wang}/"})
    assert response.status_code == 302

    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()
    assert "Laboratory results" in page and "Who has viewed this record" in page
    doctor.post("/viewer/language/", {"language": "zh-hans", "next": "/viewer/search/"})
    assert "Laboratory results" not in doctor.get(f"/viewer/patient/{region.wang}/").content.decode()


def test_markup_a_sender_wrote_into_any_text_of_any_section_is_shown_as_text(doctor, region):
    # Every text a row of the page shows, in every section's layout, holds markup: none of it may reach the
    # page as markup (the rows are written in Python, templatetags/viewer.py: fact_rows).
    from mpi.models import Identity
    from tests.viewer.scenario import coded, days_ago

    a = region.a
    mark = "<i>m{}</i>"
    source = a.register(
        "A-9", "钱<b>", dt.date(1970, 3, 3), "female", make_resident_id("440106", dt.date(1970, 3, 3), 61)
    )
    concept = {
        "coding": [{"system": "http://loinc.org", "code": "X-1", "display": mark.format(1)}],
        "text": mark.format(2),
    }
    category = [coded("urn:local:category", "c", mark.format(3))]
    a.fact(
        "AllergyIntolerance", source, code=concept, reaction=[{"manifestation": [coded("urn:x", "r", mark.format(4))]}]
    )
    a.fact(
        "MedicationRequest",
        source,
        status="active",
        intent="order",
        medicationCodeableConcept=concept,
        dosageInstruction=[{"text": mark.format(5)}],
        authoredOn=days_ago(3),
    )
    a.fact(
        "MedicationStatement",
        source,
        status="completed",
        medicationCodeableConcept=concept,
        effectiveDateTime=days_ago(300),
    )
    a.fact(
        "Condition",
        source,
        code=concept,
        clinicalStatus=coded("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "active"),
        category=category,
        onsetDateTime=days_ago(9)[:10],
        note=[{"text": mark.format(6)}],
    )
    a.fact(
        "Encounter",
        source,
        status="finished",
        **{"class": {"code": "AMB"}},
        type=[concept],
        period={"start": days_ago(9)},
        reasonCode=[coded("urn:x", "e", mark.format(7))],
    )
    a.fact(
        "Observation",
        source,
        status="final",
        code=concept,
        category=category,
        effectiveDateTime=days_ago(2),
        valueQuantity={"value": 5.1, "unit": mark.format(8)},
        referenceRange=[{"text": mark.format(9)}],
    )
    a.fact(
        "DiagnosticReport",
        source,
        status="final",
        code=concept,
        category=category,
        effectiveDateTime=days_ago(2),
        conclusion=mark.format(10),
    )
    a.fact("Procedure", source, status="completed", code=concept, performedDateTime=days_ago(20))
    person = Identity.objects.get(local_id="A-9").person
    page = doctor.get(f"/viewer/patient/{person.uuid}/").content.decode()
    assert "<i>" not in page and "<b>" not in page
    for section_name in (
        "allergies",
        "active_medications",
        "past_medications",
        "problems",
        "encounters",
        "labs",
        "reports",
        "other",
    ):
        assert "&lt;i&gt;m" in section(page, section_name), section_name
