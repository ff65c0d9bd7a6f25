"""The alerts panel at the top of the patient page: the engine's findings, critical first, each evidence item
linked to its fact page; the tests still inside their window; an override recorded with its reason."""

from __future__ import annotations

from healthplatform.alerts.models import Override


def panel(doctor, region) -> str:
    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()
    start = page.index('id="alerts"')
    return page[start : page.index("</section>", start)]


def test_the_panel_comes_first_with_the_critical_alert_first(doctor, region):
    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()
    alerts = panel(doctor, region)

    assert page.index('id="alerts"') < page.index('id="allergies"')
    kinds = [part.split('"')[0] for part in alerts.split('data-kind="')[1:]]
    assert kinds[0] == "drug-allergy"
    assert "duplicate-medication" in kinds
    assert alerts.index('class="finding critical"') < alerts.index('class="finding warning"')


def test_every_evidence_item_links_to_its_fact_page_with_its_institution_and_date(doctor, region):
    alerts = panel(doctor, region)

    for fact in (region.facts.allergy, region.facts.penicillin, region.facts.metformin, region.facts.metformin_b):
        assert f"/viewer/patient/{region.wang}/fact/" in alerts and f"/{fact}/" in alerts
    assert "市第一人民医院" in alerts and "区中心医院" in alerts


def test_tests_inside_their_window_are_listed_for_a_clinician_planning_orders(doctor, region):
    alerts = panel(doctor, region)

    recent = alerts[alerts.index("recent-test") :]
    assert f"/fact/Observation/{region.facts.glucose[3]}/" in recent
    assert "5.8 mmol/L" in recent and "3.9–6.1" in recent


def test_an_override_is_recorded_with_its_reason_and_the_alert_leaves_the_page(doctor, region):
    alerts = panel(doctor, region)
    key = alerts.split('data-kind="duplicate-medication" data-key="')[1].split('"')[0]

    response = doctor.post(
        f"/viewer/patient/{region.wang}/alerts/override/",
        {"key": key, "reason_code": "clinically-appropriate", "reason": "两院已沟通，停用其一"},
    )

    assert response.status_code == 302
    override = Override.objects.get(alert_key=key)
    assert (override.actor, override.reason_code, override.reason) == (
        "doctor_a",
        "clinically-appropriate",
        "两院已沟通，停用其一",
    )
    assert override.institution == region.a.institution
    assert key not in panel(doctor, region)


def test_an_override_needs_a_clinician_who_may_open_the_resident(client, region):
    from tests.viewer.scenario import PASSWORD

    client.post("/viewer/login/", {"username": "doctor_c", "password": PASSWORD})
    response = client.post(f"/viewer/patient/{region.wang}/alerts/override/", {"key": "x", "reason_code": "other"})

    assert response.status_code == 302 and "/reason/" in response["Location"]
    assert not Override.objects.exists()
