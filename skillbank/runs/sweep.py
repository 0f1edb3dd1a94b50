"""``skillbank sweep``: one training run per seed and per combination of hyperparameter values, each
registered (tagged with the sweep's id) and summarised over seeds.

>>> sweep("multigoal", seeds=range(5), grid={"alpha": [1.0, 10.0]}, workers=2)   # doctest: +SKIP

The runs go to the local process pool or to Ray (:mod:`skillbank.runs.backends`) on the same code path
as ``skillbank experiment``; the driver registers each once (by run id), so running the same
command again after a crash, the driver's or a worker's, continues the grid and registers nothing twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skillbank.errors import ConfigError, SkillbankError
from skillbank.runs.backends import run_jobs
from skillbank.runs.jobs import CHECKPOINT_EVERY, register_result, train_spec
from skillbank.runs.run import Run, default_runs_dir
from skillbank.runs.tasks import load_task
from skillbank.store.registry import Registry, validate_name

REPORTED = ("mean_return", "success_rate", "mean_speed", "octants_covered")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` or ``"0,2,5"`` (or a mix: ``"0-2,7"``) as a list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            seeds += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ConfigError(f"--seeds takes ranges and lists like 0-4 or 0,2,5, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must name distinct seeds >= 0, got {text!r}")
    return seeds


def parse_sets(values: Sequence[str]) -> dict[str, list[Any]]:
    """``--set key=value`` (a TOML value: ``alpha=0.1``, ``hidden=[64, 64]``), repeated for more values of a key."""
    grid: dict[str, list[Any]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # a bare word is a string
        grid.setdefault(key.strip(), []).append(parsed)
    return grid


def label(point: dict[str, Any]) -> str:
    """A name-safe label for one combination of values, e.g. ``alpha-0.1_hidden-64x64``."""
    if not point:
        return "default"
    parts = []
    for key, value in sorted(point.items()):
        text = "x".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}-{text}")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(parts))


def _point_summary(registry: Registry, point: dict[str, Any], members: list[tuple[Run, str]]) -> dict[str, Any]:
    """One combination of values: each seed's reported metrics, and their mean and spread over seeds."""
    rows = [{"seed": run.spec["seed"], "ref": ref, **registry.info(ref)["metadata"]["metrics"]} for run, ref in members]
    entry: dict[str, Any] = {"set": point, "runs": [{k: r.get(k) for k in ("seed", "ref", *REPORTED)} for r in rows]}
    for key in REPORTED:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        if values:
            entry[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1
                          else 0.0}  # fmt: skip
    return entry


def sweep(
    task: str,
    *,
    algo: str | None = None,
    seeds: Iterable[int] = (0,),
    grid: dict[str, list[Any]] | None = None,
    steps: int | None = None,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    runs_dir: str | Path | None = None,
    store: str | Path | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    tensorboard: str | Path | None = None,
    say=print,
) -> dict[str, Any]:
    """Train ``task`` once per seed and per combination of ``grid`` values, register every skill tagged
    ``sweep-ID``, and return the metrics of each combination with their mean and spread over seeds (and, with
    ``tensorboard``, write each run's metrics there as events)."""
    loaded, seeds, grid = load_task(task), list(seeds), dict(grid or {})
    registry = Registry(store)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    identity = {"task": str(loaded.path.resolve()), "algo": algo or loaded.algorithm, "seeds": seeds, "grid": grid,
                "steps": steps}  # fmt: skip
    sweep_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    base = Path(runs_dir or default_runs_dir()) / f"sweep-{sweep_id}"
    runs = []
    varying = [key for key, values in grid.items() if len(values) > 1]  # what tells the runs apart
    for point in points:  # every spec is built, so every value is checked, before anything trains
        tag = label({k: point[k] for k in varying})
        for seed in seeds:
            name = f"{loaded.name}-{identity['algo']}-{tag}-s{seed}"
            if len(name) > 100:
                name = f"{loaded.name}-{identity['algo']}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}-s{seed}"
            validate_name(name)
            spec = train_spec(str(loaded.path), algo=algo, steps=steps, seed=seed, name=name, store=registry.path,
                              overrides=point, checkpoint_every=checkpoint_every, tensorboard=tensorboard)  # fmt: skip
            spec.update(sweep=sweep_id, point=point)
            runs.append(Run(base / f"{name}", spec))
    by_dir = {str(run.path): run for run in runs}
    refs = {d: ref for d, run in by_dir.items() if (ref := registry.find_run(run.run_id))}
    say(f"sweep {sweep_id}: {len(runs)} runs ({len(points)} combinations x {len(seeds)} seeds) in {base}; "
        f"{len(refs)} already registered")  # fmt: skip

    def register(run_dir: str, result: dict[str, Any]) -> None:
        if result["status"] != "finished":
            raise SkillbankError(f"the run in {run_dir} stopped at step {result['steps']}; run the sweep again")
        refs[run_dir] = register_result(registry, by_dir[run_dir].spec, result, tags=[f"sweep-{sweep_id}"])
        shown = {k: v for k, v in result["metrics"].items() if k in REPORTED}
        say(f"  {refs[run_dir]}: {json.dumps(shown)}")

    run_jobs([d for d in by_dir if d not in refs], workers, backend, address, register)
    table = [_point_summary(registry, point, [(run, refs[d]) for d, run in by_dir.items()
                                              if run.spec["point"] == point]) for point in points]  # fmt: skip
    return {"sweep": sweep_id, "task": loaded.name, "algo": identity["algo"], "seeds": seeds, "grid": grid,
            "tag": f"sweep-{sweep_id}", "runs_dir": str(base), "points": table}  # fmt: skip
