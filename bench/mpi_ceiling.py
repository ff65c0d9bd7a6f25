"""How far any linking rule over the matcher's comparison levels could go on the labelled set: a ceiling.

    .venv/bin/python bench/mpi_ceiling.py --locale generic --seed 7

Compares every pair of registrations that shares a blocking key (``mpi.demographics.blocking_keys``) with
``mpi.matching.compare`` and sorts the pairs by their *signature*: the level of each field (resident id,
health card, document, name, birth date, sex, phone, address), what the middle names say, and whether a
placeholder name is involved. Then it cheats on purpose: it looks at the truth labels and accepts whole
signatures, purest first, the way the best possible rule over those levels would, and reports

- ``pairwise``: the most true pairs such a rule links with pairwise precision >= 0.999;
- ``transitive``: the same after joining linked pairs into persons (as the MPI does), which adds pairs
  through third records and multiplies false links: the best recall over the purity order with
  precision >= 0.999.

The rule is chosen with the labels of the very data it is scored on, so the figure is an optimistic
ceiling for the matcher, not a target. Only counts are printed: no names, dates or numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")

FIELDS = ("resident_id", "health_card", "document", "name", "birth_date", "sex", "phone", "address")
# A blocking key shared by more records than this (a common birth year, say) adds no pair the others miss.
KEY_LIMIT = 400


def _middles(a, b) -> str:
    from mpi.matching import _full_names_agree

    if a.middle_all and b.middle_all:
        if not _full_names_agree(a, b):
            return "differ"
        spelled = any(x == y and len(x) > 1 for x in a.middle_all for y in b.middle_all)
        return "same name" if spelled else "same initial"
    return "one side" if (a.middle_all or b.middle_all) else "none"


def _persons(n: int, links) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in links:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    return [find(i) for i in range(n)]


def run(locale: str, residents: int, seed: int) -> None:
    from fixtures.duplicates import DuplicateSetGenerator
    from fixtures.loading import registration_request
    from mpi.demographics import blocking_keys, profile_build
    from mpi.matching import compare

    regs = DuplicateSetGenerator(seed=seed, residents=residents, locale=locale).registrations()
    today = dt.date.today()  # as identity_register builds its profiles
    profiles = [profile_build(registration_request(r).demographics, today=today) for r in regs]
    truth = [r.truth for r in regs]
    true_pairs = sum(n * (n - 1) // 2 for n in Counter(truth).values())

    by_key: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(profiles):
        for k in blocking_keys(p):
            by_key[k].append(i)
    seen: set[tuple[int, int]] = set()
    counts: Counter = Counter()
    pairs_of: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    for members in by_key.values():
        if len(members) > KEY_LIMIT:
            continue
        for i, j in itertools.combinations(members, 2):
            if (i, j) in seen:
                continue
            seen.add((i, j))
            a, b = profiles[i], profiles[j]
            levels = compare(a, b).levels
            signature = (*(levels.get(f, "-") for f in FIELDS), _middles(a, b), bool(a.placeholder or b.placeholder))
            counts[(signature, truth[i] == truth[j])] += 1
            pairs_of[signature].append((i, j))
    signatures = sorted(
        {s for s, _ in counts},
        key=lambda s: (counts[(s, False)] / (counts[(s, True)] + counts[(s, False)]), -counts[(s, True)]),
    )

    tp = fp = 0
    for s in signatures:
        t, f = counts[(s, True)], counts[(s, False)]
        if t and fp + f <= 0.001 * (tp + fp + t + f):
            tp, fp = tp + t, fp + f

    best = (0.0, 1.0, 0)
    accepted: list[tuple[int, int]] = []
    for n, s in enumerate(signatures, 1):
        if not counts[(s, True)]:
            break
        accepted += pairs_of[s]
        person = _persons(len(regs), accepted)
        linked = sum(k * (k - 1) // 2 for k in Counter(person).values())
        correct = sum(k * (k - 1) // 2 for k in Counter(zip(person, truth, strict=True)).values())
        recall, precision = correct / true_pairs, correct / linked if linked else 1.0
        if precision >= 0.999 and recall > best[0]:
            best = (recall, precision, n)
        if precision < 0.995:
            break
    print(
        f"\n== locale {locale} seed {seed}: {len(regs):,} registrations, {true_pairs:,} true pairs, "
        f"{len(seen):,} candidate pairs in {len(signatures):,} signatures"
    )
    print(f"   pairwise   ceiling: recall {tp / true_pairs:.4f} at precision {tp / (tp + fp):.5f}")
    print(f"   transitive ceiling: recall {best[0]:.4f} at precision {best[1]:.5f} (the {best[2]} purest signatures)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--locale", choices=["zh", "generic"], default="generic")
    args = parser.parse_args()

    import django

    django.setup()
    run(args.locale, args.residents, args.seed)


if __name__ == "__main__":
    main()
