"""How much of the pusher composite's distance to the corner is its sampler: the sum of the two line skills' Q with
a fresh SVGD sampler trained from several seeds (on the union of their replay buffers, no environment steps), and with
the training-free resampling sampler, each rolled out 100 times on the corner; and the divergence-corrected sum
(``dc``, its correction learned on the same buffers) with the resampling sampler; with ``--weights``, weighted sums
(resampling sampler) too, e.g. ``--weights 1,0.5 2,1``; ``--sampler-steps`` the SVGD samplers' gradient steps (the
public code's 10,000) and ``--no-baselines`` to leave out the resampling and ``dc`` composites::

    python experiments/pusher_samplers.py --store ~/skillbank-runs/pusher-v1-store --lines pusher-x@2 pusher-y@2 \
        --seeds 0 1 2 --out docs/results/pusher/samplers.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from command_line import command_line

from skillbank import Registry, compose
from skillbank.composition.compose import SAMPLER_STEPS
from skillbank.runs.evaluate import make_skill_env, rollouts, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--lines", nargs=2, default=["pusher-x", "pusher-y"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="SVGD samplers' seeds (none: skip)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--weights", nargs="*", default=[], help="weighted sums to add, each W_X,W_Y")
    parser.add_argument("--sampler-steps", type=int, default=SAMPLER_STEPS, help="each SVGD sampler's gradient steps")
    parser.add_argument(
        "--baselines", action=argparse.BooleanOptionalAction, default=True, help="the resampling and dc composites"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = Registry(args.store)
    skills = [registry.load(ref) for ref in args.lines]
    replay = registry.replay_union([s.ref for s in skills])
    rows = []
    weighted = [[float(w) for w in pair.split(",")] for pair in args.weights]
    runs = [("sum", "resample", 0, None), ("dc", "resample", 0, None)] if args.baselines else []
    runs += [("sum", "svgd", s, None) for s in args.seeds]
    for op, sampler, seed, weights in runs + [("sum", "resample", 0, w) for w in weighted]:
        started = time.perf_counter()
        composite = compose(skills, op, weights, sampler=sampler, replay=replay, sampler_steps=args.sampler_steps,
                            seed=seed)  # fmt: skip
        env = make_skill_env(composite)
        measured = summarise(rollouts(composite, args.episodes, seed=0, env=env), env)
        rows.append({"op": op, "weights": composite.q.weights, "sampler": sampler, "seed": seed,
                     "sampler_steps": args.sampler_steps if sampler == "svgd" else None,
                     "final_goal_distance": measured["final_goal_distance"],
                     "median_final_goal_distance": measured["median_final_goal_distance"],
                     "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": command_line(args),
        "lines": [s.ref for s in skills], "episodes": args.episodes, "composites": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
