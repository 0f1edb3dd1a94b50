"""``skillbank experiment finetune``: fine-tuned against from scratch, on a grid of tasks, methods and seeds.

Every cell of the grid is an independent job (:mod:`skillbank.runs.jobs`) in its own resumable run
directory under ``OUT/runs/``, trained on a local process pool or on Ray (:mod:`skillbank.runs.backends`)
with one torch thread per worker and evaluated every ``eval_every`` steps. The driver registers each
skill, once, in the experiment's own store ``OUT/store`` (which first receives a copy of the
pretrained skill, for the lineage). Running the same
command again resumes unfinished runs and skips finished ones. ``OUT/summary.json`` then holds, per
task, the threshold from the task file and, per method, the median environment steps to reach it,
the final return and success rate, and the wall time, and a :func:`verdict` (fine-tuned within half the
steps of the best from scratch?); ``OUT/finetune_<task>.png`` the learning curves.
The best fine-tuned run per task (by final evaluation return) is registered again as ``<task>-finetuned``,
and ``OUT/finetune_<task>_rollouts.png`` draws its rollouts beside those of the best from-scratch run.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from skillbank.errors import SkillbankError
from skillbank.runs.backends import run_jobs
from skillbank.runs.evaluate import make_skill_env, rollouts
from skillbank.runs.finetune import finetune_spec
from skillbank.runs.jobs import RESULT_DIR, RESULT_FILE, method_label, register_result, train_spec
from skillbank.runs.run import Run
from skillbank.runs.tasks import load_task
from skillbank.store.registry import Parent, Registry
from skillbank.viz.plot import plot_curves, plot_rollouts_beside

SCRATCH_METHODS = ("sql-scratch", "sac-scratch", "ddpg-scratch")
METHODS = ("finetune", *SCRATCH_METHODS)
EVAL_EVERY = 10_000
EVAL_EPISODES = 10
PICTURE_EPISODES = 10


def copy_pretrained(source: Registry, ref: str, target: Registry) -> str:
    """The pretrained skill's reference in ``target``, copying it (and its ancestors) there once."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "pretrained.tar.gz"
        resolved = str(source.resolve(ref))
        source.export(resolved, archive)
        return target.import_(archive)[resolved]


def grid(
    pretrained: str, source: Registry, tasks: list[str], methods: list[str], seeds: int, steps: int, out: Path,
    eval_every: int = EVAL_EVERY, eval_episodes: int = EVAL_EPISODES, checkpoint_every: int | None = None,
    compile: bool = False, recipe: dict[str, Any] | None = None, tensorboard: str | Path | None = None,
) -> list[tuple[Path, dict[str, Any]]]:  # fmt: skip
    """The grid's run directories and job specs, checked before anything is trained; ``recipe`` holds
    :func:`~skillbank.runs.finetune.finetune_spec`'s options of the method finetune (``fresh_critic``, ...); with
    ``tensorboard``, every run writes its metrics there as events too."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SkillbankError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if seeds < 1 or steps < 1:
        raise SkillbankError("--seeds and --steps must be at least 1")
    store = Registry(out / "store")
    ref = copy_pretrained(source, pretrained, store) if "finetune" in methods else None
    skill = store.load(ref) if ref else None
    common = dict(checkpoint_every=checkpoint_every or eval_every, eval_every=eval_every, eval_episodes=eval_episodes,
                  compile=compile)  # fmt: skip
    if tensorboard:
        common["tensorboard"] = str(Path(tensorboard).resolve())
    jobs = []
    for task_name in tasks:
        task = load_task(task_name)
        if task.experiment.threshold is None:
            raise SkillbankError(f"{task.path} has no [experiment] threshold; set one before running the experiment")
        for method in methods:
            for seed in range(seeds):
                name = f"{task.name}-{method}-s{seed}"
                if method == "finetune":
                    spec = finetune_spec(skill, task, steps=steps, seed=seed, name=name, store=store.path.resolve(),
                                         keep_replay=False, **(recipe or {}), **common)  # fmt: skip
                else:
                    spec = train_spec(str(task.path), algo=method.split("-")[0], steps=steps, seed=seed, name=name,
                                      store=store.path, **common)  # fmt: skip
                spec.update(method=method, threshold=task.experiment.threshold)
                jobs.append((out / "runs" / name, spec))
    return jobs


def run_grid(
    jobs: list[tuple[Path, dict[str, Any]]], workers: int, backend: str = "local", address: str | None = None,
    say=print,
) -> list[dict[str, Any]]:  # fmt: skip
    """Train every job not yet registered on ``backend`` and register each as it comes back, here,
    once; the outcomes, in the jobs' order."""
    runs = [Run(path, spec) for path, spec in jobs]  # refuses a directory that holds another run
    registry = Registry(jobs[0][1]["store"]) if jobs else None
    outcomes = {str(r.path): {"status": "finished", "ref": ref} for r in runs if (ref := registry.find_run(r.run_id))}
    say(f"{len(outcomes)} of {len(runs)} runs already finished; training {len(runs) - len(outcomes)} on {workers} "
        f"worker(s), backend {backend}")  # fmt: skip
    by_dir = {str(r.path): r for r in runs}

    def register(run_dir: str, result: dict[str, Any]) -> None:
        outcome = {k: v for k, v in result.items() if k != "files"}
        if result["status"] == "finished":
            outcome["ref"] = register_result(registry, by_dir[run_dir].spec, result)
        outcomes[run_dir] = outcome
        say(f"  {Path(run_dir).name}: {outcome['status']} after {outcome['steps']} steps")

    run_jobs([d for d in by_dir if d not in outcomes], workers, backend, address, register)
    return [outcomes[str(r.path)] for r in runs]


def steps_to_threshold(rows: list[dict[str, float]], threshold: float) -> float:
    """The environment steps at the first evaluation at or above ``threshold`` (infinite if none)."""
    return next((row["step"] for row in rows if row.get("eval_return", -math.inf) >= threshold), math.inf)


def tabulate(jobs: list[tuple[Path, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, dict[str, list]]]:
    """Per task, each method's medians over seeds (the schema of ``summary.json``, without the verdict and the best
    skills), and each method's evaluation curves, from the runs' metrics."""
    tasks: dict[str, Any] = {}
    curves: dict[str, dict[str, list]] = {}
    for path, spec in jobs:
        run = Run(path)
        rows = [row for row in run.metrics() if "eval_return" in row]
        task = tasks.setdefault(spec["task_name"], {"threshold": spec["threshold"], "seeds": 0,
                                                     "budget_steps": spec["steps"], "methods": {}})  # fmt: skip
        per_seed = task["methods"].setdefault(spec["method"], {"seeds": []})["seeds"]
        final = rows[-1] if rows else {}
        done = (path / RESULT_DIR / RESULT_FILE).is_file()
        per_seed.append({
            "seed": spec["seed"], "run": str(path), "steps_to_threshold": steps_to_threshold(rows, spec["threshold"]),
            "final_return": final.get("eval_return"), "final_success_rate": final.get("eval_success_rate"),
            "wall_time_s": run.training_time_s() if done else None, "steps": int(final.get("step", 0)),
        })  # fmt: skip
        curves.setdefault(spec["task_name"], {}).setdefault(spec["method"], []).append(rows)
    for task in tasks.values():
        for entry in task["methods"].values():
            seeds = entry.pop("seeds")
            task["seeds"] = max(task["seeds"], len(seeds))
            median = float(np.median([s["steps_to_threshold"] for s in seeds]))
            entry.update(
                steps_to_threshold=None if math.isinf(median) else median,
                final_return=_mean(s["final_return"] for s in seeds),
                final_success_rate=_mean(s["final_success_rate"] for s in seeds),
                wall_time_s=_mean(s["wall_time_s"] for s in seeds),
                per_seed=[
                    {
                        **s,
                        "steps_to_threshold": None if math.isinf(s["steps_to_threshold"]) else s["steps_to_threshold"],
                    }
                    for s in seeds
                ],  # fmt: skip
            )
    return tasks, curves


def summarise(jobs: list[tuple[Path, dict[str, Any]]], out: Path) -> dict[str, Any]:
    """``OUT/summary.json`` and one learning-curve figure per task, from the runs' metrics; its ``pretrained``
    names the skill that the method finetune started from (None without it)."""
    tasks, curves = tabulate(jobs)
    for name, task in tasks.items():
        task["verdict"] = verdict(task)
        plot_curves(curves[name], out / f"finetune_{name}.png", "eval_return", title=f"{name}: evaluation return",
                    threshold=task["threshold"])  # fmt: skip
        task["best"] = best_skills(name, task, Registry(jobs[0][1]["store"]), out)
        _relative_paths(task, out)
    pretrained = next((spec["pretrained"] for _, spec in jobs if spec.get("pretrained")), None)
    summary = {"pretrained": pretrained, "tasks": tasks}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _relative_paths(task: dict[str, Any], out: Path) -> None:
    """Runs and figures under ``out`` named relative to it, so that ``summary.json`` still points at them
    when the folder is copied or moved (into ``docs/results/``, onto another machine)."""
    for entry in task["methods"].values():
        for seed in entry["per_seed"]:
            seed["run"] = _relative(seed["run"], out)
    if task["best"].get("figure"):
        task["best"]["figure"] = _relative(task["best"]["figure"], out)


def _relative(path: str, out: Path) -> str:
    resolved, folder = Path(path).resolve(), out.resolve()
    return str(resolved.relative_to(folder)) if resolved.is_relative_to(folder) else path


def compare(experiments: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Verdicts across experiments on the same tasks that fine-tune different pretrained skills (one
    ``--pretrained`` each): per task, every fine-tuned method, named for its skill (``finetune from
    ant-walk-sac@1``), against the best from-scratch method of them all; the best runs (:func:`best_runs`); and
    with ``out`` their learning curves in ``out/finetune_<task>_compared.png`` and the best runs' rollouts in
    ``out/finetune_<task>_rollouts_compared.png``. Only finished runs count."""
    jobs, stores = [], {}  # each run's skill is registered in its experiment's store, OUT/store
    for folder in experiments:
        registry = Registry(folder / "store") if (folder / "store").is_dir() else None
        for path in sorted((folder / "runs").glob(f"*/{RESULT_DIR}/{RESULT_FILE}")):
            spec = Run(path.parents[1]).spec
            jobs.append((path.parents[1], {**spec, "method": method_label(spec)}))
            stores[str(path.parents[1])] = registry
    tasks, curves = tabulate(jobs)
    for name, task in tasks.items():
        tuned = [m for m in task["methods"] if m not in SCRATCH_METHODS]
        task["verdicts"] = {m: verdict(task, tuned=m) for m in tuned}
        for entry in task["methods"].values():
            for seed in entry["per_seed"]:
                registry = stores[seed["run"]]
                seed["ref"] = registry and registry.find_run(Run(seed["run"]).run_id)
        best = dict(zip(("finetuned", "scratch"), best_runs(task)))
        task["best"] = {k: v and {"method": v["method"], "ref": v["ref"], "run": v["run"]} for k, v in best.items()}
        if out is None:
            continue
        title = f"{name}: evaluation return"
        task["figure"] = str(plot_curves(curves[name], out / f"finetune_{name}_compared.png", "eval_return", title,
                                         task["threshold"]))  # fmt: skip
        shown = {f"{v['method']}: {v['ref']}": stores[v["run"]].load(v["ref"]) for v in task["best"].values() if v}
        if shown:
            figure = draw_rollouts(name, shown, out / f"finetune_{name}_rollouts_compared.png")
            task["best"]["figure"] = str(figure)
    return {"experiments": [str(f) for f in experiments], "tasks": tasks}


def verdict(task: dict[str, Any], tuned: str = "finetune") -> dict[str, Any]:
    """Did fine-tuning (the method ``tuned``) reach the threshold in at most half the steps of the best
    from-scratch method (medians over seeds)? A method that never reached it needs more than the budget, so the
    budget stands in for its steps: a lower bound, which keeps the verdict conservative."""
    methods = task["methods"]
    tuned_steps = methods.get(tuned, {}).get("steps_to_threshold")
    scratch = {m: e["steps_to_threshold"] for m, e in methods.items() if m in SCRATCH_METHODS}
    reached = {m: steps for m, steps in scratch.items() if steps is not None}
    best = min(reached, key=reached.get) if reached else None
    scratch_steps = reached[best] if best else task["budget_steps"]
    return {
        "finetune_steps": tuned_steps, "best_scratch_method": best, "best_scratch_steps": reached.get(best),
        "speedup": None if tuned_steps is None or not reached else scratch_steps / tuned_steps,
        "within_half": tuned_steps is not None and bool(scratch) and tuned_steps <= scratch_steps / 2,
    }  # fmt: skip


def best_runs(task: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The best fine-tuned run (the highest final return of any fine-tuned method) and the best from-scratch
    method's best run (that method reached the threshold soonest, else it has the highest final return): per-seed
    entries with their ``method``, among the runs registered (with a ``ref``)."""
    methods = task["methods"]
    tuned = _best_run(
        [{**s, "method": m} for m, e in methods.items() if m not in SCRATCH_METHODS for s in e["per_seed"]]
    )
    scratch = {m: e for m, e in methods.items() if m in SCRATCH_METHODS and _best_run(e["per_seed"])}
    if not scratch:
        return tuned, None
    method = min(scratch, key=lambda m: (scratch[m]["steps_to_threshold"] or math.inf, -scratch[m]["final_return"]))
    return tuned, {**_best_run(scratch[method]["per_seed"]), "method": method}


def _best_run(seeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    finished = [s for s in seeds if s["final_return"] is not None and s.get("ref")]
    return max(finished, key=lambda s: s["final_return"]) if finished else None


def best_skills(name: str, task: dict[str, Any], registry: Registry, out: Path) -> dict[str, Any]:
    """Register the task's best fine-tuned run as ``<task>-finetuned`` (once per run) and draw its rollouts
    beside the best from-scratch run's (:func:`best_runs`) in ``out/finetune_<task>_rollouts.png``."""
    for entry in task["methods"].values():
        for seed in entry["per_seed"]:
            seed["ref"] = registry.find_run(Run(seed["run"]).run_id)
    tuned, scratch = best_runs(task)
    best: dict[str, Any] = {"finetuned": None, "scratch": None}
    panels = {}
    if tuned is not None:
        best["finetuned"] = registry.register(
            registry.load(tuned["ref"]), f"{name}-finetuned", parents=[Parent(tuned["ref"], "best-of-seeds")],
            description=f"the best of the fine-tuned runs on {name}", run_id=f"best-of-seeds:{tuned['ref']}",
        )  # fmt: skip
        panels[f"fine-tuned: {best['finetuned']}"] = registry.load(best["finetuned"])
    if scratch is not None:
        best["scratch"] = {"method": scratch["method"], "ref": scratch["ref"]}
        panels[f"{scratch['method']}: {scratch['ref']}"] = registry.load(scratch["ref"])
    if panels:
        best["figure"] = str(draw_rollouts(name, panels, out / f"finetune_{name}_rollouts.png"))
    return best


def draw_rollouts(task: str, skills: dict[str, Any], out: Path) -> Path:
    """Each skill's rollouts on its own task, from above, side by side, under its label."""
    panels = {}
    for label, skill in skills.items():
        env = make_skill_env(skill)
        panels[label] = (env, rollouts(skill, PICTURE_EPISODES, seed=0, env=env))
    return plot_rollouts_beside(panels, out, f"{task}: {PICTURE_EPISODES} rollouts at the end of the budget")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
