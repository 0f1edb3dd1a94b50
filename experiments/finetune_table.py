"""The experiment's runs so far, finished or not: copy each run's curve to ``OUT/runs/<run>.csv``, print a
Markdown table of where each stands (for docs/results/finetune-grid.md while the grid is still training), and write
``OUT/compare.json``: per task, each pretrained skill's fine-tuning judged against the best from-scratch method of
all the experiments, over their finished runs
(:func:`skillbank.workflows.experiment.compare`), and with ``--figures`` their
learning curves.

    python experiments/finetune_table.py ~/skillbank-runs/finetune ~/skillbank-runs/finetune-from-sac \
        --out docs/results/finetune --figures docs/results
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from skillbank.runs.finetune import RECIPE
from skillbank.runs.jobs import method_label
from skillbank.runs.run import FINISHED_FILE, METRICS_FILE, Run
from skillbank.workflows.experiment import compare, steps_to_threshold


def row(run: Run) -> str:
    evals = [r for r in run.metrics() if "eval_return" in r]
    if not evals:
        return ""
    spec, last = run.spec, evals[-1]
    best = max(evals, key=lambda r: r["eval_return"])
    reached = steps_to_threshold(evals, spec["threshold"])
    wall = f"{run.training_time_s():,.0f} s" if (run.path / FINISHED_FILE).is_file() else ""
    return (f"| {spec['task_name']} | {method_label(spec)} | {spec['seed']} | {last['step']:,.0f} "
            f"| {last['eval_return']:.0f} "
            f"| {best['eval_return']:.0f} at {best['step'] / 1000:.0f}k | {last.get('eval_speed', float('nan')):.2f} "
            f"| {'no' if reached == float('inf') else f'{reached:,.0f}'} | {wall} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="experiment folders (each with runs/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for runs/<run>.csv and compare.json")
    parser.add_argument("--figures", type=Path, help="folder for finetune_<task>_compared.png (none if not given)")
    args = parser.parse_args()
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    print("| task | method | seed | steps | final eval return | best | final speed (m/s) | threshold at | wall time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.experiments:
        for path in sorted((folder / "runs").iterdir()):
            if not (path / METRICS_FILE).is_file():
                continue
            run = Run(path)
            line = row(run)
            if line:
                pretrained = run.spec.get("pretrained")  # runs fine-tuned from different skills share names
                name = path.name + (f"-from-{pretrained.split('@')[0]}" if pretrained else "")
                name += "".join(f"-{key.replace('_', '-')}" for key in RECIPE if run.spec.get(key))
                name += "".join(f"-{key.replace('_', '-')}-{value}" for key, value in run.spec.get("set", {}).items())
                shutil.copyfile(path / METRICS_FILE, args.out / "runs" / f"{name}.csv")
                print(line)
    comparison = compare(args.experiments, out=args.figures)
    (args.out / "compare.json").write_text(json.dumps(comparison, indent=2, sort_keys=True))
    print()
    for name, task in sorted(comparison["tasks"].items()):
        seeds = ", ".join(f"{m} {len(e['per_seed'])}" for m, e in sorted(task["methods"].items()))
        print(f"{name} (finished seeds: {seeds})")
        for method, verdict in sorted(task["verdicts"].items()):
            print(f"  {method}: {json.dumps(verdict)}")


if __name__ == "__main__":
    main()
