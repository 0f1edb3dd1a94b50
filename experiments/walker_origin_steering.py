"""Does telling a walker where the origin is steer it? (the measurement behind ``--recipe steer``, issue 33)

The walks reward progress away from the origin and show the walker the torso's x, y. A :class:`SteeredWalker`
shows it the origin 1 m behind the torso, opposite a commanded heading. Two measurements, no training:

1. **On the empty floor** (``ant-walk``): from the start, each of the four quarter-turn headings and the four
   diagonals, held ``--seconds``; the cosine between the heading and the direction walked, the distance, and how
   many episodes end early. Each shipped walker, at the recipe's torque gain and at 1.
2. **Through the U-maze by script** (``ant-umaze``): the heading points at the next of three waypoints along the
   corridors' centre line, (1.75, 0), (1.75, 7) and the goal (0, 7), switching within 0.8 m: an upper bound of
   what a learned heading policy can get from the walker, by torque gain.

    python experiments/walker_origin_steering.py --out docs/results/umaze/origin_steering.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from command_line import command_line

from skillbank import Registry
from skillbank.nn.steered import SteeredWalker
from skillbank.runs.tasks import load_task

WAYPOINTS = ((1.75, 0.0), (1.75, 7.0), (0.0, 7.0))


def torques(walker, obs: np.ndarray, heading: float, generator: torch.Generator) -> np.ndarray:
    command = torch.tensor([[[np.cos(heading), np.sin(heading)]]], dtype=torch.float32)
    with torch.no_grad():
        noise = torch.randn(1, 1, 8, generator=generator)
        return walker(torch.as_tensor(obs, dtype=torch.float32)[None], command, noise)[0, 0].numpy()


def on_the_floor(walker, seeds: int, steps: int) -> dict[str, object]:
    env = load_task("ant-walk").make_env()
    rows = {"quarter turns": [], "diagonals": []}
    for seed in range(seeds):
        for eighth in range(8):
            heading = eighth * np.pi / 4
            obs, _ = env.reset(seed=100 + seed)
            generator = torch.Generator().manual_seed(seed)
            ended = False
            for _ in range(steps):
                obs, _, ended, _, _ = env.step(torques(walker, obs, heading, generator))
                if ended:
                    break
            x, y = env.unwrapped.data.qpos[:2]
            row = {"alignment": float(np.cos(np.arctan2(y, x) - heading)), "distance": float(np.hypot(x, y)),
                   "ended_early": bool(ended)}  # fmt: skip
            rows["diagonals" if eighth % 2 else "quarter turns"].append(row)
    return {kind: {"mean_alignment": float(np.mean([r["alignment"] for r in found])),
                   "min_alignment": float(np.min([r["alignment"] for r in found])),
                   "mean_distance_m": float(np.mean([r["distance"] for r in found])),
                   "ended_early": int(sum(r["ended_early"] for r in found)), "episodes": len(found)}
            for kind, found in rows.items()}  # fmt: skip


def through_the_maze(walker, episodes: int) -> dict[str, float]:
    env = load_task("ant-umaze").make_env()
    returns, successes, early = [], [], 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        generator = torch.Generator().manual_seed(episode)
        target, total, success, done, ended = 0, 0.0, False, False, False
        while not done:
            position = env.unwrapped.data.qpos[:2]
            if target < 2 and np.hypot(*(np.array(WAYPOINTS[target]) - position)) < 0.8:
                target += 1
            dx, dy = np.array(WAYPOINTS[target]) - position
            obs, reward, ended, truncated, info = env.step(torques(walker, obs, float(np.arctan2(dy, dx)), generator))
            total, success, done = total + reward, success or info["success"], ended or truncated
        returns.append(total)
        successes.append(success)
        early += bool(ended)
    return {"mean_return": float(np.mean(returns)), "success_rate": float(np.mean(successes)),
            "ended_early": early, "episodes": episodes}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    walkers = ["ant-walk-sql@3", "ant-walk-sql@2", "ant-walk-sql-2.3M-turned@1", "ant-walk-sac@1"]
    parser.add_argument("--walkers", nargs="+", default=walkers, help="the first is also steered through the maze")
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--gains", type=float, nargs="+", default=[1.0, 0.8, 0.6, 0.5])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--maze-episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/results/umaze/origin_steering.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    registry = Registry(args.store)
    result: dict[str, object] = {"command": command_line(args), "floor": {}, "maze": {}}  # fmt: skip
    for ref in args.walkers:
        skill = registry.load(ref)  # world-frame walkers too, which the recipe refuses: this measures why
        walker = SteeredWalker(skill.sampler, canonical="Canonical" in skill.description["task"]["env_id"])
        for gain in args.gains:
            walker.gain = gain
            floor = on_the_floor(walker, args.seeds, round(args.seconds / 0.05))
            result["floor"][f"{ref} gain {gain}"] = floor
            print(ref, gain, json.dumps(floor), flush=True)
            if ref == args.walkers[0]:
                maze = through_the_maze(walker, args.maze_episodes)
                result["maze"][f"{ref} gain {gain}"] = maze
                print(ref, gain, "maze", json.dumps(maze), flush=True)
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
