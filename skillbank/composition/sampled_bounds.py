"""The composition bounds of :mod:`skillbank.composition.grid_bounds`, estimated from samples, for any task.

At the start states ``L1`` and ``C_pi`` come from Monte Carlo rollouts of the composite policy
(:func:`rollout_bounds`); over the data, and for ``C*`` and ``D*``, the recursions are fitted by TD
on the constituents' replay transitions (:func:`sample_bounds`), with a bootstrap spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from skillbank.composition.certified import policy_rollouts, soft_values
from skillbank.composition.grid_bounds import verdict
from skillbank.nn.composite import normalise_weights
from skillbank.nn.mlp import MLP
from skillbank.nn.private_ops import polyak_update

FIT_STEPS = 3000  # TD steps per fit
FITS = 3  # bootstrap fits


SAMPLE_MAPS = ("L1", "C_pi", "C_star", "D_star")


@torch.no_grad()
def rollout_bounds(
    qs: Sequence[torch.nn.Module],
    weights: Sequence[float] | None,
    alpha: float,
    gamma: float,
    make_env: Callable[[int], Any],
    to_env_action: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    episodes: int = 100,
    particles: int = 512,
    horizon: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``L1`` and ``C_pi`` at the start states by Monte Carlo, with no fitted network.

    ``C_pi`` is the composite policy's own evaluation of ``G``, so its value at a start state is
    ``E[sum_{t>=1} gamma^t G(s_t)]`` along the composite's rollouts (until termination), and
    ``L1 = E[gamma G(s_1)]``. ``episodes`` rollouts in ``make_env(horizon)`` environments (at most
    ``horizon`` steps each, reset with seeds ``seed, seed + 1, ...``): at every state ``G`` by
    importance sampling with ``particles`` uniform actions, and the action drawn from the same
    particles by sampling-importance-resampling with the composite's weights. ``horizon``
    defaults to where ``gamma^t`` falls below 1%. Returns the means over episodes with their
    standard errors (``*_se``) and the start states.
    """
    mc = policy_rollouts(qs, weights, alpha, gamma, make_env, to_env_action, episodes=episodes, particles=particles,
                         horizon=horizon, seed=seed)  # fmt: skip
    first, total = mc["divergence_first"], mc["divergence_sum"]
    sqrt_n = math.sqrt(episodes)
    return {
        "L1_start": float(first.mean()),
        "L1_start_se": float(first.std(ddof=1) / sqrt_n) if episodes > 1 else None,
        "C_pi_start": float(total.mean()),
        "C_pi_start_se": float(total.std(ddof=1) / sqrt_n) if episodes > 1 else None,
        "divergence_start": float(mc["start_divergence"].mean()),
        "value_start": float(mc["start_value"].mean()),
        "unfinished_fraction": float(1 - mc["ended"].mean()),  # cut by a time limit or the horizon
        "episodes": episodes,
        "particles": particles,
        "horizon": mc["horizon"],
        "start_states": mc["start_states"],
    }


@torch.no_grad()
def _recursion_targets(
    later: torch.Tensor, policy: torch.Tensor, step: torch.Tensor, continuation: torch.Tensor
) -> torch.Tensor:
    """The TD targets (B, 4) of the recursions for L1, C_pi, C* and D* of the module docstring, from the
    target network's maps at the successor's action particles ``later`` (B, P, 4), the composite
    policy's weights on those particles (B, P), ``step`` = gamma (1 - done) G(s') and
    ``continuation`` = gamma (1 - done)."""
    c_pi, c_star, d_star = later[..., 1], later[..., 2], later[..., 3]
    return torch.stack(
        [
            step,  # L1: one step, no continuation
            step + continuation * (policy * c_pi).sum(1),
            step + continuation * c_star.max(1).values,  # per-step G
            continuation * (policy * (2 * c_star + d_star)).sum(1),  # C*_paper = 2 C*
        ],
        -1,
    )


def _fit_maps(
    qs, weights, alpha, gamma, data, start_states, particles, steps, batch_size, hidden, lr, tau, seed, progress
) -> dict[str, float]:
    """One fit of the four recursions by TD on a bootstrap resample of ``data``: each map's mean over the data and
    its value at the start states under the composite policy."""
    obs, actions, next_obs, terminals = data
    n, d = len(obs), qs[0].act_dim
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, n, (n,), generator=g)  # bootstrap resample
    s, a, s2, done = obs[pick], actions[pick], next_obs[pick], terminals[pick]
    nxt = soft_values(qs, weights, alpha, s2, particles, g)
    start = soft_values(qs, weights, alpha, start_states, particles, g)
    step = (gamma * (1 - done) * nxt["divergence"]).float()  # gamma (1 - done) G(s')
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = MLP(s.shape[1] + d, list(hidden), len(SAMPLE_MAPS))
    target = MLP(s.shape[1] + d, list(hidden), len(SAMPLE_MAPS)).requires_grad_(False)
    target.load_state_dict(net.state_dict())
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        i = torch.randint(0, n, (batch_size,), generator=g)
        y = _recursion_targets(
            target(nxt["actions"][i], context=s2[i])[0], nxt["policy"][i], step[i], gamma * (1 - done[i])
        )
        loss = (net(a[i].unsqueeze(1), context=s[i])[0, :, 0] - y).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        polyak_update(list(target.parameters()), list(net.parameters()), tau)
        if progress is not None:
            progress(1)
    with torch.no_grad():
        at_start = (start["policy"].unsqueeze(-1) * net(start["actions"], context=start_states)[0]).sum(1)
        on_data = net(a.unsqueeze(1), context=s)[0, :, 0]
    run = {f"{name}_start": float(at_start[:, k].mean()) for k, name in enumerate(SAMPLE_MAPS)}
    run.update({f"{name}_mean": float(on_data[:, k].mean()) for k, name in enumerate(SAMPLE_MAPS)})
    return run


def _summary(runs, rollouts, estimator, weights, alpha, gamma) -> dict[str, Any]:
    """The fits' mean and spread per map, with the start values of ``L1`` and ``C_pi`` from the rollouts."""
    out: dict[str, Any] = {"weights": weights, "alpha": alpha, "gamma": gamma}
    out["estimator"] = estimator
    out["rollouts"] = {
        "method": "Monte Carlo rollouts of the composite policy from the start states",
        **{k: rollouts[k] for k in ("episodes", "particles", "horizon", "unfinished_fraction")},
    }
    for key in runs[0]:
        values = np.array([r[key] for r in runs])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(runs) > 1 else None
    for suffix in ("start", "mean"):  # C*_paper is C* with 2 G per step: exactly twice C* (homogeneity)
        out[f"C_star_paper_{suffix}"] = 2 * out[f"C_star_{suffix}"]
        out[f"C_star_paper_{suffix}_std"] = (
            None if out[f"C_star_{suffix}_std"] is None else 2 * out[f"C_star_{suffix}_std"]
        )
    for name in ("L1", "C_pi"):
        out[f"{name}_start_fit"], out[f"{name}_start_fit_std"] = out[f"{name}_start"], out[f"{name}_start_std"]
        out[f"{name}_start"], out[f"{name}_start_std"] = rollouts[f"{name}_start"], rollouts[f"{name}_start_se"]
    for key in ("divergence_start", "value_start"):
        out[key], out[f"{key}_std"] = rollouts[key], None
    return out


def sample_bounds(
    qs: Sequence[torch.nn.Module],
    weights: Sequence[float] | None,
    alpha: float,
    gamma: float,
    transitions: tuple[torch.Tensor, ...],
    make_env: Callable[[int], Any],
    to_env_action: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    episodes: int = 100,
    rollout_particles: int = 512,
    horizon: int | None = None,
    particles: int = 64,
    sample_size: int = 20_000,
    fits: int = FITS,
    steps: int = FIT_STEPS,
    batch_size: int = 256,
    hidden: Sequence[int] = (64, 64),
    lr: float = 1e-3,
    tau: float = 0.02,
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    """``L1``, ``C_pi``, ``C*`` (both forms) and ``D*`` estimated from samples, for any task.

    At the start states (resets of ``make_env(horizon)``), ``L1`` and ``C_pi`` come from the composite's
    own rollouts (:func:`rollout_bounds`: unbiased, with standard errors as ``*_start_std``).
    Over the data, and for ``C*`` and ``D*``, the four recursions of the module docstring are
    fitted jointly by TD on ``transitions`` (``(obs, actions, next_obs, terminals)`` from the
    constituents' replay buffers, at most ``sample_size`` of them): ``G(s')`` by importance
    sampling with ``particles`` uniform actions, one network with one output per map and a
    Polyak-averaged target, expectations under the composite policy by self-normalised
    importance weights on the particles, and the max of ``C*`` over them. ``fits`` independent
    fits, each on a bootstrap resample with fresh particles, give the fit's spread (``*_std``).
    The fitted start values of ``L1`` and ``C_pi`` are kept as ``*_start_fit``: the fit sees the
    composite's actions at the start only where the constituents' data happens to cover them.
    """
    weights = normalise_weights(weights, len(qs))
    rollouts = rollout_bounds(
        qs, weights, alpha, gamma, make_env, to_env_action,
        episodes=episodes, particles=rollout_particles, horizon=horizon, seed=seed,
    )  # fmt: skip
    start_states = rollouts.pop("start_states")
    keep = torch.randperm(len(transitions[0]), generator=torch.Generator().manual_seed(seed))[:sample_size]
    obs, actions, next_obs, terminals = (t[keep].float() for t in transitions)
    n = len(obs)
    data = (obs, actions, next_obs, terminals)
    runs = [
        _fit_maps(qs, weights, alpha, gamma, data, start_states.float(), particles, steps, batch_size, hidden, lr,
                  tau, seed + fit, progress)
        for fit in range(fits)
    ]  # fmt: skip
    estimator = {
        "method": "fitted TD on bootstrap resamples of the replay union",
        "transitions": n, "particles": particles, "fits": fits, "steps": steps, "hidden": list(hidden),
    }  # fmt: skip
    return _summary(runs, rollouts, estimator, weights, alpha, gamma)


def sample_verdict(summary: dict[str, Any], tolerance: float | None = None) -> dict[str, Any]:
    """:func:`verdict` on a sampled summary, made conservative by the estimator's spread: the upper
    bound is taken two standard errors up, the lower two down."""
    spread = {k: summary.get(f"{k}_std") or 0.0 for k in ("L1_start", "C_pi_start")}
    cautious = dict(summary)
    cautious["L1_start"] = max(0.0, summary["L1_start"] - 2 * spread["L1_start"])
    cautious["C_pi_start"] = summary["C_pi_start"] + 2 * spread["C_pi_start"]
    out = verdict(cautious, tolerance)
    out["basis"] = "rollout estimate: L1 - 2 se and C_pi + 2 se at the start states"
    return out
