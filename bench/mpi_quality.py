"""MPI linkage quality on the labelled duplicate set: pairwise precision, recall, F1 and every false link.

    .venv/bin/python bench/mpi_quality.py                       # SQLite in a temporary folder
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_quality .venv/bin/python bench/mpi_quality.py
    .venv/bin/python bench/mpi_quality.py --seed 1-8 --show 0   # eight sets, one summary line each

Judge a rule change on several seeds, not on the one it was studied on: false links are rare events and
one set can hide a weakness another shows.

Registers every record of ``fixtures.duplicates`` (both locales: Chinese
demographics, and generic ones with Latin names and no national numbers) in
the order the generator shuffled them, through ``identity_register``, then
compares the persons the MPI formed with the truth labels. A pair of
registrations is *linked* when the MPI put them under one person; review items
are not links. Bar (issue 3): precision >= 0.999 and recall >= 0.98.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
os.environ["PLATFORM_DATA_DIR"] = tempfile.mkdtemp(prefix="hp-bench-")


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def run(locale: str, residents: int, seed: int, show: int, show_missed: int = 0) -> tuple[float, float, int]:
    from fixtures.duplicates import DuplicateSetGenerator
    from fixtures.loading import registration_request
    from mpi.models import Identity, ReviewItem
    from mpi.services import identity_register_batch

    regs = DuplicateSetGenerator(seed=seed, residents=residents, locale=locale).registrations()
    prefix = f"{locale}:"
    requests = [registration_request(r, prefix=prefix) for r in regs]
    started = time.perf_counter()
    errors = Counter()
    for i in range(0, len(requests), 500):
        for result in identity_register_batch(requests[i : i + 500], actor="bench"):
            if isinstance(result, Exception):
                errors[str(result)] += 1
    elapsed = time.perf_counter() - started

    by_key = {(prefix + r.assigning_authority, r.local_id): r for r in regs}
    person_of: dict[tuple[str, str], int] = {
        (a, lid): pid
        for a, lid, pid in Identity.objects.filter(assigning_authority__startswith=prefix).values_list(
            "assigning_authority", "local_id", "person_id"
        )
    }
    link_of = {  # how each record was linked, and its place in the registration order
        (a, lid): f"{kind} #{order}"
        for order, (a, lid, kind) in enumerate(
            Identity.objects.filter(assigning_authority__startswith=prefix)
            .order_by("id")
            .values_list("assigning_authority", "local_id", "link_kind")
        )
    }

    def how_linked(r) -> str:
        return link_of.get((prefix + r.assigning_authority, r.local_id), "")

    truth_sizes = Counter(r.truth for r in regs)
    person_sizes: Counter = Counter()
    cell: Counter = Counter()
    members: dict[int, list] = defaultdict(list)
    for key, r in by_key.items():
        pid = person_of.get(key)
        if pid is None:
            continue
        person_sizes[pid] += 1
        cell[(pid, r.truth)] += 1
        members[pid].append(r)
    true_pairs = sum(pairs(n) for n in truth_sizes.values())
    linked = sum(pairs(n) for n in person_sizes.values())
    correct = sum(pairs(n) for n in cell.values())
    false_links = linked - correct
    precision = correct / linked if linked else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    reviews = ReviewItem.objects.filter(identity__assigning_authority__startswith=prefix, status="open").count()

    print(
        f"\n== locale {locale}: {len(regs):,} registrations of {len(truth_sizes):,} residents (seed {seed}), "
        f"registered in {elapsed:.1f}s ({len(regs) / elapsed:,.0f}/s)"
    )
    if errors:
        print(f"   refused as unregistrable: {sum(errors.values())} ({dict(errors)})")
    print(f"   true pairs {true_pairs:,}   linked pairs {linked:,}   correct {correct:,}   false links {false_links:,}")
    print(f"   precision {precision:.5f}   recall {recall:.5f}   F1 {f1:.5f}   open review items {reviews:,}")

    # Recall by case: pairs of the same resident left apart, by the cases of the two records.
    missed: Counter = Counter()
    by_truth: dict[str, list] = defaultdict(list)
    for key, r in by_key.items():
        by_truth[r.truth].append((person_of.get(key), r))
    for recs in by_truth.values():
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                if recs[i][0] != recs[j][0]:
                    missed["+".join(sorted({recs[i][1].case, recs[j][1].case}))] += 1
    if missed:
        print("   missed pairs by case: " + ", ".join(f"{k} {v}" for k, v in missed.most_common(12)))
    shown_missed = 0
    for recs in by_truth.values():
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                if recs[i][0] != recs[j][0] and shown_missed < show_missed:
                    shown_missed += 1
                    print("   missed:")
                    for _, r in (recs[i], recs[j]):
                        print(
                            f"     {r.case}: {r.name!r} {r.family_name}/{r.given_name} {r.sex} {r.birth_date} "
                            f"id={r.resident_id} phone={r.phone} addr={r.address} at {r.assigning_authority} "
                            f"[{how_linked(r)}]"
                        )
    if false_links:
        print("   FALSE LINKS (records of different residents under one person):")
        shown = 0
        for pid, recs in members.items():
            if len({r.truth for r in recs}) > 1:
                for r in recs:
                    print(
                        f"     person {pid}: truth {r.truth} case {r.case} {r.name!r} {r.sex} {r.birth_date} "
                        f"id={r.resident_id} phone={r.phone} at {r.assigning_authority} [{how_linked(r)}]"
                    )
                shown += 1
                if shown >= show:
                    break
    ok = precision >= 0.999 and recall >= 0.98
    print(f"   bar (precision >= 0.999, recall >= 0.98): {'MET' if ok else 'NOT MET'}")
    return precision, recall, false_links


def seed_list(text: str) -> list[int]:
    """``7``, ``1,3,5`` or ``1-8``."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--seed", type=seed_list, default=[7], help="7, 1,3,5 or 1-8: one set after another")
    parser.add_argument("--locale", choices=["zh", "generic", "both"], default="both")
    parser.add_argument("--show", type=int, default=20, help="false-link persons to list")
    parser.add_argument("--show-missed", type=int, default=0, help="missed pairs to list")
    args = parser.parse_args()

    import django

    django.setup()
    from database import bench_database
    from django.core.management import call_command

    bench_database(sqlite=True)
    locales = ["zh", "generic"] if args.locale == "both" else [args.locale]
    results = {}
    for seed in args.seed:
        call_command("flush", interactive=False, verbosity=0)  # no set may match another's persons
        for locale in locales:
            results[(locale, seed)] = run(locale, args.residents, seed, args.show, args.show_missed)
    if len(args.seed) > 1:
        print("\n== summary")
        for (locale, seed), (precision, recall, false_links) in results.items():
            print(f"   {locale:8s} seed {seed:3d}: precision {precision:.5f} recall {recall:.5f} false {false_links}")
    sys.exit(0 if all(p >= 0.999 and r >= 0.98 for p, r, _ in results.values()) else 1)


if __name__ == "__main__":
    main()
