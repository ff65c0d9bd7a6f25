"""The clinician's read of one resident on PostgreSQL, for a resident with about 2,000 facts from 5 institutions
in an archive of (with ``--filler``) a million resources — issue 16's three bars, measured on one database:

- the viewer's patient page, server time p95 (bar ≤ 150 ms);
- the alert evaluation of the person's record (``record_alerts``) and of two proposed orders (``order_alerts``),
  p95 (bar ≤ 20 ms);
- a CDS Hooks ``order-sign`` round trip with two draft orders (a MedicationRequest the resident is allergic to,
  a ServiceRequest for a test done two days ago), bearer token, p95 (bar ≤ 50 ms).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_viewer .venv/bin/python bench/viewer_speed.py
    … --filler 1000000       # other residents' facts around them first (the bar's archive: ≥ 1,000,000)
    … --reuse                # time again on the database a previous run filled

What is measured: the page and the hook through Django's test ``Client`` in-process (session or bearer token, the
caller check, the access rule, the record read, the alerts, the template or the cards, the audit row), ``--requests``
times each after two warm-up requests; no sockets, no separate web server. The process imports
``healthplatform/wsgi.py`` as a gunicorn worker does (the import's objects frozen out of the garbage collector's
passes, see there). Beside each figure, the physical
limit of the same read: one raw SQL query fetching the bodies of every fact the record holds for the person (what
any page of the whole record must at least read). The resident's facts are written through the write corridor
(``bundle_apply_as_source``), one transaction Bundle per institution, as a hospital sends them; the filler is
other residents, 100 facts each, through the same corridor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("PLATFORM_DATA_DIR", tempfile.mkdtemp(prefix="hp-bench-viewer-"))

from database import bench_database

LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
LABORATORY = [{"coding": [{"system": TERMINOLOGY + "observation-category", "code": "laboratory"}]}]
TESTS = [
    ("2345-7", "葡萄糖", 3.9, 6.1),
    ("2160-0", "肌酐", 57, 111),
    ("2823-3", "钾", 3.5, 5.3),
    ("718-7", "血红蛋白", 130, 175),
]


def _facts(patient_ref: str, hospital: str, count: int, start: dt.datetime) -> list[dict]:
    """``count`` facts of one hospital about one resident: mostly laboratory results, some encounters,
    conditions and medications."""
    out = []
    for n in range(count):
        when = (start - dt.timedelta(days=n % 700, hours=n % 24)).isoformat()
        ident = [{"system": f"urn:{hospital}:fact", "value": f"F-{n}"}]
        kind = n % 10
        if kind < 7:
            code, name, low, high = TESTS[n % len(TESTS)]
            value = round(low + (high - low) * ((n * 37) % 100) / 80, 1)
            out.append(
                {
                    "resourceType": "Observation",
                    "identifier": ident,
                    "status": "final",
                    "category": LABORATORY,
                    "subject": {"reference": patient_ref},
                    "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
                    "effectiveDateTime": when,
                    "valueQuantity": {"value": value, "unit": "u"},
                    "referenceRange": [{"low": {"value": low}, "high": {"value": high}}],
                }
            )
        elif kind == 7:
            out.append(
                {
                    "resourceType": "Encounter",
                    "identifier": ident,
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": patient_ref},
                    "period": {"start": when},
                }
            )
        elif kind == 8:
            out.append(
                {
                    "resourceType": "Condition",
                    "identifier": ident,
                    "subject": {"reference": patient_ref},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]},
                    "onsetDateTime": when[:10],
                }
            )
        else:
            out.append(
                {
                    "resourceType": "MedicationRequest",
                    "identifier": ident,
                    "status": "active" if n % 30 == 9 else "completed",
                    "intent": "order",
                    "subject": {"reference": patient_ref},
                    "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "A10BA02"}]},
                    "authoredOn": when,
                }
            )
    return out


def _alerting(patient_ref: str, institution: int, start: dt.datetime) -> list[dict]:
    """What makes the alerts work on the resident: a penicillin allergy recorded at the first institution, and
    amoxicillin prescribed (still active) at the second — a drug–allergy alert and, with the metformin active at
    every institution, a duplicate medication."""
    if institution == 0:
        return [
            {
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": {
                    "coding": [{"system": TERMINOLOGY + "allergyintolerance-clinical", "code": "active"}]
                },
                "verificationStatus": {
                    "coding": [{"system": TERMINOLOGY + "allergyintolerance-verification", "code": "confirmed"}]
                },
                "criticality": "high",
                "category": ["medication"],
                "code": {"coding": [{"system": "urn:platform:allergen-class", "code": "PEN"}]},
                "patient": {"reference": patient_ref},
                "recordedDate": (start - dt.timedelta(days=400)).date().isoformat(),
            }
        ]
    if institution == 1:
        return [
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": patient_ref},
                "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "J01CA04"}], "text": "阿莫西林胶囊"},
                "authoredOn": (start - dt.timedelta(days=3)).isoformat(),
            }
        ]
    return []


# The orders a hospital system proposes in order-sign: amoxicillin (the resident is allergic to penicillins) and
# a potassium test (done two days ago at several institutions).
DRAFT_ORDERS = [
    {
        "resourceType": "MedicationRequest",
        "id": "bench-rx",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "J01CA04"}], "text": "阿莫西林胶囊"},
    },
    {
        "resourceType": "ServiceRequest",
        "id": "bench-lab",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": LOINC, "code": "2823-3"}]},
    },
]


def _bundle(mrn_system: str, mrn: str, resident_id: str, name: str, facts: list[dict]) -> dict:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": mrn_system, "value": mrn},
            {"system": "urn:oid:2.16.156.10011.1.3", "value": resident_id},
        ],
        "name": [{"text": name}],
        "gender": "male",
        "birthDate": resident_id[6:10] + "-" + resident_id[10:12] + "-" + resident_id[12:14],
    }
    entries = [{"fullUrl": "urn:uuid:p", "resource": patient, "request": {"method": "POST", "url": "Patient"}}]
    entries += [{"resource": f, "request": {"method": "POST", "url": f["resourceType"]}} for f in facts]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def build(*, facts_per_institution: int, institutions: int, filler: int) -> tuple[str, str]:
    """The resident (known at every institution), the clinician of the first, and ``filler`` other facts."""
    from django.contrib.auth import get_user_model

    from fixtures.loading import terminology_load
    from healthplatform.ingest.apply import bundle_apply_as_source
    from mpi.identifiers import make_resident_id
    from mpi.models import Identity
    from registry.models import Practitioner
    from registry.services import source_system_register
    from tests.registry.factories import InstitutionFactory

    terminology_load()  # the drug dictionary, ATC classes, allergen classes and LOINC the rules read
    start = dt.datetime.now(dt.UTC)
    resident = make_resident_id("440106", dt.date(1960, 5, 1), 13)
    sources = []
    for i in range(institutions):
        institution = InstitutionFactory(name=f"基准医院{i + 1}")
        source, _secret = source_system_register(
            institution=institution,
            kind="HIS",
            name=f"HIS-{i}",
            sending_application=f"HIS-{i}",
            sending_facility=f"B{i}",
        )
        sources.append(source)
        facts = _facts("urn:uuid:p", f"bench-{i}", facts_per_institution, start) + _alerting("urn:uuid:p", i, start)
        answer = bundle_apply_as_source(
            source_id=source.pk, bundle=_bundle(f"urn:platform:authority:B{i}", "R-1", resident, "王基准", facts)
        )
        assert answer["status"] == 200, answer
    for n in range(filler // 100):
        other = make_resident_id("440106", dt.date(1950 + n % 50, 1 + n % 12, 1 + n % 28), n % 1000)
        source = sources[n % len(sources)]
        facts = _facts("urn:uuid:p", f"filler-{n}", 100, start)
        bundle_apply_as_source(
            source_id=source.pk,
            bundle=_bundle(f"urn:platform:authority:B{n % len(sources)}", f"F-{n}", other, f"居民{n}", facts),
        )
    user = get_user_model().objects.create_user("bench_doctor")
    Practitioner.objects.create(
        licence_number="120204400000001",
        name="基准医生",
        role="physician",
        institution=sources[0].institution,
        valid_from=dt.date.today() - dt.timedelta(days=30),
        user=user,
    )
    person = Identity.objects.get(assigning_authority="B0", local_id="R-1").person
    return str(person.uuid), user.username


def _p95(times: list[float]) -> float:
    times = sorted(times)
    return times[max(0, int(len(times) * 0.95) - 1)]


def _timed(run, requests: int) -> tuple[list[float], int]:
    """``run`` twice to warm up, once counting its SQL queries, then ``requests`` times timed (ms)."""
    from django.db import connection

    run()
    run()
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *rest: queries.append(sql) or execute(sql, *rest)):
        run()
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return times, len(queries)


def _line(what: str, times: list[float], queries: int, bar: str) -> str:
    return f"{what}: {queries} queries; p50 {statistics.median(times):.1f} ms, p95 {_p95(times):.1f} ms ({bar})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=400, help="facts per institution (default 400)")
    parser.add_argument("--institutions", type=int, default=5)
    parser.add_argument("--filler", type=int, default=0, help="other residents' facts written first")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    import json
    import logging

    import django

    django.setup()
    logging.getLogger("healthplatform.access").setLevel(logging.WARNING)
    logging.getLogger("celery").setLevel(logging.WARNING)  # the in-process alert tasks of every filler Bundle
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ALLOWED_HOSTS = ["*"]
    bench_database()
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    import healthplatform.wsgi  # noqa: F401  (as a gunicorn worker starts: the import's objects frozen, see there)
    from ehr.models import Resource
    from healthplatform.alerts.evaluate import order_alerts, order_fact, record_alerts
    from healthplatform.viewer.clinicians import clinician_caller
    from mpi.models import Identity
    from registry.models import SourceSystem
    from registry.services import source_system_rotate_secret
    from tests.fhirapi.client import basic

    if args.reuse:
        person = Identity.objects.get(assigning_authority="B0", local_id="R-1").person
        person_uuid, username = str(person.uuid), "bench_doctor"
    else:
        if get_user_model().objects.filter(username="bench_doctor").exists():
            # Not flushed: a flush would also empty the rules the migrations seed.
            sys.exit("bench: this database holds a previous run; add --reuse, or drop the database")
        began = time.perf_counter()
        person_uuid, username = build(
            facts_per_institution=args.facts, institutions=args.institutions, filler=args.filler
        )
        print(f"built in {time.perf_counter() - began:.0f} s")
        # What autovacuum does within minutes of a load in production: the planner's statistics of the new rows.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    person = Identity.objects.get(assigning_authority="B0", local_id="R-1").person
    facts = Resource.objects.filter(identity__person=person).exclude(resource_type="Patient").count()
    print(f"archive: {Resource.objects.count():,} resources; the resident: {facts:,} facts")

    # The physical limit: the bodies of every fact of the person's identities, one raw query.
    identities = list(Identity.objects.filter(person=person).values_list("pk", flat=True))

    def raw_read():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT body FROM ehr_resource"
                " WHERE identity_id = ANY(%s) AND NOT deleted AND resource_type <> 'Patient'",
                [identities],
            )
            rows = cursor.fetchall()
        assert len(rows) >= facts * 0.9, len(rows)

    times, queries = _timed(raw_read, args.requests)
    print(_line(f"physical limit (the person's {facts:,} fact bodies, one SQL query)", times, queries, "floor"))

    # 1. The patient page.
    user = get_user_model().objects.get(username=username)
    viewer = Client()
    viewer.force_login(user)
    url = f"/viewer/patient/{person_uuid}/"

    def page():
        response = viewer.get(url)
        assert response.status_code == 200, response.status_code

    times, queries = _timed(page, args.requests)
    print(_line("patient page, server time", times, queries, "bar ≤ 150 ms"))

    # 2. The alert evaluation for one person: the record's alerts, and two proposed orders.
    caller = clinician_caller(user)
    now = dt.datetime.now(dt.UTC)
    seen = {}

    def record():
        seen["record"] = record_alerts(caller=caller, person_id=person.pk, now=now)

    times, queries = _timed(record, args.requests)
    print(_line("alerts of the record (record_alerts)", times, queries, "bar ≤ 20 ms"))

    def orders():
        drafts = [order_fact(caller, o, reference=f"{o['resourceType']}/{o['id']}", now=now) for o in DRAFT_ORDERS]
        seen["orders"] = order_alerts(caller=caller, person_id=person.pk, orders=drafts, now=now)

    times, queries = _timed(orders, args.requests)
    print(_line("alerts on two proposed orders (order_alerts)", times, queries, "bar ≤ 20 ms"))
    kinds = sorted({f.kind for f in seen["record"].findings}) + sorted({f.kind for f in seen["orders"]})
    print(f"  alerts found: {', '.join(kinds)}; tests inside their window: {len(seen['record'].recent_tests)}")

    # 3. A CDS Hooks order-sign round trip, as the first hospital's system calls it (bearer token).
    source = SourceSystem.objects.get(sending_facility="B0")
    secret = source_system_rotate_secret(source_system=source)
    token = Client().post(
        "/oauth/token",
        urlencode({"grant_type": "client_credentials", "scope": "system/*.read"}),
        content_type="application/x-www-form-urlencoded",
        headers=basic(source.client_id, secret),
    )
    assert token.status_code == 200, token.content
    hospital = Client(headers={"authorization": f"Bearer {token.json()['access_token']}"})
    cards = {}

    def order_sign():
        body = {
            "hook": "order-sign",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {
                "userId": "Practitioner/bench",
                "patientId": "urn:platform:authority:B0|R-1",
                "draftOrders": {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [{"resource": o} for o in DRAFT_ORDERS],
                },
            },
        }
        response = hospital.post("/cds-services/alerts-order-sign", json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content
        cards["cards"] = response.json()["cards"]

    times, queries = _timed(order_sign, args.requests)
    print(_line("CDS Hooks order-sign round trip (in-process)", times, queries, "bar ≤ 50 ms"))
    print(f"  cards: {len(cards['cards'])} ({', '.join(sorted({c['indicator'] for c in cards['cards']}))})")


if __name__ == "__main__":
    main()
