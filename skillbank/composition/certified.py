"""Certified intervals for learned skills, from their Bellman residuals on data: no oracle, no grid.

The composition bounds of :mod:`skillbank.composition.grid_bounds` assume soft-optimal constituents; learned
ones are not. Whatever a Q-function is, its soft Bellman residual on a transition
``(s, a, r, s', done)`` of a task with reward ``r``,

    rho(s, a) = r + gamma (1 - done) V_Q(s') - Q(s, a),      V_Q(s) = alpha log ∫ exp(Q(s, a) / alpha) da,

measures how far it is from that task's optimum ``Q*``; with ``E = Q* - Q`` (``docs/bounds.md``, section
"Learned skills: certified intervals", each step checked in ``tests/composition/test_certified.py``):

    (R1)  E(s, a) = rho(s, a) + gamma E_{s'}[(1 - done) alpha log E_{a'~pi_Q} exp(E(s', a') / alpha)]   exactly
    (R2)  V*(s0) >= V^{pi_Q}(s0) = E_{pi_Q}[sum_t gamma^t (r_t - alpha log pi_Q(a_t|s_t))]               any policy
    (R3)  rho(s, a) + gamma (1 - done) lo <= E(s, a) <= rho(s, a) + gamma (1 - done) hi,  lo <= V* - V_Q <= hi,
          hi = max(max rho over ending transitions, max rho over the others / (1 - gamma)), lo likewise
    (R4)  for Q_Sigma = sum_k w_k Q_k on r_C = sum_k w_k r_k: rho_Sigma = sum_k w_k rho_k - gamma (1 - done) G(s')

(R3) needs the residual's range everywhere reachable; it is measured on the data (the replay union
relabelled with the combined reward, and the rollouts of the composite): the certificate holds where
the data's range does, which ``coverage`` checks against the exact optimum where a grid has one.
(R2) is a plain Monte Carlo average with a standard error: any policy's soft value bounds the optimum
from below, so the composite's own rollouts and those of each constituent's policy on the combined
task give lower bounds, and the best of them proves a composite bad when it beats the composite's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from skillbank.algos.losses import soft_value_uniform
from skillbank.nn.composite import normalise_weights, weighted_sum

PARTICLES = 512  # uniform action particles per state for V by importance sampling (2-D: within 0.3 of quadrature)
EPISODES = 50
SAMPLE_SIZE = 20_000  # replay transitions whose residuals set the range


@torch.no_grad()
def soft_values(qs, weights, alpha: float, states: torch.Tensor, particles: int, generator, chunk: int = 2048):
    """At each state, ``V_Sigma`` of ``sum_k w_k Q_k`` by importance sampling with uniform particles,
    the particles, the composite's Q on them, its Boltzmann weights on them (for resampling) and the
    divergence ``sum_k w_k V_k - V_Sigma`` with the same particles (Hölder on the empirical measure makes
    it non-negative for every draw, as ``G`` is)."""
    d = qs[0].act_dim
    out: dict[str, list[torch.Tensor]] = {"value": [], "actions": [], "q": [], "policy": [], "divergence": []}
    for block in states.float().split(chunk):
        actions = torch.rand(len(block), particles, d, generator=generator) * 2 - 1
        q_k = torch.stack([net.values(block, actions) for net in qs]).double()  # (K, B, P)
        q = weighted_sum(weights, q_k)
        value = alpha * soft_value_uniform(q / alpha, d)
        out["value"].append(value)
        out["divergence"].append(weighted_sum(weights, alpha * soft_value_uniform(q_k / alpha, d)) - value)
        out["actions"].append(actions)
        out["q"].append(q)
        out["policy"].append(torch.softmax(q / alpha, -1).float())
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def residuals(
    qs: Sequence[torch.nn.Module],
    weights: Sequence[float] | None,
    alpha: float,
    gamma: float,
    transitions: tuple[torch.Tensor, ...],
    particles: int = PARTICLES,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``rho`` of ``sum_k w_k Q_k`` on ``transitions`` = ``(obs, actions, rewards, next_obs, terminals)``: (N,).
    With one network and weight 1 it is that skill's own residual on its own task."""
    weights = normalise_weights(weights, len(qs))
    obs, actions, rewards, next_obs, terminals = transitions
    generator = generator or torch.Generator().manual_seed(0)
    q = weighted_sum(weights, torch.stack([net.values(obs.float(), actions.float().unsqueeze(1))[:, 0] for net in qs]))
    later = soft_values(qs, weights, alpha, next_obs, particles, generator)["value"]
    return rewards.double() + gamma * (1 - terminals.double()) * later - q.double()


def residual_range(rho: torch.Tensor, terminal: torch.Tensor, gamma: float) -> dict[str, float]:
    """The range of the residuals, apart for transitions that end the episode and those that go on, and
    what (R3) makes of it: ``lo <= Q* - Q <= hi`` everywhere and ``lo <= V* - V_Q <= hi``. A residual of
    an ending transition is paid once, one that goes on can repeat: ``hi = max(rho_end_max,
    rho_on_max / (1 - gamma))``, and ``lo`` likewise with the minima."""
    rho, terminal = rho.double(), terminal.bool()
    ends, goes_on = rho[terminal], rho[~terminal]
    maxima = [float(ends.max())] if len(ends) else []
    minima = [float(ends.min())] if len(ends) else []
    if len(goes_on):
        maxima.append(float(goes_on.max()) / (1 - gamma))
        minima.append(float(goes_on.min()) / (1 - gamma))
    quantile = (lambda v, q: float(v.quantile(q))) if len(rho) <= 16_000_000 else (lambda v, q: float("nan"))
    return {
        "residual_min": float(rho.min()),
        "residual_max": float(rho.max()),
        "residual_mean_abs": float(rho.abs().mean()),
        "residual_q01": quantile(rho, 0.01),
        "residual_q99": quantile(rho, 0.99),
        "residual_max_ending": float(ends.max()) if len(ends) else None,
        "residual_max_going_on": float(goes_on.max()) if len(goes_on) else None,
        "residual_min_ending": float(ends.min()) if len(ends) else None,
        "residual_min_going_on": float(goes_on.min()) if len(goes_on) else None,
        "residuals": len(rho),
        "lo": min(minima),
        "hi": max(maxima),
    }


def q_interval(
    rewards: torch.Tensor, terminals: torch.Tensor, next_value: torch.Tensor, gamma: float, lo: float, hi: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(R3) at transitions: ``Q*(s, a)`` lies in ``r + gamma (1 - done) (V_Q(s') + [lo, hi])``."""
    base = rewards.double() + gamma * (1 - terminals.double()) * next_value.double()
    continuation = gamma * (1 - terminals.double())
    return base + continuation * lo, base + continuation * hi


@torch.no_grad()
def _started(make_env, horizon: int, episodes: int, seed: int, starts, place) -> tuple[list[Any], np.ndarray]:
    """``episodes`` environments reset with seeds ``seed, seed + 1, ...``, or put at ``starts`` (one each)."""
    episodes = episodes if starts is None else len(starts)
    envs = [make_env(horizon) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    if starts is not None:
        for env, state in zip(envs, starts):
            place(env.unwrapped, state)
        obs = np.asarray(starts, dtype=np.float32).copy()
    return envs, obs


def _step_alive(envs, obs: np.ndarray, alive: np.ndarray, actions) -> tuple[np.ndarray, np.ndarray]:
    """Step the environments still running, in place (``obs``, ``alive``); their rewards and terminations."""
    rewards, terminal = np.zeros(len(envs)), np.zeros(len(envs), dtype=bool)
    for i in np.flatnonzero(alive):
        obs[i], rewards[i], terminal[i], cut, _ = envs[i].step(actions[i])
        alive[i] = not (terminal[i] or cut)
    return rewards, terminal


# Over 60 lines, on purpose: one loop accumulates the soft return, residuals and divergences of each step together,
# so that every rollout is taken once.
def policy_rollouts(
    qs: Sequence[torch.nn.Module],
    weights: Sequence[float] | None,
    alpha: float,
    gamma: float,
    make_env: Callable[[int], Any],
    to_env_action: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    episodes: int = EPISODES,
    particles: int = PARTICLES,
    horizon: int | None = None,
    seed: int = 0,
    starts: np.ndarray | None = None,
    place: Callable[[Any, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Rollouts of the Boltzmann policy of ``sum_k w_k Q_k`` in ``make_env(horizon)`` (reset with seeds
    ``seed, seed + 1, ...``; actions by resampling uniform particles with weights ``exp(Q / alpha)``),
    or, with ``starts`` (one state per episode), from those states, put there by ``place(env, state)``.

    Returns per episode the soft return ``sum_t gamma^t (r_t - alpha log pi(a_t|s_t))`` (``log pi =
    (Q - V) / alpha``), the start value ``V_Q(s0)``, the discount left where the horizon cut the episode
    (0 where it ended), ``V_Q`` there, and every visited transition's residual and whether it ended the
    episode (for the range). For the composition bounds (:func:`skillbank.composition.sampled_bounds.rollout_bounds`)
    also the divergence ``G`` at the start, ``gamma G(s_1)`` and ``sum_{t>=1} gamma^t G(s_t)`` (0 past an
    episode's end), and whether each episode ended rather than being cut.
    ``horizon`` defaults to where ``gamma^t`` falls below 1%.
    """
    weights = normalise_weights(weights, len(qs))
    horizon = horizon or math.ceil(math.log(0.01) / math.log(gamma))
    to_env_action = to_env_action or (lambda a: a)
    g = torch.Generator().manual_seed(seed)
    envs, obs = _started(make_env, horizon, episodes, seed, starts, place)
    episodes = len(envs)
    alive, starts_seen = np.ones(episodes, dtype=bool), obs.copy()
    soft_return, discount = np.zeros(episodes), np.ones(episodes)
    here = soft_values(qs, weights, alpha, torch.as_tensor(obs), particles, g)
    start_value, rho, ended = here["value"].numpy().copy(), [], []
    start_divergence, divergence_first, divergence_sum = here["divergence"].numpy().copy(), None, np.zeros(episodes)
    finished = np.zeros(episodes, dtype=bool)
    rows = torch.arange(episodes)
    for _ in range(horizon):
        pick = torch.multinomial(here["policy"], 1, generator=g)[:, 0]
        actions, q = here["actions"][rows, pick].numpy(), here["q"][rows, pick].numpy()
        rewards, terminal = _step_alive(envs, obs, alive, [to_env_action(a) for a in actions])
        later = soft_values(qs, weights, alpha, torch.as_tensor(obs), particles, g)
        stepped = discount > 0
        soft_return += np.where(stepped, discount * (rewards - q + here["value"].numpy()), 0.0)
        rho.append((rewards + gamma * (1 - terminal) * later["value"].numpy() - q)[stepped])
        ended.append(terminal[stepped])
        # (1 - done) G(s_t): a terminal state adds nothing, a time-limit cut does
        divergence = np.where(stepped & ~terminal, discount * gamma * later["divergence"].numpy(), 0.0)
        divergence_sum += divergence
        divergence_first = divergence if divergence_first is None else divergence_first
        finished |= terminal
        discount = np.where(alive, discount * gamma, 0.0)
        here = later
        if not alive.any():
            break
    return {
        "soft_return": soft_return,
        "start_value": start_value,
        "discount_left": discount,  # gamma^T where the horizon or a time limit cut the episode, else 0
        "value_left": here["value"].numpy(),
        "residuals": torch.as_tensor(np.concatenate(rho)),
        "terminals": torch.as_tensor(np.concatenate(ended)),
        "start_states": torch.as_tensor(np.stack(starts_seen)),
        "start_divergence": start_divergence,
        "divergence_first": divergence_first,
        "divergence_sum": divergence_sum,
        "ended": finished,
        "episodes": episodes,
        "horizon": horizon,
    }


def policy_value(rollouts: dict[str, Any], left: float) -> tuple[float, float]:
    """The policy's soft value at the start states, bounded by what its cut episodes could still earn:
    the mean (and its standard error) of ``soft return + gamma^T (V_Q(s_T) + left)``. With (R3)'s ``lo``
    it is a lower bound (R2: of ``V*`` too), with its ``hi`` an upper bound of the policy's own value."""
    totals = rollouts["soft_return"] + rollouts["discount_left"] * (rollouts["value_left"] + left)
    se = float(totals.std(ddof=1) / math.sqrt(len(totals))) if len(totals) > 1 else 0.0
    return float(totals.mean()), se


@torch.no_grad()
def data_interval(
    composite: Any,
    transitions: tuple[torch.Tensor, ...],
    make_env: Callable[[int], Any],
    place: Callable[[Any, np.ndarray], None],
    lo: float,
    hi: float,
    *,
    rollouts_per_point: int = 4,
    particles: int = PARTICLES,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(R3) at ``transitions`` = ``(obs, actions, rewards, next_obs, terminals)``, with the lower end raised by
    (R2) where the composite's own rollouts from each ``s'`` (``rollouts_per_point`` of them, their mean
    minus two standard errors) say more than ``V_Q(s') + lo``: the interval of ``Q*(s, a)`` at each."""
    obs, actions, rewards, next_obs, terminals = transitions
    g = torch.Generator().manual_seed(seed)
    later = soft_values([composite.q], [1.0], composite.alpha, next_obs, particles, g)["value"]
    low, high = q_interval(rewards, terminals, later, composite.gamma, lo, hi)
    starts = np.repeat(next_obs.numpy(), rollouts_per_point, axis=0)
    mc = policy_rollouts([composite.q], [1.0], composite.alpha, composite.gamma, make_env, composite.to_env_action,
                         particles=particles, seed=seed, starts=starts, place=place)  # fmt: skip
    totals = mc["soft_return"] + mc["discount_left"] * (mc["value_left"] + lo)
    totals = torch.as_tensor(totals).reshape(len(next_obs), rollouts_per_point)
    spread = totals.std(1) / rollouts_per_point**0.5 if rollouts_per_point > 1 else torch.zeros(len(next_obs))
    own = totals.mean(1) - 2 * spread
    raised = rewards.double() + composite.gamma * (1 - terminals.double()) * own
    return torch.maximum(low, raised), high


def own_error(
    skill: Any,
    transitions: tuple[torch.Tensor, ...] | None,
    make_env: Callable[[int], Any],
    *,
    episodes: int = EPISODES,
    particles: int = PARTICLES,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> dict[str, Any]:
    """One skill's own error ``Q*_k - Q_k`` on its own task, from its replay ``transitions`` and its own
    policy's rollouts: the residual range, (R3)'s two-sided bound on ``V*_k - V_k`` everywhere, and at the
    start states ``V*_k(s0) - V_k(s0)`` from (R2) (lower) and (R3) (upper)."""
    g = torch.Generator().manual_seed(seed)
    rollouts = policy_rollouts([skill.q], [1.0], skill.alpha, skill.gamma, make_env, skill.to_env_action,
                               episodes=episodes, particles=particles, seed=seed)  # fmt: skip
    rho, ends = [rollouts["residuals"]], [rollouts["terminals"]]
    if transitions is not None:
        keep = torch.randperm(len(transitions[0]), generator=g)[:sample_size]
        rho.append(residuals([skill.q], [1.0], skill.alpha, skill.gamma, tuple(t[keep] for t in transitions),
                             particles, g))  # fmt: skip
        ends.append(transitions[4][keep])
    spread = residual_range(torch.cat([r.double() for r in rho]), torch.cat([e.bool() for e in ends]), skill.gamma)
    lower, se = policy_value(rollouts, spread["lo"])
    v0 = float(rollouts["start_value"].mean())
    return {
        **spread,
        "value_start": v0,
        "error_start_at_least": lower - 2 * se - v0,
        "error_start_at_most": spread["hi"],
        "policy_value_start": lower,
        "policy_value_start_se": se,
        "episodes": episodes,
        "transitions": 0 if transitions is None else min(len(transitions[0]), sample_size),
    }


def _residual_spread(q, alpha, gamma, mine, union, relabel, sample_size, particles, g):
    """(R3)'s residual range over the composite's rollouts and, where given, the relabelled replay union; and
    how many residuals each source gave."""
    rho, ends, sources = [mine["residuals"]], [mine["terminals"]], {"rollouts": len(mine["residuals"])}
    if union is not None and relabel is not None:
        keep = torch.randperm(len(union[0]), generator=g)[:sample_size]
        obs, actions, next_obs, terminals = (t[keep] for t in union)
        rewards = relabel(obs, actions, next_obs)
        rho.append(residuals([q], [1.0], alpha, gamma, (obs, actions, rewards, next_obs, terminals), particles, g))
        ends.append(terminals)
        sources["replay"] = len(keep)
    return residual_range(torch.cat([r.double() for r in rho]), torch.cat([e.bool() for e in ends]), gamma), sources


def _constituents_lower_bounds(constituents, alpha, gamma, make_env, episodes, particles, seed) -> dict[str, float]:
    """(R2): each constituent's own policy value on the combined task, two standard errors down, where its
    rollouts ended within the horizon."""
    candidates: dict[str, float] = {}
    for skill in constituents:
        theirs = policy_rollouts([skill.q], [1.0], alpha, gamma, make_env, skill.to_env_action, episodes=episodes,
                                 particles=particles, seed=seed)  # fmt: skip
        if theirs["discount_left"].any():
            continue  # cut short: what the rest would have earned on the combined task is not bounded
        theirs_low, theirs_se = policy_value(theirs, 0.0)
        candidates[getattr(skill, "ref", None) or f"constituent {len(candidates) + 1}"] = theirs_low - 2 * theirs_se
    return candidates


def certified_interval(
    composite: Any,
    constituents: Sequence[Any],
    make_env: Callable[[int], Any],
    union: tuple[torch.Tensor, ...] | None = None,
    relabel: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    tolerance: float | None = None,
    episodes: int = EPISODES,
    particles: int = PARTICLES,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> dict[str, Any]:
    """An interval for the combined task's optimum ``V*_C`` and for the composite policy's own value at the
    start states, from the skills and their data alone, with a verdict that uses it.

    ``composite`` is any skill whose Q-function acts on the combined task (a weighted mean, a
    divergence-corrected one, a soft OR...): (R1) to (R3) hold for any Q, so the interval is its own.
    ``make_env(horizon)`` builds the combined task; ``union`` = ``(obs, actions, next_obs, terminals)`` is
    the constituents' replay union and ``relabel(obs, actions, next_obs)`` its combined reward (without
    it, the residual range comes from the rollouts alone). The composite's residual range (for a mean,
    R4: the constituents' own errors and the divergence term together) sets (R3)'s ``lo`` and ``hi``; the
    composite's rollouts and each constituent's on the combined task give (R2)'s lower bounds.
    """
    q, alpha, gamma, to_env = composite.q, composite.alpha, composite.gamma, composite.to_env_action
    g = torch.Generator().manual_seed(seed)
    mine = policy_rollouts([q], [1.0], alpha, gamma, make_env, to_env, episodes=episodes, particles=particles,
                           seed=seed)  # fmt: skip
    spread, sources = _residual_spread(q, alpha, gamma, mine, union, relabel, sample_size, particles, g)
    lo, hi = spread["lo"], spread["hi"]
    v_composite = float(mine["start_value"].mean())
    policy_low, policy_low_se = policy_value(mine, lo)
    policy_high, policy_high_se = policy_value(mine, hi)
    # Every policy's value is a lower bound of the optimum: the composite's own and each constituent's.
    candidates = {"the composite": policy_low - 2 * policy_low_se}
    candidates.update(_constituents_lower_bounds(constituents, alpha, gamma, make_env, episodes, particles, seed))
    best = max(candidates, key=candidates.get)
    optimum = (candidates[best], v_composite + hi)
    policy = (policy_low - 2 * policy_low_se, policy_high + 2 * policy_high_se)
    out = {
        "method": "Bellman residuals on the data (R3) and Monte Carlo policy values (R2), 2 standard errors",
        "residual_sources": sources,
        **spread,
        "value_start": v_composite,
        "optimum_start": list(optimum),
        "optimum_lower_from": best,
        "lower_bounds_start": candidates,
        "policy_value_start": list(policy),
        "shortfall_start": [max(0.0, optimum[0] - policy[1]), optimum[1] - policy[0]],
        "episodes": episodes,
        "particles": particles,
    }
    out["verdict"] = certified_verdict(out, tolerance)
    return out


def certified_verdict(interval: dict[str, Any], tolerance: float | None = None) -> dict[str, Any]:
    """Whether the composite policy is certified within ``tolerance`` (default 5% of ``|V_Sigma|`` at the
    start) of the combined task's optimum, provably worse than that, or neither."""
    tolerance = 0.05 * abs(interval["value_start"]) if tolerance is None else float(tolerance)
    low, high = interval["shortfall_start"]
    out = {"tolerance": tolerance, "shortfall_at_least": low, "shortfall_at_most": high}
    if high <= tolerance:
        out["verdict"] = "certified"
        out["advice"] = f"the composite policy is within {high:.3g} of the optimum at the start: use it zero-shot"
    elif low > tolerance:
        out["verdict"] = "fails"
        out["advice"] = (
            f"{interval['optimum_lower_from']} does better on the combined task: the composite policy is at least "
            f"{low:.3g} below the optimum at the start (tolerance {tolerance:.3g}). If the tasks share no goal, "
            "compose with --op or; otherwise fine-tune the composite on the combined task"
        )
    else:
        out["verdict"] = "uncertified"
        out["advice"] = (
            f"the data cannot tell: the composite policy is between {low:.3g} and {high:.3g} below the optimum at "
            f"the start (tolerance {tolerance:.3g}); the upper end is set by the largest Bellman residuals on the "
            f"data ({interval['hi']:.3g} above the composite's own value). Check its rollouts, or fine-tune it"
        )
    return out
