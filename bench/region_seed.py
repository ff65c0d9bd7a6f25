"""Generator and registry load speed for the default synthetic region.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench .venv/bin/python bench/region_seed.py

Works on its own database only: a fresh SQLite file in a temporary folder, or
a PostgreSQL database whose name starts with ``hp_bench`` (created if missing,
emptied before the run). Any other DATABASE_URL is refused: it could be real.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
os.environ["PLATFORM_DATA_DIR"] = tempfile.mkdtemp(prefix="hp-bench-")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from fixtures.loading import region_load
    from fixtures.region import RegionGenerator, RegionSizes

    gen = RegionGenerator(seed=args.seed, sizes=RegionSizes(residents=args.residents))
    started = time.perf_counter()
    count = sum(1 for _ in gen.residents())
    elapsed = time.perf_counter() - started
    print(f"residents generated: {count:,} in {elapsed:.2f}s = {count / elapsed:,.0f}/s")

    if connection.vendor == "postgresql":
        if not connection.settings_dict["NAME"].startswith("hp_bench"):
            sys.exit("bench: DATABASE_URL must name a database starting with hp_bench (it is emptied)")
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [connection.settings_dict["NAME"]])
            if not cursor.fetchone():
                cursor.execute(f'CREATE DATABASE "{connection.settings_dict["NAME"]}"')
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    started = time.perf_counter()
    counts = region_load(RegionGenerator(seed=args.seed))
    elapsed = time.perf_counter() - started
    rows = sum(counts.values())
    print(f"registry loaded on {connection.vendor}: {rows:,} rows in {elapsed:.2f}s = {rows / elapsed:,.0f} rows/s")
    print("  " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
