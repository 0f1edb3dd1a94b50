"""SQL fine-tuning recipes probed on the wide hallway, drawn against the committed grid's curves (issue 19).

Each probe is a run's ``metrics.csv`` copied to ``DIR/runs/<task>-finetune-s<seed>-<probe>.csv`` (probes stopped
early are kept as far as they went). Per probe and seed: the best evaluation up to the verdict's point (half the
grid's 150k budget: fine-tuning must reach the threshold by then to count), the last evaluation and its step, and
the first step at the threshold. Writes ``DIR/probes.json`` and ``DIR/<task>.png``.

    python experiments/recipe_probes.py --dir docs/results/finetune_sql_recipes --baseline docs/results/finetune \
        --turned docs/results/finetune_from_sql_2.3M
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from skillbank.runs.run import read_metrics
from skillbank.runs.tasks import load_task
from skillbank.viz.plot import plot_curves
from skillbank.workflows.experiment import steps_to_threshold

HALF_BUDGET = 75_000


def evaluations(path: Path) -> list[dict[str, float]]:
    return [row for row in read_metrics(path) if "eval_return" in row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("docs/results/finetune_sql_recipes"))
    parser.add_argument("--baseline", type=Path, default=Path("docs/results/finetune"), help="the grid's CSVs")
    parser.add_argument("--turned", type=Path, default=Path("docs/results/finetune_from_sql_2.3M"),
                        help="the turned SQL walker's fine-tuning CSVs (the probes' starting recipe)")  # fmt: skip
    parser.add_argument("--task", default="ant-hallway-wide")
    args = parser.parse_args()
    threshold = load_task(args.task).experiment.threshold
    curves: dict[str, list] = {}
    report: dict = {"task": args.task, "threshold": threshold, "verdict_point": HALF_BUDGET, "probes": {}}
    pattern = re.compile(rf"{re.escape(args.task)}-(?P<method>[a-z-]+?)-s(?P<seed>\d+)-(?P<probe>.+)")
    for path in sorted((args.dir / "runs").glob(f"{args.task}-*.csv")):
        match = pattern.fullmatch(path.stem)
        if match is None:
            continue
        rows = evaluations(path)
        name = f"{match['method']} {match['probe']}"
        curves.setdefault(name, []).append(rows)
        reached = steps_to_threshold(rows, threshold)
        report["probes"].setdefault(name, []).append({
            "seed": int(match["seed"]), "last_step": int(rows[-1]["step"]),
            "best_by_verdict_point": max(r["eval_return"] for r in rows if r["step"] <= HALF_BUDGET),
            "last_return": rows[-1]["eval_return"], "steps_to_threshold": None if reached == float("inf") else reached,
        })  # fmt: skip
    references = {
        "finetune from ant-walk-sql@2 turned (grid recipe)": (args.turned, "finetune-s*-from-ant-walk-sql-2-turned"),
        "finetune from ant-walk-sac@1": (args.baseline, "finetune-s*-from-ant-walk-sac"),
        "sac-scratch": (args.baseline, "sac-scratch-s*"),
    }  # fmt: skip
    for name, (folder, stem) in references.items():
        curves[name] = [evaluations(p) for p in sorted((folder / "runs").glob(f"{args.task}-{stem}.csv"))]
    figure = plot_curves(curves, args.dir / f"{args.task}.png", "eval_return",
                         f"{args.task}: SQL fine-tuning recipes against the grid", threshold)  # fmt: skip
    report["figure"] = str(figure)
    (args.dir / "probes.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    for name, seeds in report["probes"].items():
        print(name, json.dumps(seeds))


if __name__ == "__main__":
    main()
