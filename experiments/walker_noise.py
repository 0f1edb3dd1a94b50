"""Does a walker's gait survive noise on its actions? Gaussian noise of each scale added to every action.

    python experiments/walker_noise.py --run-dir ~/skillbank-runs/walk-sac --out docs/results

SQL's sampler spreads its actions by about 0.34 per dimension (``ant_walk_sql_diagnosis.json``): if the SAC walker
still walks with that much noise, SQL's spread is not what keeps it from walking. Writes
``OUT/ant_walk_noise.json``: per noise scale, the displacement speed and octants of the rollouts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from skillbank.runs.evaluate import locomotion, make_skill_env
from skillbank.store.rollouts import Rollout

sys.path.insert(0, str(Path(__file__).parent))
from ant_headings import from_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.34, 0.5])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    skill, label = from_run(args.run_dir)
    env, g, rng = make_skill_env(skill), torch.Generator().manual_seed(0), np.random.default_rng(0)
    results = {}
    for scale in args.scales:
        paths = []
        for episode in range(args.episodes):
            obs, info = env.reset(seed=episode)
            positions, total, done = [(info["x_position"], info["y_position"])], 0.0, False
            while not done:
                action = skill.act_normalised(obs, g)
                action = np.clip(action + scale * rng.standard_normal(action.shape), -1, 1)
                obs, reward, terminated, truncated, info = env.step(skill.to_env_action(action))
                positions.append((info["x_position"], info["y_position"]))
                total, done = total + reward, terminated or truncated
            paths.append(Rollout(np.zeros((1, 1)), total, -1, np.asarray(positions)))
        moved = locomotion(paths, env.unwrapped.dt)
        results[str(scale)] = {"mean_speed": moved["mean_speed"], "octants_covered": moved["octants_covered"],
                               "mean_return": float(np.mean([p.episode_return for p in paths]))}  # fmt: skip
        print(f"noise {scale}: {results[str(scale)]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"walker": label, "episodes": args.episodes, "noise": results,
              "command": f"python experiments/walker_noise.py --run-dir {args.run_dir} --out {args.out}"}  # fmt: skip
    (args.out / "ant_walk_noise.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
