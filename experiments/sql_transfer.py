"""Does an SQL walker transfer to the arenas? ``docs/results/sql-transfer/summary.json``, in the experiment's schema:
per arena, the method ``finetune`` of the experiments given (their runs from one SQL walker) against the from-scratch
methods, with the verdict of :func:`skillbank.workflows.experiment.verdict` (within half the steps of the best from
scratch), and at the top the walker and how many arenas are within half.

From-scratch runs come from the experiments given, or, for an arena none of them ran from scratch, from an earlier
experiment's ``compare.json`` (``--scratch-from``) on the same task file and budget; each arena's ``sources`` says
which. Only finished runs count.

    python experiments/sql_transfer.py ~/skillbank-runs/umaze-grid ~/skillbank-runs/hallways-steer \\
        --scratch-from docs/results/finetune/compare.json --out docs/results/sql-transfer
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skillbank.runs.jobs import RESULT_DIR, RESULT_FILE
from skillbank.runs.run import Run
from skillbank.workflows.experiment import SCRATCH_METHODS, tabulate, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", type=Path, help="experiment folders (each with runs/)")
    parser.add_argument("--scratch-from", type=Path, help="an earlier experiment's compare.json")
    parser.add_argument("--out", type=Path, default=Path("docs/results/sql-transfer"))
    args = parser.parse_args()
    jobs = [(path.parents[1], Run(path.parents[1]).spec) for folder in args.experiments
            for path in sorted((folder / "runs").glob(f"*/{RESULT_DIR}/{RESULT_FILE}"))]  # fmt: skip
    walkers = {spec["pretrained"] for _, spec in jobs if spec.get("pretrained")}
    if len(walkers) != 1:
        raise SystemExit(f"the experiments fine-tune {sorted(walkers) or 'no walker'}; give those of one SQL walker")
    tasks, _ = tabulate(jobs)
    earlier = json.loads(args.scratch_from.read_text())["tasks"] if args.scratch_from else {}
    for name, task in tasks.items():
        here = sorted(m for m in task["methods"] if m in SCRATCH_METHODS)
        task["sources"] = {m: "the experiments given" for m in task["methods"]}
        if not here and name in earlier:
            old = earlier[name]
            if (old["threshold"], old["budget_steps"]) != (task["threshold"], task["budget_steps"]):
                raise SystemExit(f"{args.scratch_from} ran {name} with another threshold or budget")
            for method in SCRATCH_METHODS:
                if method in old["methods"]:
                    task["methods"][method] = old["methods"][method]
                    task["sources"][method] = str(args.scratch_from)
        task["verdict"] = verdict(task)
        for entry in task["methods"].values():
            for seed in entry["per_seed"]:
                seed["run"] = Path(seed["run"]).name
    summary = {"pretrained": walkers.pop(), "tasks": tasks,
               "arenas_within_half": sum(t["verdict"]["within_half"] for t in tasks.values())}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    for name, task in tasks.items():
        v = task["verdict"]
        print(f"{name}: finetune {v['finetune_steps']} steps, best from scratch {v['best_scratch_method']} "
              f"{v['best_scratch_steps']}, within half: {v['within_half']}")  # fmt: skip


if __name__ == "__main__":
    main()
