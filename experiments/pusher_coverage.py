"""Where the pusher composite goes that its constituents' experience never went.

Each line skill's Q was fitted only on its own replay: ``pusher-x``'s puck positions and ``pusher-y``'s. This counts,
for every step of 100 corner rollouts of the composite (and of ``pusher-xy`` for comparison), how many transitions of
each line skill's replay put the puck in the same 0.1 m cell, and draws the two replays' puck densities with the
composite's paths over them::

    python experiments/pusher_coverage.py --store ~/skillbank-runs/pusher-v1-store --lines pusher-x@2 pusher-y@2 \
        --skills pusher-x-y-sum@4 pusher-xy@2 --out docs/results/pusher/coverage.json

Writes ``OUT`` (per skill: the share of its rollouts' steps whose cell holds fewer than ``--sparse`` transitions of
each line skill's replay, over all rollouts and over its misses, those that end more than 0.5 m from the corner) and
``OUT`` with ``.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from command_line import command_line  # noqa: E402

from skillbank import Registry  # noqa: E402
from skillbank.envs.pusher import PUCK_OBSERVED as PUCK  # noqa: E402
from skillbank.runs.evaluate import rollouts  # noqa: E402
from skillbank.runs.tasks import load_task  # noqa: E402
from skillbank.viz.plot import draw_pusher  # noqa: E402

CELL, EDGES, MISS = 0.1, np.arange(-1.8, 1.8001, 0.1), 0.5


def cell_counts(positions: np.ndarray) -> np.ndarray:
    """Transitions per 0.1 m cell of the table, from puck positions (N, 2)."""
    return np.histogram2d(positions[:, 0], positions[:, 1], bins=[EDGES, EDGES])[0]


def counts_at(counts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The cell count at each puck position (N, 2); 0 off the table's grid."""
    cells = np.floor((positions - EDGES[0]) / CELL).astype(int)
    inside = ((cells >= 0) & (cells < len(EDGES) - 1)).all(1)
    found = np.zeros(len(positions))
    found[inside] = counts[cells[inside, 0], cells[inside, 1]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--lines", nargs=2, default=["pusher-x", "pusher-y"])
    parser.add_argument("--skills", nargs="+", default=["pusher-x-y-sum", "pusher-xy"])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--sparse", type=int, default=100, help="a cell with fewer transitions than this is sparse")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = Registry(args.store)
    replays = {ref: registry.replay_buffer(registry.resolve(ref)) for ref in args.lines}
    counts = {ref: cell_counts(b.next_observations[: len(b), PUCK].numpy()) for ref, b in replays.items()}
    env = load_task("pusher-xy").make_env()
    result = {"command": command_line(args),
        "cell_m": CELL, "transitions": {ref: len(b) for ref, b in replays.items()}, "skills": {}}  # fmt: skip
    paths_of = {}
    for ref in args.skills:
        skill = registry.load(ref)
        paths = rollouts(skill, args.episodes, seed=0, env=env)
        paths_of[skill.ref] = paths
        missed = [p.final_goal_distance > MISS for p in paths]
        entry = {"final_goal_distance": float(np.mean([p.final_goal_distance for p in paths])), "misses": sum(missed)}
        for line, grid in counts.items():
            per_path = [counts_at(grid, p.observations[:, PUCK]) < args.sparse for p in paths]
            entry[f"sparse_share_in_{line}"] = float(np.mean(np.concatenate(per_path)))
            if any(missed):
                entry[f"sparse_share_in_{line}_misses"] = float(np.mean(np.concatenate(
                    [s for s, m in zip(per_path, missed) if m])))  # fmt: skip
        result["skills"][skill.ref] = entry
        print(skill.ref, json.dumps(entry), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(counts, paths_of, env, args.out.with_suffix(".png"))


def plot(counts: dict[str, np.ndarray], paths_of: dict[str, list], env, path: Path) -> None:
    """One panel per (line skill's replay, skill): the replay's puck density (log scale) under the skill's paths."""
    pairs = [(line, ref) for ref in paths_of for line in counts]
    figure, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4.4), squeeze=False)
    for axis, (line, ref) in zip(axes[0], pairs):
        axis.pcolormesh(EDGES, EDGES, np.log10(1 + counts[line].T), cmap="Greys", vmin=0, vmax=5)
        draw_pusher(axis, env, paths_of[ref][:20], "tab:orange")
        axis.set_title(f"{ref}'s paths (20 starts)\nover {line}'s replay (puck density, log)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
