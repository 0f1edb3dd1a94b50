"""Does the authors' fine-tuning recipe's exploration itself break a walker? (issue 33)

    python experiments/recipe_exploration.py ant-walk-sql@2 ant-walk-sac@1 --out docs/results/umaze

Before any update, each walker acts in each arena as fine-tuning collects: with fresh noise (its own policy), from
K frozen heads (:meth:`~skillbank.algos.offpolicy.OffPolicyAlgorithm.freeze_heads`), and with the recipe's
Ornstein-Uhlenbeck noise (sigma 0.3) on top. Per setting: the mean return, how many episodes end early (the body
falls or flips) and the speed of the torso's displacement. Writes ``OUT/recipe_exploration.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from skillbank import Registry
from skillbank.runs.finetune import build_finetune, finetune_spec

SETTINGS = {  # name: (heads, OU sigma)
    "fresh noise": (0, 0.0),
    "fresh noise + OU 0.3": (0, 0.3),
    "10 heads": (10, 0.0),
    "10 heads + OU 0.3": (10, 0.3),
    "1 head": (1, 0.0),
    "1 head + OU 0.3": (1, 0.3),
}


def collect(algo, episodes: int) -> dict:
    """Episodes of the algorithm's collection policy (``explore``), as fine-tuning would gather them."""
    returns, early, speeds = [], 0, []
    env, limit = algo.env, algo.env.spec.max_episode_steps
    for episode in range(episodes):
        obs, info = env.reset(seed=1000 + episode)
        algo.on_episode_end()
        start, total, steps, done = np.array([info["x_position"], info["y_position"]]), 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(algo.skill.to_env_action(algo.explore(obs)))
            total, steps, done = total + reward, steps + 1, terminated or truncated
        returns.append(total)
        early += steps < limit
        end = np.array([info["x_position"], info["y_position"]])
        speeds.append(float(np.linalg.norm(end - start)) / (steps * env.unwrapped.dt))
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "ended_early": f"{early} of {episodes}", "mean_speed": float(np.mean(speeds))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("refs", nargs="+")
    parser.add_argument("--tasks", nargs="+", default=["ant-hallway-wide", "ant-umaze"])
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/results/umaze"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = Registry(args.store)
    file = args.out / "recipe_exploration.json"  # walkers measured before (other arenas) are kept
    report = json.loads(file.read_text()) if file.is_file() else {"commands": [], "walkers": {}}
    report["commands"].append(f"python experiments/recipe_exploration.py {' '.join(args.refs)} --tasks "
                              f"{' '.join(args.tasks)} --episodes {args.episodes}")  # fmt: skip
    for ref in args.refs:
        skill = registry.load(ref)
        for task in args.tasks:
            for name, (heads, sigma) in SETTINGS.items():
                spec = finetune_spec(skill, task, steps=0, heads=heads, overrides={"ou_sigma": sigma}, store=args.store)
                result = collect(build_finetune(spec, skill), args.episodes)
                report["walkers"].setdefault(ref, {}).setdefault(task, {})[name] = result
                print(ref, task, name, json.dumps(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
