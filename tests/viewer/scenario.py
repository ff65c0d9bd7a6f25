"""A small region for the viewer's tests, written through the platform's own write path (the FHIR API, as each
hospital's feed sends it, with HTTP Basic):

- hospital A (市一院) and hospital B (区中心医院), each with its feed; a community clinic C with a feed that
  sent nothing about these residents;
- 王小明, known at A and at B (one person: the same resident identity number), with an allergy, active and
  stopped medications, an active problem and a resolved diagnosis, encounters at both, glucose results at both
  (B sends its local lab code with the LOINC coding the translation adds beside it), an imaging report,
  penicillin and metformin prescribed again at B (a drug-allergy and a duplicate-medication alert), and three
  documents (a PDF and a text note from A, a CDA discharge summary from B);
- 李娜, known only at B (the A clinician needs a reason);
- two 张伟 born on the same day, one at A and one at B, with different identity numbers (an ambiguous search);
- 赵空, known at A, with no fact at all (the empty state);
- clinicians: 陈医生 at A (valid), 林医生 at A whose registration expired, 周医生 at clinic C (knows no one),
  and 吴医生 at an institution that was deactivated.
"""

from __future__ import annotations

import base64
import datetime as dt
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.utils import timezone

from mpi.identifiers import make_resident_id
from registry.models import CodeSystem
from tests.fhirapi.client import FHIR_JSON, register_feed
from tests.registry.factories import InstitutionFactory, PractitionerFactory

PASSWORD = "a-long-clinician-password"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD_SYSTEM = "urn:oid:2.16.156.10011.1.19"
LOCAL_LAB_B = "urn:hosp-b:lab-codes"
BIRTH = dt.date(1985, 3, 12)
WANG_ID = make_resident_id("440106", BIRTH, 11)
WANG_CARD = "HC44010600011"
LI_ID = make_resident_id("440106", dt.date(1990, 7, 1), 22)
ZHANG_BIRTH = dt.date(1979, 11, 5)
ZHANG_IDS = (make_resident_id("440106", ZHANG_BIRTH, 31), make_resident_id("440103", ZHANG_BIRTH, 51))
ZHAO_ID = make_resident_id("440106", dt.date(2001, 1, 9), 41)
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
CDA_SUMMARY = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <title>出院小结</title>
  <effectiveTime value="20240503100000+0800"/>
  <author><assignedAuthor><assignedPerson><name>刘主任</name></assignedPerson></assignedAuthor></author>
  <component><structuredBody>
    <component><section><title>出院诊断</title><text><paragraph>2型糖尿病</paragraph>
      <list><item>血糖控制欠佳</item><item>建议复查 <content>HbA1c</content></item></list>
      <paragraph>&lt;script&gt;alert(1)&lt;/script&gt; 不应执行</paragraph></text></section></component>
    <component><section><title>出院医嘱</title><text><table><thead><tr><th>药品</th><th>用法</th></tr></thead>
      <tbody><tr><td>二甲双胍</td><td>0.5g 每日两次</td></tr></tbody></table></text></section></component>
  </structuredBody></component>
</ClinicalDocument>
""".encode()
TEXT_NOTE = "门诊病历\n主诉：口渴多饮三月。\n诊断：2型糖尿病。".encode()


def days_ago(n: int, hour: int = 9) -> str:
    moment = timezone.localtime() - dt.timedelta(days=n)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()


def coded(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def patient(mrn_system: str, mrn: str, name: str, birth: dt.date, sex: str, resident_id: str, card: str = ""):
    identifiers = [
        {"system": mrn_system, "value": mrn},
        {"system": RESIDENT_ID_SYSTEM, "value": resident_id},
    ]
    if card:
        identifiers.append({"system": HEALTH_CARD_SYSTEM, "value": card})
    return {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": [{"text": name}],
        "gender": sex,
        "birthDate": birth.isoformat(),
    }


def glucose(n: int, value: float, when: str, *, hospital: str, patient_id: str, local: bool = False) -> dict:
    codings = [{"system": LOINC, "code": "2345-7", "display": "葡萄糖"}]
    if local:
        codings.insert(0, {"system": LOCAL_LAB_B, "code": "GLU-B", "display": "空腹血糖（本院）"})
    return {
        "resourceType": "Observation",
        "identifier": [{"system": f"urn:{hospital}:obs", "value": f"GLU-{n}"}],
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "category": [coded("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "检验")],
        "code": {"coding": codings},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
        "referenceRange": [{"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 6.1, "unit": "mmol/L"}}],
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Hospital:
    """A hospital's feed: posts what its HIS sends, as its HIS would."""

    def __init__(self, facility: str, hospital: str, *, institution=None, name: str = ""):
        self.institution = institution or InstitutionFactory(name=name or facility)
        self.feed = register_feed(institution=self.institution, facility=facility, name=f"HIS-{facility}")
        self.facility, self.hospital = facility, hospital
        self.mrn_system = f"urn:platform:authority:{facility}"
        self.n = 0

    @property
    def source(self):
        return self.feed.source

    def post(self, body: dict) -> str:
        response = self.feed.client.post(f"/fhir/{body['resourceType']}", body, content_type=FHIR_JSON)
        assert response.status_code in (200, 201), response.content
        return response.json()["id"]

    def register(self, mrn: str, name: str, birth: dt.date, sex: str, resident_id: str, card: str = "") -> str:
        return self.post(patient(self.mrn_system, mrn, name, birth, sex, resident_id, card))

    def fact(self, resource_type: str, patient_id: str, **body) -> str:
        self.n += 1
        subject = "patient" if resource_type in ("AllergyIntolerance", "Immunization") else "subject"
        return self.post(
            {
                "resourceType": resource_type,
                "identifier": [{"system": f"urn:{self.hospital}:{resource_type.lower()}", "value": f"F-{self.n}"}],
                subject: {"reference": f"Patient/{patient_id}"},
                **body,
            }
        )

    def condition(self, patient_id: str, code: str, display: str, status: str, *, days: int) -> str:
        clinical = coded("http://terminology.hl7.org/CodeSystem/condition-clinical", status, status)
        return self.fact(
            "Condition",
            patient_id,
            code=coded(ICD10, code, display),
            clinicalStatus=clinical,
            onsetDateTime=days_ago(days)[:10],
        )

    def document(self, patient_id: str, *, value: str, content_type: str, data: bytes, title: str, loinc: str):
        return self.post(
            {
                "resourceType": "DocumentReference",
                "masterIdentifier": {"system": f"urn:{self.hospital}:doc", "value": value},
                "status": "current",
                "type": {"coding": [{"system": LOINC, "code": loinc, "display": title}]},
                "description": title,
                "subject": {"reference": f"Patient/{patient_id}"},
                "date": days_ago(5),
                "content": [{"attachment": {"contentType": content_type, "data": _b64(data), "title": title}}],
            }
        )


def clinician(username: str, institution, **practitioner):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    PractitionerFactory(institution=institution, user=user, **practitioner)
    return user


def region_build() -> SimpleNamespace:
    """The region of the module's docstring; returns its hospitals, residents (golden Patient ids) and users."""
    a = Hospital("HOSP-A", "hosp-a", name="市第一人民医院")
    b = Hospital("HOSP-B", "hosp-b", name="区中心医院")
    c = Hospital("CLINIC-C", "clinic-c", name="五山社区卫生服务中心")
    CodeSystem.objects.create(url=LOCAL_LAB_B, name="区中心医院检验项目", source_system=b.source)

    wang_a = a.register("A-1", "王小明", BIRTH, "male", WANG_ID, WANG_CARD)
    wang_b = b.register("B-1", "王小明", BIRTH, "male", WANG_ID)
    facts = SimpleNamespace()
    facts.allergy = a.fact(
        "AllergyIntolerance",
        wang_a,
        code=coded(ATC, "J01CE01", "青霉素G"),
        clinicalStatus=coded("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "active"),
        criticality="high",
        reaction=[{"manifestation": [coded("http://snomed.info/sct", "271807003", "皮疹")]}],
        recordedDate=days_ago(400)[:10],
    )
    facts.metformin = a.fact(
        "MedicationRequest",
        wang_a,
        status="active",
        intent="order",
        medicationCodeableConcept=coded(ATC, "A10BA02", "二甲双胍片"),
        dosageInstruction=[{"text": "0.5g 每日两次 口服"}],
        authoredOn=days_ago(20),
    )
    # B, not knowing A's records: penicillin for the penicillin-allergic (drug-allergy) and metformin again
    # (the same ingredient active at two institutions).
    facts.penicillin = b.fact(
        "MedicationRequest",
        wang_b,
        status="active",
        intent="order",
        medicationCodeableConcept=coded(ATC, "J01CE01", "注射用青霉素钠"),
        authoredOn=days_ago(2),
    )
    facts.metformin_b = b.fact(
        "MedicationStatement",
        wang_b,
        status="active",
        medicationCodeableConcept=coded(ATC, "A10BA02", "盐酸二甲双胍缓释片"),
        effectiveDateTime=days_ago(10)[:10],
    )
    facts.old_drug = b.fact(
        "MedicationStatement",
        wang_b,
        status="stopped",
        medicationCodeableConcept=coded(ATC, "C09AA05", "雷米普利"),
        effectiveDateTime=days_ago(300)[:10],
    )
    facts.diabetes = a.condition(wang_a, "E11.9", "2型糖尿病", "active", days=200)
    facts.pneumonia = b.condition(wang_b, "J18.9", "肺炎", "resolved", days=150)
    facts.visit_a = a.fact(
        "Encounter",
        wang_a,
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
        type=[coded("urn:hosp-a:visit", "NEI", "内分泌科门诊")],
        period={"start": days_ago(20), "end": days_ago(20, hour=10)},
    )
    facts.stay_b = b.fact(
        "Encounter",
        wang_b,
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}},
        type=[coded("urn:hosp-b:visit", "HX", "呼吸内科住院")],
        period={"start": days_ago(150), "end": days_ago(143)},
    )
    facts.glucose = [
        a.post(glucose(1, 7.8, days_ago(200), hospital="hosp-a", patient_id=wang_a)),
        a.post(glucose(2, 6.9, days_ago(100), hospital="hosp-a", patient_id=wang_a)),
        b.post(glucose(3, 6.4, days_ago(10), hospital="hosp-b", patient_id=wang_b, local=True)),
        b.post(glucose(4, 5.8, days_ago(3), hospital="hosp-b", patient_id=wang_b, local=True)),
    ]
    facts.ct = b.fact(
        "DiagnosticReport",
        wang_b,
        status="final",
        category=[coded("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "影像")],
        code=coded(LOINC, "24627-2", "胸部CT"),
        effectiveDateTime=days_ago(148),
        conclusion="右下肺炎症，较前吸收",
    )
    documents = SimpleNamespace(
        pdf=a.document(
            wang_a, value="PDF-1", content_type="application/pdf", data=MINIMAL_PDF, title="检验报告单", loinc="11502-2"
        ),
        text=a.document(
            wang_a, value="TXT-1", content_type="text/plain", data=TEXT_NOTE, title="门诊病历", loinc="34108-1"
        ),
        cda=b.document(
            wang_b, value="CDA-1", content_type="application/xml", data=CDA_SUMMARY, title="出院小结", loinc="18842-5"
        ),
    )

    li_b = b.register("B-2", "李娜", dt.date(1990, 7, 1), "female", LI_ID)
    li_fact = b.condition(li_b, "I10", "原发性高血压", "active", days=30)
    zhang_a = a.register("A-2", "张伟", ZHANG_BIRTH, "male", ZHANG_IDS[0])
    zhang_b = b.register("B-3", "张伟", ZHANG_BIRTH, "male", ZHANG_IDS[1])
    zhao_a = a.register("A-3", "赵空", dt.date(2001, 1, 9), "female", ZHAO_ID)

    from mpi.models import Identity

    golden = {i.uuid.hex: str(i.person.uuid) for i in Identity.objects.select_related("person")}

    def person_of(source_patient_id: str) -> str:
        return golden[source_patient_id.replace("-", "")]

    inactive = InstitutionFactory(name="已停业诊所")
    users = SimpleNamespace(
        doctor_a=clinician("doctor_a", a.institution, name="陈医生"),
        expired=clinician(
            "expired_a",
            a.institution,
            name="林医生",
            valid_from=dt.date.today() - dt.timedelta(days=800),
            valid_until=dt.date.today() - dt.timedelta(days=1),
        ),
        doctor_c=clinician("doctor_c", c.institution, name="周医生"),
        closed=clinician("closed", inactive, name="吴医生"),
    )
    inactive.active = False
    inactive.save()
    return SimpleNamespace(
        a=a,
        b=b,
        c=c,
        wang=person_of(wang_a),
        wang_sources=(wang_a, wang_b),
        li=person_of(li_b),
        li_fact=li_fact,
        zhangs=(person_of(zhang_a), person_of(zhang_b)),
        zhao=person_of(zhao_a),
        facts=facts,
        documents=documents,
        users=users,
    )
