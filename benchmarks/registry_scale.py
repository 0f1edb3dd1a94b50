"""How the registry scales: list, find and load on a store of 10,000 versions.

    python benchmarks/registry_scale.py [--versions 10000] [--store DIR]

Builds the store once (reused if DIR already holds it), then prints the median time of each
operation over repeated calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from skillbank import Registry, Skill


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def tiny_skill(seed: int) -> Skill:
    from gymnasium import spaces

    box = spaces.Box(-1, 1, (2,))
    torch.manual_seed(seed)
    return Skill.build(
        box, box, algorithm="sql", alpha=1.0, gamma=0.99, q_hidden=[32, 32], critics=1, q_output_scale=1.0,
        sampler="svgd", sampler_hidden=[32, 32], task={"name": f"task{seed % 10}"},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=100, help="versions are spread over this many names")
    parser.add_argument("--store", type=Path, help="store directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = args.store or Path(tempfile.mkdtemp(prefix="skillbank-bench-"))
    registry = Registry(store)
    existing = sum(r["versions"] for r in registry.list())
    start = time.perf_counter()
    for i in range(existing, args.versions):
        registry.register(tiny_skill(i), f"skill-{i % args.names:03d}", tags=["even" if i % 2 == 0 else "odd"])
    build_s = time.perf_counter() - start
    results = {
        "versions": sum(r["versions"] for r in registry.list()),
        "register_ms_mean_while_building": (build_s * 1000 / max(1, args.versions - existing))
        if existing < args.versions
        else None,
        "list_ms": timed(registry.list, 20),
        "find_task_ms": timed(lambda: registry.find(task="task3"), 20),
        "find_tag_and_algo_ms": timed(lambda: registry.find(tag="even", algo="sql", name="skill-007"), 20),
        "resolve_latest_ms": timed(lambda: registry.resolve("skill-042"), 50),
        "load_ms": timed(lambda: registry.load("skill-042@37"), 50),
        "verify_all_ms": timed(registry.verify, 1),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:34} {value if isinstance(value, int) or value is None else f'{value:10.2f}'}")


if __name__ == "__main__":
    main()
