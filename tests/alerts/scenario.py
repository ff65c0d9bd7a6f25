"""A small region for the alert rules: a tertiary hospital, a secondary hospital and a community clinic, each with
its feed; residents whose facts those feeds send through the write corridor, dated relative to ``NOW``; and the
drug terminology the rules read (ATC ingredients and groups, a drug-dictionary product, an allergen class)."""

from __future__ import annotations

import datetime as dt
import itertools

from django.utils import timezone

from healthplatform.access import Caller
from healthplatform.ingest.apply import bundle_apply_as_source
from mpi import selectors as mpi
from mpi.identifiers import make_resident_id
from registry.codes import ALLERGEN_CLASS_SYSTEM, ATC_SYSTEM, DRUG_DICTIONARY_SYSTEM, LOINC_SYSTEM
from registry.models import CodeSystem, Concept, DrugClassMember, DrugIngredient, Institution
from tests.fhirapi.client import register_feed
from tests.registry.factories import InstitutionFactory

NOW = timezone.now().replace(microsecond=0)
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
ATC = {
    "J": "抗感染药",
    "J01": "全身用抗菌药",
    "J01C": "青霉素类",
    "J01CA": "广谱青霉素类",
    "J01CA04": "阿莫西林",
    "J01D": "其他β-内酰胺类",
    "J01DC": "第二代头孢菌素",
    "J01DC02": "头孢呋辛",
    "J01FA10": "阿奇霉素",
    "C08CA01": "氨氯地平",
    "C08CA": "二氢吡啶衍生物",
    "C10AA": "HMG CoA还原酶抑制剂",
    "C10AA05": "阿托伐他汀",
    "C10AA01": "辛伐他汀",
    "M01AE01": "布洛芬",
    "B01AC06": "阿司匹林",
}
_counter = itertools.count(1)


def terminology_seed() -> None:
    """The ATC concepts above, 阿莫西林胶囊 (a dictionary product of amoxicillin) and 青霉素类 (allergen class J01C)."""
    atc, _ = CodeSystem.objects.get_or_create(url=ATC_SYSTEM, defaults={"name": "ATC"})
    CodeSystem.objects.get_or_create(url=LOINC_SYSTEM, defaults={"name": "LOINC"})
    concepts = {
        code: Concept.objects.get_or_create(code_system=atc, code=code, defaults={"display": name})[0]
        for code, name in ATC.items()
    }
    drugs, _ = CodeSystem.objects.get_or_create(url=DRUG_DICTIONARY_SYSTEM, defaults={"name": "药品字典"})
    capsule, _ = Concept.objects.get_or_create(
        code_system=drugs, code="D0001", defaults={"display": "阿莫西林胶囊 0.25g"}
    )
    DrugIngredient.objects.get_or_create(drug=capsule, ingredient=concepts["J01CA04"])
    classes, _ = CodeSystem.objects.get_or_create(url=ALLERGEN_CLASS_SYSTEM, defaults={"name": "过敏原类别"})
    penicillins, _ = Concept.objects.get_or_create(code_system=classes, code="PEN", defaults={"display": "青霉素类"})
    DrugClassMember.objects.get_or_create(drug_class=penicillins, atc_prefix="J01C")


class Clinic:
    """One institution and its feed."""

    def __init__(self, name: str, level: str, facility: str):
        self.institution = InstitutionFactory(name=name, level=level)
        self.feed = register_feed(institution=self.institution, facility=facility, name=f"HIS-{facility}")
        self.facility = facility

    @property
    def source(self):
        return self.feed.source

    @property
    def caller(self) -> Caller:
        return Caller(self.source, self.source.client_id)

    def send(self, resident: Resident, *resources: dict, method: str = "POST") -> list[str]:
        """Sends the resident's Patient and these facts as one transaction (the write corridor): each a create, or
        with ``method`` PUT a conditional update on its identifier; the ids given."""
        system = f"urn:platform:authority:{self.facility}"
        mrn = f"{self.facility}-{resident.key}"
        patient = {
            "resourceType": "Patient",
            "identifier": [
                {"system": system, "value": mrn},
                {"system": "urn:oid:2.16.156.10011.1.3", "value": resident.resident_id},
            ],
            "name": [{"text": resident.name}],
            "gender": "female",
            "birthDate": resident.birth_date.isoformat(),
        }
        entries = [
            {
                "fullUrl": "urn:uuid:patient",
                "resource": patient,
                "request": {"method": "PUT", "url": f"Patient?identifier={system}|{mrn}"},
            }
        ]
        for resource in resources:
            body = dict(resource)
            body[_patient_element(body)] = {"reference": "urn:uuid:patient"}
            body.setdefault(
                "identifier", [{"system": f"urn:{self.facility}:{body['resourceType']}", "value": str(next(_counter))}]
            )
            url = body["resourceType"]
            if method == "PUT":
                first = body["identifier"][0]
                url = f"{url}?identifier={first['system']}|{first['value']}"
            entries.append({"resource": body, "request": {"method": method, "url": url}})
        answer = bundle_apply_as_source(
            source_id=self.source.pk, bundle={"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
        assert answer["status"] == 200, answer
        return [e["location"].split("/", 1)[1] for e in answer["entries"][1:]]


def _patient_element(body: dict) -> str:
    return "patient" if body["resourceType"] in ("AllergyIntolerance", "Immunization") else "subject"


class Resident:
    def __init__(self, key: str, *, name: str = "李秀英", birth: dt.date = dt.date(1956, 4, 2), sequence: int = 1):
        self.key = key
        self.name = name
        self.birth_date = birth
        self.resident_id = make_resident_id("440106", birth, sequence)

    def person_id(self, clinic: Clinic) -> int:
        identity = mpi.identity_by_local_id(clinic.facility, f"{clinic.facility}-{self.key}")
        return identity.person_id


def region() -> tuple[Clinic, Clinic, Clinic]:
    terminology_seed()
    return (
        Clinic("市第一人民医院", Institution.Level.TERTIARY, "HOSP-A"),
        Clinic("区中医院", Institution.Level.SECONDARY, "HOSP-B"),
        Clinic("五山社区卫生服务中心", Institution.Level.COMMUNITY, "CHC-C"),
    )


# --- facts ---------------------------------------------------------------------------------------------------


def when(days_ago: float) -> str:
    return (NOW - dt.timedelta(days=days_ago)).isoformat()


def lab(code: str, value, unit: str, *, days_ago: float, low=None, high=None, display: str = "", status="final"):
    body = {
        "resourceType": "Observation",
        "status": status,
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": code, "display": display or code}]},
        "effectiveDateTime": when(days_ago),
        "valueQuantity": {"value": value, "unit": unit},
    }
    if low is not None or high is not None:
        body["referenceRange"] = [
            {
                **({"low": {"value": low, "unit": unit}} if low is not None else {}),
                **({"high": {"value": high, "unit": unit}} if high is not None else {}),
            }
        ]
    return body


def imaging(code: str, *, days_ago: float, conclusion: str = "未见明显异常"):
    return {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": code}]},
        "effectiveDateTime": when(days_ago),
        "conclusion": conclusion,
    }


def allergy(
    code: tuple[str, str] | None,
    *,
    text: str = "",
    verification="confirmed",
    clinical="active",
    category="medication",
    criticality="low",
):
    concept: dict = {"text": text} if text else {}
    if code is not None:
        concept["coding"] = [{"system": code[0], "code": code[1]}]
    body = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": verification}]},
        "criticality": criticality,
        "code": concept,
        "recordedDate": when(400),
    }
    if category:
        body["category"] = [category]
    return body


def prescription(code: tuple[str, str], *, days_ago: float, status="active", name: str = ""):
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": code[0], "code": code[1]}],
            **({"text": name} if name else {}),
        },
        "authoredOn": when(days_ago),
    }


def atc(code: str) -> tuple[str, str]:
    return (ATC_SYSTEM, code)


def service_order(code: str, *, order_id: str = "draft-1"):
    return {
        "resourceType": "ServiceRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": code}]},
    }


def lab_order(code: str) -> dict:
    """A test order as a feed sends it (active, authored now)."""
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": code}]},
        "authoredOn": NOW.isoformat(),
    }


def drug_order(code: tuple[str, str], *, order_id: str = "draft-1", name: str = ""):
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": code[0], "code": code[1]}],
            **({"text": name} if name else {}),
        },
    }
