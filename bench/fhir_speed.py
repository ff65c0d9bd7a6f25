"""FHIR API speed on PostgreSQL: resources written per second from transaction Bundles (beside the COPY
rate of the same rows), read latency, and ``Observation?patient=…&code=…`` search latency at ≥ 1M resources.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_fhir .venv/bin/python bench/fhir_speed.py
    … --bundles 2000                     # a quick run
    … --reuse                            # read and search figures on the database a previous run filled
    … --local-codes                      # every laboratory sends its own local codes (translated on write)
    … --without-order-alerts             # orders not checked by the alerts: alternate with a run without it

Bars (issue 4): ≥ 2,500 resources/s written on this 2-core machine; read p99 ≤ 20 ms; search p99 ≤ 50 ms; a
transaction of several thousand entries (one person's full history from one hospital) in seconds (HISTORY).

What is measured: each of ``--workers`` processes runs the platform's FHIR views in-process through
Django's test ``Client`` (the full request path: authentication, JSON parsing, R4B validation of every
resource, MPI registration of the Patient, reference resolution, the archive's bulk writes, the document
store, the response), posting one synthetic hospital Bundle (fixtures.fhir_bundles) per request with
``Prefer: return=minimal``; no sockets, no separate web server. The Bundles are generated before the
clock starts. Resources written = archive rows + stored documents created during the run. Credential
hashing uses Django's fast test hasher here (a feed's secret check is cached per process anyway).

``--local-codes`` (issue 16): each feed gets a local code system of its own and a map of the laboratory
tests' local codes to LOINC (two tests left unmapped), and its Bundles carry those local codes instead of
LOINC, as a hospital's LIS sends them; the write then translates them and counts the unmapped ones. The run
prints how many laboratory facts a LOINC search finds beside the local codes they were sent with.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
# As production runs: with DEBUG on, Django's debug cursor formats and keeps every statement it runs.
os.environ.setdefault("DEBUG", "0")

from database import bench_database

os.environ.setdefault("PLATFORM_DATA_DIR", tempfile.mkdtemp(prefix="hp-bench-fhir-"))

FHIR_JSON = "application/fhir+json"
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def _django():
    import logging

    import django
    from django.conf import settings

    django.setup()
    # One access-log line per request would flood the terminal; the log call itself still runs.
    logging.getLogger("healthplatform.access").setLevel(logging.WARNING)
    settings.PASSWORD_HASHERS = FAST_HASHERS
    settings.ALLOWED_HOSTS = ["*"]
    if os.environ.get("BENCH_WITHOUT_ORDER_ALERTS"):
        # What the write path cost before issue 16's hook: orders and prescriptions not checked by the alerts.
        from healthplatform.ingest import apply

        apply._orders_alerted = lambda written: None


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def setup(args, work: Path) -> None:
    """Empties the database, loads the region's directory, registers one feed per institution, and writes
    the Bundles (one NDJSON line each: institution code, then the Bundle) before anything is timed."""
    from django.core.management import call_command

    from fixtures.fhir_bundles import FHIRBundleGenerator, institution_oid
    from fixtures.loading import region_load
    from fixtures.region import RegionGenerator, RegionSizes
    from registry.models import Institution, SourceSystem
    from registry.services import source_system_register

    call_command("flush", interactive=False, verbosity=0)
    region = RegionGenerator(seed=args.seed, sizes=RegionSizes(residents=max(args.bundles, 1000)))
    started = time.perf_counter()
    region_load(region)
    feeds = {}
    by_code = {i.code: i for i in Institution.objects.all()}
    for rec in region.institutions():
        source, secret = source_system_register(
            institution=by_code[rec.code],
            kind=SourceSystem.Kind.HIS,
            name="bench FHIR feed",
            sending_application="BENCH-FHIR",
            sending_facility=institution_oid(rec),
        )
        feeds[rec.code] = [source.client_id, secret]
    (work / "feeds.json").write_text(json.dumps(feeds))
    print(f"region loaded: {len(feeds)} institutions with feeds ({time.perf_counter() - started:.1f}s)")
    if args.local_codes:
        local_maps_load()

    started = time.perf_counter()
    gen = FHIRBundleGenerator(region, seed=args.seed)
    resources = written = 0
    # --per-bundle N: a hospital's feed sends N residents' histories in one transaction (a batch interface);
    # the residents of one Bundle are the next N the same institution sends.
    waiting: dict[str, list[dict]] = {}
    with open(work / "bundles.ndjson", "w", encoding="utf-8") as out:

        def send(code: str, bundles: list[dict]) -> None:
            nonlocal written
            bundle = {**bundles[0], "entry": [e for b in bundles for e in b["entry"]]}
            out.write(code + "\t" + json.dumps(bundle, ensure_ascii=False, separators=(",", ":")) + "\n")
            written += 1

        for i, resident in enumerate(region.residents()):
            if i >= args.bundles:
                break
            inst = gen.senders(resident)[0]
            bundle = gen.bundle_for(resident, inst)
            if args.local_codes:
                localised(bundle, inst.code)
            resources += len(bundle["entry"])
            waiting.setdefault(inst.code, []).append(bundle)
            if len(waiting[inst.code]) == args.per_bundle:
                send(inst.code, waiting.pop(inst.code))
        for code, bundles in waiting.items():
            send(code, bundles)
    print(
        f"bundles generated: {written:,} with {resources:,} entries about {args.bundles:,} residents "
        f"({resources / max(written, 1):.1f}/bundle) in {time.perf_counter() - started:.1f}s (not timed below)"
    )


# --local-codes: the laboratory tests a feed's map leaves unmapped (sent, stored as sent, counted).
UNMAPPED_TESTS = ("3084-1", "1988-5")


def local_system(institution_code: str) -> str:
    return f"urn:bench:{institution_code}:lab"


def local_maps_load() -> None:
    """Each feed's local code system and its map: local code "L<loinc>" of every laboratory test but
    UNMAPPED_TESTS to that LOINC code (bulk, as a region's maps are loaded)."""
    from fixtures.fhir_bundles import LAB_TESTS, LOINC
    from registry.models import CodeSystem, ConceptMapEntry, SourceSystem
    from registry.services import code_system_ensure, concept_upsert

    loinc = code_system_ensure(url=LOINC, name="LOINC")
    concepts = {code: concept_upsert(code_system=loinc, code=code, display=t[0]) for code, t in LAB_TESTS.items()}
    sources = list(SourceSystem.objects.select_related("institution").filter(name="bench FHIR feed"))
    CodeSystem.objects.bulk_create(
        CodeSystem(url=local_system(s.institution.code), name=f"{s.institution.code} LIS", source_system=s)
        for s in sources
    )
    entries = [
        ConceptMapEntry(
            source_system=s,
            local_system=local_system(s.institution.code),
            local_code=f"L{code}",
            local_display=LAB_TESTS[code][0],
            concept=concept,
        )
        for s in sources
        for code, concept in concepts.items()
        if code not in UNMAPPED_TESTS
    ]
    ConceptMapEntry.objects.bulk_create(entries, batch_size=2000)
    print(f"local codes: {len(sources)} local code systems, {len(entries):,} map entries")


def localised(bundle: dict, institution_code: str) -> dict:
    """The Bundle as a LIS with local codes sends it: each laboratory test's LOINC coding replaced by the
    feed's local code (panels keep their LOINC codes)."""
    from fixtures.fhir_bundles import LAB_TESTS, LOINC

    system = local_system(institution_code)
    for entry in bundle["entry"]:
        code = entry["resource"].get("code")
        if not isinstance(code, dict):
            continue
        for coding in code.get("coding") or []:
            if coding.get("system") == LOINC and coding.get("code") in LAB_TESTS:
                coding.update(system=system, code=f"L{coding['code']}")
    return bundle


def translation_check() -> None:
    """--local-codes: how many laboratory facts a LOINC search finds, beside the local codes they were sent with
    (a run without translation finds none), and what was counted unmapped."""
    from django.db.models import Sum

    from ehr.models import SearchToken
    from fixtures.fhir_bundles import LAB_TESTS, LOINC
    from registry.models import UnmappedCode

    tokens = SearchToken.objects.filter(resource_type="Observation", param="code")
    local = tokens.filter(system__startswith="urn:bench:").count()
    mapped = tokens.filter(system=LOINC, code__in=[c for c in LAB_TESTS if c not in UNMAPPED_TESTS]).count()
    counted = UnmappedCode.objects.aggregate(n=Sum("count"))["n"] or 0
    print(
        f"CODES  Observations sent with a local code: {local:,}; found by LOINC: {mapped:,}; "
        f"unmapped occurrences counted: {counted:,}"
    )


def _writer(worker: int, workers: int, work: str, queue) -> None:
    _django()
    import base64

    from django.db import connection
    from django.test import Client

    feeds = json.loads((Path(work) / "feeds.json").read_text())
    clients: dict[str, Client] = {}
    errors, latencies = 0, []
    first_error = None
    with open(Path(work) / "bundles.ndjson", encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            if n % workers != worker:
                continue
            code, body = line.split("\t", 1)
            client = clients.get(code)
            if client is None:
                client_id, secret = feeds[code]
                token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
                client = clients[code] = Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_PREFER="return=minimal")
            started = time.perf_counter()
            response = client.post("/fhir/", body.encode(), content_type=FHIR_JSON)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
                first_error = first_error or response.content[:500].decode(errors="replace")
    connection.close()
    queue.put((errors, latencies, first_error))


# The tables a load grows; their statistics steer the plans of the write path's lookups.
# ehr_submission too: every row written checks its submission's key at commit, and a plan made while the table
# was empty scans it whole — the HL7 v2 path writes a submission per message (100,000 in its long run), where
# it fell to a third of its rate before this table was analysed as well.
GROWING_TABLES = ("ehr_resource", "ehr_searchtoken", "ehr_searchreference", "emr_documententry", "mpi_identity",
                  "mpi_matchkey", "mpi_identifier", "mpi_person", "ehr_submission", "ehr_resourceversion",
                  "ingest_inboxmessage")  # fmt: skip
ANALYZE_EVERY = 30.0  # seconds


def _analyzer(stop) -> None:
    """What autovacuum's autoanalyze does on a production server, for a server where autovacuum is off:
    without it the planner keeps the statistics of the empty tables for the whole load."""
    import django.db

    while not stop.wait(ANALYZE_EVERY):
        with django.db.connection.cursor() as cur:
            for table in GROWING_TABLES:
                cur.execute(f"ANALYZE {table}")
    django.db.connection.close()


def write_rate(args, work: Path) -> dict:
    """Posts the Bundles ``setup`` wrote from ``args.workers`` processes and prints the write figures; returns
    them (resources ``written`` in ``seconds``), for bench/hl7v2_process.py to print its ratio beside."""
    import threading

    from django.db import connection

    from ehr.models import Resource
    from emr.models import DocumentEntry

    before = Resource.objects.count() + DocumentEntry.objects.count()
    with connection.cursor() as cur:
        cur.execute("SHOW autovacuum")
        autovacuum = cur.fetchone()[0] == "on"
    if not autovacuum:
        print(f"autovacuum is off on this server: ANALYZE of the growing tables every {ANALYZE_EVERY:.0f}s instead")
    connection.close()
    queue = mp.get_context("fork").Queue()
    procs = [
        mp.get_context("fork").Process(target=_writer, args=(w, args.workers, str(work), queue))
        for w in range(args.workers)
    ]
    stop = threading.Event()
    analyzer = None if autovacuum else threading.Thread(target=_analyzer, args=(stop,), daemon=True)
    started = time.perf_counter()
    for p in procs:
        p.start()
    if analyzer:
        analyzer.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    stop.set()
    if analyzer:
        analyzer.join()
    written = Resource.objects.count() + DocumentEntry.objects.count() - before
    errors = sum(r[0] for r in results)
    latencies = [x for r in results for x in r[1]]
    print(
        f"\nWRITE  {written:,} resources from {len(latencies):,} transaction Bundles in {elapsed:.1f}s by "
        f"{args.workers} processes: {written / elapsed:,.0f} resources/s "
        f"({len(latencies) / elapsed:,.1f} Bundles/s; per Bundle p50 {percentile(latencies, 50) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms); failed Bundles {errors}  (bar >= 2,500/s)"
    )
    if errors:
        print("   first failure:", next(r[2] for r in results if r[2]))
    return {"written": written, "seconds": elapsed, "bundles": len(latencies), "errors": errors}


def copy_rate(args) -> None:
    """The physical limit: PostgreSQL COPY of the rows the archive wrote for a sample of resources (the
    resource, its version, its token and reference rows) into empty copies of the tables."""
    from django.db import connection

    tables = ["ehr_resource", "ehr_resourceversion", "ehr_searchtoken", "ehr_searchreference"]
    with connection.cursor() as cur:
        cur.execute("SELECT max(id) FROM (SELECT id FROM ehr_resource ORDER BY id LIMIT %s) s", [args.copy_sample])
        last = cur.fetchone()[0] or 0
        cur.execute("SELECT count(*) FROM ehr_resource WHERE id <= %s", [last])
        sample = cur.fetchone()[0]
        data, rows = {}, 0
        raw = cur.connection
        for table in tables:
            key = "id" if table == "ehr_resource" else "resource_id"
            buffer = bytearray()
            # Table names come from the list above and the bound is an int: nothing from outside is formatted in.
            query = f"COPY (SELECT * FROM {table} WHERE {key} <= {int(last)}) TO STDOUT"  # noqa: S608
            with raw.cursor().copy(query) as copy:
                for chunk in copy:
                    buffer += chunk
            data[table] = bytes(buffer)
            rows += buffer.count(b"\n")
        for table in tables:
            cur.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
            cur.execute(f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES)")
    started = time.perf_counter()
    with connection.cursor() as cur:
        raw = cur.connection
        with raw.transaction():
            for table in tables:
                with raw.cursor().copy(f"COPY bench_copy_{table} FROM STDIN") as copy:
                    copy.write(data[table])
    elapsed = time.perf_counter() - started
    with connection.cursor() as cur:
        for table in tables:
            cur.execute(f"DROP TABLE bench_copy_{table}")
    print(
        f"COPY   the same rows of {sample:,} resources ({rows:,} rows in 4 tables, with their indexes): "
        f"{elapsed:.2f}s = {sample / elapsed:,.0f} resources/s, {rows / elapsed:,.0f} rows/s (the physical limit)"
    )


def history_time(args, work: Path) -> None:
    """One person's full history from one hospital (issue 4: a transaction of several thousand entries
    completes in seconds): ``--histories`` Bundles of fixtures.fhir_bundles' full history (3,000 entries
    each), each sent by a hospital other than the one whose typical Bundle was loaded for that resident (a
    new identity there, which the MPI links to the resident's person), posted one at a time into the full
    archive."""
    import base64
    import itertools

    from django.test import Client

    from fixtures.fhir_bundles import FHIRBundleGenerator
    from fixtures.region import RegionGenerator, RegionSizes

    if not args.histories:
        return
    feeds = json.loads((work / "feeds.json").read_text())
    region = RegionGenerator(seed=args.seed, sizes=RegionSizes(residents=max(args.bundles, 1000)))
    gen = FHIRBundleGenerator(region, seed=args.seed)
    chosen = [r for r in itertools.islice(region.residents(), 1000) if len(gen.senders(r)) > 1][: args.histories]
    times, entries = [], 0
    for resident in chosen:
        institution = gen.senders(resident)[-1]
        bundle = gen.bundle_for(resident, institution, size="full_history")
        if args.local_codes:
            localised(bundle, institution.code)
        body = json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode()
        client_id, secret = feeds[institution.code]
        token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        client = Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_PREFER="return=minimal")
        started = time.perf_counter()
        response = client.post("/fhir/", body, content_type=FHIR_JSON)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:500]
        entries += len(bundle["entry"])
    print(
        f"\nHISTORY {len(times)} full-history transaction Bundles of {entries // max(len(times), 1):,} entries into "
        f"the loaded archive: {', '.join(f'{t:.2f}' for t in times)} s each ({entries / sum(times):,.0f} resources/s)"
    )


def read_latency(args) -> None:
    from django.test import Client

    from ehr.models import Resource
    from healthplatform.fhirapi.views.base import FHIRView  # noqa: F401 - import cost before timing

    staff = _staff_client(Client)
    rng = random.Random(args.seed)
    top = Resource.objects.order_by("-id").values_list("id", flat=True).first() or 0
    ids = [rng.randint(1, top) for _ in range(args.samples * 2)]
    rows = list(Resource.objects.filter(id__in=ids, deleted=False).values_list("resource_type", "fhir_id"))
    rng.shuffle(rows)
    rows = rows[: args.samples]
    for rtype, fid in rows[:200]:  # warm-up
        staff.get(f"/fhir/{rtype}/{fid}")
    times = []
    for rtype, fid in rows:
        started = time.perf_counter()
        response = staff.get(f"/fhir/{rtype}/{fid}")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
    print(
        f"\nREAD   {len(times):,} random reads: p50 {percentile(times, 50) * 1000:.2f} ms, "
        f"p99 {percentile(times, 99) * 1000:.2f} ms, max {max(times) * 1000:.1f} ms  (bar p99 <= 20 ms)"
    )


def search_latency(args) -> None:
    from django.db import connection
    from django.test import Client

    from ehr.models import Resource

    staff = _staff_client(Client)
    total = Resource.objects.count()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT i.uuid, t.system, t.code FROM ehr_searchtoken t JOIN ehr_resource r ON r.id = t.resource_id "
            "JOIN mpi_identity i ON i.id = r.identity_id WHERE t.resource_type = 'Observation' AND t.param = 'code' "
            "AND r.id %% 97 = 0 LIMIT %s",
            [args.samples * 2],
        )
        pairs = cur.fetchall()
    rng = random.Random(args.seed)
    rng.shuffle(pairs)
    pairs = pairs[: args.samples]
    for uuid, system, code in pairs[:100]:
        staff.get(f"/fhir/Observation?patient={uuid}&code={system}|{code}")
    times, found = [], []
    for uuid, system, code in pairs:
        started = time.perf_counter()
        response = staff.get(f"/fhir/Observation?patient={uuid}&code={system}|{code}")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
        found.append(len(response.json().get("entry", [])))
    print(
        f"SEARCH Observation?patient=…&code=… at {total:,} resources, {len(times):,} searches "
        f"({statistics.mean(found):.1f} matches each): p50 {percentile(times, 50) * 1000:.2f} ms, "
        f"p99 {percentile(times, 99) * 1000:.2f} ms, max {max(times) * 1000:.1f} ms  (bar p99 <= 50 ms)"
    )


def _staff_client(client_class):
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-reader", defaults={"is_staff": True})
    client = client_class()
    client.force_login(user)
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--bundles", type=int, default=36000, help="residents whose typical Bundle is written (~29 resources each)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--per-bundle", type=int, default=1, help="residents per transaction Bundle (default 1: one resident each)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2000, help="reads and searches to time")
    parser.add_argument("--copy-sample", type=int, default=100_000, help="resources whose rows COPY writes again")
    parser.add_argument("--reuse", action="store_true", help="skip loading; time reads and searches only")
    parser.add_argument("--histories", type=int, default=3, help="full-history Bundles (3,000 entries) to time")
    parser.add_argument("--local-codes", action="store_true", help="feeds send local laboratory codes (issue 16)")
    parser.add_argument("--work", default=None, help="folder for the generated Bundles (default: a temp folder)")
    parser.add_argument(
        "--without-order-alerts",
        action="store_true",
        help="the written orders and prescriptions not checked by the alerts (the hook's cost, by alternating runs)",
    )
    args = parser.parse_args()
    if args.without_order_alerts:
        os.environ["BENCH_WITHOUT_ORDER_ALERTS"] = "1"  # the writer processes read it too

    _django()
    from django.db import connection

    bench_database()
    work = Path(args.work or tempfile.mkdtemp(prefix="hp-bench-fhir-work-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        setup(args, work)
        write_rate(args, work)
        if args.local_codes:
            translation_check()
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        copy_rate(args)
        history_time(args, work)
    read_latency(args)
    search_latency(args)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"\ndatabase size {cur.fetchone()[0]}")


if __name__ == "__main__":
    main()
