"""HL7 v2 processing on PostgreSQL (issue 17): inbox messages mapped and written per second by real Celery
workers through a real broker, beside the FHIR write path and PostgreSQL's own limits, in one run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_v2proc .venv/bin/python bench/hl7v2_process.py
    … --messages 20000                  # a moderate run (the closing figure is the default, 100,000)
    … --messages 3000 --fhir-bundles 300 --latency-sample 100   # a quick run
    … --broker rabbitmq                 # the workers' broker (default redis)
    … --profile                         # also: where one worker's time per message goes (cProfile, in-process)

What is measured, in order, each step on an emptied database (``flush``) with the same registry:

1. ``INSERT``: the inbox rows of the ``--messages`` messages written by PostgreSQL's batched insert (500 rows a
   statement and a transaction, as the listener's group commit writes them): the store's physical limit, and
   how the inbox is pre-filled (the rows are the listener's own: ``intake_read`` + ``arrival_of``, not timed).
2. ``V2 xN``: ``N`` real Celery workers (``celery -A healthplatform worker --pool=solo``, separate processes,
   ``--broker``) each given one ``healthplatform.ingest.inbox_drain`` task that drains until nothing is left;
   timed from the tasks sent (the workers are up and answer a ping) to the last result. Messages/s, and
   resources/s = archive rows created + versions replaced (an A08 of a known patient is a new version, not a
   row). For 1 and 2 workers, and their ratio. Celery and not ``manage.py inbox_process``: the issue names
   Celery with a real broker, and a task per drain adds nothing measurable to a drain of thousands.
3. ``FHIR xN``: bench/fhir_speed.py's write path (its ``setup`` and ``write_rate``, shared code) with the same
   numbers of processes: resources/s; the ratio v2/FHIR (bar ≥ 0.8).
4. ``COPY``: bench/fhir_speed.py's ``copy_rate`` of the archive rows the v2 run wrote (the archive's limit).
5. ``LATENCY``: ``manage.py runmllp`` and two workers draining in a loop; ``--latency-sample`` messages sent
   over MLLP at ``--latency-rate``/s (below capacity, open loop). Per message, ACK → readable is
   ``processed_at − received_at`` (both stamped by the platform: the inbox commit, and the processing just
   before its commit) — the fact is readable through the API once that commit returns — plus one FHIR read
   of the message's Patient by identifier through the API's views (Django's test client, in-process); p50/p99
   of the first, and of the sum with the read's p99. Timestamps rather than polling the API over HTTP: a
   poller's own interval would be most of what it measured at these latencies.

The mix (``messages``): today's mapped types — ADT^A01/A08 (half of the messages) and ORU^R01 with 1-30 OBX
(ten on average) of real LOINC laboratory tests (local codes past the 18 of them, each test once a message) —
from four hospitals, for about ``--messages``/3 residents of whom a few are frequent (a patient's messages are
applied in order, so a hot patient is the worst case of the per-patient claim), 70 % with a resident id
number, 15 % also known at a second hospital. One function makes it; when ``fixtures/hl7v2_feeds.py`` (the
region's feed generator) exists, ``--feed region`` takes its mix instead.

Figures are noisy on these shared 2-core machines (other engineers' runs share the cores): compare rows of
one run, and alternate runs when comparing versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("PLATFORM_DATA_DIR", tempfile.mkdtemp(prefix="hp-bench-v2proc-"))

HOSPITALS = [("HIS-1", "H0001"), ("HIS-2", "H0002"), ("LIS-3", "H0003"), ("HIS-4", "H0004")]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"]
DRAIN = "healthplatform.ingest.inbox_drain"


# --- the messages -------------------------------------------------------------------------------------------


def _resident(p: int) -> dict:
    """Resident ``p``'s demographics (deterministic in ``p``)."""
    from mpi.identifiers import make_resident_id

    rng = random.Random(p)
    born = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(90 * 365))
    return {
        "born": born,
        "sex": "MF"[p % 2],
        "name": f"{SURNAMES[rng.randrange(len(SURNAMES))]}^{GIVEN[rng.randrange(16)]}{GIVEN[rng.randrange(16)]}",
        "resident_id": make_resident_id("440106", born, p % 999 + 1) if rng.random() < 0.7 else "",
        "home": rng.randrange(len(HOSPITALS)),
        "second": rng.randrange(len(HOSPITALS)) if rng.random() < 0.15 else None,
    }


def _today_mix(count: int, seed: int):
    """Today's mapped mix (see the module's docstring): yields the bytes of each message, in sending order."""
    from fixtures.fhir_bundles import LAB_TESTS

    rng = random.Random(seed)
    tests = list(LAB_TESTS.items())
    residents = max(1, count // 3)
    known: dict[int, dict] = {}
    for n in range(count):
        # Skewed: resident 0 is the most frequent, most residents send a few messages.
        p = int(residents * rng.random() ** 2)
        r = known.get(p) or known.setdefault(p, _resident(p))
        h = r["home"] if r["second"] is None or rng.random() < 0.7 else r["second"]
        application, facility = HOSPITALS[h]
        when = (dt.datetime(2026, 12, 3, 6) + dt.timedelta(seconds=n)).strftime("%Y%m%d%H%M%S")
        name = r["name"] + ("" if rng.random() < 0.9 else "^^^^^L")
        pid = (
            f"PID|1||{facility}-{p:07d}^^^{facility}^MR"
            + (f"~{r['resident_id']}^^^CHN^NI" if r["resident_id"] else "")
            + f"||{name}||{r['born']:%Y%m%d}|{r['sex']}|||深圳市南山区{p % 97}号^^深圳^广东^518000^CHN"
            + f"||^PRN^PH^^^^138{p:08d}\r"
        )
        if rng.random() < 0.5:
            kind = "A01" if rng.random() < 0.6 else "A08"
            text = (
                f"MSH|^~\\&|{application}|{facility}|HIP|REGION|{when}||ADT^{kind}^ADT_A01|{facility}-{n:09d}|P|2.5.1"
                f"|||||CHN|UNICODE UTF-8\rEVN|{kind}|{when}\r"
                + pid
                + f"PV1|1|I|W{n % 9}^{n % 40}^1||||D{n % 50:03d}^张^医生||||||||||||V{h}-{n:09d}"
                + f"|||||||||||||||||||||||||{when}+0800\r"
            )
        else:
            obx = []
            # Each test once per message (the LIS's local codes after the 18 LOINC-coded ones): the same code
            # twice in one ORU parks it today (tests/ingest/test_processing_repeats.py).
            for i in range(1, min(30, max(1, int(rng.expovariate(0.1)))) + 1):
                if i > len(tests):
                    obx.append(f"OBX|{i}|NM|L{i:03d}^检验项目{i}^L||{i}.5|U/L|1-50|N|||F|||{when}+0800\r")
                    continue
                code, (zh, _, unit, decimals, men, _women) = tests[(n + i) % len(tests)]
                low, high = men[0] if men[0] is not None else 0, men[1] if men[1] is not None else 2 * men[0]
                value = round(rng.uniform(low * 0.8, high * 1.2), decimals)
                flag = "H" if value > high else "L" if value < low else "N"
                span = f"{'' if men[0] is None else men[0]}-{'' if men[1] is None else men[1]}"
                obx.append(f"OBX|{i}|NM|{code}^{zh}^LN||{value}|{unit}|{span}|{flag}|||F|||{when}+0800\r")
            text = (
                f"MSH|^~\\&|{application}|{facility}|HIP|REGION|{when}||ORU^R01^ORU_R01|{facility}-{n:09d}|P|2.5.1"
                f"|||||CHN|UNICODE UTF-8\r"
                + pid
                + f"OBR|1|P{n:09d}|F{n:09d}|24323-8^综合代谢^LN|||{when}+0800\r"
                + "".join(obx)
            )
        yield text.encode()


# The region of ``--feed region``: big enough for a day of ~10,000 messages; the days follow one another until
# ``--messages`` are made (the same residents come back, as they do).
REGION_SIZES = {"institutions": 40, "physicians": 200, "nurses": 300, "pharmacists": 10, "technicians": 10}
REGION_RESIDENTS = 2000


def _region(seed: int):
    from fixtures.region import RegionGenerator, RegionSizes

    return RegionGenerator(seed=seed, sizes=RegionSizes(**REGION_SIZES, residents=REGION_RESIDENTS))


def _region_mix(count: int, seed: int):
    """The region generator's HL7 v2 days (``fixtures.hl7v2_feeds``: its vendors' versions, character sets and
    local codes; ADT, results, orders, prescriptions, documents, vaccinations), day after day."""
    import datetime as dt

    from fixtures.hl7v2_feeds import HL7FeedGenerator

    region = _region(seed)
    made, day = 0, region.today - dt.timedelta(days=60)
    while made < count:
        for message in HL7FeedGenerator(region, seed=seed, day=day, residents=REGION_RESIDENTS).messages():
            yield message.payload
            made += 1
            if made >= count:
                return
        day += dt.timedelta(days=1)


def messages(count: int, seed: int, feed: str = "today"):
    """The bench's messages: today's mix, or the region generator's (``fixtures.hl7v2_feeds``) when asked."""
    return _region_mix(count, seed) if feed == "region" else _today_mix(count, seed)


# --- the database -------------------------------------------------------------------------------------------


def _fresh(feed: str = "today", seed: int = 17) -> dict[tuple[str, str], int]:
    """An emptied database with the bench's hospitals and their feeds (the region's, with their local code lists
    and concept maps, for ``--feed region``); their source ids by (MSH-3, MSH-4)."""
    from django.core.management import call_command

    from registry.models import SourceSystem
    from registry.services import source_system_register
    from tests.registry.factories import InstitutionFactory

    call_command("flush", interactive=False, verbosity=0)
    if feed == "region":
        from fixtures.loading import local_codes_load, region_load

        region_load(_region(seed))
        local_codes_load()
        return {(s.sending_application, s.sending_facility): s.pk for s in SourceSystem.objects.all()}
    sources = {}
    for n, (application, facility) in enumerate(HOSPITALS):
        institution = InstitutionFactory(code=facility, name=f"基准医院{n + 1}", licence_number=f"44010611B{9000 + n}")
        source, _ = source_system_register(
            institution=institution,
            kind="HIS",
            name=application,
            sending_application=application,
            sending_facility=facility,
        )
        sources[(application, facility)] = source.pk
    return sources


def _inbox_rows(payloads: list[bytes], sources: dict) -> list[tuple]:
    """The inbox rows the listener would write for these messages (its own functions)."""
    from django.utils import timezone

    from healthplatform.ingest.inbox import _COLUMNS
    from healthplatform.ingest.intake import arrival_of, intake_read
    from mpi.models import uuid7

    rows, now = [], timezone.now()
    for payload in payloads:
        intake = intake_read(payload, default_charset="UTF-8")
        arrival = arrival_of(intake, door="mllp", peer="bench", source_id=sources[intake.sender])
        values = vars(arrival) | {"uuid": uuid7(), "received_at": now, "resends": 0, "attempts": 0}
        values |= {"control_id_reused": False, "processed_at": None, "replay_of_id": None}
        values |= {"claimed_pid": None, "submission_id": None, "produced": None}
        rows.append(tuple(values[c] for c in _COLUMNS))
    return rows


def _fill(rows: list[tuple]) -> float:
    """Writes the inbox rows by batched insert (500 a statement and a commit); rows/s."""
    from django.db import connection, transaction

    from ehr.bulk import rows_insert_returning_ids
    from healthplatform.ingest.inbox import _COLUMNS
    from healthplatform.ingest.models import InboxMessage

    began = time.perf_counter()
    for i in range(0, len(rows), 500):
        with transaction.atomic():
            rows_insert_returning_ids(InboxMessage, _COLUMNS, rows[i : i + 500])
    rate = len(rows) / (time.perf_counter() - began)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return rate


def _writes() -> int:
    """Archive writes so far: rows created and versions replaced."""
    from ehr.models import Resource, ResourceVersion

    return Resource.objects.count() + ResourceVersion.objects.count()


# --- the workers --------------------------------------------------------------------------------------------


class Workers:
    """``count`` real Celery worker processes on one queue of their own, and the client that sends them tasks."""

    def __init__(self, count: int, broker_url: str, log_dir: Path):
        from celery import Celery

        backend = broker_url if broker_url.startswith("redis") else "rpc://"
        self.queue = f"bench-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": backend, "LOG_LEVEL": "WARNING"}
        self.names = [f"w{i}-{self.queue}@bench" for i in range(count)]
        self.logs = [open(log_dir / f"{name}.log", "w") for name in self.names]  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "celery", "-A", "healthplatform", "worker", "--pool=solo", "-Q", self.queue,
                   "--without-gossip", "--without-mingle", "--loglevel=WARNING"]  # fmt: skip
        self.processes = [
            subprocess.Popen(
                [*command, "-n", name], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            for name, log in zip(self.names, self.logs, strict=True)
        ]
        self.client = Celery("bench-client", broker=broker_url, backend=backend, set_as_current=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answered = {name for reply in self.client.control.ping(destination=self.names, timeout=1) for name in reply}
            if answered == set(self.names):
                return
            if any(p.poll() is not None for p in self.processes):
                break
        self.stop()
        sys.exit(f"workers did not start; see {log_dir}")

    def drain(self, tasks: int, limit: int) -> list:
        return [self.client.send_task(DRAIN, args=(limit,), queue=self.queue) for _ in range(tasks)]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(60)
        for log in self.logs:
            log.close()
        if not self.client.conf.broker_url.startswith("redis"):
            with self.client.connection_for_write() as conn:
                conn.default_channel.queue_delete(self.queue)
        self.client.close()


def process_rate(count: int, args, log_dir: Path) -> dict:
    """One run of ``count`` workers over the pre-filled inbox; its figures."""
    import threading

    import fhir_speed
    from django.db import connection

    workers = Workers(count, args.broker_url, log_dir)
    with connection.cursor() as cur:
        cur.execute("SHOW autovacuum")
        autovacuum = cur.fetchone()[0] == "on"
    # As for the FHIR run beside it: on a server without autovacuum the planner would keep the empty tables'
    # statistics for the whole run.
    stop = threading.Event()
    analyzer = None if autovacuum else threading.Thread(target=fhir_speed._analyzer, args=(stop,), daemon=True)
    try:
        before = _writes()
        connection.close()
        began = time.perf_counter()
        if analyzer:
            analyzer.start()
        done = [r.get(timeout=36000) for r in workers.drain(count, args.messages)]
        seconds = time.perf_counter() - began
    finally:
        stop.set()
        if analyzer:
            analyzer.join()
        workers.stop()
    written = _writes() - before
    statuses = _statuses()
    figure = {"messages": sum(done), "seconds": seconds, "written": written, "statuses": statuses}
    print(
        f"V2 x{count}   {sum(done):,} messages by {count} Celery worker(s) in {seconds:.1f}s: "
        f"{sum(done) / seconds:,.0f} messages/s, {written / seconds:,.0f} resources/s "
        f"({written:,} archive writes; per task {done}; {statuses})"
    )
    return figure


def _statuses() -> dict:
    from django.db.models import Count

    from healthplatform.ingest.models import InboxMessage

    parked = InboxMessage.objects.filter(status="parked").values_list("message_type", "error").distinct()[:5]
    for message_type, error in parked:  # what to look at, if anything was parked (our words, no patient data)
        print(f"       parked {message_type}: {error[:200]}")
    return {s: n for s, n in InboxMessage.objects.values_list("status").annotate(n=Count("id"))}


# --- the FHIR write path beside it ---------------------------------------------------------------------------


def fhir_rate(workers: int, bundles: int, seed: int) -> float:
    """bench/fhir_speed.py's write path (same code) with ``workers`` processes: resources/s."""
    import fhir_speed

    work = Path(tempfile.mkdtemp(prefix="hp-bench-v2proc-fhir-"))
    fargs = argparse.Namespace(bundles=bundles, workers=workers, per_bundle=1, seed=seed, local_codes=False)
    fhir_speed.setup(fargs, work)
    figure = fhir_speed.write_rate(fargs, work)
    return figure["written"] / figure["seconds"]


# --- ACK to readable ---------------------------------------------------------------------------------------


def latency(args, log_dir: Path) -> None:
    """ACK → readable for a sample sent over MLLP while two workers drain (see the module's docstring)."""
    import socket
    import threading

    import fhir_speed
    from django.db import connection
    from django.test import Client
    from mllp_accept import _free_port, _send

    from healthplatform.ingest.models import InboxMessage

    _fresh(args.feed, args.seed)
    if args.feed == "region":  # the loaded region's own feeds (another seed is another region), later messages
        payloads = list(messages(args.messages + args.latency_sample, args.seed, "region"))[-args.latency_sample :]
    else:
        payloads = list(messages(args.latency_sample, args.seed + 1, args.feed))
    port = _free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    listener = subprocess.Popen(
        [sys.executable, "manage.py", "runmllp", "--port", str(port), "--no-drain"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    workers = Workers(2, args.broker_url, log_dir)
    stop = threading.Event()

    def keep_draining():  # what a beat schedule or the listener's on-commit drain would do in production
        pending = workers.drain(2, 50)
        while not stop.is_set() or pending:
            for result in [r for r in pending if r.ready()]:
                pending.remove(result)
                if not stop.is_set():
                    if result.get() == 0:
                        time.sleep(0.02)
                    pending += workers.drain(1, 50)
            time.sleep(0.005)

    drainer = threading.Thread(target=keep_draining)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        drainer.start()
        lanes = 4
        seconds, accepted, acks = _send(port, payloads, 1, lanes, lanes / args.latency_rate)
        deadline = time.monotonic() + 300
        while InboxMessage.objects.filter(status="received").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        drainer.join(120)
        workers.stop()
        listener.terminate()
        listener.wait(30)
    rows = list(InboxMessage.objects.exclude(processed_at=None).values_list("received_at", "processed_at", "status"))
    waits = [(done - got).total_seconds() * 1000 for got, done, _ in rows]
    # One FHIR read per sampled message: its Patient by identifier, as a clinician's client finds it.
    reader = fhir_speed._staff_client(Client)
    keys = [k for k in InboxMessage.objects.values_list("patient_key", flat=True)[:400] if "|" in k and "^" in k][:200]
    reads = []
    # The first 20 again after a warm-up (URL resolver, imports, the read's caches).
    for key in keys[:20] + keys:
        if len(reads) == 20 and len(keys) > 20:
            reads.clear()
        mrn, authority = key.split("|", 1)[1].split("^", 1)
        url = f"/fhir/Patient?identifier=urn:platform:authority:{authority}|{mrn}"
        began = time.perf_counter()
        response = reader.get(url)
        reads.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200 and response.json().get("entry"), (url, response.content[:300])
    connection.close()
    p = fhir_speed.percentile
    if not waits or not reads:
        print(f"LATENCY none measured: {accepted:,} of {len(payloads):,} accepted, {len(rows):,} processed")
        return
    print(
        f"LATENCY {accepted:,} of {len(payloads):,} sent over MLLP at {args.latency_rate:,.0f}/s offered "
        f"({len(payloads) / seconds:,.0f}/s sent; ACK p99 {p(acks, 99):.0f} ms), processed by 2 draining workers: "
        f"ACK→processed p50 {p(waits, 50):.0f} ms, p99 {p(waits, 99):.0f} ms; one FHIR read p99 "
        f"{p(reads, 99):.1f} ms; ACK→readable p99 ≤ {p(waits, 99) + p(reads, 99):.0f} ms "
        f"({len(rows):,} processed rows, {sum(s != 'processed' for *_, s in rows)} parked)"
    )


# --- where the time goes -----------------------------------------------------------------------------------


def profile(count: int) -> None:
    """One worker's ``inbox_process`` in this process under cProfile over ``count`` pre-filled messages: the
    shares of claim, parse, mapping and corridor, and the top functions by cumulative time."""
    import cProfile
    import io
    import pstats

    from healthplatform.ingest import processing

    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    done = processing.inbox_process(limit=count)
    profiler.disable()
    seconds = time.perf_counter() - began
    stats = pstats.Stats(profiler)
    total = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        total[(Path(filename).name, name)] = total.get((Path(filename).name, name), 0) + cumulative
    parts = [
        ("claim, phase one (_claim_ids)", ("processing.py", "_claim_ids")),
        ("claim, phase two (_claimed)", ("processing.py", "_claimed")),
        ("parse (message_parse)", ("message.py", "message_parse")),
        ("mapping (message_mapped)", ("v2events.py", "message_mapped")),
        ("corridor (bundle_apply)", ("apply.py", "bundle_apply")),
        ("  of it, MPI (identity_register)", ("registration.py", "identity_register")),
        ("  of it, archive (resources_write)", ("services.py", "resources_write")),
        ("  of it, validation (resource_validated)", ("validation.py", "resource_validated")),
        ("saves (Model.save: submissions, acknowledgements)", ("base.py", "save")),
        ("outcomes (bulk_update, one a batch)", ("query.py", "bulk_update")),
        ("commit", ("base.py", "commit")),
    ]
    print(
        f"\nPROFILE one worker in-process, {done:,} messages in {seconds:.1f}s under cProfile ({done / seconds:,.0f}/s)"
    )
    for label, key in parts:
        t = total.get(key, 0.0)
        print(f"  {label:42s} {t:7.2f}s  {t / seconds:6.1%}  {t / max(done, 1) * 1000:6.2f} ms/message")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:12000])


# --- main ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order")
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    parser.add_argument("--fhir-bundles", type=int, default=1000, help="FHIR Bundles per FHIR run (~29 resources)")
    parser.add_argument("--latency-sample", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=50.0, help="messages/s offered in the latency run")
    parser.add_argument("--feed", choices=["today", "region"], default="today")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    args.broker_url = {
        "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "rabbitmq": os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    }[args.broker]

    import logging

    import fhir_speed

    fhir_speed._django()
    # The FHIR run's alert tasks run eagerly in this process (no broker here), and the profile's worker logs a
    # line a message: neither is a figure.
    logging.getLogger("celery").setLevel(logging.WARNING)
    logging.getLogger("healthplatform.ingest.processing").setLevel(logging.WARNING)
    from database import bench_database

    bench_database()
    log_dir = Path(tempfile.mkdtemp(prefix="hp-bench-v2proc-logs-"))
    counts = [int(c) for c in args.workers.split(",")]

    began = time.perf_counter()
    payloads = list(messages(args.messages, args.seed, args.feed))
    oru = sum(b"ORU^R01" in p for p in payloads)
    obx = sum(p.count(b"\rOBX|") for p in payloads)
    print(
        f"{len(payloads):,} messages ({oru:,} ORU^R01 with {obx / max(oru, 1):.1f} OBX on average, "
        f"{len(payloads) - oru:,} others), {sum(map(len, payloads)) / len(payloads):,.0f} bytes on average; "
        f"broker {args.broker}; generated in {time.perf_counter() - began:.0f}s (not timed)"
    )
    v2: dict[int, dict] = {}
    insert_rates = []
    for count in counts:
        sources = _fresh(args.feed, args.seed)
        rows = _inbox_rows(payloads, sources)
        insert_rates.append(_fill(rows))
        v2[count] = process_rate(count, args, log_dir)
    print(
        f"INSERT the same inbox rows, batched (500 a statement and a commit): {max(insert_rates):,.0f} rows/s "
        "(the store's limit)"
    )
    if len(counts) > 1:
        a, b = counts[0], counts[-1]
        rate = {c: v2[c]["messages"] / v2[c]["seconds"] for c in counts}
        print(f"RATIO  {b} workers / {a}: {rate[b] / rate[a]:.2f}")
    fhir_speed.copy_rate(argparse.Namespace(copy_sample=min(100_000, max(1000, args.messages))))

    fhir = {}
    for count in counts:
        fhir[count] = fhir_rate(count, args.fhir_bundles, args.seed)
        v2_rate = v2[count]["written"] / v2[count]["seconds"]
        print(f"FHIR x{count} {fhir[count]:,.0f} resources/s; v2/FHIR {v2_rate / fhir[count]:.2f}  (bar ≥ 0.8)")
    if args.latency_sample:
        latency(args, log_dir)
    if args.profile:
        sources = _fresh(args.feed, args.seed)
        _fill(_inbox_rows(payloads[: args.profile_messages], sources))
        profile(args.profile_messages)
    print(f"\nworker logs in {log_dir}")


if __name__ == "__main__":
    main()
