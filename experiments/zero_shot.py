"""The pretrained walkers in the arenas before any fine-tuning: is the walker good enough to start from?

For each arena, each walker's rollouts there as it is (the arenas share the walk's observation and actions), drawn
from above side by side (``OUT/finetune_<task>_zero_shot.png``), and their returns, speeds and success rates beside
the arena's threshold (``OUT/finetune/zero_shot.json``). And what fine-tuning inherits from the walker's critic: every
task starts at the same state, so the critic's ``Q(s0, a0)`` at a rollout's first action predicts the walk's value
there, beside the discounted return that followed in the walk and in each arena (``critic_at_start``).

    python experiments/zero_shot.py --store skills_store --out docs/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from skillbank import Registry
from skillbank.runs.evaluate import rollouts, summarise, task_env
from skillbank.runs.tasks import load_task
from skillbank.viz.plot import plot_rollouts_beside

WALKERS = ("ant-walk-sql@1", "ant-walk-sql@2", "ant-walk-sql-2.3M-turned@1", "ant-walk-sac@1")  # the world's
TASKS = ("ant-hallway-wide", "ant-hallway-narrow", "ant-umaze")


def ending(observations, max_steps: int) -> str:
    """Why a rollout ended, from its observations (Ant-v5's: the torso's z, then its orientation quaternion)."""
    z, _, qx, qy, _ = observations[-1][:5]
    if len(observations) - 1 >= max_steps:
        return "time limit"
    if 1.0 - 2.0 * (qx * qx + qy * qy) < 0.0:
        return "flipped"
    return "torso above 1 m" if z > 1.0 else "torso below 0.2 m"


def critic_at_start(walker, env, episodes: int, seed: int = 0) -> dict[str, float]:
    """The walker's soft ``Q(s0, a0)`` at its first action (in reward units, the entropy bonus included), and the
    discounted return that followed, up to the episode's end (so it leaves out what lies past a time limit)."""
    generator, predicted, returns = torch.Generator().manual_seed(seed), [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        action = walker.act_normalised(obs, generator)
        with torch.no_grad():
            q = walker.q_values(torch.as_tensor(obs, dtype=torch.float32)[None], torch.as_tensor(action)[None, None])
        predicted.append(float(q.reshape(())))
        discounted, discount, done = 0.0, 1.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(walker.to_env_action(action))
            discounted += discount * reward
            discount *= walker.gamma
            done = terminated or truncated
            action = walker.act_normalised(obs, generator)
        returns.append(discounted)
    return {"q_start": float(np.mean(predicted)), "discounted_return": float(np.mean(returns))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--walkers", nargs="+", default=list(WALKERS), help="walkers of the world frame")
    args = parser.parse_args()
    registry, table = Registry(args.store), {}
    critic = {name: {task: critic_at_start(registry.load(name), task_env(registry.load(name), task), args.episodes)
                     for task in ("ant-walk", *TASKS)} for name in args.walkers}  # fmt: skip
    print(f"the critics at the start: {json.dumps(critic)}")
    for task in TASKS:
        panels, table[task] = {}, {"threshold": load_task(task).experiment.threshold}
        for name in args.walkers:
            walker = registry.load(name)
            env = task_env(walker, task)
            paths = rollouts(walker, args.episodes, seed=0, env=env)
            summary = summarise(paths, env)
            lengths = [len(p.observations) - 1 for p in paths]
            endings = [ending(p.observations, env.spec.max_episode_steps) for p in paths]
            table[task][walker.ref] = {
                "mean_return": summary["mean_return"], "std_return": float(np.std([p.episode_return for p in paths])),
                "mean_speed": summary["mean_speed"], "mean_distance": summary["mean_distance"],
                "success_rate": summary.get("success_rate"), "mean_length": float(np.mean(lengths)),
                "endings": {e: endings.count(e) for e in sorted(set(endings))},
            }  # fmt: skip
            panels[walker.ref] = (env, paths)
            print(f"{task} {walker.ref}: {json.dumps(table[task][walker.ref])}")
        title = f"{task}: the pretrained walkers before fine-tuning, {args.episodes} rollouts each"
        plot_rollouts_beside(panels, args.out / f"finetune_{task}_zero_shot.png", title)
    (args.out / "finetune").mkdir(parents=True, exist_ok=True)
    command = "python experiments/zero_shot.py --store skills_store --out docs/results"
    table = {"episodes": args.episodes, "command": command, "tasks": table, "critic_at_start": critic}
    (args.out / "finetune" / "zero_shot.json").write_text(json.dumps(table, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
