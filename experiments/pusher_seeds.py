"""The pusher composite's distance to the corner over training seeds, as a ratio to ``pusher-xy``'s (target: 1.25).

Each summary is ``experiments/pusher.py``'s for one training seed of all three skills (its own store). Each
``--variant LABEL KEY FILE...`` adds another composite measured from the same starts: one FILE per seed, in the
summaries' order, KEY the dotted path in it to the rollouts' distances (``pusher-x-y-sum.with_resampling_sampler`` in
a summary of ``experiments/pusher.py --refit``, ``sum_refit`` in ``experiments/pusher_refit.py``'s output),
``A+B`` for a seed averages composites start by start (e.g. refits from two seeds) and ``A#KEY`` reads another key in
file A::

    python experiments/pusher_seeds.py docs/results/pusher/summary.json docs/results/pusher/seed1/summary.json \
        --variant "refit 30000, resample" pusher-x-y-sum.with_resampling_sampler \
        docs/results/pusher/refit/summary.json docs/results/pusher/refit/seed1/summary.json \
        --out docs/results/pusher/seeds.json

The composite is measured twice: with its SVGD sampler (the public recipe's, what ``skillbank compose --sampler svgd``
registers) and with the training-free resampling sampler (the sum's own Boltzmann policy, as near as sampling gets).
Writes ``OUT`` (per seed and sampler: the mean final distances to the corner and the ratio composite / ``pusher-xy``
with a 95% interval from resampling the paired starts; pooled over seeds: the mean distances, their ratio, its
interval from resampling starts within each seed, and the seeds' spread), a figure beside it (``OUT``, ``.png``) and
the skills' learning curves over the seeds (``OUT`` with ``-curves.png``, from each summary's folder's
``SKILL-metrics.csv``).
The 100 rollouts of every skill start from the same states (rollout seed 0), so the ratio is paired start by start.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from command_line import command_line  # noqa: E402

from skillbank.runs.run import read_metrics  # noqa: E402
from skillbank.viz.plot import plot_curves  # noqa: E402

CORNER, COMPOSITE, LINES = "pusher-xy", "pusher-x-y-sum", ("pusher-x", "pusher-y")
SAMPLERS = {"svgd": (), "resample": ("with_resampling_sampler",)}  # where each sampler's rollouts sit in an entry
BAR_DISTANCE, BAR_RATIO, RESAMPLES = 0.25, 1.25, 10_000


def distances(summary: dict, name: str, path: tuple[str, ...] = ()) -> np.ndarray:
    """Each rollout's final distance to the corner of skill ``name`` in one seed's summary (``path``: the keys down
    to the rollouts measured with another sampler)."""
    entry = summary.get(name, {})
    for key in path:
        entry = entry.get(key, {})
    if "final_goal_distances" not in entry:
        raise SystemExit(
            f"{'.'.join((name, *path))} holds no per-rollout distances: rerun the experiment that wrote it"
        )
    return np.asarray(entry["final_goal_distances"])


def variant_distances(files: str, key: str) -> np.ndarray:
    """The distances at dotted ``key`` in ``files`` (``A+B``: their mean start by start; ``A#KEY``: another key in
    that file)."""
    measured = []
    for file in files.split("+"):
        file, _, own_key = file.partition("#")
        name, *path = (own_key or key).split(".")
        measured.append(distances(json.loads(Path(file).read_text()), name, tuple(path)))
    return np.mean(measured, axis=0)


def ratio_interval(composite: list[np.ndarray], corner: list[np.ndarray], rng: np.random.Generator) -> list[float]:
    """95% interval of (mean composite distance) / (mean ``pusher-xy`` distance) over the seeds given, resampling the
    starts within each seed with the pairing kept."""
    ratios = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        picks = [rng.integers(0, len(c), len(c)) for c in composite]
        ratios[i] = np.mean([c[p].mean() for c, p in zip(composite, picks)]) / np.mean(
            [x[p].mean() for x, p in zip(corner, picks)]
        )
    return [float(q) for q in np.quantile(ratios, [0.025, 0.975])]


def compared(composite: list[np.ndarray], corner: list[np.ndarray], rng: np.random.Generator) -> dict:
    """The composite's mean distance against ``pusher-xy``'s over the seeds given, their ratio and its interval."""
    mean_c, mean_x = float(np.mean([c.mean() for c in composite])), float(np.mean([x.mean() for x in corner]))
    return {"final_goal_distance": mean_c, "ratio": mean_c / mean_x, "ratio_95": ratio_interval(composite, corner, rng),
            "meets_distance": mean_c <= BAR_DISTANCE, "meets_ratio": mean_c / mean_x <= BAR_RATIO}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summaries", nargs="+", type=Path, help="experiments/pusher.py's summary.json, one per seed")
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar="LABEL KEY FILE",
        help="another composite: a label, the dotted key to its distances, one file (or A+B) per seed",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results/pusher/seeds.json"))
    args = parser.parse_args()
    args.variant = args.variant or []
    for variant in args.variant:
        if len(variant) != 2 + len(args.summaries):
            raise SystemExit(f"--variant {variant[0]!r}: give a label, a key and one file per summary, in their order")
    rng = np.random.default_rng(0)
    summaries = [json.loads(path.read_text()) for path in args.summaries]
    corner = [distances(s, CORNER) for s in summaries]
    composite = {sampler: [distances(s, COMPOSITE, path) for s in summaries] for sampler, path in SAMPLERS.items()}
    for label, key, *per_seed in args.variant:
        composite[label] = [variant_distances(files, key) for files in per_seed]
    seeds = []
    for i, (path, summary) in enumerate(zip(args.summaries, summaries)):
        seeds.append({
            "summary": str(path),
            "refs": {name: summary[name]["ref"] for name in (*LINES, CORNER, COMPOSITE)},
            f"{CORNER}_final_goal_distance": float(corner[i].mean()),
            COMPOSITE: {sampler: compared([c[i]], [corner[i]], rng) for sampler, c in composite.items()},
            "lines_on_tasks": {name: summary[name]["on_tasks"] for name in LINES},
        })  # fmt: skip
    pooled = {
        f"{CORNER}_final_goal_distance": float(np.mean([x.mean() for x in corner])),
        COMPOSITE: {sampler: {**compared(c, corner, rng), "ratio_over_seeds": [
            min(s[COMPOSITE][sampler]["ratio"] for s in seeds), max(s[COMPOSITE][sampler]["ratio"] for s in seeds)]}
            for sampler, c in composite.items()},
    }  # fmt: skip
    result = {
        "command": command_line(args, positional=("summaries",)),
        "bars": {"final_goal_distance_m": BAR_DISTANCE, "ratio": BAR_RATIO},
        "seeds": seeds,
        "pooled": pooled,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(seeds + [pooled], [f"seed {i}" for i in range(len(seeds))] + ["pooled"], args.out.with_suffix(".png"))
    curves = {name: [read_metrics(path.parent / f"{name}-metrics.csv") for path in args.summaries
                     if (path.parent / f"{name}-metrics.csv").exists()] for name in (*LINES, CORNER)}  # fmt: skip
    plot_curves(
        curves,
        args.out.with_name(args.out.stem + "-curves.png"),
        "eval_return",
        "the pusher skills, mean and range over seeds",
    )
    print(json.dumps(pooled, indent=2))


def plot(rows: list[dict], labels: list[str], path: Path) -> None:
    """Mean final distances per seed and pooled: ``pusher-xy`` beside the composite with each sampler, each
    composite bar marked with its ratio, and the two targets (0.25 m, 1.25 times)."""
    figure, axis = plt.subplots(figsize=(8, 3.8))
    samplers = list(rows[0][COMPOSITE])
    ticks, width = np.arange(len(rows)), 0.8 / (len(samplers) + 1)
    corner = [r[f"{CORNER}_final_goal_distance"] for r in rows]
    axis.bar(ticks - 0.4 + width / 2, corner, width, label=f"{CORNER} (trained on the corner)", color="tab:blue")
    colors = ("tab:orange", "tab:green", "tab:red", "tab:olive", "tab:purple", "tab:brown")
    for i, (sampler, color) in enumerate(zip(samplers, colors)):
        offset = -0.4 + (i + 1.5) * width
        heights = [r[COMPOSITE][sampler]["final_goal_distance"] for r in rows]
        axis.bar(ticks + offset, heights, width, label=f"sum, {sampler} (0 new steps)", color=color)
        for tick, height, row in zip(ticks, heights, rows):
            axis.text(tick + offset, height, f"{row[COMPOSITE][sampler]['ratio']:.2f}x", ha="center", va="bottom",
                      fontsize=6, rotation=90)  # fmt: skip
    axis.hlines([BAR_RATIO * c for c in corner], ticks - 0.4, ticks + 0.4, colors="k",
                linestyles="--", label=f"{BAR_RATIO} x {CORNER}")  # fmt: skip
    axis.axhline(BAR_DISTANCE, color="tab:gray", linewidth=0.8, label=f"{BAR_DISTANCE} m")
    axis.set_xticks(ticks, labels)
    axis.set_ylabel("mean final distance to (-1, -1) [m]")
    axis.set_title("the sum of the line skills against the corner skill, 100 starts each", fontsize=9)
    axis.legend(fontsize=7, loc="upper left", ncol=2)
    axis.set_ylim(0, 0.5)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
