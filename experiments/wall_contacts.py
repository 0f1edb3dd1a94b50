"""How often the walkers' legs touch an arena's walls, and how their rollouts then end (issue 19).

The hallways are 3 m and 2 m wide and the Ant's legs span about 2 m, so a walker that walks straight down the
middle still kicks the walls. A kick can throw the torso above 1 m, where Ant-v5's healthy range (and the authors'
code) ends the episode. For each walker and arena, its rollouts from the start: how many touch a wall, on how many
steps, and how each ended (time limit, torso above 1 m, flipped, torso below 0.2 m), for rollouts that touched a
wall and for those that did not.

    python experiments/wall_contacts.py --store skills_store --out docs/results/finetune_sql_recipes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from skillbank import Registry
from skillbank.runs.evaluate import task_env

sys.path.insert(0, str(Path(__file__).parent))
from zero_shot import WALKERS, ending  # noqa: E402


def wall_contact_rollouts(walker, env, episodes: int, seed: int = 0) -> list[dict]:
    """Each rollout's steps with a wall contact and its ending."""
    base = env.unwrapped
    walls = {i for i in range(base.model.ngeom) if base.model.geom(i).name.startswith("wall")}
    generator, out = torch.Generator().manual_seed(seed), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, touching, done = [obs], 0, False
        while not done:
            obs, _, terminated, truncated, _ = env.step(walker.act(obs, generator))
            observations.append(obs)
            contacts = base.data.contact[: base.data.ncon]
            touching += bool(walls & ({*contacts.geom1} | {*contacts.geom2}))
            done = terminated or truncated
        out.append({"wall_steps": touching, "ending": ending(observations, env.spec.max_episode_steps)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/finetune_sql_recipes"))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--walkers", nargs="+", default=list(WALKERS))
    parser.add_argument("--tasks", nargs="+", default=["ant-walk", "ant-hallway-wide", "ant-hallway-narrow"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry, report = Registry(args.store), {"episodes": args.episodes, "tasks": {}}
    for task in args.tasks:
        for name in args.walkers:
            walker = registry.load(name)
            runs = wall_contact_rollouts(walker, task_env(walker, task), args.episodes)
            entry = {"touched_a_wall": sum(r["wall_steps"] > 0 for r in runs),
                     "mean_wall_steps": float(np.mean([r["wall_steps"] for r in runs]))}  # fmt: skip
            for touched in (True, False):
                endings = [r["ending"] for r in runs if (r["wall_steps"] > 0) == touched]
                key = "endings_after_a_wall" if touched else "endings_without_a_wall"
                entry[key] = {e: endings.count(e) for e in sorted(set(endings))}
            report["tasks"].setdefault(task, {})[walker.ref] = entry
            print(f"{task} {walker.ref}: {json.dumps(entry)}", flush=True)
    report["command"] = f"python experiments/wall_contacts.py --store {args.store} --out {args.out}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wall_contacts.json").write_text(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
