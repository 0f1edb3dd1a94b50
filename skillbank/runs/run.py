"""Run directories: long training that survives kills, Ctrl-C and restarts.

A run directory holds ``run.json`` (what was launched, so that ``--resume`` can rebuild it),
``metrics.csv`` (one row per logging interval, appended and flushed as it comes, so a killed run
keeps its curve), ``checkpoints/`` (:mod:`skillbank.runs.checkpoint`) and, once the budget is spent,
``finished.json``. :meth:`Run.train` resumes from the newest good checkpoint, so running it again
after any interruption ends with exactly the parameters of a run that was never interrupted.

A run directory lives on one machine's disk, and a machine can be lost with it. :func:`snapshot`
copies what another machine needs to go on (``run.json``, the curve, the newest checkpoint without its
replay buffer) into a folder of about a megabyte, to commit as the run goes.

A run is what it trains, not where its inputs lie: the task file and the stores in ``run.json``
(:data:`LOCATIONS`) are left out of its identity, so that a run copied to another folder or machine is still
the same run there, with the same id, once :meth:`Run.relocate` points it at the copies.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.errors import SkillbankError, write_error
from skillbank.runs import checkpoint
from skillbank.runs.tasks import ALGORITHMS

RUN_FILE, METRICS_FILE, FINISHED_FILE = "run.json", "metrics.csv", "finished.json"
RUNS_ENV = "SKILLBANK_RUNS"
COLUMNS = (
    "step", "wall_time_s", "steps_per_s", "episode_return", "eval_return", "eval_success_rate", "eval_speed",
    "eval_octants", "q_loss", "td_abs", "alpha", "entropy", "actor_loss",
)  # fmt: skip
LOG_INTERVAL = 1000


def tensorboard_writer(folder: Path, step: int):
    """A TensorBoard writer into ``folder``; a resumed run's events after ``step`` (written again) are purged."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SkillbankError(
            "--tensorboard needs the tensorboard package: pip install 'skillbank[tensorboard]'"
        ) from None
    return SummaryWriter(str(folder), purge_step=step or None)


def default_runs_dir() -> Path:
    """``$SKILLBANK_RUNS``, or ``~/skillbank-runs``."""
    return Path(os.environ.get(RUNS_ENV) or Path.home() / "skillbank-runs")


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv`` as numbers (empty cells left out)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def full_config(spec: dict[str, Any]) -> dict[str, Any]:
    """A job's configuration with the defaults of settings added since it was written."""
    config = spec.get("config", {})
    return (
        ALGORITHMS[spec["algo"]].config_class.from_dict(config).to_dict() if spec.get("algo") in ALGORITHMS else config
    )


# Where a job's inputs and outputs are on this machine: the task file, the store that receives the skill, the
# store of the pretrained skill and the TensorBoard folder. What is trained is fixed by the rest (the task's
# environment and settings are copied in).
LOCATIONS = ("task", "store", "pretrained_store", "tensorboard")


def what_is_trained(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec without its :data:`LOCATIONS` and its id."""
    return {k: v for k, v in spec.items() if k not in (*LOCATIONS, "run_id")}


def spec_digest(spec: dict[str, Any]) -> str:
    """The id of a run of ``spec``: a digest of what it trains, the same for every rerun of the same command, on
    any machine."""
    return hashlib.sha256(json.dumps(what_is_trained(spec), sort_keys=True).encode()).hexdigest()[:16]


def same_job(saved: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether two specs train the same thing, wherever their inputs lie: equal once their configurations have
    every setting, so that a run written before a setting was added resumes under the command that wrote it."""
    saved, spec = what_is_trained(saved), what_is_trained(spec)
    return saved == spec or {**saved, "config": full_config(saved)} == {**spec, "config": full_config(spec)}


class Run:
    """A run directory; ``spec`` (JSON) describes what is trained in it and must match on resume."""

    def __init__(self, path: str | Path, spec: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        file = self.path / RUN_FILE
        if spec is None:
            if not file.is_file():
                raise SkillbankError(f"{self.path} is not a run directory (no {RUN_FILE}); nothing to resume")
            self.spec = json.loads(file.read_text())
            return
        spec = json.loads(json.dumps(spec))
        if file.is_file():
            saved = json.loads(file.read_text())
            if not same_job(saved, spec):
                raise SkillbankError(
                    f"{self.path} holds another run ({json.dumps(what_is_trained(saved), sort_keys=True)}); resume "
                    f"it with --resume {self.path}, or choose another run directory"
                )
            self.spec = saved
            self.relocate(**{k: spec[k] for k in LOCATIONS if k in spec})
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_spec({**spec, "run_id": spec_digest(spec)})

    def relocate(self, **locations: Any) -> None:
        """Point the run at where its inputs are now (``task=``, ``store=``, ``pretrained_store=``): a run copied
        to another folder or machine goes on there as the same run, keeping its id."""
        unknown = sorted(set(locations) - set(LOCATIONS))
        if unknown:
            raise SkillbankError(f"a run's locations are {', '.join(LOCATIONS)}; not {', '.join(unknown)}")
        if any(self.spec.get(k) != v for k, v in locations.items()):
            self._write_spec({**self.spec, **locations, "run_id": self.run_id})

    def replace_spec(self, spec: dict[str, Any]) -> Run:
        """The run with ``run.json`` replaced (atomically) by ``spec``, under the id of what it now trains: only
        for changes that keep its checkpoints valid, such as a larger budget (:func:`skillbank.runs.jobs.extend`)."""
        self._write_spec({**spec, "run_id": spec_digest(spec)})
        return Run(self.path)

    def _write_spec(self, spec: dict[str, Any]) -> None:
        temporary = (self.path / RUN_FILE).with_suffix(".tmp")
        temporary.write_text(json.dumps(spec, indent=2, sort_keys=True))
        temporary.replace(self.path / RUN_FILE)
        self.spec = json.loads((self.path / RUN_FILE).read_text())

    @property
    def run_id(self) -> str:
        """The run's id (:func:`spec_digest`), kept in ``run.json``. A run written before ids were kept there has
        the id it was registered under then: the digest of its whole spec, locations and all."""
        legacy = hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()[:16]
        return self.spec.get("run_id") or legacy

    def training_time_s(self) -> float | None:
        """Seconds of training over every resume (None before the first metrics): the finished run's clock, else
        the newest row's. A run resumed before checkpoints kept the clock current went on from the clock of its
        previous start, losing the time up to the checkpoint it resumed from: that time is added back from the
        metrics, where the clock falls (a row's clock less its steps since the resume over its steps per second
        is the clock the resume began with)."""
        rows = [row for row in self.metrics() if "wall_time_s" in row]
        if not rows:
            return None
        lost = 0.0
        for before, after in zip(rows, rows[1:]):
            if after["wall_time_s"] < before["wall_time_s"]:
                since = (after["step"] - before["step"]) / after["steps_per_s"] if after.get("steps_per_s") else 0.0
                lost += before["wall_time_s"] - (after["wall_time_s"] - since)
        finished = self.path / FINISHED_FILE
        return lost + (
            json.loads(finished.read_text())["wall_time_s"] if finished.is_file() else rows[-1]["wall_time_s"]
        )

    def metrics(self) -> list[dict[str, float]]:
        file = self.path / METRICS_FILE
        return read_metrics(file) if file.is_file() else []

    def _keep_metrics_up_to(self, step: int) -> None:
        """Drop rows written after the checkpoint a resumed run restarts from (they are written again)."""
        rows = [row for row in self.metrics() if row["step"] <= step]
        file = self.path / METRICS_FILE
        temporary = file.with_suffix(".tmp")
        with open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows({k: _cell(row.get(k)) for k in COLUMNS} for row in rows)
        temporary.replace(file)

    # Over 60 lines, on purpose: resuming, logging, checkpointing and the signal handlers share the loop's state,
    # and read in the order they happen.
    def train(
        self,
        algo: OffPolicyAlgorithm,
        total_steps: int,
        *,
        checkpoint_every: int = 10_000,
        progress_bar: bool = False,
        evaluate: Callable[[OffPolicyAlgorithm], dict[str, float]] | None = None,
        eval_every: int | None = None,
        log_interval: int = LOG_INTERVAL,
        tensorboard: str | Path | None = None,
    ) -> bool:
        """Train ``algo`` until it has taken ``total_steps`` environment steps in all, resuming from the
        newest good checkpoint, writing one every ``checkpoint_every`` steps and appending metrics
        every ``log_interval`` (or checkpoint or evaluation) steps, with ``evaluate(algo)`` every
        ``eval_every`` steps, and the same rows as TensorBoard scalars under ``tensorboard/RUN_NAME`` where given.
        Ctrl-C (SIGINT) or SIGTERM stops at the end of the current step with a checkpoint. Returns whether the
        budget was reached."""
        if checkpoint_every <= 0 or (eval_every is not None and eval_every <= 0):
            raise SkillbankError("--checkpoint-every and the evaluation interval must be positive")
        latest = checkpoint.latest(self.path)
        if latest is None and list((self.path / "checkpoints").glob("step-*")):
            raise SkillbankError(
                f"no checkpoint in {self.path / 'checkpoints'} is usable; remove that folder to start the run over"
            )
        if latest is not None:
            exact = checkpoint.restore(algo, latest)
            note = "" if exact else " (the environment's state is unknown: a fresh episode starts)"
            if not checkpoint.has_replay(latest):
                note += (f"; the checkpoint has no replay buffer (a snapshot), so {algo.config.learning_starts} "
                         "transitions refill it before updates go on, and the run is no longer bit for bit the "
                         "uninterrupted one")  # fmt: skip
            print(f"resuming {self.path} from step {latest.step}{note}", file=sys.stderr)
        self._keep_metrics_up_to(algo.num_timesteps)
        board = tensorboard_writer(Path(tensorboard) / self.path.name, algo.num_timesteps) if tensorboard else None
        interval = math.gcd(log_interval, checkpoint_every, eval_every or checkpoint_every)
        started, steps_at_start = time.perf_counter(), algo.num_timesteps

        def on_log(step: int, metrics: dict[str, float]) -> None:
            elapsed = time.perf_counter() - started
            row = {**metrics, "wall_time_s": algo.train_time_s}  # all of the run's training, over every resume
            row["steps_per_s"] = (step - steps_at_start) / elapsed if elapsed > 0 else None
            if evaluate is not None and eval_every is not None and step % eval_every == 0:
                row.update(evaluate(algo))
            with open(self.path / METRICS_FILE, "a", newline="") as f:
                csv.DictWriter(f, COLUMNS).writerow({k: _cell(row.get(k)) for k in COLUMNS})
            if board is not None:
                for key in COLUMNS[1:]:
                    if row.get(key) is not None:
                        board.add_scalar(key, row[key], step)
                board.flush()
            if step % checkpoint_every == 0:
                checkpoint.save(self.path, algo)
                _injected_crash(self.path, step)

        def stop(signum, frame) -> None:
            algo.stop_requested = True
            signal.signal(signum, previous[signum])  # a second Ctrl-C interrupts at once

        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, stop)
        try:
            algo.learn(max(0, total_steps - algo.num_timesteps), progress_bar, on_log, log_interval=interval)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if board is not None:
                board.close()
        checkpoint.save(self.path, algo)
        if algo.stop_requested:
            algo.stop_requested = False
            return False
        result = {"steps": algo.num_timesteps, "wall_time_s": round(algo.train_time_s, 2)}
        if evaluate is not None:
            result["final"] = evaluate(algo)
        (self.path / FINISHED_FILE).write_text(json.dumps(result, indent=2, sort_keys=True))
        return True


def snapshot(run_dir: str | Path, out: str | Path) -> checkpoint.Checkpoint:
    """Copy the run in ``run_dir`` to ``out``, leaving out the replay buffer: ``run.json``, ``metrics.csv`` up to
    the newest good checkpoint, and that checkpoint with everything but its buffer (networks, targets, optimiser
    states, random generators, counters, the environment's state). ``--resume`` on the copy (or on a copy of it,
    on any machine) goes on from there once it has refilled its buffer. The run may be training meanwhile. An
    ``out`` that holds an older snapshot of the same run is replaced; any other existing ``out`` is refused."""
    run, out = Run(run_dir), Path(out)
    latest = checkpoint.latest(run.path)
    if latest is None:
        raise SkillbankError(f"{run.path} has no usable checkpoint yet; snapshot it after its first checkpoint")
    if out.exists():
        if out.resolve() == run.path.resolve():
            raise SkillbankError(f"{out} is the run itself; give another folder")
        if not _is_snapshot_of(out, run):
            raise SkillbankError(f"{out} exists and is not a snapshot of {run.path}; give a new folder")
    temporary = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        copied = checkpoint.without_replay(latest, temporary / "checkpoints" / latest.path.name)
        shutil.copyfile(run.path / RUN_FILE, temporary / RUN_FILE)
        if (run.path / METRICS_FILE).is_file():
            shutil.copyfile(run.path / METRICS_FILE, temporary / METRICS_FILE)
        Run(temporary)._keep_metrics_up_to(latest.step)
        if out.exists():  # an older snapshot of this run: swap it out only once the new one is whole
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            temporary.rename(out)
            shutil.rmtree(old)
        else:
            temporary.rename(out)
    except OSError as error:  # a full disk or a folder we cannot write: the older snapshot is untouched
        size = (latest.path / checkpoint.TENSORS_FILE).stat().st_size
        raise write_error(error, out, size) from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return checkpoint.Checkpoint(out / "checkpoints" / copied.path.name, copied.payload)


def _is_snapshot_of(folder: Path, run: Run) -> bool:
    try:
        saved = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return False
    mine = {k: v for k, v in run.spec.items() if k not in ("steps", "continues")}  # a raised budget is the same run
    theirs = {k: v for k, v in saved.items() if k not in ("steps", "continues")} if isinstance(saved, dict) else {}
    checkpoints = list((folder / "checkpoints").glob("step-*"))
    return same_job(theirs, mine) and all(not (path / checkpoint.REPLAY_FILE).exists() for path in checkpoints)


CRASH_ENV = "SKILLBANK_CRASH_AFTER_CHECKPOINT"


def _injected_crash(run_dir: Path, step: int) -> None:
    """Fault injection for the fault-tolerance tests: with ``$SKILLBANK_CRASH_AFTER_CHECKPOINT`` = N, the
    process dies (as if killed) right after writing the checkpoint at step N, once per run directory."""
    if os.environ.get(CRASH_ENV) == str(step) and not (run_dir / ".crashed").exists():
        (run_dir / ".crashed").touch()
        os._exit(137)


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
