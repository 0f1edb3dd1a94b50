"""Fine-tuning runs judged against earlier methods that survive only as committed curves.

The from-scratch runs of the fine-tuning experiment were lost with their machine; their evaluation curves are
committed (``docs/results/finetune/runs/<task>-<method>-s<seed>[-from-<skill>].csv``) with their verdicts
(``compare.json``). This judges the finished fine-tuned runs of new experiments against them by the
same rule
(:func:`skillbank.workflows.experiment.verdict`: the median steps to the task's threshold, at most half the best
from-scratch method's), and draws every method's curves per task. A canonical arena (``ant-hallway-wide-canonical``)
is judged against its world twin's runs: the same walls, rewards and threshold, seen from another frame.

    python experiments/finetune_against.py ~/skillbank-runs/finetune-from-sql-2.3M \
        ~/skillbank-runs/finetune-from-sql-2.3M-turned --baseline docs/results/finetune \
        --out docs/results/finetune_from_sql_2.3M --label "finetune from ant-walk-sql@2" \
        "finetune from ant-walk-sql@2 turned"
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from skillbank.runs.finetune import RECIPE
from skillbank.runs.jobs import RESULT_DIR, RESULT_FILE, method_label
from skillbank.runs.run import Run, read_metrics
from skillbank.viz.plot import plot_curves
from skillbank.workflows.experiment import SCRATCH_METHODS, tabulate, verdict


def committed_curves(baseline: Path, task: str, methods: list[str]) -> dict[str, list[list[dict[str, float]]]]:
    """The committed evaluation curves of ``methods`` on ``task``, per method, one list of rows per seed."""
    curves: dict[str, list] = {}
    for method in methods:
        stem = method if method in SCRATCH_METHODS else "finetune"
        skill = None if method in SCRATCH_METHODS else method.removeprefix("finetune from ").split("@")[0]
        recipe = "".join(f"-{key.replace('_', '-')}" for key in RECIPE if f"{key}=" in method)  # finetune_table's names
        origin = rf"-from-{re.escape(skill)}{re.escape(recipe)}" if skill else ""
        pattern = re.compile(rf"{re.escape(task)}-{stem}-s\d+{origin}$")
        for path in sorted((baseline / "runs").glob("*.csv")):
            if pattern.match(path.stem):
                curves.setdefault(method, []).append([r for r in read_metrics(path) if "eval_return" in r])
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, nargs="+", help="new experiments' folders (each with runs/)")
    parser.add_argument("--baseline", type=Path, required=True, help="folder with compare.json and runs/*.csv")
    parser.add_argument("--out", type=Path, required=True, help="folder for against.json and the figures")
    parser.add_argument("--label", nargs="*", default=[],
                        help="a name per experiment for its fine-tuned runs (stores renumber skills)")  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = json.loads((args.baseline / "compare.json").read_text())["tasks"]
    if args.label and len(args.label) != len(args.experiments):
        parser.error(f"give one --label per experiment ({len(args.experiments)}), or none")
    jobs = []
    for folder, label in zip(args.experiments, args.label or [None] * len(args.experiments)):
        for path in sorted(p for p in (folder / "runs").iterdir() if (p / RESULT_DIR / RESULT_FILE).is_file()):
            spec = Run(path).spec
            jobs.append(
                (path, {**spec, "method": label if label and spec["method"] == "finetune" else method_label(spec)})
            )
    tasks, curves = tabulate(jobs)
    report = {"experiments": [str(f) for f in args.experiments], "baseline": str(args.baseline), "tasks": {}}
    for name, task in tasks.items():
        world = name.removesuffix("-canonical")  # a canonical arena: the same walls, rewards and threshold
        methods = {**earlier[world]["methods"], **task["methods"]}
        merged = {**task, "methods": methods}
        tuned = [m for m in methods if m not in SCRATCH_METHODS]
        shown = {**committed_curves(args.baseline, world, list(earlier[world]["methods"])), **curves[name]}
        figure = plot_curves(shown, args.out / f"finetune_{name}.png", "eval_return",
                             f"{name}: evaluation return", task["threshold"])  # fmt: skip
        report["tasks"][name] = {
            "threshold": task["threshold"], "budget_steps": task["budget_steps"], "figure": str(figure),
            "verdicts": {m: verdict(merged, tuned=m) for m in tuned},
            "methods": {m: {k: e.get(k) for k in ("steps_to_threshold", "final_return", "wall_time_s")}
                        | {"final_returns": [s["final_return"] for s in e["per_seed"]],
                           "steps": [s["steps"] for s in e["per_seed"]]} for m, e in methods.items()},
        }  # fmt: skip
        finals = {m: [v and round(v) for v in e["final_returns"]] for m, e in report["tasks"][name]["methods"].items()}
        print(name, json.dumps(report["tasks"][name]["verdicts"]), json.dumps(finals))
    (args.out / "against.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"wrote {args.out / 'against.json'} and a figure per task")


if __name__ == "__main__":
    main()
