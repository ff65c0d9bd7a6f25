"""The rules see one vocabulary although every hospital sends its own: the write corridor adds the standard
coding beside each mapped local code, and a proposed order in a hospital's local codes is translated the same
way before the rules read it."""

from __future__ import annotations

import pytest

from healthplatform.alerts.evaluate import order_alerts, order_fact
from registry.codes import ALLERGEN_CLASS_SYSTEM, ATC_SYSTEM, LOINC_SYSTEM
from registry.models import CodeSystem, Concept, ConceptMapEntry
from tests.alerts.scenario import NOW, Resident, allergy, lab, prescription, region

pytestmark = pytest.mark.django_db


def _local(clinic, url: str, maps: dict[str, tuple[str, str]]) -> str:
    """Registers ``url`` as the clinic's local code system, its codes mapped to (standard system, code)."""
    CodeSystem.objects.create(url=url, name=f"{clinic.facility} local", source_system=clinic.source)
    for local, (system, code) in maps.items():
        concept, _ = Concept.objects.get_or_create(
            code_system=CodeSystem.objects.get_or_create(url=system, defaults={"name": system})[0],
            code=code,
            defaults={"display": code},
        )
        ConceptMapEntry.objects.create(source_system=clinic.source, local_system=url, local_code=local, concept=concept)
    return url


def _order(clinic, person_id, body):
    fact = order_fact(clinic.caller, body, reference=f"{clinic.institution.code}:{body['resourceType']}/o", now=NOW)
    return order_alerts(caller=clinic.caller, person_id=person_id, orders=[fact], now=NOW)


def test_a_result_in_one_hospitals_lab_codes_warns_an_order_in_anothers():
    a, b, _ = region()
    lis_a = _local(a, "urn:hosp-a:lis", {"K": (LOINC_SYSTEM, "2823-3")})
    lis_b = _local(b, "urn:hosp-b:lab", {"1002": (LOINC_SYSTEM, "2823-3")})
    resident = Resident("l1")
    result = lab("ignored", 4.3, "mmol/L", days_ago=2)
    result["code"] = {"coding": [{"system": lis_a, "code": "K", "display": "钾"}]}
    a.send(resident, result)
    b.send(resident)
    order = {
        "resourceType": "ServiceRequest",
        "id": "o",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": lis_b, "code": "1002", "display": "血钾"}]},
    }
    (finding,) = _order(b, resident.person_id(b), order)
    assert finding.kind == "duplicate-test" and finding.evidence[0].institution_name == a.institution.name
    # Another hospital's map is never applied: A's code sent by B means nothing.
    order["code"]["coding"][0] = {"system": lis_a, "code": "K"}
    assert _order(b, resident.person_id(b), order) == []


def test_an_allergy_in_one_hospitals_codes_warns_a_prescription_in_anothers_formulary():
    a, b, _ = region()
    allergens_b = _local(b, "urn:hosp-b:allergen", {"A01": (ALLERGEN_CLASS_SYSTEM, "PEN")})
    formulary_a = _local(a, "urn:hosp-a:formulary", {"Y0101": (ATC_SYSTEM, "J01CA04")})
    resident = Resident("l2")
    b.send(resident, allergy((allergens_b, "A01"), text="青霉素过敏"))
    a.send(resident)
    drug = {
        "resourceType": "MedicationRequest",
        "id": "o",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": formulary_a, "code": "Y0101"}], "text": "阿莫西林胶囊"},
    }
    (finding,) = _order(a, resident.person_id(a), drug)
    assert (finding.kind, finding.severity) == ("drug-allergy", "critical")
    # And on the record, once A prescribes it in its own codes.
    a.send(resident, prescription((formulary_a, "Y0101"), days_ago=0, name="阿莫西林胶囊"))
    from healthplatform.alerts.evaluate import record_alerts

    page = record_alerts(caller=a.caller, person_id=resident.person_id(a), now=NOW)
    assert [(f.kind, f.severity) for f in page.findings] == [("drug-allergy", "critical")]
