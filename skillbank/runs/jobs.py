"""What the training commands launch: a job described by JSON, trained in its own run directory,
then evaluated and registered exactly once.

``skillbank train`` and ``skillbank finetune`` write a job's spec into ``RUN_DIR/run.json``;
``--resume RUN_DIR`` reads it back and goes on where the run stopped; ``skillbank experiment``
runs many of them on a process pool or on Ray. A worker trains and evaluates a job and returns
the skill's files (:func:`train_job`); only the driver registers them (:func:`register_result`),
exactly once per run id, so that a retried run or a restarted driver never registers twice.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skillbank.algos.buffer import ReplayBuffer
from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.envs import make_env
from skillbank.errors import SkillbankError
from skillbank.nn.skill import DESCRIPTION_FILE, WEIGHTS_FILE, Skill
from skillbank.runs import checkpoint
from skillbank.runs.evaluate import evaluate, evaluate_into
from skillbank.runs.finetune import RECIPE
from skillbank.runs.run import FINISHED_FILE, Run, default_runs_dir, full_config
from skillbank.runs.specs import JobResult, JobSpec
from skillbank.runs.tasks import ALGORITHMS, find_task, load_task
from skillbank.store.registry import INDEX_FILE, Parent, Registry

RESULT_DIR, RESULT_FILE, ROLLOUTS_FILE, REPLAY_FILE = "result", "result.json", "rollouts.h5", "replay.h5"
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
    overrides: dict[str, Any] | None = None,
    tensorboard: str | Path | None = None,
) -> JobSpec:
    """The spec of ``skillbank train TASK``, with the task's defaults filled in and ``overrides`` of
    the algorithm's configuration applied (checked now); ``tensorboard`` a folder for the metrics as events."""
    loaded = load_task(task)
    algo = algo or loaded.algorithm
    if algo not in ALGORITHMS:
        raise SkillbankError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")
    config = loaded.configs.get(algo) or ALGORITHMS[algo].config_class()
    config = config.replace(**(overrides or {}))
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
        **({"tensorboard": str(Path(tensorboard).resolve())} if tensorboard else {}),
    }


def method_label(spec: dict[str, Any]) -> str:
    """What a run's curve is called: its method (``sac-scratch``, ``finetune``, or ``train sql``), and for a
    fine-tuned run the skill it started from, since runs from different skills are different methods."""
    method = spec.get("method") or f"{spec['kind']} {spec['algo']}"
    recipe = ", ".join([*(f"{k}={spec[k]}" for k in RECIPE if spec.get(k)),
                        *(f"{k}={v}" for k, v in spec.get("set", {}).items())])  # fmt: skip
    method += f" from {spec['pretrained']}" if spec.get("pretrained") else ""
    return method + (f" ({recipe})" if recipe else "")


def method_labels(specs: list[dict[str, Any]]) -> list[str]:
    """Each run's :func:`method_label`, where runs of one label differ in their task or configuration followed by
    what differs (``train sql (value_particles=32)``): runs that differ in more than the seed are different methods."""
    labels = [method_label(spec) for spec in specs]
    settings = [{"task": spec.get("task_name"), **full_config(spec)} for spec in specs]
    out = []
    for label, setting in zip(labels, settings):
        group = [other for other_label, other in zip(labels, settings) if other_label == label]
        differ = sorted(k for k in setting if any(other.get(k) != setting[k] for other in group))
        out.append(label + (f" ({', '.join(f'{k}={setting[k]}' for k in differ)})" if differ else ""))
    return out


def new_run_dir(spec: dict[str, Any]) -> Path:
    """A fresh run directory under :func:`~skillbank.runs.run.default_runs_dir` for ``spec``."""
    return default_runs_dir() / f"{spec['name']}-s{spec['seed']}-{time.strftime('%Y%m%d-%H%M%S')}"


def build(spec: JobSpec) -> OffPolicyAlgorithm:
    """The untrained (or, for fine-tuning, pretrained) algorithm a spec describes."""
    if spec["kind"] == "finetune":
        from skillbank.runs.finetune import build_finetune

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
    """``evaluate(algo) -> {"eval_return", "eval_success_rate", "eval_speed", "eval_octants"}`` on fixed start seeds
    (the last two for a body that moves: the planar speed, and how many of the 8 heading octants its rollouts reach),
    without touching the algorithm's random generator (so evaluating never changes training)."""

    def run(algo: OffPolicyAlgorithm) -> dict[str, float]:
        summary = evaluate(algo.policy, spec["eval_episodes"], seed=10_000 + spec["seed"])
        out = {"eval_return": summary["mean_return"]}
        for key, column in (("success_rate", "eval_success_rate"), ("mean_speed", "eval_speed"),
                            ("octants_covered", "eval_octants")):  # fmt: skip
            if key in summary:
                out[column] = summary[key]
        return out

    return run


def train_job(run_dir: str | Path, progress_bar: bool = False, threads: int | None = None) -> JobResult:
    """A worker's part of a job: train it in its run directory (resuming it), evaluate it, and return
    the result with the skill's files, for the driver to register; the registry is never opened here.
    The result is also kept in ``RUN_DIR/result/``, so that a driver restarted after the run finished
    registers it without training it again."""
    run = Run(run_dir)
    spec, result_dir = run.spec, run.path / RESULT_DIR
    if (result_dir / RESULT_FILE).is_file():
        return _read_result(run)
    if threads:
        torch.set_num_threads(threads)
    algo = build(spec)
    finished = run.train(
        algo, spec["steps"], checkpoint_every=spec["checkpoint_every"], progress_bar=progress_bar,
        evaluate=evaluator(spec) if spec.get("eval_every") else None, eval_every=spec.get("eval_every"),
        tensorboard=spec.get("tensorboard"),
    )  # fmt: skip
    if not finished:
        return {"status": "interrupted", "run_id": run.run_id, "run_dir": str(run.path), "steps": algo.num_timesteps}
    temporary = run.path / f".{RESULT_DIR}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    metrics = evaluate_into(algo.policy, load_task(spec["task"]).episodes, spec["seed"] + 10_000,
                            temporary / ROLLOUTS_FILE)  # fmt: skip
    algo.policy.save(temporary / "skill")
    if spec.get("keep_replay"):
        algo.buffer.save_hdf5(temporary / REPLAY_FILE)
    summary = {
        "status": "finished", "run_id": run.run_id, "run_dir": str(run.path), "steps": algo.num_timesteps,
        "wall_time_s": round(algo.train_time_s, 1), "metrics": metrics,
    }  # fmt: skip
    (temporary / RESULT_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=_json_default))
    shutil.rmtree(result_dir, ignore_errors=True)
    temporary.rename(result_dir)
    return _read_result(run)


def _read_result(run: Run) -> JobResult:
    result_dir = run.path / RESULT_DIR
    result = json.loads((result_dir / RESULT_FILE).read_text())
    files = {name: (result_dir / "skill" / name).read_bytes() for name in (DESCRIPTION_FILE, WEIGHTS_FILE)}
    files[ROLLOUTS_FILE] = (result_dir / ROLLOUTS_FILE).read_bytes()
    if (result_dir / REPLAY_FILE).is_file():
        files[REPLAY_FILE] = (result_dir / REPLAY_FILE).read_bytes()
    return {**result, "files": files}


def register_result(registry: Registry, spec: JobSpec, result: JobResult, tags=()) -> str:
    """The driver's part: register a finished job's skill from the files its worker returned, exactly
    once (keyed by the run's id, so a retried run or a restarted driver adds nothing)."""
    files = result["files"]
    skill = Skill.from_bytes(files[DESCRIPTION_FILE], files[WEIGHTS_FILE])
    parents = [Parent(spec["pretrained"], "fine-tuned-from")] if spec["kind"] == "finetune" else []
    if spec.get("continues") and (shorter := registry.find_run(spec["continues"])):
        parents.append(Parent(shorter, "continued-from"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / ROLLOUTS_FILE).write_bytes(files[ROLLOUTS_FILE])
        replay = None
        if REPLAY_FILE in files:
            (Path(tmp) / REPLAY_FILE).write_bytes(files[REPLAY_FILE])
            replay = ReplayBuffer.load_hdf5(Path(tmp) / REPLAY_FILE)
        return registry.register(
            skill, spec["name"], tags=list(tags), description=load_task(spec["task"]).description, parents=parents,
            replay=replay, rollouts=Path(tmp) / ROLLOUTS_FILE, run_id=result["run_id"],
        )  # fmt: skip


def execute(run: Run, progress_bar: bool = False, threads: int | None = None, tags=()) -> JobResult:
    """Train, evaluate and register the job of ``run`` in this one process (``skillbank train``).
    Returns ``{"status": "finished" | "interrupted", "ref", "run_dir", "steps", ...}``."""
    result = train_job(run.path, progress_bar, threads)
    if result["status"] != "finished":
        return result
    ref = register_result(Registry(run.spec["store"]), run.spec, result, tags)
    return {**{k: v for k, v in result.items() if k != "files"}, "ref": ref}


def register_checkpoint(
    run: Run, registry: Registry | None = None, *, name: str | None = None, tags=(), episodes: int | None = None
) -> str:
    """Register the newest good checkpoint of the run in ``run`` now, as a milestone, while the run trains on:
    evaluated on the task's ``episodes`` (its ``[eval]`` count by default), with the run's lineage, in the run's
    store unless ``registry`` is given. A checkpoint registers once (its id is the run's and its step); the
    finished run registers as a version of its own."""
    spec = run.spec
    found = checkpoint.latest(run.path)
    if found is None:
        raise SkillbankError(f"{run.path} has no usable checkpoint yet; register it after its first checkpoint")
    algo = build(spec)
    checkpoint.restore(algo, found)
    algo.skill.description["training"] = {
        "steps": algo.num_timesteps, "updates": algo.num_updates, "wall_time_s": round(algo.train_time_s, 2),
        "seed": spec["seed"], "checkpoint_of_run": run.run_id,
        **({"replay_refilled_at": algo.replay_refilled_at} if algo.replay_refilled_at else {}),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        episodes = load_task(spec["task"]).episodes if episodes is None else episodes
        evaluate_into(algo.policy, episodes, spec["seed"] + 10_000, Path(tmp) / ROLLOUTS_FILE)
        algo.policy.save(Path(tmp) / "skill")
        files = {file: (Path(tmp) / "skill" / file).read_bytes() for file in (DESCRIPTION_FILE, WEIGHTS_FILE)}
        files[ROLLOUTS_FILE] = (Path(tmp) / ROLLOUTS_FILE).read_bytes()
    result = {"run_id": f"{run.run_id}@{found.step}", "files": files}
    registry = registry or Registry(spec["store"])
    return register_result(registry, {**spec, "name": name or spec["name"]}, result, tags)


def extend(run: Run, steps: int) -> Run:
    """Raise the budget of the run in ``run`` to ``steps`` (``--resume RUN_DIR --steps N``): it goes on from its
    newest checkpoint exactly as if it had been launched with ``steps``. A longer run is another skill, so its id
    changes and it registers as a new version, whose parent ("continued-from") is the shorter run's."""
    spec = run.spec
    if steps <= spec["steps"]:
        raise SkillbankError(f"the run in {run.path} already has a budget of {spec['steps']} steps; --steps with "
                             "--resume raises it, so give more")  # fmt: skip
    if (run.path / RESULT_DIR / RESULT_FILE).is_file() and Registry(spec["store"]).find_run(run.run_id) is None:
        raise SkillbankError(f"the run in {run.path} finished but its skill is not registered in {spec['store']} "
                             f"yet; register it first with {resume_command(run)}, then extend it")  # fmt: skip
    # The shorter run's outcome goes first: a crash before the new spec is written leaves the shorter run,
    # which its next resume finishes again from its last checkpoint.
    (run.path / FINISHED_FILE).unlink(missing_ok=True)
    shutil.rmtree(run.path / RESULT_DIR, ignore_errors=True)
    return run.replace_spec({**spec, "steps": steps, "continues": run.run_id})


def relocate(run: Run, store: str | Path | None = None) -> Run:
    """The run of ``--resume RUN_DIR`` pointed at its inputs on this machine: at ``store`` (``--store``) where
    given, which then also holds the pretrained skill if the run's store did, and at the task of its name here where
    its task file is not. A store that is not here is an error that says how to point the run at it."""
    spec = run.spec
    if store is not None:
        store = str(Path(store).resolve())
        moved = {"store": store}
        if spec.get("pretrained_store") == spec.get("store"):
            moved["pretrained_store"] = store
        run.relocate(**moved)
    if not Path(spec["task"]).is_file():
        run.relocate(task=str(find_task(spec["task_name"]).resolve()))
    for key in ("store", "pretrained_store"):
        if run.spec.get(key) and not (Path(run.spec[key]) / INDEX_FILE).is_file():
            raise SkillbankError(f"the run in {run.path} was written with its {key.replace('_', ' ')} at "
                                 f"{run.spec[key]}, which is not a skill store here; give --store PATH, where that "
                                 "store is now")  # fmt: skip
    return run


def resume_command(run: Run) -> str:
    return f"skillbank {run.spec['kind']} --resume {run.path}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
