"""Where the runs of a grid execute: a local process pool (the default) or a Ray cluster, on one code path.

Either way a run is :func:`skillbank.runs.jobs.train_job` on its run directory, with one torch thread, and
only its result (the skill's files and metrics) comes back: the driver alone writes the registry.
A run whose worker dies is started again, up to :data:`MAX_RETRIES` times in a row without a newer checkpoint,
and resumes from its last checkpoint, which needs a run directory every worker reaches (on a cluster, a shared
filesystem).
A local worker whose driver dies (killed, even with SIGKILL) stops its run with a checkpoint within
seconds, instead of training on where nobody will register the result.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from skillbank.errors import SkillbankError
from skillbank.runs import checkpoint
from skillbank.runs.jobs import train_job

BACKENDS = ("local", "ray")
MAX_RETRIES = 3
OnResult = Callable[[str, dict[str, Any]], None]


def _train_one_thread(run_dir: str) -> dict[str, Any]:
    return train_job(run_dir, threads=1)


def _train_in_pool(run_dir: str, driver: int) -> dict[str, Any]:
    threading.Thread(target=_stop_when_orphaned, args=(driver,), daemon=True).start()
    result = _train_one_thread(run_dir)
    if os.getppid() != driver:  # stopped by the watchdog: nobody to hand the result to, and waiting for the
        os._exit(0)  # next job would wait forever (each worker holds both ends of the pool's queue)
    return result


def _stop_when_orphaned(driver: int, every_s: float = 1.0) -> None:
    """SIGTERM this worker once its parent is no longer ``driver``: a run in training stops at its next step
    with a checkpoint (:meth:`skillbank.runs.run.Run.train`); anywhere else the worker ends at once."""
    while os.getppid() == driver:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)


def run_jobs(
    run_dirs: list[str], workers: int = 1, backend: str = "local", address: str | None = None,
    on_result: OnResult | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Train every run directory's job on ``backend``; ``on_result(run_dir, result)`` is called in
    this process as each finishes. Returns the results by run directory."""
    if backend not in BACKENDS:
        raise SkillbankError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not run_dirs:
        return {}
    run = _run_local if backend == "local" else _run_ray
    return run(list(run_dirs), workers, address, on_result or (lambda run_dir, result: None))


def _run_local(run_dirs: list[str], workers: int, address: str | None, on_result: OnResult) -> dict[str, Any]:
    if address is not None:
        raise SkillbankError("--address is for the ray backend")
    results: dict[str, dict[str, Any]] = {}
    attempts = dict.fromkeys(run_dirs, 0)
    while len(results) < len(run_dirs):
        todo = [d for d in run_dirs if d not in results]
        reached = {d: _checkpoint_step(d) for d in todo}
        # Fresh interpreters ("spawn"), not forks of a process whose torch has started threads.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_train_in_pool, d, os.getpid()): d for d in todo}
            try:
                for future in _as_completed(futures):
                    results[futures[future]] = future.result()
                    on_result(futures[future], results[futures[future]])
            except BrokenProcessPool:  # a worker died: every unfinished run starts again, from its checkpoint
                for d in todo:
                    # A run is charged a failure only if it made no progress: one worker's death breaks the whole
                    # pool, and a run that checkpointed further meanwhile is not the one that keeps dying.
                    if d not in results:
                        attempts[d] = 0 if _checkpoint_step(d) > reached[d] else attempts[d] + 1
                        if attempts[d] > MAX_RETRIES:
                            raise SkillbankError(
                                f"the run in {d} failed {attempts[d]} times; see its run directory"
                            ) from None
    return results


def _checkpoint_step(run_dir: str) -> int:
    """The step of the run's newest good checkpoint (-1 for none)."""
    found = checkpoint.latest(Path(run_dir))
    return -1 if found is None else found.step


def _as_completed(futures):
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


def _run_ray(run_dirs: list[str], workers: int, address: str | None, on_result: OnResult) -> dict[str, Any]:
    try:
        import ray
    except ImportError:
        raise SkillbankError("the ray backend needs Ray: pip install 'skillbank[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **options)
    try:
        # One CPU per run; a task whose worker process dies is retried by Ray itself.
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_train_one_thread)
        refs = {remote.remote(d): d for d in run_dirs}
        results: dict[str, dict[str, Any]] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[refs[ref]] = ray.get(ref)
                on_result(refs[ref], results[refs[ref]])
        return results
    finally:
        if started_here:
            ray.shutdown()
