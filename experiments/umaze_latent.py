"""A pilot: steer a frozen walker through its noise, instead of fine-tuning its networks (issue 33).

Every update of a walker's sampler tried so far undid its gait before it learned to steer, and no single noise draw
("head") walks the U-maze. Here the walker is never updated: a high-level SAC policy picks the walker's noise
vector, which the walker turns into joint torques for the next ``--hold`` steps; the walker's gait stays intact by
construction and the high level learns only where to go. This is the latent-space hierarchy of Haarnoja, Hartikainen,
Abbeel and Levine, "Latent Space Policies for Hierarchical Reinforcement Learning" (ICML 2018), with SQL's
amortised sampler as the low level (its noise is the latent). Steps are counted in the maze's own steps (each
high-level step is ``--hold`` of them), so budgets compare with fine-tuning and from-scratch runs::

    python experiments/umaze_latent.py --walker ant-walk-sql@3 --task ant-umaze-canonical --steps 100000 \
        --seed 0 --out ~/skillbank-runs/latent/seed0

writes ``OUT/metrics.csv`` (evaluation return and success rate every ``--eval-every`` maze steps) and
``OUT/result.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from command_line import command_line
from gymnasium.spaces import Box

from skillbank import SAC, Registry
from skillbank.nn.skill import Skill, box_to_json
from skillbank.runs.finetune import widen
from skillbank.runs.tasks import load_task


class LatentWalkerEnv(gym.Wrapper):
    """``env`` driven by a frozen walker: an action is the walker's noise vector (in ``[-bound, bound]^d``), held for
    ``hold`` steps; the reward is the sum of theirs, ``info["success"]`` whether any of them succeeded.

    The high level sees the walker's observation followed by the cosine and sine of the torso's heading in the
    world: a walker in the canonical frame sees itself within 45 degrees of +x whichever way it faces, and the high
    level must know which way that is to steer through a maze."""

    def __init__(self, env: gym.Env, walker: Skill, hold: int, bound: float) -> None:
        super().__init__(env)
        self.walker, self.hold = walker, hold
        self.action_space = Box(-bound, bound, shape=(walker.action_dim,), dtype=np.float32)
        width = env.observation_space.shape[0] + 2
        self.observation_space = Box(-np.inf, np.inf, shape=(width,), dtype=np.float64)
        self._obs: np.ndarray | None = None
        self.inner_steps = 0

    def heading(self) -> np.ndarray:
        w, x, y, z = self.env.unwrapped.data.qpos[3:7]
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return np.array([np.cos(yaw), np.sin(yaw)])

    def reset(self, **kwargs: Any):
        self._obs, info = self.env.reset(**kwargs)
        return np.concatenate([self._obs, self.heading()]), info

    @torch.no_grad()
    def step(self, action: np.ndarray):
        noise = torch.as_tensor(np.asarray(action), dtype=torch.float32).reshape(1, 1, -1)
        total, success = 0.0, False
        for _ in range(self.hold):
            obs = torch.as_tensor(self._obs, dtype=torch.float32).reshape(1, -1)
            torques = self.walker.sampler(obs, noise)[0, 0].numpy()
            self._obs, reward, terminated, truncated, info = self.env.step(self.walker.to_env_action(torques))
            self.inner_steps += 1
            total += float(reward)
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
        info["success"] = success
        return np.concatenate([self._obs, self.heading()]), total, terminated, truncated, info


def evaluate(high: Skill, env: LatentWalkerEnv, episodes: int, seed: int) -> dict[str, float]:
    returns, successes = [], []
    generator = torch.Generator().manual_seed(seed)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, success, done = 0.0, False, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(high.act(obs, generator))
            total, success, done = total + reward, success or info["success"], terminated or truncated
        returns.append(total)
        successes.append(success)
    return {"eval_return": float(np.mean(returns)), "eval_success_rate": float(np.mean(successes))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walker", default="ant-walk-sql@3")
    parser.add_argument("--task", default="ant-umaze-canonical")
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--steps", type=int, default=100_000, help="maze steps (high-level steps x --hold)")
    parser.add_argument("--hold", type=int, default=10, help="maze steps each noise vector is held")
    parser.add_argument("--bound", type=float, default=2.0, help="the noise box's half-width")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(args.task)
    maze = task.make_env()
    walker = widen(Registry(args.store).load(args.walker), box_to_json(maze.observation_space)).requires_grad_(False)
    env = LatentWalkerEnv(maze, walker, args.hold, args.bound)
    eval_env = LatentWalkerEnv(task.make_env(), walker, args.hold, args.bound)
    algo = SAC(env, seed=args.seed, learning_starts=1000, hidden=(256, 256))
    args.out.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.perf_counter()
    high_steps = args.eval_every // args.hold
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
    result = {"command": command_line(args),
              "final": rows[-1], "curve": rows}  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
