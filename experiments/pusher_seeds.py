"""The pusher composite's distance to the corner against ``pusher-xy``'s over training seeds (issue 36's ratio).

Each summary is ``experiments/pusher.py``'s for one training seed of all three skills (its own store)::

    python experiments/pusher_seeds.py docs/results/pusher/summary.json docs/results/pusher/seed1/summary.json \
        --out docs/results/pusher/seeds.json

Writes ``OUT`` (per seed: each skill's mean final distance to the corner, the ratio composite / ``pusher-xy`` with a
95% interval from resampling the paired starts; pooled over seeds: the mean distances, their ratio and its interval
from resampling starts within each seed, and the seeds' spread) and a figure beside it (``OUT`` with ``.png``).
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

CORNER, COMPOSITE, LINES = "pusher-xy", "pusher-x-y-sum", ("pusher-x", "pusher-y")
BAR_DISTANCE, BAR_RATIO, RESAMPLES = 0.25, 1.25, 10_000


def distances(summary: dict, name: str) -> np.ndarray:
    """Each rollout's final distance to the corner of skill ``name`` in one seed's summary."""
    if "final_goal_distances" not in summary[name]:
        raise SystemExit(f"{name} has no per-rollout distances: rerun experiments/pusher.py (it writes them)")
    return np.asarray(summary[name]["final_goal_distances"])


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summaries", nargs="+", type=Path, help="experiments/pusher.py's summary.json, one per seed")
    parser.add_argument("--out", type=Path, default=Path("docs/results/pusher/seeds.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    summaries = [json.loads(path.read_text()) for path in args.summaries]
    composite = [distances(s, COMPOSITE) for s in summaries]
    corner = [distances(s, CORNER) for s in summaries]
    seeds = []
    for path, summary, c, x in zip(args.summaries, summaries, composite, corner):
        seeds.append({
            "summary": str(path),
            "refs": {name: summary[name]["ref"] for name in (*LINES, CORNER, COMPOSITE)},
            "final_goal_distance": {CORNER: float(x.mean()), COMPOSITE: float(c.mean())},
            "ratio": float(c.mean() / x.mean()),
            "ratio_95": ratio_interval([c], [x], rng),
            "lines_on_tasks": {name: summary[name]["on_tasks"] for name in LINES},
        })  # fmt: skip
    pooled_c, pooled_x = float(np.mean([c.mean() for c in composite])), float(np.mean([x.mean() for x in corner]))
    pooled = {
        "final_goal_distance": {CORNER: pooled_x, COMPOSITE: pooled_c},
        "ratio": pooled_c / pooled_x,
        "ratio_95_within_seeds": ratio_interval(composite, corner, rng),
        "ratio_over_seeds": [min(s["ratio"] for s in seeds), max(s["ratio"] for s in seeds)],
        "meets_distance": pooled_c <= BAR_DISTANCE,
        "meets_ratio": pooled_c / pooled_x <= BAR_RATIO,
    }
    result = {
        "command": command_line(args, positional=("summaries",)),
        "bars": {"final_goal_distance_m": BAR_DISTANCE, "ratio": BAR_RATIO},
        "seeds": seeds,
        "pooled": pooled,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(seeds, pooled, args.out.with_suffix(".png"))
    print(json.dumps(pooled, indent=2))


def plot(seeds: list[dict], pooled: dict, path: Path) -> None:
    """Each seed's and the pooled mean distances, composite beside ``pusher-xy``, with the issue's two bars."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    labels = [f"seed {i}" for i in range(len(seeds))] + ["pooled"]
    rows = [s["final_goal_distance"] for s in seeds] + [pooled["final_goal_distance"]]
    ticks = np.arange(len(rows))
    axis.bar(ticks - 0.2, [r[CORNER] for r in rows], 0.4, label=f"{CORNER} (trained on the corner)", color="tab:blue")
    axis.bar(ticks + 0.2, [r[COMPOSITE] for r in rows], 0.4, label=f"{COMPOSITE} (0 new steps)", color="tab:orange")
    axis.hlines([BAR_RATIO * r[CORNER] for r in rows], ticks - 0.4, ticks + 0.4, colors="k", linestyles="--",
                label=f"{BAR_RATIO} x {CORNER}")  # fmt: skip
    axis.axhline(BAR_DISTANCE, color="tab:red", linewidth=0.8, label=f"{BAR_DISTANCE} m")
    ratios = [s["ratio"] for s in seeds] + [pooled["ratio"]]
    for tick, row, ratio in zip(ticks, rows, ratios):
        axis.text(tick + 0.2, row[COMPOSITE], f"{ratio:.2f}x", ha="center", va="bottom", fontsize=8)
    axis.set_xticks(ticks, labels)
    axis.set_ylabel("mean final distance to (-1, -1) [m]")
    axis.set_title("the sum of the line skills against the corner skill, 100 starts each", fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    axis.set_ylim(0, max(BAR_DISTANCE, *(r[COMPOSITE] for r in rows)) * 1.45)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
