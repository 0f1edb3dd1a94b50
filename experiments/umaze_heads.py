"""Each frozen head of a walker alone in a maze: does any one noise draw walk the canonical U-maze to its goal?

The authors' recipe freezes the pretrained sampler to a few noise draws ("heads") and keeps 10 of them in the
U-maze. This rolls out each of ``--heads`` draws (from the run's generator at ``--seed``, as a fine-tuning run
draws them) on its own, ``--episodes`` times, with no training, and writes each head's success rate, return and
speed::

    python experiments/umaze_heads.py --walker ant-walk-sql@3 --task ant-umaze-canonical --heads 32 --episodes 5 \
        --out docs/results/umaze/heads_zero_shot.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from command_line import command_line

from skillbank import Registry
from skillbank.nn.networks import HeadsSampler
from skillbank.nn.skill import Skill, box_to_json
from skillbank.runs.evaluate import evaluate
from skillbank.runs.finetune import widen
from skillbank.runs.tasks import load_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walker", default="ant-walk-sql@3")
    parser.add_argument("--task", default="ant-umaze-canonical")
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/umaze/heads_zero_shot.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(args.task)
    env = task.make_env()
    walker = widen(Registry(args.store).load(args.walker), box_to_json(env.observation_space))
    walker.description["task"] = {"name": task.name, "env_id": task.env_id, "env_kwargs": task.env_kwargs}
    heads = torch.randn(args.heads, walker.action_dim, generator=torch.Generator().manual_seed(args.seed))
    rows = []
    for k in range(args.heads):
        one = Skill(walker.q, HeadsSampler(walker.sampler, heads[k : k + 1]), walker.description)
        summary = evaluate(one, args.episodes, seed=100, env=env)
        rows.append({"head": k, "success_rate": summary["success_rate"], "mean_return": summary["mean_return"],
                     "mean_speed": summary.get("mean_speed")})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    rates = [r["success_rate"] for r in rows]
    result = {"command": command_line(args),
              "walker": args.walker, "task": args.task, "episodes_per_head": args.episodes,
              "mean_success_rate": sum(rates) / len(rates), "best_success_rate": max(rates), "heads": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"mean success {result['mean_success_rate']:.3f}, best head {result['best_success_rate']:.2f}")


if __name__ == "__main__":
    main()
