"""What long Ant runs cost on this machine: training speed, checkpoints, and the memory of parallel workers.

    python benchmarks/ant_training.py [--json] [--steps 2000] [--workers 1 2]

Measured in one run, with the sizes of ``tasks/ant-walk.toml`` (SQL, SAC) and of the arenas (DDPG):
- environment steps per second of training on ``ant-walk`` (one update per step, compiled, after the
  warm-up), for SQL, SAC and DDPG, with 1 and with 2 torch threads;
- the size of a checkpoint with a full 1M-transition buffer, and the time to write and to verify it;
- the peak resident memory of each of W experiment workers (a tiny ``experiment finetune`` grid on
  ``ant-hallway-wide``, whose runs preallocate their 1M-transition buffers as real runs do).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import torch

from skillbank.runs import checkpoint
from skillbank.runs.tasks import load_task

ALGORITHMS = {"sql": "ant-walk", "sac": "ant-walk", "ddpg": "ant-hallway-wide"}


def steps_per_second(algo_name: str, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    task = load_task(ALGORITHMS[algo_name])
    algo = task.build(algo_name, compile=True)
    algo.config = algo.config.replace(learning_starts=1000)
    algo.learn(1100)  # the warm-up, and compiling
    start = time.perf_counter()
    algo.learn(steps)
    return steps / (time.perf_counter() - start)


def checkpoint_cost() -> dict[str, float]:
    torch.set_num_threads(1)
    algo = load_task("ant-walk").build("sql")
    algo.learn(10)
    buffer = algo.buffer
    buffer.transitions.uniform_(-1, 1)  # a full buffer, every page touched
    buffer.size, buffer.position = buffer.capacity, 0
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        path = checkpoint.save(run, algo)
        written = time.perf_counter() - start
        start = time.perf_counter()
        checkpoint.verify(path)
        verified = time.perf_counter() - start
        size = sum(f.stat().st_size for f in path.iterdir())
    return {"transitions": buffer.capacity, "bytes": size, "write_s": round(written, 2), "verify_s": round(verified, 2)}


WORKERS = """
import resource, sys
from pathlib import Path
from skillbank.workflows.experiment import grid, run_grid
from skillbank.store.registry import Registry
out = Path(sys.argv[1])
jobs = grid(None, Registry(out / "none"), ["ant-hallway-wide"], ["sql-scratch", "sac-scratch", "ddpg-scratch"],
            1, 3000, out, eval_every=1500, eval_episodes=1)
run_grid(jobs, int(sys.argv[2]), say=lambda line: None)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def worker_memory(workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", WORKERS, out, str(workers)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr)
        return {
            "workers": workers,
            "peak_rss_per_worker_gb": round(int(done.stdout.split()[-1]) * 1024 / 1e9, 3),
            "grid_wall_s": round(time.perf_counter() - start, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per algorithm and thread count")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure")
    args = parser.parse_args()
    result = {
        "env_steps_per_s": {
            f"{name}_{threads}thread": round(steps_per_second(name, threads, args.steps), 1)
            for name in ALGORITHMS
            for threads in (1, 2)
        },
        "checkpoint": checkpoint_cost(),
        "workers": [worker_memory(w) for w in args.workers],
        "peak_rss_gb_this_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result["env_steps_per_s"].items():
        print(f"{key:16} {value:8.1f} env steps/s")
    c = result["checkpoint"]
    print(f"checkpoint with {c['transitions']} transitions: {c['bytes'] / 1e6:.0f} MB, written in {c['write_s']} s, "
          f"verified in {c['verify_s']} s")  # fmt: skip
    for w in result["workers"]:
        print(f"{w['workers']} worker(s): peak {w['peak_rss_per_worker_gb']} GB each; grid in {w['grid_wall_s']} s")


if __name__ == "__main__":
    main()
