"""Make a skill from registered ones and register it, with what it is measured by and where it came from: the
library calls behind ``skillbank compose`` and ``skillbank turn`` (``skillbank train`` and ``finetune`` are
:func:`skillbank.runs.jobs.execute`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from skillbank.algos.augmentation import turned
from skillbank.composition.bounds import composite_error_bar
from skillbank.composition.compose import compose
from skillbank.composition.grid_bounds import SPACING
from skillbank.composition.refit import refit
from skillbank.errors import SkillbankError
from skillbank.nn.skill import Skill
from skillbank.runs.evaluate import evaluate_and_register
from skillbank.store.entities import Parent, validate_name
from skillbank.store.registry import Registry


def compose_and_register(
    registry: Registry,
    refs: Sequence[str | Skill],
    name: str,
    op: str = "mean",
    weights: Sequence[float] | None = None,
    *,
    episodes: int = 100,
    seed: int = 0,
    tolerance: float | None = None,
    spacing: float = SPACING,
    progress_bar: bool = False,
    refit_updates: int = 0,
    **options: Any,
) -> tuple[str, Skill]:
    """Compose the registered skills ``refs`` (references, or skills loaded from ``registry``) with ``op``
    (:func:`~skillbank.composition.compose.compose`, whose ``options`` these are; an SVGD sampler trains on the union
    of their replay buffers), bound its error (the certified interval, and on a grid the exact bounds: its ``bounds``
    metadata; the seconds composing took, refits included, are its ``composition.wall_time_s``), evaluate it over
    ``episodes`` rollouts and register it as ``name`` with each constituent and its weight as parents. With
    ``refit_updates``, each constituent is first refitted on the union of their replay buffers
    (:func:`~skillbank.composition.refit.refit`). Returns the new reference and the composite."""
    validate_name(name)  # before any training
    skills = [ref if isinstance(ref, Skill) else registry.load(ref) for ref in refs]
    if any(not getattr(s, "ref", None) for s in skills):
        raise SkillbankError("compose registered skills: a skill given without a reference has no replay to compose on")
    replay = registry.replay_union([s.ref for s in skills])
    refitted_before = sum(s.description.get("refit", {}).get("wall_time_s", 0.0) for s in skills)
    started = time.perf_counter()
    if refit_updates:
        skills = refit(skills, replay, refit_updates, seed=seed, progress_bar=progress_bar)
    skill = compose(skills, op, weights, replay=replay, seed=seed, progress_bar=progress_bar, **options)
    skill.description["composition"]["wall_time_s"] = round(refitted_before + time.perf_counter() - started, 1)
    skill.description["bounds"] = composite_error_bar(skill, skills, replay, tolerance, spacing, progress_bar, seed)
    parents = [Parent(s.ref, "constituent", {"weight": w}) for s, w in zip(skills, skill.q.weights)]
    ref = evaluate_and_register(registry, skill, name, episodes, seed=seed, parents=parents,
                                description=f"{op} of {', '.join(s.ref for s in skills)}")  # fmt: skip
    return ref, skill


def turn_and_register(
    registry: Registry, ref: str, name: str, by: int, symmetry: str = "ant-c4", *, episodes: int = 100, seed: int = 0
) -> tuple[str, Skill]:
    """The registered skill ``ref`` turned ``by`` times by ``symmetry``
    (:func:`~skillbank.algos.augmentation.turned`, exact, no training), evaluated and registered as ``name`` with
    ``turned-from`` lineage. Returns the new reference and the turned skill."""
    validate_name(name)
    skill = registry.load(ref)
    new = turned(skill, symmetry, by)
    parents = [Parent(skill.ref, "turned-from", {"symmetry": symmetry, "turns": by})]
    description = f"{skill.ref} turned {by} time(s) by the symmetry {symmetry}"
    new_ref = evaluate_and_register(registry, new, name, episodes, seed=seed, parents=parents, description=description)
    return new_ref, new
