"""MPI speed on PostgreSQL: one registration's latency in an index of N persons, and bulk throughput.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_mpi \\
        .venv/bin/python bench/mpi_speed.py --persons 1000000 --latency 3000 --bulk 100000

1. Builds the index (unless ``--reuse`` finds one of the right size): N
   synthetic residents (``fixtures.region``) loaded as the population register
   through ``mpi.loading.population_load``, by ``--workers`` processes.
2. Latency: registrations from the labelled duplicate set of the same seed
   (the same residents seen by clinics and hospitals, with typos, swaps,
   missing numbers, plus twins, newborns and namesakes that are new persons),
   one ``identity_register`` call and commit each, timed around the call,
   after a vacuum, a checkpoint and ``--warmup`` untimed registrations.
3. Bulk: ``--bulk`` more registrations through ``identity_register_batch``
   (``BATCH`` per transaction) by ``--workers`` processes; prints identities/s.

Refuses any database whose name does not start with ``hp_bench``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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

os.environ.setdefault("PLATFORM_DATA_DIR", tempfile.mkdtemp(prefix="hp-bench-"))

AUTHORITY = "POPULATION-REGISTER"
BATCH = 100  # registrations per transaction in the bulk figure
SIZES = {"institutions": 60, "physicians": 0, "nurses": 0, "pharmacists": 0, "technicians": 0}


def _setup():
    import django

    django.setup()


def _load_slice(args: tuple[int, int, int, int]) -> int:
    """Worker: loads residents whose index % workers == part."""
    seed, persons, part, workers = args
    _setup()
    from fixtures.loading import register_record
    from fixtures.region import RegionGenerator, RegionSizes
    from mpi.loading import population_load

    gen = RegionGenerator(seed=seed, sizes=RegionSizes(residents=persons, **SIZES))
    records = (register_record(r) for i, r in enumerate(gen.residents()) if i % workers == part)
    return population_load(records, assigning_authority=AUTHORITY, actor="bench").loaded


def _requests(seed: int, residents: int, start: int, stop: int, prefix: str):
    from fixtures.duplicates import DuplicateSetGenerator
    from fixtures.loading import registration_request

    regs = DuplicateSetGenerator(seed=seed, residents=residents).registrations()[start:stop]
    return [registration_request(r, prefix=prefix) for r in regs]


def _bulk_slice(args: tuple[int, int, int, int, int]) -> tuple[int, float]:
    seed, residents, total, part, workers = args
    _setup()
    from mpi.services import identity_register_batch

    requests = _requests(seed, residents, 0, total, "B-")[part::workers]
    started = time.perf_counter()
    done = 0
    for i in range(0, len(requests), BATCH):
        done += len(identity_register_batch(requests[i : i + BATCH], actor="bench"))
    return done, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--latency", type=int, default=3000, help="registrations timed one by one")
    parser.add_argument("--bulk", type=int, default=100_000, help="registrations for the throughput figure")
    parser.add_argument("--warmup", type=int, default=300, help="registrations before timing starts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="keep an index of the right size from an earlier run")
    parser.add_argument("--build-only", action="store_true", help="build the index and stop")
    args = parser.parse_args()

    _setup()
    from django.core.management import call_command
    from django.db import connection

    from mpi.models import Identity

    bench_database()
    loaded = Identity.objects.filter(assigning_authority=AUTHORITY).count()
    if not (args.reuse and loaded == args.persons):
        call_command("flush", interactive=False, verbosity=0)
        started = time.perf_counter()
        with mp.get_context("spawn").Pool(args.workers) as pool:
            slices = [(args.seed, args.persons, p, args.workers) for p in range(args.workers)]
            loaded = sum(pool.map(_load_slice, slices))
        elapsed = time.perf_counter() - started
        print(
            f"index built: {loaded:,} persons from the population register in {elapsed:.0f}s "
            f"({loaded / elapsed:,.0f}/s, {args.workers} processes)"
        )
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    else:
        # A previous run's registrations are removed so each run measures the same thing.
        print(f"index reused: {loaded:,} persons")
    _cleanup(AUTHORITY)
    # Measure a settled database: no autovacuum of the cleanup's deletions, no checkpoint pending.
    with connection.cursor() as cur:
        for table in ("mpi_person", "mpi_identity", "mpi_identifier", "mpi_matchkey", "mpi_linkevent"):
            cur.execute(f"VACUUM (ANALYZE) {table}")
        cur.execute("CHECKPOINT")
    if args.build_only:
        return

    # Residents for the duplicate set: enough that it yields the registrations asked for.
    residents = max(2000, (args.latency + args.bulk) * 2 // 3)
    residents = min(residents, args.persons)
    if args.latency:
        _latency(args, residents)
    if args.bulk:
        _bulk(args, residents)
    _sizes()


def _latency(args, residents: int) -> None:
    from mpi.models import Person
    from mpi.services import identity_register

    requests = _requests(args.seed, residents, 0, args.latency + args.warmup, "L-")
    # Warm-up (not timed): the first registrations read the index's pages into memory.
    for r in requests[args.latency :]:
        identity_register(
            assigning_authority="W-" + r.assigning_authority, local_id=r.local_id, demographics=r.demographics
        )
    requests = requests[: args.latency]
    decisions: dict[str, int] = {}
    times = []
    for r in requests:
        t0 = time.perf_counter()
        result = identity_register(
            assigning_authority=r.assigning_authority, local_id=r.local_id, demographics=r.demographics, actor="bench"
        )
        times.append((time.perf_counter() - t0) * 1000)
        decisions[result.decision] = decisions.get(result.decision, 0) + 1
    times.sort()
    q = statistics.quantiles(times, n=100)
    print(
        f"single registration, {len(times):,} calls (each matched and committed) into "
        f"{Person.objects.count():,} persons:"
    )
    print(
        f"  p50 {q[49]:.2f} ms   p90 {q[89]:.2f} ms   p99 {q[98]:.2f} ms   max {times[-1]:.2f} ms   "
        f"mean {statistics.mean(times):.2f} ms"
    )
    print("  decisions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(decisions.items())))


def _bulk(args, residents: int) -> None:
    if args.bulk:
        started = time.perf_counter()
        with mp.get_context("spawn").Pool(args.workers) as pool:
            parts = pool.map(
                _bulk_slice, [(args.seed, residents, args.bulk, p, args.workers) for p in range(args.workers)]
            )
        wall = time.perf_counter() - started
        done = sum(n for n, _ in parts)
        busy = max(t for _, t in parts)
        print(
            f"bulk registration: {done:,} identities by {args.workers} processes, {BATCH} per transaction: "
            f"{done / busy:,.0f}/s (registering {busy:.0f}s; {wall:.0f}s with generating the records)"
        )


def _sizes() -> None:
    from django.db import connection

    from mpi.models import Identity, MatchKey, Person

    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace "
            "WHERE n.nspname='public' AND relkind='r' AND relname LIKE 'mpi_%%' ORDER BY 2 DESC"
        )
        sizes = cur.fetchall()
    total = sum(s for _, s in sizes)
    print(
        f"index: {Person.objects.count():,} persons, {Identity.objects.count():,} identities, "
        f"{MatchKey.objects.count():,} match keys; {total / 2**30:.2f} GiB on disk with indexes"
    )
    print("  " + ", ".join(f"{n} {s / 2**20:,.0f} MiB" for n, s in sizes[:6]))


def _cleanup(keep_authority: str) -> None:
    """Deletes everything but the population register's identities and persons (earlier runs' registrations)."""
    from django.db import connection

    from mpi.models import Identity

    if not Identity.objects.exclude(assigning_authority=keep_authority).exists():
        return
    with connection.cursor() as cur:
        cur.execute("DELETE FROM mpi_reviewitem; DELETE FROM mpi_donotlink; DELETE FROM mpi_rematchrun")
        cur.execute(
            "DELETE FROM mpi_linkevent WHERE identity_id IS NULL OR identity_id IN "
            "(SELECT id FROM mpi_identity WHERE assigning_authority <> %s)",
            [keep_authority],
        )
        cur.execute(
            "DELETE FROM mpi_matchkey WHERE identity_id IN "
            "(SELECT id FROM mpi_identity WHERE assigning_authority <> %s)",
            [keep_authority],
        )
        cur.execute(
            "DELETE FROM mpi_identifier WHERE identity_id IN "
            "(SELECT id FROM mpi_identity WHERE assigning_authority <> %s)",
            [keep_authority],
        )
        cur.execute("DELETE FROM mpi_identity WHERE assigning_authority <> %s", [keep_authority])
        cur.execute("UPDATE mpi_person SET status='active', merged_into_id=NULL")
        cur.execute(
            "DELETE FROM mpi_person p WHERE NOT EXISTS (SELECT 1 FROM mpi_identity i WHERE i.person_id = p.id) "
            "AND NOT EXISTS (SELECT 1 FROM mpi_linkevent e WHERE e.person_id = p.id OR e.other_person_id = p.id)"
        )
    # Golden records of population persons touched by earlier links drift only in display fields; fine for timing.


if __name__ == "__main__":
    main()
