"""Pictures of what a skill does on a 2-D multi-goal task (the SQL paper's Figure 3)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from skillbank.envs.pusher import PUCK_OBSERVED  # noqa: E402
from skillbank.nn.skill import Skill  # noqa: E402
from skillbank.runs.evaluate import make_skill_env, rollouts, task_env  # noqa: E402

PAPER_STATES: tuple[tuple[float, float], ...] = ((-2.5, 0.0), (0.0, 0.0), (2.5, 2.5))


def save_figure(fig: plt.Figure, out: str | Path, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG (creating the folder) and free it."""
    if tight:
        fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def q_grid(skill: Skill, state: Sequence[float], resolution: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q(state, a) on a regular grid over the action box [-1, 1]^2: (ax, ay, Q) with Q[i, j] at (ax[j], ay[i])."""
    axis = np.linspace(-1, 1, resolution)
    ax, ay = np.meshgrid(axis, axis)
    actions = torch.tensor(np.stack([ax, ay], -1).reshape(1, -1, 2), dtype=torch.float32)
    with torch.no_grad():
        q = skill.q_values(torch.tensor([state], dtype=torch.float32), actions)
    return ax, ay, q.reshape(resolution, resolution).numpy()


def plot_multigoal(
    skill: Skill,
    out: str | Path,
    episodes: int = 50,
    seed: int = 0,
    states: Sequence[Sequence[float]] = PAPER_STATES,
    samples: int = 100,
) -> Path:
    """Rollouts from the start state (left) and Q-value contours at ``states`` with sampled actions on top."""
    env = make_skill_env(skill)
    base = env.unwrapped
    if getattr(base, "goals", None) is None or skill.action_dim != 2:
        raise ValueError("plot_multigoal needs a 2-D multi-goal task (an environment with `goals`)")
    fig, axes = plt.subplots(1, 1 + len(states), figsize=(4.2 * (1 + len(states)), 4.2))
    ax = axes[0]
    for path in rollouts(skill, episodes, seed, env):
        ax.plot(path.observations[:, 0], path.observations[:, 1], color="tab:blue", lw=0.8, alpha=0.7)
    for goal, weight in zip(base.goals, np.atleast_2d(base.goal_weights).max(0)):
        ax.add_patch(plt.Circle(goal, base.goal_radius, color="tab:red" if weight > 0 else "0.6", alpha=0.35))
    ax.plot(*np.asarray(states).T, "k^", ms=7, label="states at right")
    bound = base.bound
    ax.set(xlim=(-bound, bound), ylim=(-bound, bound), aspect="equal", xlabel="x", ylabel="y")
    ax.set_title(f"{episodes} rollouts of {getattr(skill, 'ref', skill.description['algorithm'])}")
    ax.legend(loc="lower left", fontsize=8)
    generator = torch.Generator().manual_seed(seed)
    for ax, state in zip(axes[1:], states):
        gx, gy, q = q_grid(skill, state)
        contour = ax.contourf(gx, gy, q, levels=20, cmap="viridis")
        ax.contour(gx, gy, q, levels=20, colors="k", linewidths=0.3)
        with torch.no_grad():
            acts = skill.sample_actions(torch.tensor([state], dtype=torch.float32), samples, generator)[0].numpy()
        ax.scatter(acts[:, 0], acts[:, 1], s=8, c="tab:red", edgecolors="white", linewidths=0.3)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", xlabel="action x", ylabel="action y")
        ax.set_title(f"Q(s, a) at s = ({state[0]:g}, {state[1]:g})")
        fig.colorbar(contour, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, out)


def plot_lineage(graph: nx.DiGraph, out: str | Path) -> Path:
    """Draw a lineage graph: parents above children, edges labelled with their relation, and every
    node's label box inside the figure however long the names are."""
    layers = list(nx.topological_generations(graph))
    for layer, nodes in enumerate(layers):
        for node in nodes:
            graph.nodes[node]["layer"] = layer
    widest = max(len(nodes) for nodes in layers)
    longest = max(len(str(node)) for node in graph.nodes)
    fig, ax = plt.subplots(figsize=(max(4.0, widest * (0.09 * longest + 0.8)), 1.3 * len(layers) + 0.8))
    pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal")
    pos = {node: (x, -y) for node, (x, y) in pos.items()}
    box = {"boxstyle": "round,pad=0.4", "fc": "#cde", "ec": "0.4"}
    labels = nx.draw_networkx_labels(graph, pos, ax=ax, font_size=8, bbox=box)
    nx.draw_networkx_edges(graph, pos, ax=ax, arrows=True, node_size=1800, edge_color="0.4")
    nx.draw_networkx_edge_labels(graph, pos, nx.get_edge_attributes(graph, "relation"), ax=ax, font_size=7)
    # Widen the limits until every label's box lies inside (text is sized in points, not in data units).
    fig.canvas.draw()
    to_data = ax.transData.inverted()
    corners = np.concatenate(
        [to_data.transform(t.get_window_extent().expanded(1.15, 1.6).get_points()) for t in labels.values()]
    )
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    ax.set_xlim(min(x0, ax.get_xlim()[0]), max(x1, ax.get_xlim()[1]))
    ax.set_ylim(min(y0, ax.get_ylim()[0]), max(y1, ax.get_ylim()[1]))
    ax.set_axis_off()
    return save_figure(fig, out)


def plot_bound_maps(report, out: str | Path, title: str = "", paths=None, oracle: bool = False) -> Path:
    """Maps over the state plane, under the composite policy: the true error ``Q_Sigma - Q*_C``
    beside the bounds L1, C_pi and C*, on one diverging symmetric-log colour scale (red where the
    composite is optimistic, blue where it is pessimistic, white at 0), optionally with rollouts of
    the composite in the first panel. ``oracle`` draws the bounds of the exact constituents instead."""
    from matplotlib.colors import SymLogNorm
    from matplotlib.lines import Line2D

    grid, bounds = report.grid, report.oracle if oracle else report.learned
    panels = [("true error Q_Σ − Q*_C", bounds.true_error), ("lower bound L1", bounds.lower)]
    panels += [("upper bound C_π", bounds.c_pi), ("C* (paper, α·D½)", bounds.c_star_paper)]
    maps = [bounds.at_states(values).reshape(grid.n, grid.n).numpy().T for _, values in panels]
    largest = max(float(np.abs(m).max()) for m in maps) or 1.0
    norm = SymLogNorm(linthresh=max(largest * 1e-3, 1e-3), vmin=-largest, vmax=largest, base=10)
    start = 1 if paths is not None else 0
    fig, axes = plt.subplots(1, len(panels) + start, figsize=(4.0 * (len(panels) + start), 4.4))
    extent = (-grid.bound, grid.bound, -grid.bound, grid.bound)
    weights = np.atleast_2d(grid.env.goal_weights).max(0)
    if paths is not None:
        ax = axes[0]
        for path in paths:
            ax.plot(path.observations[:, 0], path.observations[:, 1], color="tab:blue", lw=0.8, alpha=0.6)
        ax.set(xlim=extent[:2], ylim=extent[2:], aspect="equal", title=f"{len(paths)} rollouts of the composite")
    for ax, (name, _), image in zip(axes[start:], panels, maps):
        shown = ax.imshow(image, origin="lower", extent=extent, norm=norm, cmap="RdBu_r")
        ax.set(title=name, aspect="equal")
    for ax in axes:
        for goal, weight in zip(grid.env.goals, weights):
            ax.add_patch(plt.Circle(goal, grid.env.goal_radius, fill=False, color="k" if weight > 0 else "0.5"))
        ax.set(xlabel="x", ylabel="y")
    marks = [Line2D([], [], marker="o", ls="", mfc="none", color=c, label=t)
             for c, t in (("k", "goal a constituent rewards"), ("0.5", "other goal"))]  # fmt: skip
    axes[0].legend(handles=marks, loc="lower left", fontsize=7)
    fig.colorbar(shown, ax=list(axes), shrink=0.8, label="reward units, mean over π_Σ's actions (symmetric log)")
    fig.suptitle(f"{title} ({'exact' if oracle else 'learned'} constituents)")
    return save_figure(fig, out, tight=False)


def plot_headings(walkers: dict[str, list], out: str | Path, dt: float, title: str = "") -> Path:
    """For each walker (a label and its Ant rollouts from the start), the torso's paths from the origin
    and a polar histogram of the headings from start to end, in the 8 octants ``locomotion`` counts."""
    n = len(walkers)
    fig = plt.figure(figsize=(8.0, 4.0 * n))
    for row, (label, paths) in enumerate(walkers.items()):
        ax = fig.add_subplot(n, 2, 2 * row + 1)
        for path in paths:
            xy = path.positions - path.positions[0]
            ax.plot(xy[:, 0], xy[:, 1], lw=0.8, alpha=0.6)
            ax.plot(*xy[-1], "k.", ms=3)
        moves = np.array([p.positions[-1] - p.positions[0] for p in paths])
        speed = np.mean([np.linalg.norm(m) / ((len(p.positions) - 1) * dt) for m, p in zip(moves, paths)])
        ax.plot(0, 0, "k^", ms=7)
        ax.set(aspect="equal", xlabel="x − x0 (m)", ylabel="y − y0 (m)",
               title=f"{label}\n{len(paths)} rollouts, {speed:.2f} m/s")  # fmt: skip
        polar = fig.add_subplot(n, 2, 2 * row + 2, projection="polar")
        headings = np.arctan2(moves[:, 1], moves[:, 0]) % (2 * np.pi)
        counts = np.bincount(np.floor(headings / (np.pi / 4)).astype(int) % 8, minlength=8)
        polar.bar(np.arange(8) * np.pi / 4 + np.pi / 8, counts, width=np.pi / 4, edgecolor="k", alpha=0.7)
        polar.set_yticks(polar.get_yticks()[1::2])  # every other rollout count, so the labels do not overlap
        polar.set_rlabel_position(112.5)  # between the octants' bars
        polar.set_title(f"headings: {int((counts > 0).sum())} of 8 octants", pad=12)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)


def draw_arena(ax: plt.Axes, env, paths=None, color: str = "tab:blue", label: str | None = None) -> None:
    """An Ant arena from above: its walls, its goal, and the torso's path of each rollout."""
    from matplotlib.patches import Circle, Rectangle

    base = env.unwrapped
    for x0, x1, y0, y1 in getattr(base, "walls", ()):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.45"))
    goal = getattr(base, "goal", None)
    if goal is not None:
        ax.add_patch(Circle(goal, base.success_radius, color="tab:red", alpha=0.3))
        ax.plot(*goal, "r*", ms=10)
    for i, path in enumerate(paths or []):
        xy = path.positions if path.positions is not None else path.observations[:, :2]  # MultiGoal: the state
        ax.plot(xy[:, 0], xy[:, 1], color=color, lw=0.8, alpha=0.6, label=label if i == 0 else None)
        ax.plot(*xy[-1], "o", color=color, ms=2.5)
    ax.plot(0, 0, "k^", ms=7)
    ax.set(aspect="equal", xlabel="x (m)", ylabel="y (m)")
    ax.autoscale()


def plot_arena(
    skill: Skill, out: str | Path, episodes: int = 20, seed: int = 0, paths=None, task: str | None = None
) -> Path:
    """Rollouts of a skill on an Ant task (``paths``, or ``episodes`` new ones), drawn from above over the
    arena's walls (start: the triangle): on its own task, or zero-shot on ``task``."""
    env = task_env(skill, task) if task else make_skill_env(skill)
    paths = paths or rollouts(skill, episodes, seed, env)
    if paths[0].positions is None:
        raise ValueError("plot_arena needs a task whose steps report x_position and y_position (the Ant tasks)")
    name = getattr(skill, "ref", None) or skill.description["algorithm"]
    title = f"{len(paths)} rollouts of {name} on {task or skill.description['task'].get('name')}"
    return plot_rollouts_beside({name: (env, paths)}, out, title)


def plot_rollouts_beside(panels: dict[str, tuple], out: str | Path, title: str = "") -> Path:
    """One panel per label: ``(env, rollouts)`` drawn from above over the env's walls, on shared axes (one
    above the other for a long hallway, side by side otherwise)."""
    walls = np.array(getattr(next(iter(panels.values()))[0].unwrapped, "walls", ()) or [(-3.0, 3.0, -3.0, 3.0)])
    long = (walls[:, 1].max() - walls[:, 0].min()) > 3 * (walls[:, 3].max() - walls[:, 2].min())
    n = len(panels)
    shape, size = ((n, 1), (11.0, 2.6 * n + 0.6)) if long else ((1, n), (5.0 * n, 6.0))
    fig, axes = plt.subplots(*shape, figsize=size, sharex=True, sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (ax, (label, (env, paths))) in enumerate(zip(axes.ravel(), panels.items())):
        color = colors[i % len(colors)]
        draw_arena(ax, env, paths, color)
        text = f"mean return {np.mean([p.episode_return for p in paths]):.1f}"
        if getattr(env.unwrapped, "goal", None) is not None:
            text += f", {sum(p.success for p in paths)} of {len(paths)} reach the goal"
        ax.set_title(f"{label}\n{text}", fontsize=9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)


def draw_pusher(ax: plt.Axes, env, paths, color: str = "tab:blue") -> None:
    """The pusher's table from above: the goal's lines (or point), the arm's base, and the puck's path of each
    rollout from its start (circle) to its end (dot)."""
    base = env.unwrapped
    x, y = base.goal
    if not np.isnan(x):
        ax.axvline(x, color="tab:green", lw=2, alpha=0.6)
    if not np.isnan(y):
        ax.axhline(y, color="tab:green", lw=2, alpha=0.6)
    for path in paths:
        puck = path.observations[:, PUCK_OBSERVED]
        ax.plot(puck[:, 0], puck[:, 1], color=color, lw=0.8, alpha=0.6)
        ax.plot(*puck[0], "o", mfc="none", color=color, ms=4)
        ax.plot(*puck[-1], "o", color=color, ms=3)
    ax.plot(0, 0, "ks", ms=7)
    ax.set(xlim=(-1.8, 1.8), ylim=(-1.8, 1.4), aspect="equal", xlabel="x (m)", ylabel="y (m)")


def plot_pushers(panels: dict[str, tuple], out: str | Path, title: str = "") -> Path:
    """One panel per label, ``(env, rollouts)`` of pusher skills side by side, each titled with its final goal
    distance on its panel's task."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (ax, (label, (env, paths))) in enumerate(zip(axes[0], panels.items())):
        draw_pusher(ax, env, paths, colors[i % len(colors)])
        distance = np.mean([p.final_goal_distance for p in paths])
        ax.set_title(f"{label}\nfinal goal distance {distance:.2f} m", fontsize=9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)


def plot_curves(runs: dict[str, list[list[dict[str, float]]]], out: str | Path, metric: str, title: str = "",
                threshold: float | None = None) -> Path:  # fmt: skip
    """Learning curves: for each method, the mean of ``metric`` over its runs (seeds) against environment
    steps, with the band from the lowest to the highest run; ``runs`` maps a method to each run's rows."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, curves in sorted(runs.items()):
        curves = [[(r["step"], r[metric]) for r in rows if metric in r] for rows in curves]
        curves = [np.array(c) for c in curves if c]
        if not curves:
            continue
        steps = np.unique(np.concatenate([c[:, 0] for c in curves]))
        steps = steps[steps <= min(c[-1, 0] for c in curves)]  # where every run has got to
        values = np.stack([np.interp(steps, c[:, 0], c[:, 1]) for c in curves])
        label = textwrap.fill(f"{method} ({len(curves)} run{'s' * (len(curves) > 1)})", 90)  # a recipe's long name
        (line,) = ax.plot(steps, values.mean(0), label=label)
        if len(curves) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    ax.set(xlabel="environment steps", ylabel=metric.replace("_", " "), title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.3))  # below the axes: the curves stay in view
    ax.grid(alpha=0.3)
    return save_figure(fig, out)
