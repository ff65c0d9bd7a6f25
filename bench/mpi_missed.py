"""Why the MPI left true pairs of the labelled duplicate set apart: missed pairs grouped by cause.

    .venv/bin/python bench/mpi_missed.py --locale generic --seed 7

Registers the set as ``bench/mpi_quality.py`` does, then, for every pair of
registrations of one resident that ended under different persons, compares
the two stored profiles directly and says what stopped the link:

- ``not a candidate``: the pair shares no blocking key (the record never saw the other);
- ``conflict``: a field says they are different people;
- ``below review`` / ``review band``: the score is too low;
- ``uncorroborated``: the score reaches the auto-link band, but no corroboration
  (``rare name too common`` when only the rare-name rule was left);
- ``linkable pairwise``: the pair alone would link; another identity of the person conflicted,
  or the order of registrations decided otherwise.

Each group is broken down by its per-field levels (name, birth date, sex, phone, address).
Only levels, scores and counts are printed: no names, dates or numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
os.environ["PLATFORM_DATA_DIR"] = tempfile.mkdtemp(prefix="hp-bench-")


def cause(a, b, comparison, keys_a, keys_b) -> str:
    from mpi.linkage import name_is_rare

    auto = comparison.band()
    if not (keys_a & keys_b):
        return "not a candidate"
    if comparison.conflict:
        return "conflict"
    if auto == "auto_link":
        return "linkable pairwise"
    if comparison.score < 7.0:
        return "below review"
    if comparison.score < 18.0:
        return "review band (score)"
    if comparison.rare_name_eligible:
        return "uncorroborated: rare name too common" if not name_is_rare(a) else "uncorroborated: rare name rule"
    if comparison.needs_contact:
        return "uncorroborated: no contact agrees"
    return "uncorroborated: other"


def run(locale: str, residents: int, seed: int, detail: int) -> None:
    from fixtures.duplicates import DuplicateSetGenerator
    from fixtures.loading import registration_request
    from mpi.demographics import Profile, blocking_keys
    from mpi.matching import compare
    from mpi.models import Identity
    from mpi.services import identity_register_batch

    regs = DuplicateSetGenerator(seed=seed, residents=residents, locale=locale).registrations()
    prefix = f"{locale}:"
    requests = [registration_request(r, prefix=prefix) for r in regs]
    for i in range(0, len(requests), 500):
        identity_register_batch(requests[i : i + 500], actor="bench")
    by_key = {(prefix + r.assigning_authority, r.local_id): r for r in regs}
    rows = Identity.objects.filter(assigning_authority__startswith=prefix).values_list(
        "assigning_authority", "local_id", "person_id", "profile"
    )
    stored = {(a, lid): (pid, Profile.from_json(p)) for a, lid, pid, p in rows}
    by_truth: dict[str, list] = defaultdict(list)
    for key, r in by_key.items():
        if key in stored:
            by_truth[r.truth].append((r, *stored[key]))
    causes: Counter = Counter()
    levels: dict[str, Counter] = defaultdict(Counter)
    cases: dict[str, Counter] = defaultdict(Counter)
    for recs in by_truth.values():
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                (ra, pa, a), (rb, pb, b) = recs[i], recs[j]
                if pa == pb:
                    continue
                c = compare(a, b)
                why = cause(a, b, c, blocking_keys(a, query=True), blocking_keys(b))
                causes[why] += 1
                lv = ", ".join(f"{f}={c.levels.get(f, '-')}" for f in ("name", "birth_date", "sex", "phone", "address"))
                levels[why][f"{lv}  (score {c.score:.0f})" if detail else lv] += 1
                cases[why]["+".join(sorted({ra.case, rb.case}))] += 1
    print(f"\n== locale {locale} seed {seed}: {sum(causes.values())} missed pairs")
    for why, n in causes.most_common():
        print(f"  {n:5d}  {why}")
        for lv, k in levels[why].most_common(12):
            print(f"           {k:4d}  {lv}")
        print("           cases: " + ", ".join(f"{k} {v}" for k, v in cases[why].most_common(8)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--locale", choices=["zh", "generic"], default="generic")
    parser.add_argument("--scores", type=int, default=0, help="1: show the rounded score beside the levels")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    run(args.locale, args.residents, args.seed, args.scores)


if __name__ == "__main__":
    main()
