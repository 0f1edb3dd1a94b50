"""The long run of the format fuzzer (tests/store/test_formats.py runs 2000 cases per format in CI).

    python benchmarks/fuzz.py [--cases 20000] [--seed 1] [--json]

Per format: cases run, outcomes (``ok``: loaded and verified; each refusal by its error type; ``FAILED``:
any other exception, a hang past the per-case limit, or a refused input that changed a store) and the
slowest case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fuzzing import fuzz  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20_000, help="mutations per format (default 20000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mutations (CI uses 0)")
    parser.add_argument("--limit", type=float, default=10.0, help="seconds a case may take (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    start = time.perf_counter()
    report = fuzz(args.cases, seed=args.seed, limit_s=args.limit)
    result = {"cases_per_format": args.cases, "seed": args.seed, "wall_s": round(time.perf_counter() - start, 1),
              "formats": report}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, entry in report.items():
        print(f"{name:20} {entry['cases']:>7} cases  {json.dumps(entry['outcomes'])}  slowest {entry['slowest_s']} s")
    print(f"{result['wall_s']} s in all")
    if any(entry["outcomes"].get("FAILED") for entry in report.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
