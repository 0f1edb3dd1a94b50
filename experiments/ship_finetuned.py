"""Register each arena's best fine-tuned skill over every experiment
(:func:`skillbank.workflows.experiment.compare`) in the shipped store as ``<task>-finetuned``: weights only, its
lineage pointing at the shipped walker it started from, tagged ``below-threshold`` where no seed reached the
arena's threshold. Run again after more runs finish: a new best becomes the next
version; the same one is not registered twice.

    python experiments/ship_finetuned.py ~/skillbank-runs/finetune ~/skillbank-runs/finetune-from-sac \
        --tasks ant-umaze --store skills_store
"""

from __future__ import annotations

import argparse
from pathlib import Path

from skillbank import Registry
from skillbank.runs.run import Run
from skillbank.store.registry import Parent
from skillbank.workflows.experiment import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="experiment folders (each with runs/ and store/)")
    parser.add_argument("--tasks", nargs="+", required=True, help="arenas whose best fine-tuned skill to ship")
    parser.add_argument("--store", type=Path, default=Path("skills_store"), help="the store to ship to")
    args = parser.parse_args()
    target, tasks = Registry(args.store), compare(args.experiments)["tasks"]
    for name in args.tasks:
        best = tasks[name]["best"]["finetuned"]
        run = Run(best["run"])
        entry = next(s for s in tasks[name]["methods"][best["method"]]["per_seed"] if s["run"] == best["run"])
        skill = Registry(run.path.parents[1] / "store").load(best["ref"])
        reached = entry["steps_to_threshold"] is not None
        description = (f"the best of the fine-tuned runs on {name} ({best['method']}, seed {entry['seed']}, "
                       f"{entry['steps']:,} steps, final evaluation return {entry['final_return']:.0f}, threshold "
                       f"{tasks[name]['threshold']:g} {'reached' if reached else 'not reached'})")  # fmt: skip
        ref = target.register(
            skill, f"{name}-finetuned", description=description, tags=() if reached else ("below-threshold",),
            parents=[Parent(run.spec["pretrained"], "fine-tuned-from")], run_id=f"best-of-seeds:{run.run_id}",
        )  # fmt: skip
        print(f"{name}: {ref} from {best['run']}")


if __name__ == "__main__":
    main()
