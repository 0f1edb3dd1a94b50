"""Gradient updates per second with 1 and 2 torch threads, alternated in one run to cancel drift.

    python benchmarks/threads.py [--rounds 3] [--updates 300]

Sizes: the MultiGoal task's (100x100, batch 64, SQL K=32) and the public code's MuJoCo sizes
for SQL (128x128, batch 128, K=16) and SB3's for SAC (256x256, batch 256), on random batches.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from skillbank import SAC, SQL

CONFIGS = {
    "sql multigoal 100x100 b64 K32": (
        SQL,
        2,
        2,
        dict(alpha=10.0, hidden=[100, 100], batch_size=64, kernel_particles=32),
    ),
    "sac multigoal 100x100 b64": (SAC, 2, 2, dict(hidden=[100, 100], batch_size=64)),
    "sql ant-size 128x128 b128 K16": (SQL, 27, 8, dict(hidden=[128, 128], batch_size=128, kernel_particles=16)),
    "sac ant-size 256x256 b256": (SAC, 27, 8, dict(hidden=[256, 256], batch_size=256)),
}


def updates_per_second(algo_cls, obs_dim: int, act_dim: int, kwargs: dict, updates: int, threads: int) -> float:
    torch.set_num_threads(threads)
    env = gym.make("skillbank/MultiGoal-v0")  # only its spaces matter for shapes below
    env.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    env.action_space = gym.spaces.Box(-1, 1, (act_dim,), np.float32)
    algo = algo_cls(env, buffer_size=1000, **kwargs)
    for i in range(1000):
        algo.buffer.add(
            np.random.randn(obs_dim), np.random.uniform(-1, 1, act_dim), 0.0, np.random.randn(obs_dim), i % 50 == 0
        )
    batch_size = kwargs["batch_size"]
    for _ in range(20):  # warm-up
        algo.train_step(algo.buffer.sample(batch_size, algo.rng))
    start = time.perf_counter()
    for _ in range(updates):
        algo.train_step(algo.buffer.sample(batch_size, algo.rng))
    return updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args()
    results: dict[str, dict[int, list[float]]] = {name: {1: [], 2: []} for name in CONFIGS}
    for _ in range(args.rounds):
        for name, (cls, obs_dim, act_dim, kwargs) in CONFIGS.items():
            for threads in (1, 2):
                results[name][threads].append(updates_per_second(cls, obs_dim, act_dim, kwargs, args.updates, threads))
    print(f"{'configuration':32} {'1 thread':>10} {'2 threads':>10} {'2t / 1t':>8}   (updates/s, median of rounds)")
    for name, by_threads in results.items():
        one, two = float(np.median(by_threads[1])), float(np.median(by_threads[2]))
        print(f"{name:32} {one:10.1f} {two:10.1f} {two / one:8.2f}")


if __name__ == "__main__":
    main()
