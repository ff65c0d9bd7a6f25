"""R4B validation cost per resource of the synthetic hospital Bundles, with and without the fast paths of
healthplatform.fhirvalidation (the same checks as fhir_core's, per-class work done once per class).

    .venv/bin/python bench/fhir_validation.py            # both, alternating, best of --repeat each
    … --bundles 300 --repeat 5

No database: validation only (``Model.model_validate`` of each entry's resource, as the write path does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(bundles: int, repeat: int) -> tuple[float, int]:
    """Best time per resource, in µs, in this interpreter."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()  # healthplatform applies the fast paths first, unless HP_FHIR_FAST_VALIDATION=0
    from fhir.resources.R4B import get_fhir_model_class

    from fixtures.fhir_bundles import FHIRBundleGenerator
    from fixtures.region import RegionGenerator, RegionSizes

    region = RegionGenerator(seed=1, sizes=RegionSizes(residents=max(bundles, 1000)))
    resources = [e["resource"] for b in FHIRBundleGenerator(region, seed=1).bundles(bundles) for e in b["entry"]]
    for r in resources[:500]:  # model classes are built on first use
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for r in resources:
            get_fhir_model_class(r["resourceType"]).model_validate(r)
        best = min(best, time.perf_counter() - started)
    return best / len(resources) * 1e6, len(resources)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundles", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: measure and print
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.bundles, args.repeat)))
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
    results: dict[str, list[float]] = {"0": [], "1": []}
    count = 0
    for _ in range(2):
        for fast in ("0", "1"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", "--bundles", str(args.bundles), "--repeat", str(args.repeat)],
                env={**os.environ, "HP_FHIR_FAST_VALIDATION": fast},
                capture_output=True,
                text=True,
                check=True,
            )
            per, count = json.loads(out.stdout)
            results[fast].append(per)
    plain, fast = min(results["0"]), min(results["1"])
    print(
        f"R4B validation of {count:,} resources from {args.bundles} Bundles: fhir_core {plain:.1f} µs/resource, "
        f"with the fast paths {fast:.1f} µs/resource ({plain / fast:.2f}x)"
    )


if __name__ == "__main__":
    main()
