"""The error bar of a composition of skills: exact on a grid where the task has one, estimated from
samples elsewhere.

:mod:`skillbank.composition.grid_bounds` computes the bounds exactly on 2-D MultiGoal tasks;
:mod:`skillbank.composition.sampled_bounds` estimates them from rollouts and replay buffers on any task. The
functions here take skills, choose between the two, and return what ``skillbank bound`` reports,
what ``skillbank compose`` records and what the demo shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from skillbank.algos.buffer import ReplayBuffer
from skillbank.composition.certified import EPISODES, PARTICLES, certified_interval, data_interval
from skillbank.composition.compose import check_compatible, combined_task, compose
from skillbank.composition.grid_bounds import ACTION_POINTS, SPACING, BoundReport, bound_report
from skillbank.composition.refit import relabeller
from skillbank.composition.sampled_bounds import FIT_STEPS, FITS, sample_bounds, sample_verdict
from skillbank.envs import MULTIGOAL_ID, make_task_env
from skillbank.errors import SkillbankError
from skillbank.nn.composite import operator_weights
from skillbank.nn.skill import Skill

GRID_OPERATORS = ("sum", "mean")  # the composites that are the weighted mean the bounds are about


def has_grid(skill: Skill) -> bool:
    """Whether the exact solver applies: a 2-D MultiGoal task."""
    return skill.action_dim == 2 and skill.description.get("task", {}).get("env_id") == MULTIGOAL_ID


def union_transitions(replay: ReplayBuffer | None) -> tuple[torch.Tensor, ...] | None:
    """``(obs, actions, next_obs, terminals)`` of a replay union."""
    if replay is None:
        return None
    n = len(replay)
    return replay.observations[:n], replay.actions[:n], replay.next_observations[:n], replay.terminals[:n]


def certify(
    composite: Skill,
    constituents: Sequence[Skill],
    replay: ReplayBuffer | None,
    tolerance: float | None = None,
    episodes: int = EPISODES,
    particles: int = PARTICLES,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`skillbank.composition.certified.certified_interval` of a composite on its combined task, from its
    constituents and their replay union."""
    task = composite.description["task"]
    return certified_interval(
        composite, constituents, lambda horizon: make_task_env(task, max_episode_steps=horizon),
        union_transitions(replay), relabeller(task), tolerance=tolerance, episodes=episodes, particles=particles,
        seed=seed,
    )  # fmt: skip


def place_multigoal(env: Any, state: np.ndarray) -> None:
    """Put a MultiGoal environment's point at ``state``."""
    env.restore_checkpoint_state({"position": np.asarray(state, dtype=np.float64)})


@torch.no_grad()
def coverage_on_grid(
    composite: Skill,
    replay: ReplayBuffer,
    interval: dict[str, Any],
    points: int = 500,
    rollouts_per_point: int = 4,
    spacing: float = SPACING,
    seed: int = 0,
) -> dict[str, Any]:
    """How often the certified interval for ``Q*_C`` (:func:`skillbank.composition.certified.data_interval`) at
    ``points`` of the replay union's transitions holds against the exact optimum of the grid solver,
    its mean width and the mean true error ``|Q*_C - Q|`` there."""
    from skillbank.composition.oracle import GridModel

    task = composite.description["task"]
    env = make_task_env(task).unwrapped
    grid = GridModel(env, spacing, ACTION_POINTS)
    v_star = grid.solve(grid.reward(env), composite.alpha, composite.gamma).v
    obs, actions, next_obs, terminals = union_transitions(replay)
    keep = torch.randperm(len(obs), generator=torch.Generator().manual_seed(seed + 1))[:points]
    obs, actions, next_obs, terminals = obs[keep], actions[keep], next_obs[keep], terminals[keep]
    rewards = relabeller(task)(obs, actions, next_obs)
    low, high = data_interval(
        composite, (obs, actions, rewards, next_obs, terminals), lambda h: make_task_env(task, max_episode_steps=h),
        place_multigoal, interval["lo"], interval["hi"], rollouts_per_point=rollouts_per_point,
        particles=interval["particles"], seed=seed,
    )  # fmt: skip
    truth = rewards + composite.gamma * (1 - terminals.double()) * grid.interpolate(v_star, next_obs.double().numpy())
    q = composite.q.values(obs.float(), actions.float().unsqueeze(1))[:, 0].double()
    covered = (truth >= low) & (truth <= high)
    error = (truth - q).abs()
    return {
        "points": len(obs),
        "rollouts_per_point": rollouts_per_point,
        "coverage": float(covered.double().mean()),
        "below_the_lower_end": float((truth < low).double().mean()),
        "above_the_upper_end": float((truth > high).double().mean()),
        "mean_width": float((high - low).mean()),
        "median_width": float((high - low).median()),
        "mean_true_error": float(error.mean()),
        "width_over_error": float((high - low).mean() / error.mean()),
        "positions": obs.numpy(),
        "covered": covered.numpy(),
        "true_error": (truth - q).numpy(),
        "low_gap": (truth - low).numpy(),
        "high_gap": (high - truth).numpy(),
    }


def constituent_envs(skills: Sequence[Skill]) -> list[Any]:
    """Each skill's own task, as the exact solver's environment."""
    return [make_task_env(skill.description["task"]).unwrapped for skill in skills]


def sampled_bounds(
    skills: Sequence[Skill],
    weights: Sequence[float],
    replay: ReplayBuffer | None,
    tolerance: float | None = None,
    steps: int = FIT_STEPS,
    fits: int = FITS,
    progress: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Bounds of the weighted mean of ``skills`` estimated from the composite's rollouts on the
    combined task and from their replay union ``replay`` (any task), with a verdict."""
    if replay is None:
        raise SkillbankError("sampled bounds need the constituents' replay buffers; train them with --keep-replay")
    task = combined_task(skills, "mean", weights)
    n = len(replay)
    transitions = (replay.observations[:n], replay.actions[:n], replay.next_observations[:n], replay.terminals[:n])
    with tqdm(total=fits * steps, disable=not progress, desc="sampled bounds", unit="step") as bar:
        sampled = sample_bounds(
            [s.q for s in skills], weights, skills[0].alpha, skills[0].gamma, transitions,
            lambda horizon: make_task_env(task, max_episode_steps=horizon), skills[0].to_env_action,
            fits=fits, steps=steps, seed=seed, progress=bar.update,
        )  # fmt: skip
    return {"method": "sampled", "sampled": sampled, "verdict": sample_verdict(sampled, tolerance)}


def bound_mean(
    skills: Sequence[Skill],
    weights: Sequence[float] | None = None,
    replay: ReplayBuffer | None = None,
    *,
    sampled: bool = False,
    tolerance: float | None = None,
    spacing: float = SPACING,
    action_points: int = ACTION_POINTS,
    steps: int = FIT_STEPS,
    fits: int = FITS,
    progress: bool = False,
) -> dict[str, Any]:
    """The error of the weighted mean of ``skills`` against the combined task's optimum, with the
    bounds and a verdict: exact on the grid (``"method": "grid"``) where the task has one and
    ``sampled`` is false, else estimated from samples (``"method": "sampled"``, needs ``replay``).
    ``replay`` (the constituents' replay union) also restricts the grid summary to the data."""
    if len(skills) < 2:
        raise SkillbankError("give at least two skills to bound their composition")
    check_compatible(skills, rescale_alpha=False)
    weights = operator_weights("mean", weights, len(skills))
    summary: dict[str, Any] = {"constituents": [getattr(s, "ref", None) for s in skills], "weights": weights}
    if sampled or not has_grid(skills[0]):
        summary.update(sampled_bounds(skills, weights, replay, tolerance, steps, fits, progress))
    else:
        combined = make_task_env(combined_task(skills, "mean", weights)).unwrapped
        report = bound_report(
            [s.q for s in skills], combined, skills[0].alpha, skills[0].gamma, weights,
            constituent_envs=constituent_envs(skills), region=None if replay is None else replay.observations.numpy(),
            spacing=spacing, action_points=action_points, tolerance=tolerance,
        )  # fmt: skip
        summary.update({"method": "grid", **report.summary})
    return with_certificate(summary, compose(skills, "mean", weights), skills, replay, tolerance)


def with_certificate(
    summary: dict[str, Any],
    composite: Skill,
    constituents: Sequence[Skill],
    replay: ReplayBuffer | None,
    tolerance: float | None,
    seed: int = 0,
) -> dict[str, Any]:
    """``summary`` with the certified interval added and its verdict as the verdict; the composition
    bounds' own verdict, which holds only for exact constituents, is kept as ``verdict_if_exact``."""
    if "verdict" in summary:
        if_exact = dict(summary.pop("verdict"))
        if_exact["advice"] = "if the constituents were exact (learned ones are not): " + if_exact["advice"]
        summary["verdict_if_exact"] = if_exact
    summary["certified"] = certify(composite, constituents, replay, tolerance, seed=seed)
    summary["verdict"] = summary["certified"]["verdict"]
    return summary


def composite_report(
    composite: Skill,
    constituents: Sequence[Skill] = (),
    replay: ReplayBuffer | None = None,
    tolerance: float | None = None,
    spacing: float = SPACING,
) -> BoundReport | None:
    """The exact bound report of a weighted-mean composite on its grid, or None where there is none
    (not 2-D MultiGoal, or an operator other than sum and mean, whose composite is not the weighted mean
    the bounds are about). ``constituents``
    add the oracle constituents; ``replay`` restricts a summary to the data's states."""
    composition = composite.description.get("composition", {})
    if not has_grid(composite) or composition.get("op") not in GRID_OPERATORS:
        return None
    return bound_report(
        composite.q.parts, make_task_env(composite.description["task"]).unwrapped, composite.alpha, composite.gamma,
        composition["weights"], constituent_envs=constituent_envs(constituents) if constituents else None,
        composite=composite.q, region=None if replay is None else replay.observations.numpy(),
        spacing=spacing, tolerance=tolerance,
    )  # fmt: skip


def composite_error_bar(
    composite: Skill,
    constituents: Sequence[Skill],
    replay: ReplayBuffer | None,
    tolerance: float | None = None,
    spacing: float = SPACING,
    progress: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """What a registered composite records as its error bar: its own certified interval (any operator),
    and for ``sum`` and ``mean`` composites the composition bounds of exact constituents beside it (exact
    on a grid, else sampled where the replay is known). Other operators' composites are not the weighted
    mean those bounds are about, and say so."""
    composition = composite.description["composition"]
    summary: dict[str, Any] = {"op": composition["op"]}
    if composition["op"] in ("sum", "mean"):
        report = composite_report(composite, constituents, replay, tolerance, spacing)
        if report is not None:
            summary.update({"method": "grid", **report.summary})
        elif replay is not None:
            weights = operator_weights("mean", composition["weights"], len(constituents))
            summary.update(sampled_bounds(constituents, weights, replay, tolerance, progress=progress, seed=seed))
    else:
        summary["composition_bounds"] = (
            f"none: the composition bounds are about the weighted mean of the constituents, and a --op "
            f"{composition['op']} composite is not it; its certified interval is its own"
        )
    return with_certificate(summary, composite, constituents, replay, tolerance, seed)
