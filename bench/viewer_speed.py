"""The clinician viewer's patient page on PostgreSQL: server time for a resident with about 2,000 facts from 5
institutions (issue 16's bar: p95 ≤ 150 ms), and the queries it costs.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_viewer .venv/bin/python bench/viewer_speed.py
    … --filler 200000        # other residents' facts around them first (the bar's archive has ≥ 1,000,000)
    … --reuse                # time the page again on the database a previous run filled

What is measured: the patient page through Django's test ``Client`` in-process (session, the clinician check,
the access rule, the record read, the alerts, the page's content, the template, the audit row), ``--requests``
times after two warm-up requests; no sockets, no separate web server. The resident's facts are written through
the write corridor (``bundle_apply_as_source``), one transaction Bundle per institution, as a hospital sends
them.
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
                    "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]},
                    "authoredOn": when,
                }
            )
    return out


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

    from healthplatform.ingest.apply import bundle_apply_as_source
    from mpi.identifiers import make_resident_id
    from mpi.models import Identity
    from registry.models import Practitioner
    from registry.services import source_system_register
    from tests.registry.factories import InstitutionFactory

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
        facts = _facts("urn:uuid:p", f"bench-{i}", facts_per_institution, start)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=400, help="facts per institution (default 400)")
    parser.add_argument("--institutions", type=int, default=5)
    parser.add_argument("--filler", type=int, default=0, help="other residents' facts written first")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    import logging

    import django

    django.setup()
    logging.getLogger("healthplatform.access").setLevel(logging.WARNING)
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ALLOWED_HOSTS = ["*"]
    bench_database()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from ehr.models import Resource
    from mpi.models import Identity

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
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    url = f"/viewer/patient/{person_uuid}/"
    for _ in range(2):
        assert client.get(url).status_code == 200
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *rest: queries.append(sql) or execute(sql, *rest)):
        client.get(url)
    times = []
    for _ in range(args.requests):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    facts = Resource.objects.filter(identity__person__uuid=person_uuid).exclude(resource_type="Patient").count()
    print(f"archive: {Resource.objects.count():,} resources; the resident: {facts:,} facts")
    print(
        f"patient page: {len(queries)} queries; server time over {args.requests} requests: "
        f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms (bar ≤ 150 ms)"
    )


if __name__ == "__main__":
    main()
