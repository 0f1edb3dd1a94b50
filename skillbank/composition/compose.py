"""Compose skills: operators on soft Q-functions, samplers for the composite, divergence correction.

>>> east, north = registry.load("corner-east"), registry.load("corner-north")   # doctest: +SKIP
>>> both = compose([east, north], "mean")                                         # doctest: +SKIP
>>> registry.register(both, "east-and-north", parents=[east.ref, north.ref])   # doctest: +SKIP

A composite is a :class:`~skillbank.nn.skill.Skill` like any other: its Q-network is a
:class:`~skillbank.nn.composite.CompositeQ` holding copies of the constituents' networks, so it saves,
loads, evaluates, plots and composes again without the constituents being present.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from skillbank.algos.buffer import ReplayBuffer
from skillbank.algos.gradients import sql_sampler_loss_gradients
from skillbank.algos.losses import soft_value_uniform
from skillbank.envs import MULTIGOAL_ID, PUSHER_IDS
from skillbank.errors import SkillbankError
from skillbank.nn.composite import CompositeQ, ResamplingSampler, operator_weights, weighted_sum
from skillbank.nn.networks import SoftQ, SVGDSampler
from skillbank.nn.private_ops import FusedAdam, polyak_update
from skillbank.nn.skill import Skill

SAMPLERS = ("resample", "svgd")  # the composite's sampler: training-free resampling, or a fresh SVGD sampler
SAMPLER_STEPS = 10_000  # the public composition code's SVGD sampler training
CORRECTION_STEPS = 10_000


def check_compatible(skills: Sequence[Skill], rescale_alpha: bool) -> list[float]:
    """Refuse skills that cannot be composed; return each skill's scale to the first one's alpha."""
    for skill in skills:
        if skill.description.get("algorithm") == "ddpg" or getattr(skill.sampler, "kind", "") == "deterministic":
            raise SkillbankError(
                f"{getattr(skill, 'ref', None) or 'a skill'} is a deterministic DDPG skill: its Q is not a soft "
                "Q-function and its policy has no density exp(Q / alpha), so composition and its bounds do not "
                "apply; compose SQL or SAC skills"
            )
    first = skills[0]
    for skill in skills[1:]:
        name = getattr(skill, "ref", None) or "a skill"
        for key in ("observation_space", "action_space"):
            if skill.description[key] != first.description[key]:
                raise SkillbankError(f"{name} has another {key.replace('_', ' ')} than the first skill; cannot compose")
        if not math.isclose(skill.gamma, first.gamma):
            raise SkillbankError(f"{name} has gamma {skill.gamma}, the first skill {first.gamma}; cannot compose")
        env_ids = {s.description.get("task", {}).get("env_id") for s in (first, skill)}
        if len(env_ids) > 1:
            raise SkillbankError(f"{name} was trained in another environment ({' vs '.join(map(str, env_ids))})")
        if not math.isclose(skill.alpha, first.alpha) and not rescale_alpha:
            raise SkillbankError(
                f"{name} has alpha {skill.alpha:g}, the first skill {first.alpha:g}: their Q-functions are in "
                "different units. Pass --rescale-alpha to scale each Q by alpha / alpha_k (a reward rescaling)."
            )
    return [first.alpha / skill.alpha for skill in skills]


def combined_task(skills: Sequence[Skill], op: str, weights: Sequence[float]) -> dict[str, Any]:
    """The task a composite solves, as a ``task`` description with an environment to evaluate it in.

    For MultiGoal tasks: the weighted sum of the constituents' rewards (stacked goal-weight rows),
    or for ``or``/``gpi`` the task that rewards every goal any constituent rewards. For the pusher: the goal with
    every coordinate some constituent gives (the lines x = -1 and y = -1 give the corner (-1, -1), as in the
    composition paper).
    """
    tasks = [s.description.get("task", {}) for s in skills]
    names = [t.get("name") or "?" for t in tasks]
    joiner = " or " if op in ("or", "gpi") else " + "
    task: dict[str, Any] = {"name": f"{op}({', '.join(names)})", "env_id": tasks[0].get("env_id")}
    if task["env_id"] in PUSHER_IDS:  # each goal coordinate that some constituent gives: two lines make their corner
        kwargs = [t.get("env_kwargs", {}) for t in tasks]
        task["env_kwargs"] = {axis: next((k[axis] for k in kwargs if k.get(axis, "any") != "any"), "any")
                              for axis in ("goal_x", "goal_y")}  # fmt: skip
        task["description"] = joiner.join(names)
        return task
    if task["env_id"] != MULTIGOAL_ID:
        same = all(t.get("env_kwargs") == tasks[0].get("env_kwargs") for t in tasks)
        task["env_kwargs"] = tasks[0].get("env_kwargs", {}) if same else {}
        task["description"] = joiner.join(names)
        return task
    kwargs = [dict(t.get("env_kwargs", {})) for t in tasks]
    goals = [k.get("goals") for k in kwargs]
    if any(g != goals[0] for g in goals):
        raise SkillbankError("MultiGoal skills compose only when they share their goals (the absorbing set)")
    rows, task_weights = [], []
    for w, k in zip(weights, kwargs):
        n_goals = len(goals[0]) if goals[0] is not None else 4
        k_rows = np.atleast_2d(k.get("goal_weights", [1.0] * n_goals)).tolist()
        k_task = k.get("task_weights") or [1.0 / len(k_rows)] * len(k_rows)
        rows += k_rows
        task_weights += [w * t for t in k_task]
    combined = {key: value for key, value in kwargs[0].items() if key not in ("goal_weights", "task_weights")}
    if op in ("or", "gpi"):
        combined["goal_weights"] = np.max(rows, axis=0).tolist()
    else:
        combined["goal_weights"], combined["task_weights"] = rows, task_weights
    task["env_kwargs"] = combined
    task["description"] = joiner.join(names)
    return task


def base_samplers(skill: Skill) -> list[torch.nn.Module]:
    """The trained samplers a skill's sampler is built from (a resampling sampler's parts, flattened)."""
    if isinstance(skill.sampler, ResamplingSampler):
        return list(skill.sampler.parts)
    return [skill.sampler]


def sampler_widths(skill: Skill) -> list[int]:
    """The hidden widths of a composite's fresh SVGD sampler: those of its first constituent's own sampler, as the
    public composition code sizes it (``pusher_combine.py``: the constituents' 128x128), or 100x100 where that
    sampler is not an SVGD network (the SQL paper's size)."""
    own = base_samplers(skill)[0]
    while not isinstance(own, SVGDSampler) and hasattr(own, "base"):  # a heads sampler's trained network
        own = own.base
    return list(own.net.hidden) if isinstance(own, SVGDSampler) else [100, 100]


# Over 60 lines, on purpose: most of it is the documented signature; the body checks, then builds in one pass.
def compose(
    skills: Sequence[Skill],
    op: str = "mean",
    weights: Sequence[float] | None = None,
    *,
    rescale_alpha: bool = False,
    sampler: str = "resample",
    replay: ReplayBuffer | None = None,
    sampler_steps: int = SAMPLER_STEPS,
    correction_steps: int = CORRECTION_STEPS,
    langevin_steps: int = 0,
    seed: int = 0,
    progress_bar: bool = False,
) -> Skill:
    """A new skill whose Q-function is ``op`` of the skills' Q-functions.

    ``sampler``: ``"resample"`` (training-free importance resampling from the constituents' samplers,
    with ``langevin_steps`` of refinement) or ``"svgd"`` (the paper's method: a fresh amortized SVGD
    sampler trained for ``sampler_steps`` against the composite on ``replay``, the union of the
    constituents' buffers). ``op="dc"`` also trains the divergence correction on ``replay``.
    """
    weights = operator_weights(op, weights, len(skills))
    scales = check_compatible(skills, rescale_alpha)
    if (sampler == "svgd" or op == "dc") and replay is None:
        raise SkillbankError(
            f"{'--op dc' if op == 'dc' else '--sampler svgd'} trains on the constituents' replay buffers, but none "
            "were given; train the constituents with --keep-replay"
        )
    first = skills[0]
    obs_dim, act_dim = first.q.obs_dim, first.q.act_dim
    parts = [copy.deepcopy(s.q) for s in skills]
    correction = None
    if op == "dc":
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            correction = SoftQ(obs_dim, act_dim, [100, 100], critics=1, output_scale=first.alpha)
    q = CompositeQ(parts, op, weights, first.alpha, scales, correction)
    description = {
        "format_version": first.description["format_version"],
        "algorithm": "composite",
        "alpha": first.alpha,
        "gamma": first.gamma,
        "observation_space": first.description["observation_space"],
        "action_space": first.description["action_space"],
        "task": combined_task(skills, op, weights),
        "composition": {
            "op": op,
            "weights": weights,
            "scales": scales,
            "constituents": [getattr(s, "ref", None) for s in skills],
            "sampler": sampler,
            "env_steps": 0,  # composing collects no experience: the sampler trains on the constituents' buffers
        },
    }
    refits = {getattr(s, "ref", None) or f"constituent {i}": s.description["refit"]
              for i, s in enumerate(skills) if "refit" in s.description}  # fmt: skip
    if refits:  # the constituents' Q-functions are refitted copies (:func:`skillbank.composition.refit.refit`)
        description["composition"]["refit"] = refits
    proposals = [copy.deepcopy(p) for s in skills for p in base_samplers(s)]
    if sampler == "resample":
        pi: torch.nn.Module = ResamplingSampler(proposals, langevin_steps=langevin_steps)
    elif sampler == "svgd":
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            pi = SVGDSampler(obs_dim, act_dim, sampler_widths(first))
    else:
        raise SkillbankError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    skill = Skill(q, pi, description)
    if op == "dc":
        description["composition"]["correction"] = train_correction(
            skill, replay, correction_steps, seed=seed, progress_bar=progress_bar
        )
    if sampler == "svgd":
        description["composition"]["sampler_training"] = train_sampler(
            skill, replay, sampler_steps, seed=seed, progress_bar=progress_bar
        )
    return skill


def train_sampler(
    skill: Skill,
    replay: ReplayBuffer,
    steps: int = SAMPLER_STEPS,
    batch_size: int = 128,
    kernel_particles: int = 16,
    lr: float = 3e-4,
    seed: int = 0,
    progress_bar: bool = False,
) -> dict[str, Any]:
    """Train ``skill.sampler`` by amortized SVGD against ``skill``'s Q on states from ``replay``
    (the public composition code: 10k steps, batch 128, K 16), with no environment steps."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = FusedAdam(list(skill.sampler.parameters()), lr=lr)
    for _ in tqdm(range(steps), disable=not progress_bar, desc="composite sampler", unit="step"):
        obs = replay.sample(batch_size, generator)[0]
        noise = torch.randn(batch_size, kernel_particles, skill.action_dim, generator=generator)
        optimizer.step(sql_sampler_loss_gradients(skill.q, skill.sampler, obs, noise, kernel_particles // 2))
    return {"steps": steps, "batch_size": batch_size, "kernel_particles": kernel_particles, "transitions": len(replay)}


def train_correction(
    skill: Skill,
    replay: ReplayBuffer,
    steps: int = CORRECTION_STEPS,
    batch_size: int = 128,
    value_particles: int = 64,
    lr: float = 3e-4,
    target_update_interval: int = 500,
    seed: int = 0,
    progress_bar: bool = False,
) -> dict[str, Any]:
    """Divergence correction (Hunt et al. 2019) by TD on the constituents' transitions::

        C(s, a) = gamma (1 - done) [ sum_k w_k V_k(s') - V_b(s') ],   Q_b = sum_k w_k Q_k - C,

    which is their fixed point ``-alpha gamma E log ∫ prod_k pi_k^{w_k} exp(-C / alpha) da'`` written
    with soft values; every V by importance sampling with uniform actions (SQL eq. 10).
    """
    q: CompositeQ = skill.q
    correction = q.correction
    target = copy.deepcopy(correction).requires_grad_(False)
    optimizer = torch.optim.Adam(correction.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    alpha, gamma, d = skill.alpha, skill.gamma, q.act_dim
    losses = []
    for step in tqdm(range(steps), disable=not progress_bar, desc="divergence correction", unit="step"):
        obs, actions, _, next_obs, terminals = replay.sample(batch_size, generator)
        with torch.no_grad():
            particles = torch.rand(batch_size, value_particles, d, generator=generator) * 2 - 1
            qs = torch.stack([s * part.values(next_obs, particles) for s, part in zip(q.scales, q.parts)])
            v_parts = alpha * soft_value_uniform(qs / alpha, d)  # (k, B)
            q_b = weighted_sum(q.weights, qs) - target.values(next_obs, particles)
            v_b = alpha * soft_value_uniform(q_b / alpha, d)
            td_target = gamma * (1 - terminals) * (weighted_sum(q.weights, v_parts) - v_b) / alpha
        td_error = td_target - correction(obs, actions)[0]
        loss = 0.5 * td_error.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % target_update_interval == 0:
            polyak_update(list(target.parameters()), list(correction.parameters()), 1.0)
    return {"steps": steps, "batch_size": batch_size, "final_loss": float(np.mean(losses[-100:])) if losses else None}


def sampler_total_variation(
    skill: Skill,
    states: np.ndarray,
    samples: int = 4000,
    cells: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """How far the skill's sampler is from its policy ``exp(Q / alpha)`` on a 2-D action box.

    Total variation between the histogram of ``samples`` sampled actions per state and the exact
    cell masses of ``exp(Q / alpha)`` (4 x 4 midpoint quadrature per cell), averaged over ``states``;
    ``floor`` is the same distance for exact samples, the part that is only finite-sample noise.
    """
    if skill.action_dim != 2:
        raise SkillbankError("the sampler distance is computed on 2-D action spaces only")
    generator = torch.Generator().manual_seed(seed)
    sub = 4
    axis = (torch.arange(cells * sub, dtype=torch.float32) + 0.5) / (cells * sub) * 2 - 1
    fine = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(1, -1, 2)
    distances, floors = [], []
    for state in np.asarray(states, np.float32).reshape(-1, skill.q.obs_dim):
        obs = torch.as_tensor(state)[None]
        with torch.no_grad():
            log_p = skill.log_density(obs, fine).reshape(cells, sub, cells, sub)
            exact = torch.softmax(log_p.flatten(), 0).reshape(cells, sub, cells, sub).sum((1, 3)).flatten()
            actions = skill.sample_actions(obs, samples, generator)[0]
        cell = ((actions + 1) / 2 * cells).long().clamp(0, cells - 1)
        histogram = torch.bincount(cell[:, 0] * cells + cell[:, 1], minlength=cells * cells).double() / samples
        distances.append(0.5 * (histogram - exact.double()).abs().sum().item())
        draws = torch.multinomial(exact, samples, replacement=True, generator=generator)
        floor = torch.bincount(draws, minlength=cells * cells).double() / samples
        floors.append(0.5 * (floor - exact.double()).abs().sum().item())
    return {"total_variation": float(np.mean(distances)), "floor": float(np.mean(floors)), "states": len(distances)}
