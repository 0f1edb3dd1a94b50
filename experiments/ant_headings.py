"""Does the walking skill walk, and in how many directions? 50 rollouts from the start of ant-walk.

    python experiments/ant_headings.py --store skills_store --out docs/results

Writes ant_walk_headings.json (``{"rollouts", "octants_covered", "mean_speed"}`` for ant-walk-sql, and the
same for each other walker under its name) and ant_walk_headings.png (paths from the origin and a polar
histogram of headings per walker). ``--run-dir`` evaluates a run's newest checkpoint instead of a stored skill.

A walker of ``ant-walk-canonical`` heads four ways by construction (its frame at the start follows the reset
noise); for it, ``octants_in_start_frame`` also counts the headings turned back by the frame each rollout
started in: the fan the policy itself keeps. ``--task`` rolls every walker out on one task instead of its own
(``--task ant-walk-canonical``: SAC's world walker seen in the same frame as SQL's canonical one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from skillbank.envs.ant import quarter_turn_frame
from skillbank.runs import checkpoint, jobs
from skillbank.runs.evaluate import locomotion, make_skill_env, rollouts, task_env
from skillbank.store.registry import Registry
from skillbank.viz.plot import plot_headings


def from_run(run_dir: Path):
    spec = json.loads((run_dir / "run.json").read_text())
    algo = jobs.build(spec)
    found = checkpoint.latest(run_dir)
    checkpoint.restore(algo, found)
    return algo.skill, f"{run_dir.name} ({spec['algo']}, checkpoint at {found.step} steps)"


def octants_in_start_frame(paths) -> dict[str, object]:
    """Headings turned back by each rollout's frame at its start (the quarter turn nearest its start bearing)."""
    counts = np.zeros(8, dtype=int)
    for path in paths:
        start, end = path.positions[0], path.positions[-1]
        frame = quarter_turn_frame(*start)
        heading = (np.arctan2(*(end - start)[::-1]) - frame * np.pi / 2) % (2 * np.pi)
        counts[int(heading // (np.pi / 4)) % 8] += 1
    return {"octants_in_start_frame": int((counts > 0).sum()), "octant_counts_in_start_frame": counts.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="skills_store")
    parser.add_argument("--refs", nargs="*", default=["ant-walk-sql", "ant-walk-sac"], help="stored walkers")
    parser.add_argument("--run-dir", type=Path, nargs="*", default=[], help="runs whose newest checkpoint to use")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--task", help="roll every walker out on this task (e.g. ant-walk-canonical), not its own")
    args = parser.parse_args()
    torch.set_num_threads(1)
    walkers = []
    if args.refs:
        registry = Registry(args.store, create=False)
        walkers += [(registry.load(ref), ref) for ref in args.refs]
    walkers += [from_run(run) for run in args.run_dir]
    results, paths = {}, {}
    for skill, label in walkers:
        env = task_env(skill, args.task) if args.task else make_skill_env(skill)
        paths[label] = rollouts(skill, args.episodes, seed=0, env=env)
        results[label] = {"rollouts": args.episodes, **locomotion(paths[label], env.unwrapped.dt)}
        if hasattr(env.unwrapped, "frame"):
            results[label].update(octants_in_start_frame(paths[label]))
        print(label, json.dumps(results[label]))
    first = next(iter(results))
    summary = {**{k: results[first][k] for k in ("rollouts", "octants_covered", "mean_speed")}, "walker": first,
               "walkers": results, "command": "python experiments/ant_headings.py " + " ".join(
                   [f"--store {args.store}", "--refs", *args.refs] + (["--run-dir", *map(str, args.run_dir)]
                                                                       if args.run_dir else [])
                   + ([f"--task {args.task}"] if args.task else []))}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ant_walk_headings.json").write_text(json.dumps(summary, indent=2))
    title = f"{args.task or 'ant-walk'}: where the walkers go"
    plot_headings(paths, args.out / "ant_walk_headings.png", env.unwrapped.dt, title)
    print(f"wrote {args.out / 'ant_walk_headings.json'} and ant_walk_headings.png")


if __name__ == "__main__":
    main()
