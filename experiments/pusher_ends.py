"""Where the puck ends on the corner task, per axis, and where the misses end: the rollouts that stop more than
``--miss`` metres from the corner, for each skill given::

    python experiments/pusher_ends.py --store ~/skillbank-runs/pusher-v1-store pusher-x-y-sum@4 pusher-xy@2 \
        --out docs/results/pusher/ends.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from command_line import command_line

from skillbank import Registry
from skillbank.runs.evaluate import make_skill_env, rollouts

CORNER = np.array([-1.0, -1.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("refs", nargs="+")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--miss", type=float, default=0.5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry, result = Registry(args.store), {}
    for ref in args.refs:
        skill = registry.load(ref)
        env = make_skill_env(skill)
        ends = np.array([p.observations[-1][9:11] for p in rollouts(skill, args.episodes, env=env)])
        distances = np.linalg.norm(ends - CORNER, axis=1)
        missed = distances > args.miss
        result[skill.ref] = {
            "final_goal_distance": float(distances.mean()),
            "mean_abs_x_offset": float(np.abs(ends[:, 0] - CORNER[0]).mean()),
            "mean_abs_y_offset": float(np.abs(ends[:, 1] - CORNER[1]).mean()),
            "misses": int(missed.sum()),
            "miss_ends": ends[missed].round(2).tolist(),
            "final_goal_distance_without_misses": float(distances[~missed].mean()),
        }
        print(ref, json.dumps(result[skill.ref]), flush=True)
    result["command"] = command_line(args, positional=("refs",))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
