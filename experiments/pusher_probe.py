"""The pusher's line skills part-way through training, and their sum: each run's newest checkpoint on both lines and
the corner, then the sum of the two (``--sampler resample``: no replay needed) on the corner::

    python experiments/pusher_probe.py ~/skillbank-runs/pusher-a1/pusher-x ~/skillbank-runs/pusher-a1/pusher-y
"""

from __future__ import annotations

import argparse
import json

import torch

from skillbank import compose
from skillbank.runs import checkpoint
from skillbank.runs.evaluate import rollouts, summarise
from skillbank.runs.jobs import build
from skillbank.runs.run import Run
from skillbank.runs.tasks import load_task

TASKS = ("pusher-x", "pusher-y", "pusher-xy")


def distance(skill, env, episodes: int) -> float:
    return round(summarise(rollouts(skill, episodes, seed=0, env=env), env)["final_goal_distance"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("x_run")
    parser.add_argument("y_run")
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    envs = {task: load_task(task).make_env() for task in TASKS}
    skills = []
    for run_dir in (args.x_run, args.y_run):
        run = Run(run_dir)
        algo = build(run.spec)
        found = checkpoint.latest(run.path)
        checkpoint.restore(algo, found)
        skills.append(algo.skill)
        shown = {task: distance(algo.skill, env, args.episodes) for task, env in envs.items()}
        print(json.dumps({"run": run_dir, "step": found.step, "final_goal_distance": shown}), flush=True)
    both = compose(skills, "sum", sampler="resample")
    print(json.dumps({"sum (resample) on the corner": distance(both, envs["pusher-xy"], args.episodes)}), flush=True)


if __name__ == "__main__":
    main()
