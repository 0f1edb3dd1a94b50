"""How far a weighted composite of soft Q-functions is from the optimum of the combined task.

For skills ``Q_k`` (optimal for rewards ``r_k``, same dynamics and temperature alpha) and weights
``w_k`` summing to 1, the composite is ``Q_Sigma = sum_k w_k Q_k`` and the combined task is
``r_C = sum_k w_k r_k`` with optimum ``Q*_C``. The gap ``Delta = Q_Sigma - Q*_C`` obeys (derivation
in ``docs/bounds.md``, each step checked numerically in ``tests/composition/test_bounds.py``)::

    G(s)        = -alpha log ∫ prod_k pi_k(a|s)^{w_k} da          >= 0 (Hölder); (alpha/2) D_1/2 for two halves
    Delta(s, a) = gamma E_{s'}[(1 - done) (G(s') + V_Sigma(s') - V*_C(s'))]          (exact)
    L1          = gamma E_{s'}[(1 - done) G(s')]                                    <= Delta
    C_pi        = gamma E_{s'}[(1 - done) (G(s') + E_{a'~pi_Sigma} C_pi(s', a'))]    >= Delta
    C*          = gamma E_{s'}[(1 - done) (G(s') + max_a' C*(s', a'))]              >= C_pi
    C*_paper    = the same with 2 G, i.e. alpha D_1/2: the paper's alpha = 1 bound, rescaled to alpha
    D*          = gamma E_{s'}[(1 - done) E_{a'~pi_Sigma}(C*_paper + D*)(s', a')]    >= Q*_C - Q^{pi_Sigma}

Everything here is computed exactly on a :class:`~skillbank.composition.oracle.GridModel` (2-D tasks); for
other tasks :mod:`skillbank.composition.sampled_bounds` estimates the same maps from samples, and
:mod:`skillbank.composition.bounds` chooses between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skillbank.composition.oracle import GridModel
from skillbank.nn.composite import normalise_weights, weighted_sum

TOLERANCE = 1e-6  # solver tolerance, in reward units; inequalities are checked up to 10x this
SPACING = 0.2  # state grid step of a bound report
ACTION_POINTS = 11  # action grid points per axis


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
    log_product = weighted_sum(weights, torch.stack([grid.log_density(q, alpha) for q in qs]))
    return -alpha * torch.logsumexp(log_product + grid.log_mass, -1)


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
    weights = normalise_weights(weights, len(qs))
    q_sigma = weighted_sum(weights, torch.stack(list(qs)))
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
    spacing: float = SPACING,
    action_points: int = ACTION_POINTS,
    tolerance: float | None = None,
) -> BoundReport:
    """Everything ``skillbank bound`` reports for Q-networks ``qs`` composed with ``weights``.

    ``combined_env`` gives ``r_C`` (and the ground truth ``Q*_C``); ``constituent_envs`` add the
    oracle constituents and each learned constituent's own error; ``composite`` (any Q-network)
    is compared with ``Q*_C`` too (e.g. a divergence-corrected composite); ``region`` (N, 2) points
    restrict the learned summary to the states some data covers.
    """
    grid = GridModel(combined_env, spacing, action_points)
    weights = normalise_weights(weights, len(qs))
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
        own = weighted_sum(weights, torch.stack([e.abs() for e in errors]))
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
