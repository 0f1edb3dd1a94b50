"""The error bar of a composition of skills: exact on a grid where the task has one, estimated from
samples elsewhere.

:mod:`skillbank.grid_bounds` computes the bounds exactly on 2-D MultiGoal tasks;
:mod:`skillbank.sampled_bounds` estimates them from rollouts and replay buffers on any task. The
functions here take skills, choose between the two, and return what ``skillbank bound`` reports,
what ``skillbank compose`` records and what the demo shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from skillbank.buffer import ReplayBuffer
from skillbank.compose import check_compatible, combined_task
from skillbank.composite import operator_weights
from skillbank.envs import MULTIGOAL_ID, make_task_env
from skillbank.errors import SkillbankError
from skillbank.grid_bounds import ACTION_POINTS, SPACING, BoundReport, bound_report
from skillbank.sampled_bounds import FIT_STEPS, FITS, sample_bounds, sample_verdict
from skillbank.skill import Skill

GRID_OPERATORS = ("sum", "mean", "dc")  # composites whose base is the weighted mean the bounds are about


def has_grid(skill: Skill) -> bool:
    """Whether the exact solver applies: a 2-D MultiGoal task."""
    return skill.action_dim == 2 and skill.description.get("task", {}).get("env_id") == MULTIGOAL_ID


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
        return {**summary, **sampled_bounds(skills, weights, replay, tolerance, steps, fits, progress)}
    combined = make_task_env(combined_task(skills, "mean", weights)).unwrapped
    report = bound_report(
        [s.q for s in skills], combined, skills[0].alpha, skills[0].gamma, weights,
        constituent_envs=constituent_envs(skills), region=None if replay is None else replay.observations.numpy(),
        spacing=spacing, action_points=action_points, tolerance=tolerance,
    )  # fmt: skip
    return {**summary, "method": "grid", **report.summary}


def composite_report(
    composite: Skill,
    constituents: Sequence[Skill] = (),
    replay: ReplayBuffer | None = None,
    tolerance: float | None = None,
    spacing: float = SPACING,
) -> BoundReport | None:
    """The exact bound report of a composite (its base weighted mean) on its grid, or None where
    there is none (not 2-D MultiGoal, or an operator other than sum, mean and dc). ``constituents``
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
) -> dict[str, Any] | None:
    """What a registered composite records as its error bar: the exact report where there is a
    grid, else the sampled estimate for ``sum`` and ``mean`` composites whose constituents' replay is
    known, else None."""
    report = composite_report(composite, constituents, replay, tolerance, spacing)
    if report is not None:
        return {"method": "grid", **report.summary}
    composition = composite.description["composition"]
    if composition["op"] not in ("sum", "mean") or replay is None:
        return None
    weights = operator_weights("mean", composition["weights"], len(constituents))
    return sampled_bounds(constituents, weights, replay, tolerance, progress=progress, seed=seed)
