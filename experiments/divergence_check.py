"""Is the importance-sampled G(s) that the sampled bounds use accurate? A check against the grid.

    python experiments/divergence_check.py --store skills_store --out docs/results

For corner-east + corner-north (learned skills), G at 1,000 replay states: by quadrature on the grid with
11x11 and 41x41 actions, and by importance sampling with 64, 512 and 4,096 shared uniform particles.
Writes divergence_check.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import torch

from skillbank.composition.certified import soft_values
from skillbank.composition.compose import combined_task
from skillbank.composition.grid_bounds import q_on_grid, weighted_divergence
from skillbank.composition.oracle import GridModel
from skillbank.store.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="skills_store")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--states", type=int, default=1000)
    args = parser.parse_args()
    registry = Registry(args.store)
    skills = [registry.load("corner-east"), registry.load("corner-north")]
    weights, alpha = [0.5, 0.5], skills[0].alpha
    task = combined_task(skills, "mean", weights)
    env = gym.make(task["env_id"], **task["env_kwargs"]).unwrapped
    replay = registry.replay_union([s.ref for s in skills])
    pick = torch.randperm(len(replay), generator=torch.Generator().manual_seed(0))[: args.states]
    states = replay.next_observations[pick].float()

    grid_g = {}
    for points in (11, 41):
        grid = GridModel(env, 0.2, points)
        divergence = weighted_divergence(grid, [q_on_grid(s.q, grid) for s in skills], weights, alpha)
        grid_g[points] = grid.interpolate(divergence, states[:, :2].numpy()).double()
    out = {"states": args.states, "grid_11_vs_41_mean_abs": float((grid_g[11] - grid_g[41]).abs().mean())}
    out["grid_41_mean"] = float(grid_g[41].mean())
    for particles in (64, 512, 4096):
        g = torch.Generator().manual_seed(1)
        sampled = soft_values([s.q for s in skills], weights, alpha, states, particles, g, chunk=256)
        error = sampled["divergence"] - grid_g[41]
        out[f"sampled_{particles}"] = {
            "mean": float(sampled["divergence"].mean()),
            "mean_abs_error": float(error.abs().mean()),
            "bias": float(error.mean()),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "divergence_check.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
