"""How sweeps scale: the same small grid with 1 and 2 workers, on the local pool and on Ray, Ray's
start-up, and how fast the driver registers results (the one writer of the store).

    pip install -e ".[ray]" && python benchmarks/sweep_scale.py [--json] [--steps 3000]

The grid is SQL on ``multigoal``, 2 values of alpha x 2 seeds (4 runs) at the task's network sizes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from skillbank.runs.jobs import register_result
from skillbank.runs.run import Run
from skillbank.runs.sweep import sweep
from skillbank.store.registry import Registry

GRID = {"alpha": [1.0, 10.0]}


def timed_sweep(backend: str, workers: int, steps: int, root: Path) -> float:
    start = time.perf_counter()
    sweep("multigoal", seeds=[0, 1], grid=GRID, steps=steps, workers=workers, backend=backend,
          store=root / f"store-{backend}-{workers}", runs_dir=root / f"runs-{backend}-{workers}",
          say=lambda line: None)  # fmt: skip
    return time.perf_counter() - start


def ray_startup() -> float:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.get(ray.remote(lambda: None).remote())  # the first worker is up
    elapsed = time.perf_counter() - start
    ray.shutdown()
    return elapsed


def registration_rate(root: Path, count: int = 200) -> float:
    """Registrations per second of one finished run's result under ``count`` distinct run ids."""
    from skillbank.runs.jobs import _read_result

    run = Run(next((root / "runs-local-1").glob("sweep-*/*")))
    result, registry = _read_result(run), Registry(root / "store-rate")
    start = time.perf_counter()
    for i in range(count):
        register_result(registry, {**run.spec, "name": f"rate-{i}"}, {**result, "run_id": f"rate-{i}"})
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--steps", type=int, default=3000, help="environment steps of every run (default 3000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        walls = {
            f"{backend}_{workers}worker": round(timed_sweep(backend, workers, args.steps, root), 1)
            for backend in ("local", "ray")
            for workers in (1, 2)
        }
        result = {
            "grid": {"task": "multigoal", "algo": "sql", "runs": 4, "steps_per_run": args.steps},
            "wall_s": walls,
            "speedup_2_workers": {b: round(walls[f"{b}_1worker"] / walls[f"{b}_2worker"], 2) for b in ("local", "ray")},
            "ray_startup_s": round(ray_startup(), 2),
            "registrations_per_s": round(registration_rate(root), 1),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result["wall_s"].items():
        print(f"{key:16} {value:7.1f} s")
    print(
        f"2 workers against 1: {result['speedup_2_workers']}; Ray's start-up {result['ray_startup_s']} s; "
        f"the driver registers {result['registrations_per_s']} results per second"
    )


if __name__ == "__main__":
    main()
