"""Does the pusher sum miss because each line skill's Q never saw the other's states? Refit each line skill (its Q
and sampler, by its own SQL updates) on the union of both skills' replay, the other skill's transitions relabelled
with its own reward (:func:`skillbank.composition.refit.refit`, what ``skillbank compose --refit`` does), with no
environment steps; then roll out the sum of the refit Q-functions (resampling sampler) 100 times on the corner.
``--no-union``, the control: the same updates on each skill's own replay only::

    python experiments/pusher_refit.py --store ~/skillbank-runs/pusher-v1-seed1-store --lines pusher-x@2 pusher-y@2 \
        --updates 30000 --out docs/results/pusher/seed1/refit.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from command_line import command_line
from pusher import on_corner

from skillbank import Registry, compose
from skillbank.algos.buffer import ReplayBuffer
from skillbank.composition.refit import refit, relabelled
from skillbank.runs.evaluate import make_skill_env, rollouts, summarise
from skillbank.runs.tasks import load_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--lines", nargs=2, default=["pusher-x", "pusher-y"])
    parser.add_argument("--updates", type=int, default=30_000, help="SQL updates of each line skill on the union")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--union",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refit on both skills' replay (--no-union: each on its own only, the control)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    registry = Registry(args.store)
    skills = [registry.load(ref) for ref in args.lines]
    replays = [registry.replay_buffer(s.ref) for s in skills]  # each loaded once: the union is their concatenation
    union = ReplayBuffer.concatenate(replays)
    corner = load_task("pusher-xy").make_env()
    result: dict = {"command": command_line(args), "lines": {}, "transitions": len(union)}
    refitted = []
    for skill, own in zip(skills, replays):
        own_env = make_skill_env(skill)
        # The relabelling must give back the skill's own stored rewards on its own transitions.
        task = skill.description["task"]
        mismatch = float((relabelled(own, task).rewards[: len(own)] - own.rewards[: len(own)]).abs().max())
        refitted += refit([skill], union if args.union else own, args.updates, args.seed, progress_bar=True)
        result["lines"][skill.ref] = {
            "relabel_max_abs_error_on_own": mismatch,
            "own_line_before": summarise(rollouts(skill, args.episodes, seed=0, env=own_env), own_env)[
                "final_goal_distance"],
            "own_line_after": summarise(rollouts(refitted[-1], args.episodes, seed=0, env=own_env), own_env)[
                "final_goal_distance"],
        }  # fmt: skip
        print(skill.ref, json.dumps(result["lines"][skill.ref]), flush=True)
    for label, parts in (("sum", skills), ("sum_refit", refitted)):
        composite = compose(parts, "sum", sampler="resample")
        result[label] = on_corner(rollouts(composite, args.episodes, seed=0, env=corner), corner)
        print(label, json.dumps({k: v for k, v in result[label].items() if k != "final_goal_distances"}), flush=True)
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
