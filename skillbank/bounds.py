"""How far a weighted composite of soft Q-functions is from the optimum of the combined task.

For skills ``Q_k`` (optimal for rewards ``r_k``, same dynamics and temperature alpha) and weights
``w_k`` summing to 1, the composite is ``Q_Sigma = sum_k w_k Q_k`` and the combined task is
``r_C = sum_k w_k r_k`` with optimum ``Q*_C``. The gap ``Delta = Q_Sigma - Q*_C`` obeys (derivation
in ``docs/bounds.md``, each step checked numerically in ``tests/test_bounds.py``)::

    G(s)        = -alpha log ∫ prod_k pi_k(a|s)^{w_k} da          >= 0 (Hölder); (alpha/2) D_1/2 for two halves
    Delta(s, a) = gamma E_{s'}[(1 - done) (G(s') + V_Sigma(s') - V*_C(s'))]          (exact)
    L1          = gamma E_{s'}[(1 - done) G(s')]                                    <= Delta
    C_pi        = gamma E_{s'}[(1 - done) (G(s') + E_{a'~pi_Sigma} C_pi(s', a'))]    >= Delta
    C*          = gamma E_{s'}[(1 - done) (G(s') + max_a' C*(s', a'))]              >= C_pi
    C*_paper    = the same with 2 G, i.e. alpha D_1/2: the paper's alpha = 1 bound, rescaled to alpha
    D*          = gamma E_{s'}[(1 - done) E_{a'~pi_Sigma}(C*_paper + D*)(s', a')]    >= Q*_C - Q^{pi_Sigma}

Everything here is computed exactly on a :class:`~skillbank.oracle.GridModel` (2-D tasks); for
other tasks :func:`sample_bounds` estimates them from samples (rollouts and replay buffers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skillbank.oracle import GridModel
from skillbank.skill import soft_value_uniform

TOLERANCE = 1e-6  # solver tolerance, in reward units; inequalities are checked up to 10x this


@dataclass
class CompositionBounds:
    """Maps over the grid: per state (S,) or per state-action (S, A), in reward units."""

    weights: list[float]
    alpha: float
    gamma: float
    q_sigma: torch.Tensor
    divergence: torch.Tensor  # G(s)
    lower: torch.Tensor  # L1
    c_pi: torch.Tensor
    c_star: torch.Tensor  # tight max form, per-step G
    c_star_paper: torch.Tensor  # per-step 2 G = alpha D_1/2
    d_star: torch.Tensor
    policy: torch.Tensor  # pi_Sigma as masses
    q_star: torch.Tensor | None = None  # Q*_C, when the combined reward is known
    q_policy: torch.Tensor | None = None  # Q^{pi_Sigma} under r_C (soft)

    @property
    def true_error(self) -> torch.Tensor | None:
        return None if self.q_star is None else self.q_sigma - self.q_star

    @property
    def policy_gap(self) -> torch.Tensor | None:
        return None if self.q_star is None else self.q_star - self.q_policy

    def at_states(self, values: torch.Tensor) -> torch.Tensor:
        """A (S, A) map averaged over the composite policy's actions: (S,)."""
        return (self.policy * values).sum(-1)

    def summary(self, grid: GridModel, start: Sequence[float] = (0.0, 0.0), mask: torch.Tensor | None = None):
        """Maxima, means, tightness and violations over the grid (or the states in ``mask``), and the
        values at ``start`` under the composite policy."""
        keep = torch.ones(len(grid.states), dtype=torch.bool) if mask is None else mask
        maps = {"L1": self.lower, "C_pi": self.c_pi, "C_star": self.c_star, "C_star_paper": self.c_star_paper}
        maps["D_star"] = self.d_star
        if self.q_star is not None:
            maps["true_error"] = self.true_error
            maps["policy_gap"] = self.policy_gap
        s0 = grid.state_index(start)
        out: dict[str, Any] = {"weights": self.weights, "alpha": self.alpha, "gamma": self.gamma}
        out["states"] = int(keep.sum())
        for name, values in maps.items():
            region = values[keep]
            out[f"{name}_max"] = float(region.max())
            out[f"{name}_mean"] = float(region.mean())
            out[f"{name}_start"] = float(self.at_states(values)[s0])
        out["divergence_start"] = float(self.divergence[s0])
        out["value_start"] = float(grid.soft_value(self.q_sigma, self.alpha)[s0])
        if self.q_star is not None:
            error = self.true_error[keep]
            slack = 10 * TOLERANCE * (1 + self.q_star[keep].abs())
            for name in ("L1", "C_pi", "C_star", "C_star_paper"):
                bound = maps[name][keep]
                broken = error < bound - slack if name == "L1" else error > bound + slack
                out[f"{name}_violation_fraction"] = float(broken.double().mean())
                out[f"{name}_tightness"] = float(error.mean() / bound.mean()) if bound.mean() > 0 else None
            outside = (error < maps["L1"][keep] - slack) | (error > maps["C_pi"][keep] + slack)
            out["sandwich_violation_fraction"] = float(outside.double().mean())  # not L1 <= error <= C_pi
            outside = (error < -slack) | (error > maps["C_star_paper"][keep] + slack)
            out["paper_bound_violation_fraction"] = float(outside.double().mean())  # not 0 <= error <= C*
            out["composite_optimistic_fraction"] = float((error >= -slack).double().mean())
            gap_broken = self.policy_gap[keep] > self.d_star[keep] + slack
            out["D_star_violation_fraction"] = float(gap_broken.double().mean())
        return out


def weighted_divergence(grid: GridModel, qs: Sequence[torch.Tensor], weights: Sequence[float], alpha: float):
    """``G(s) = -alpha log ∫ prod_k pi_k(a|s)^{w_k} da`` by quadrature: (S,)."""
    log_product = sum(w * grid.log_density(q, alpha) for w, q in zip(weights, qs))
    return -alpha * torch.logsumexp(log_product + grid.log_mass, -1)


def renyi_half(grid: GridModel, q1: torch.Tensor, q2: torch.Tensor, alpha: float) -> torch.Tensor:
    """``D_1/2(pi_1 || pi_2) = -2 log ∫ sqrt(pi_1 pi_2) da`` per state: (S,)."""
    return 2.0 / alpha * weighted_divergence(grid, [q1, q2], [0.5, 0.5], alpha)


def normalised_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    weights = [1.0 / n] * n if weights is None else [float(w) for w in weights]
    if len(weights) != n or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need {n} non-negative weights with a positive sum, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


def composition_bounds(
    grid: GridModel,
    qs: Sequence[torch.Tensor],
    alpha: float,
    gamma: float,
    weights: Sequence[float] | None = None,
    combined_reward: torch.Tensor | None = None,
    q_star: torch.Tensor | None = None,
    tol: float = TOLERANCE,
) -> CompositionBounds:
    """All bounds for ``Q_Sigma = sum_k w_k Q_k`` (``qs`` are (S, A) grids of the constituents' Q).

    With ``combined_reward`` (``r_C`` on the grid) also the optimum ``Q*_C`` and the composite
    policy's own soft value, so that the true errors can be set beside the bounds (``q_star``, if
    given, saves solving for ``Q*_C`` again).
    """
    weights = normalised_weights(weights, len(qs))
    q_sigma = sum(w * q for w, q in zip(weights, qs))
    policy = grid.policy(q_sigma, alpha)
    divergence = weighted_divergence(grid, qs, weights, alpha)
    step = gamma * grid.next_expectation(divergence)  # gamma (1 - done) G(s')
    c_pi = grid.evaluate(step, policy, gamma, tol=tol).q
    c_star = grid.maximise(step, gamma, tol=tol).q
    c_star_paper = 2 * c_star  # the max-form recursion is positively homogeneous in its per-step term
    d_step = gamma * grid.next_expectation((policy * c_star_paper).sum(-1))
    d_star = grid.evaluate(d_step, policy, gamma, tol=tol).q
    bounds = CompositionBounds(
        weights, alpha, gamma, q_sigma, divergence, step, c_pi, c_star, c_star_paper, d_star, policy
    )
    if combined_reward is not None:
        bounds.q_star = grid.solve(combined_reward, alpha, gamma, tol=tol).q if q_star is None else q_star
        bounds.q_policy = grid.evaluate(combined_reward, policy, gamma, alpha=alpha, tol=tol).q
    return bounds


def region_of(grid: GridModel, points: np.ndarray) -> torch.Tensor:
    """Mask of the grid states nearest to any of ``points`` (N, 2): the region some data covers."""
    mask = torch.zeros(len(grid.states), dtype=torch.bool)
    mask[torch.as_tensor(grid.state_index(np.asarray(points).reshape(-1, 2)))] = True
    return mask


@torch.no_grad()
def q_on_grid(q: torch.nn.Module, grid: GridModel, chunk: int = 512) -> torch.Tensor:
    """A Q-network (anything with ``values(obs, actions)``) on every grid (state, action): (S, A)."""
    actions = torch.as_tensor(grid.actions, dtype=torch.float32).expand(chunk, -1, -1)
    states = torch.as_tensor(grid.states, dtype=torch.float32)
    out = [q.values(block, actions[: len(block)]) for block in states.split(chunk)]
    return torch.cat(out).double()


def verdict(summary: dict[str, Any], tolerance: float | None = None) -> dict[str, Any]:
    """Whether a composite can be trusted on the combined task, from the constituents' bounds alone.

    At the start state, under the composite policy, the error is at least ``L1`` and at most ``C_pi``.
    The composite is certified when ``C_pi`` is within ``tolerance`` (default 5% of ``|V_Sigma|``
    there); otherwise it is not, and the lower bound says whether the failure is already proven.
    """
    scale = abs(summary["value_start"])
    tolerance = 0.05 * scale if tolerance is None else float(tolerance)
    lower, upper = summary["L1_start"], summary["C_pi_start"]
    out = {"tolerance": tolerance, "error_at_least": lower, "error_at_most": upper}
    if upper <= tolerance:
        out["verdict"] = "trustworthy"
        out["advice"] = (
            f"the composite is within {upper:.3g} of the combined task's optimum at the start "
            f"(tolerance {tolerance:.3g}): use it zero-shot"
        )
    else:
        out["verdict"] = "untrustworthy"
        proven = "provably" if lower > tolerance else "possibly"
        out["advice"] = (
            f"the constituents disagree along the composite's path: its error at the start is {proven} above "
            f"{tolerance:.3g} (between {lower:.3g} and {upper:.3g}). If the tasks share no goal, compose with "
            "--op or; otherwise fine-tune the composite on the combined task"
        )
    return out


@dataclass
class BoundReport:
    """Bounds for learned constituents (and, where the tasks are known, for oracle ones) on one grid."""

    grid: GridModel
    learned: CompositionBounds
    oracle: CompositionBounds | None
    summary: dict[str, Any]


def bound_report(
    qs: Sequence[torch.nn.Module],
    combined_env: Any,
    alpha: float,
    gamma: float,
    weights: Sequence[float] | None = None,
    constituent_envs: Sequence[Any] | None = None,
    composite: torch.nn.Module | None = None,
    region: np.ndarray | None = None,
    spacing: float = 0.2,
    action_points: int = 11,
    tolerance: float | None = None,
) -> BoundReport:
    """Everything ``skillbank bound`` reports for Q-networks ``qs`` composed with ``weights``.

    ``combined_env`` gives ``r_C`` (and the ground truth ``Q*_C``); ``constituent_envs`` add the
    oracle constituents and each learned constituent's own error; ``composite`` (any Q-network)
    is compared with ``Q*_C`` too (e.g. a divergence-corrected composite); ``region`` (N, 2) points
    restrict the learned summary to the states some data covers.
    """
    grid = GridModel(combined_env, spacing, action_points)
    weights = normalised_weights(weights, len(qs))
    reward_c = grid.reward(combined_env)
    q_star = grid.solve(reward_c, alpha, gamma).q
    learned_qs = [q_on_grid(q, grid) for q in qs]
    learned = composition_bounds(grid, learned_qs, alpha, gamma, weights, reward_c, q_star)
    summary: dict[str, Any] = {"grid": {"spacing": grid.spacing, "action_points": action_points, "states": grid.n**2}}
    summary["learned"] = learned.summary(grid)
    summary["verdict"] = verdict(summary["learned"], tolerance)
    oracle = None
    if region is not None:
        mask = region_of(grid, region)
        summary["learned_in_data"] = learned.summary(grid, mask=mask)
    if constituent_envs is not None:
        oracle_qs = [grid.solve(grid.reward(env), alpha, gamma).q for env in constituent_envs]
        oracle = composition_bounds(grid, oracle_qs, alpha, gamma, weights, reward_c, q_star)
        summary["oracle"] = oracle.summary(grid)
        errors = [learned_q - oracle_q for learned_q, oracle_q in zip(learned_qs, oracle_qs)]
        summary["constituent_error_mean"] = [float(e.abs().mean()) for e in errors]
        # Why learned bounds fail: where they do, compare the constituents' own errors with elsewhere.
        slack = 10 * TOLERANCE * (1 + q_star.abs())
        broken = (learned.true_error > learned.c_star_paper + slack) | (learned.true_error < -slack)
        own = sum(w * e.abs() for w, e in zip(weights, errors))
        summary["constituent_error_where_bound_fails"] = float(own[broken].mean()) if broken.any() else None
        summary["constituent_error_where_bound_holds"] = float(own[~broken].mean()) if (~broken).any() else None
    if composite is not None:
        error = q_on_grid(composite, grid) - q_star
        summary["composite_error_mean"] = float(error.abs().mean())
        summary["composite_error_max"] = float(error.abs().max())
        if region is not None:
            summary["composite_error_mean_in_data"] = float(error.abs()[region_of(grid, region)].mean())
        summary["sum_error_mean"] = float(learned.true_error.abs().mean())
        if region is not None:
            summary["sum_error_mean_in_data"] = float(learned.true_error.abs()[region_of(grid, region)].mean())
    return BoundReport(grid, learned, oracle, summary)


# ----- estimates from samples, for tasks without a grid -------------------------------------------
SAMPLE_MAPS = ("L1", "C_pi", "C_star", "D_star")


@torch.no_grad()
def _particle_values(qs, weights, alpha, states, particles, generator, chunk=2048):
    """At each state: uniform action particles, every constituent's soft value ``V_k`` and the
    composite's ``V_Sigma`` by importance sampling with the same particles, and the composite
    policy's self-normalised weights on them. With shared particles, ``sum_k w_k V_k - V_Sigma``
    is non-negative for every draw (Hölder on the empirical measure), as ``G`` is."""
    d = qs[0].act_dim
    out = {"actions": [], "divergence": [], "value": [], "policy": []}
    for block in states.split(chunk):
        actions = torch.rand(len(block), particles, d, generator=generator) * 2 - 1
        q_k = torch.stack([q.values(block, actions) for q in qs]).double()  # (K, B, P)
        w = torch.tensor(weights, dtype=q_k.dtype)[:, None, None]
        q_sigma = (w * q_k).sum(0)
        v_k = alpha * soft_value_uniform(q_k / alpha, d)
        v_sigma = alpha * soft_value_uniform(q_sigma / alpha, d)
        out["actions"].append(actions)
        out["divergence"].append((w[:, :, 0] * v_k).sum(0) - v_sigma)
        out["value"].append(v_sigma)
        out["policy"].append(torch.softmax(q_sigma / alpha, -1).float())
    return {k: torch.cat(v) for k, v in out.items()}


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
    weights = normalised_weights(weights, len(qs))
    horizon = horizon or math.ceil(math.log(0.01) / math.log(gamma))
    to_env_action = to_env_action or (lambda a: a)
    g = torch.Generator().manual_seed(seed)
    envs = [make_env(horizon) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    starts = torch.as_tensor(obs)
    alive, ended = np.ones(episodes, dtype=bool), np.zeros(episodes, dtype=bool)
    first, total = np.zeros(episodes), np.zeros(episodes)
    here = _particle_values(qs, weights, alpha, starts, particles, g)
    start_divergence, start_value = here["divergence"], here["value"]
    for t in range(1, horizon + 1):
        pick = torch.multinomial(here["policy"], 1, generator=g)[:, 0]
        actions = here["actions"][torch.arange(episodes), pick].numpy()
        counts = alive.copy()  # (1 - done) G(s_t): a terminal state adds nothing, a time-limit cut does
        for i in np.flatnonzero(alive):
            obs[i], _, terminated, cut, _ = envs[i].step(to_env_action(actions[i]))
            ended[i], alive[i], counts[i] = terminated, not (terminated or cut), not terminated
        here = _particle_values(qs, weights, alpha, torch.as_tensor(obs), particles, g)
        step = gamma**t * here["divergence"].numpy() * counts
        total += step
        if t == 1:
            first = step
        if not alive.any():
            break
    sqrt_n = math.sqrt(episodes)
    return {
        "L1_start": float(first.mean()),
        "L1_start_se": float(first.std(ddof=1) / sqrt_n) if episodes > 1 else None,
        "C_pi_start": float(total.mean()),
        "C_pi_start_se": float(total.std(ddof=1) / sqrt_n) if episodes > 1 else None,
        "divergence_start": float(start_divergence.mean()),
        "value_start": float(start_value.mean()),
        "unfinished_fraction": float(1 - ended.mean()),  # cut by a time limit or the horizon
        "episodes": episodes,
        "particles": particles,
        "horizon": horizon,
        "start_states": starts,
    }


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
    fits: int = 3,
    steps: int = 3000,
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
    from skillbank.networks import MLP

    weights = normalised_weights(weights, len(qs))
    rollouts = rollout_bounds(
        qs, weights, alpha, gamma, make_env, to_env_action,
        episodes=episodes, particles=rollout_particles, horizon=horizon, seed=seed,
    )  # fmt: skip
    start_states = rollouts.pop("start_states")
    keep = torch.randperm(len(transitions[0]), generator=torch.Generator().manual_seed(seed))[:sample_size]
    obs, actions, next_obs, terminals = (t[keep].float() for t in transitions)
    n, d = len(obs), qs[0].act_dim
    runs: list[dict[str, float]] = []
    for fit in range(fits):
        g = torch.Generator().manual_seed(seed + fit)
        pick = torch.randint(0, n, (n,), generator=g)  # bootstrap resample
        s, a, s2, done = obs[pick], actions[pick], next_obs[pick], terminals[pick]
        nxt = _particle_values(qs, weights, alpha, s2, particles, g)
        start = _particle_values(qs, weights, alpha, start_states.float(), particles, g)
        step = (gamma * (1 - done) * nxt["divergence"]).float()  # gamma (1 - done) G(s')
        with torch.random.fork_rng():
            torch.manual_seed(seed + fit)
            net = MLP(s.shape[1] + d, list(hidden), len(SAMPLE_MAPS))
        target = MLP(s.shape[1] + d, list(hidden), len(SAMPLE_MAPS)).requires_grad_(False)
        target.load_state_dict(net.state_dict())
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(steps):
            i = torch.randint(0, n, (batch_size,), generator=g)
            with torch.no_grad():
                later = target(nxt["actions"][i], context=s2[i])[0]  # (B, P, 4) at s' particles
                c_pi, c_star, d_star = later[..., 1], later[..., 2], later[..., 3]
                policy = nxt["policy"][i]  # E_{a'~pi_Sigma} as weights on the particles
                continuation = gamma * (1 - done[i])
                y = torch.stack(
                    [
                        step[i],  # L1: one step, no continuation
                        step[i] + continuation * (policy * c_pi).sum(1),
                        step[i] + continuation * c_star.max(1).values,  # per-step G
                        continuation * (policy * (2 * c_star + d_star)).sum(1),  # C*_paper = 2 C*
                    ],
                    -1,
                )
            loss = (net(a[i].unsqueeze(1), context=s[i])[0, :, 0] - y).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for t, p in zip(target.parameters(), net.parameters()):
                    t.lerp_(p, tau)
            if progress is not None:
                progress(1)
        with torch.no_grad():
            at_start = (start["policy"].unsqueeze(-1) * net(start["actions"], context=start_states.float())[0]).sum(1)
            on_data = net(a.unsqueeze(1), context=s)[0, :, 0]
        run = {f"{name}_start": float(at_start[:, k].mean()) for k, name in enumerate(SAMPLE_MAPS)}
        run.update({f"{name}_mean": float(on_data[:, k].mean()) for k, name in enumerate(SAMPLE_MAPS)})
        runs.append(run)
    out: dict[str, Any] = {"weights": weights, "alpha": alpha, "gamma": gamma}
    out["estimator"] = {
        "method": "fitted TD on bootstrap resamples of the replay union",
        "transitions": n, "particles": particles, "fits": fits, "steps": steps, "hidden": list(hidden),
    }  # fmt: skip
    out["rollouts"] = {
        "method": "Monte Carlo rollouts of the composite policy from the start states",
        **{k: rollouts[k] for k in ("episodes", "particles", "horizon", "unfinished_fraction")},
    }
    for key in runs[0]:
        values = np.array([r[key] for r in runs])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if fits > 1 else None
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
