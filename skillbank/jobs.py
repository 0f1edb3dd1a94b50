"""What the training commands launch: a job described by JSON, trained in its own run directory,
then evaluated and registered exactly once.

``skillbank train`` and ``skillbank finetune`` write a job's spec into ``RUN_DIR/run.json``;
``--resume RUN_DIR`` reads it back and goes on where the run stopped; ``skillbank experiment``
runs many of them on a process pool. A job that finished records its registered reference in
``RUN_DIR/registered.json`` and is never registered twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skillbank.envs import make_env
from skillbank.errors import SkillbankError
from skillbank.evaluate import evaluate, evaluate_and_register
from skillbank.offpolicy import OffPolicyAlgorithm
from skillbank.registry import Parent, Registry
from skillbank.runs import Run, default_runs_dir
from skillbank.tasks import ALGORITHMS, load_task

REGISTERED_FILE = "registered.json"
CHECKPOINT_EVERY = 10_000
EVAL_EPISODES = 10


def train_spec(
    task: str,
    *,
    algo: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    name: str | None = None,
    store: str | Path,
    keep_replay: bool = False,
    compile: bool = False,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    eval_every: int | None = None,
    eval_episodes: int = EVAL_EPISODES,
) -> dict[str, Any]:
    """The spec of ``skillbank train TASK``, with the task's defaults filled in (checked now)."""
    loaded = load_task(task)
    algo = algo or loaded.algorithm
    if algo not in ALGORITHMS:
        raise SkillbankError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")
    config = loaded.configs.get(algo) or ALGORITHMS[algo].config_class()
    return {
        "kind": "train",
        "task": str(loaded.path.resolve()),
        "task_name": loaded.name,
        "algo": algo,
        # What is trained is fixed here: a resumed run never picks up later edits of the task file.
        "env_id": loaded.env_id,
        "env_kwargs": loaded.env_kwargs,
        "config": config.to_dict(),
        "steps": loaded.steps if steps is None else steps,
        "seed": loaded.seed if seed is None else seed,
        "name": name or f"{loaded.name}-{algo}",
        "store": str(Path(store).resolve()),
        "keep_replay": keep_replay,
        "compile": compile,
        "device": device,
        "checkpoint_every": checkpoint_every,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
    }


def new_run_dir(spec: dict[str, Any]) -> Path:
    """A fresh run directory under :func:`~skillbank.runs.default_runs_dir` for ``spec``."""
    return default_runs_dir() / f"{spec['name']}-s{spec['seed']}-{time.strftime('%Y%m%d-%H%M%S')}"


def build(spec: dict[str, Any]) -> OffPolicyAlgorithm:
    """The untrained (or, for fine-tuning, pretrained) algorithm a spec describes."""
    if spec["kind"] == "finetune":
        from skillbank.finetune import build_finetune

        return build_finetune(spec)
    if spec["kind"] != "train":
        raise SkillbankError(f"unknown job kind {spec['kind']!r}")
    cls = ALGORITHMS[spec["algo"]]
    algo = cls(
        make_env(spec["env_id"], spec["env_kwargs"]), cls.config_class.from_dict(spec["config"]), seed=spec["seed"],
        compile=spec["compile"], device=spec["device"],
    )  # fmt: skip
    algo.skill.description["task"].update(name=spec["task_name"], env_id=spec["env_id"], env_kwargs=spec["env_kwargs"])
    return algo


def evaluator(spec: dict[str, Any]):
    """``evaluate(algo) -> {"eval_return", "eval_success_rate", "eval_speed"}`` on fixed start seeds,
    without touching the algorithm's random generator (so evaluating never changes training)."""

    def run(algo: OffPolicyAlgorithm) -> dict[str, float]:
        summary = evaluate(algo.skill, spec["eval_episodes"], seed=10_000 + spec["seed"])
        out = {"eval_return": summary["mean_return"]}
        for key, column in (("success_rate", "eval_success_rate"), ("mean_speed", "eval_speed")):
            if key in summary:
                out[column] = summary[key]
        return out

    return run


def execute(run: Run, progress_bar: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Train the job of ``run`` (resuming it), then evaluate and register it once. Returns
    ``{"status": "finished" | "interrupted", "ref": ..., "run_dir": ...}``."""
    spec = run.spec
    registered = run.path / REGISTERED_FILE
    if registered.is_file():
        return json.loads(registered.read_text())
    if threads:
        torch.set_num_threads(threads)
    algo = build(spec)
    evaluate_periodically = evaluator(spec) if spec.get("eval_every") else None
    finished = run.train(
        algo, spec["steps"], checkpoint_every=spec["checkpoint_every"], progress_bar=progress_bar,
        evaluate=evaluate_periodically, eval_every=spec.get("eval_every"),
    )  # fmt: skip
    if not finished:
        return {"status": "interrupted", "ref": None, "run_dir": str(run.path), "steps": algo.num_timesteps}
    task = load_task(spec["task"])
    parents = [Parent(spec["pretrained"], "fine-tuned-from")] if spec["kind"] == "finetune" else []
    ref = evaluate_and_register(
        Registry(spec["store"]), algo.skill, spec["name"], task.episodes, seed=spec["seed"] + 10_000,
        description=task.description, replay=algo.buffer if spec.get("keep_replay") else None, parents=parents,
    )  # fmt: skip
    outcome = {
        "status": "finished", "ref": ref, "run_dir": str(run.path), "steps": algo.num_timesteps,
        "wall_time_s": round(algo.train_time_s, 1), "metrics": algo.skill.description["metrics"],
    }  # fmt: skip
    registered.write_text(json.dumps(outcome, indent=2, sort_keys=True, default=_json_default))
    return outcome


def resume_command(run: Run) -> str:
    return f"skillbank {run.spec['kind']} --resume {run.path}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
