"""A pilot: steer a frozen walker by the origin it sees, and learn only where to steer it (issue 33).

The walking skills are rewarded for their distance from the origin, and they see the torso's x, y: where they walk
is set by where they believe the origin is. Telling a walker that the origin lies ``--radius`` metres behind it, in
the direction opposite to ``theta``, makes it walk towards ``theta`` (``experiments/walker_origin_steering.py``
measures how well). A high-level SAC policy picks ``theta`` (as a 2-D vector) every ``--hold`` maze steps; the walker
is never updated, so its gait cannot be lost, and its torques are scaled by ``--gain`` (below 1, it hops less and
ends fewer episodes by leaving the healthy height). Steps are counted in maze steps::

    python experiments/umaze_steer.py --walker ant-walk-sql@3 --task ant-umaze --steps 100000 --seed 0 \
        --out ~/skillbank-runs/steer/seed0

writes ``OUT/metrics.csv`` (evaluation return and success rate every ``--eval-every`` maze steps) and
``OUT/result.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from skillbank import SAC, Registry
from skillbank.envs.steering import SteeredWalkerEnv
from skillbank.runs.tasks import load_task


def evaluate(high, env: SteeredWalkerEnv, episodes: int, seed: int) -> dict[str, float]:
    returns, successes, lengths = [], [], []
    generator = torch.Generator().manual_seed(seed)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, success, done, start = 0.0, False, False, env.inner_steps
        while not done:
            obs, reward, terminated, truncated, info = env.step(high.act(obs, generator))
            total, success, done = total + reward, success or info["success"], terminated or truncated
        returns.append(total)
        successes.append(success)
        lengths.append(env.inner_steps - start)
    return {"eval_return": float(np.mean(returns)), "eval_success_rate": float(np.mean(successes)),
            "eval_length": float(np.mean(lengths))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walker", default="ant-walk-sql@3")
    parser.add_argument("--task", default="ant-umaze")
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--steps", type=int, default=100_000, help="maze steps (high-level steps x --hold)")
    parser.add_argument("--hold", type=int, default=5, help="maze steps each heading is held")
    parser.add_argument("--radius", type=float, default=1.0, help="metres from the origin the walker is told it is")
    parser.add_argument("--gain", type=float, default=0.6, help="the walker's torques are scaled by this")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--learning-starts", type=int, default=1000, help="high-level steps before updates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(args.task)
    walker = Registry(args.store).load(args.walker).requires_grad_(False)
    env = SteeredWalkerEnv(task.make_env(), walker, args.hold, args.radius, args.gain)
    eval_env = SteeredWalkerEnv(task.make_env(), walker, args.hold, args.radius, args.gain)
    algo = SAC(env, seed=args.seed, learning_starts=args.learning_starts, hidden=(256, 256))
    args.out.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.perf_counter()
    high_steps = max(1, args.eval_every // args.hold)
    while env.inner_steps < args.steps:
        algo.learn(high_steps)
        row = {"step": env.inner_steps, "high_steps": algo.num_timesteps,
               "wall_time_s": round(time.perf_counter() - started, 1),
               **evaluate(algo.skill, eval_env, args.episodes, seed=10_000)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(args.out / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(rows)
    result = {"command": "python experiments/umaze_steer.py " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                         for k, v in vars(args).items()),
              "final": rows[-1], "curve": rows}  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
