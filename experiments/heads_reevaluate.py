"""Evaluate a fine-tuning run's newest checkpoint three ways: with fresh noise, with its frozen heads one at random
per step (the authors' policy), and with its heads greedy in Q. A run trained with ``--heads`` before the registered
policy was the one that acted was evaluated with fresh noise; this tells whether that changed the verdict::

    python experiments/heads_reevaluate.py ~/skillbank-runs/pilot-sql3-ru-no-ou/runs/ant-umaze-canonical-finetune-s0
"""

from __future__ import annotations

import argparse
import json

import torch

from skillbank.runs import checkpoint
from skillbank.runs.evaluate import evaluate
from skillbank.runs.jobs import build
from skillbank.runs.run import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.run_dirs:
        run = Run(run_dir)
        algo = build(run.spec)
        found = checkpoint.latest(run.path)
        checkpoint.restore(algo, found)
        if algo.heads is None:
            raise SystemExit(f"{run_dir} was not trained with --heads")
        out = {"run": run_dir, "step": found.step, "active_heads": algo.active_heads()}
        for label, select in (("fresh noise", None), ("heads uniform", "uniform"), ("heads greedy", "greedy")):
            if select is not None:
                algo.head_select = select
            summary = evaluate(algo.skill if select is None else algo.policy, args.episodes,
                               seed=10_000 + run.spec["seed"])  # fmt: skip
            out[label] = {"mean_return": summary["mean_return"], "success_rate": summary.get("success_rate")}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
