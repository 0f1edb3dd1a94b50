"""Ground truth for 2-D deterministic tasks: exact soft value iteration on a grid.

The state plane is a regular grid (bilinear interpolation between its points), the action box
[-1, 1]^2 a regular grid with trapezoid quadrature weights. For any reward on that grid this gives
``Q*``, ``V*`` and the optimal policy ``pi*(a|s) = exp((Q* - V*) / alpha)``, and it evaluates any
policy; :mod:`skillbank.composition.grid_bounds` uses the same machinery for the composition bounds.

Units: ``Q`` and ``V`` in reward units; a policy on the grid is a probability *mass* per action point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from skillbank.envs.multigoal import MultiGoalEnv
from skillbank.errors import SkillbankError


def trapezoid_log_mass(points: int) -> torch.Tensor:
    """log of the 2-D trapezoid weights of a ``points x points`` grid on [-1, 1]^2 (they sum to 4)."""
    w = torch.full((points,), 2.0 / (points - 1), dtype=torch.float64)
    w[0] = w[-1] = 1.0 / (points - 1)
    return (w[:, None] * w[None, :]).log().reshape(-1)


@dataclass
class Solution:
    """A solved (or evaluated) task on a :class:`GridModel`: all tensors over (states, actions)."""

    q: torch.Tensor  # (S, A)
    v: torch.Tensor  # (S,)
    iterations: int
    residual: float


class GridModel:
    """A MultiGoal task discretised: ``states`` (S, 2) and ``actions`` (A, 2) with the successor of
    every (state, action) pair, whether it ends the episode, and the rewards of the env's tasks.

    ``spacing`` is the state grid step; ``action_points`` per axis (21 gives an action step of 0.1,
    so that with ``spacing`` 0.1 every successor lands exactly on a grid point).
    """

    def __init__(self, env: MultiGoalEnv, spacing: float = 0.1, action_points: int = 21) -> None:
        env = getattr(env, "unwrapped", env)
        if not isinstance(env, MultiGoalEnv):
            raise SkillbankError("the exact solver handles the 2-D MultiGoal tasks only")
        if action_points < 2 or spacing <= 0:
            raise SkillbankError("the grid needs spacing > 0 and at least 2 action points per axis")
        self.env, self.bound = env, env.bound
        n = int(round(2 * self.bound / spacing)) + 1
        self.n, self.spacing = n, 2 * self.bound / (n - 1)
        self.axis = np.linspace(-self.bound, self.bound, n)
        gx, gy = np.meshgrid(self.axis, self.axis, indexing="ij")
        self.states = np.stack([gx, gy], -1).reshape(-1, 2)  # state index = i * n + j for (axis[i], axis[j])
        a_axis = np.linspace(-1.0, 1.0, action_points)
        ax, ay = np.meshgrid(a_axis, a_axis, indexing="ij")
        self.actions = np.stack([ax, ay], -1).reshape(-1, 2)
        self.action_points = action_points
        self.log_mass = trapezoid_log_mass(action_points)

        successors = env.transition(self.states[:, None, :], self.actions[None, :, :])  # (S, A, 2)
        _, goal = env.reward(successors, np.broadcast_to(self.actions, successors.shape))
        self.done = torch.as_tensor(goal >= 0)
        self._corner, self._frac = self._locate(successors.reshape(-1, 2))
        self._successors = successors

    # ----- interpolation ------------------------------------------------------------------------
    def _locate(self, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower-left grid index and fractional offsets (bilinear weights) of ``points`` (N, 2)."""
        u = (np.clip(points, -self.bound, self.bound) + self.bound) / self.spacing
        cell = np.clip(np.floor(u + 1e-9), 0, self.n - 2).astype(np.int64)
        frac = np.clip(u - cell, 0.0, 1.0)
        on_point = np.abs(frac) < 1e-9
        frac[on_point] = 0.0
        # A point on the last grid line sits in the last cell at fraction 1; keep it a plain lookup.
        at_end = np.abs(frac - 1.0) < 1e-9
        cell, frac = cell + at_end, np.where(at_end, 0.0, frac)
        cell = np.minimum(cell, self.n - 1)
        corner = torch.as_tensor(cell[:, 0] * self.n + cell[:, 1])
        return corner, torch.as_tensor(frac)

    def _bilinear(self, values: torch.Tensor, corner: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        if not frac.any():  # every point on a grid point: a plain gather (the aligned default grids)
            return values[corner]
        trailing = (1,) * (values.dim() - 1)
        fx, fy = frac[:, 0].reshape(-1, *trailing), frac[:, 1].reshape(-1, *trailing)
        last = len(values) - 1  # a corner on the last grid line has weight 0 beyond it; keep its index valid
        v00, v01 = values[corner], values[(corner + 1).clamp(max=last)]
        v10, v11 = values[(corner + self.n).clamp(max=last)], values[(corner + self.n + 1).clamp(max=last)]
        return (1 - fx) * ((1 - fy) * v00 + fy * v01) + fx * ((1 - fy) * v10 + fy * v11)

    def interpolate(self, values: torch.Tensor, points: np.ndarray) -> torch.Tensor:
        """Bilinear interpolation of per-state ``values`` (S, ...) at ``points`` (N, 2): (N, ...)."""
        return self._bilinear(values, *self._locate(np.asarray(points, np.float64).reshape(-1, 2)))

    def next_expectation(self, values: torch.Tensor) -> torch.Tensor:
        """``(1 - done(s, a)) * f(s'(s, a))`` for a per-state ``f`` (S,): shape (S, A)."""
        out = self._bilinear(values, self._corner, self._frac).reshape(self.done.shape)
        return out.masked_fill(self.done, 0.0)

    # ----- rewards, values, policies ------------------------------------------------------------
    def reward(self, env: MultiGoalEnv | None = None) -> torch.Tensor:
        """The reward of ``env`` (default: the grid's own) on every (state, action): (S, A).

        ``env`` must share the goals and radius (the absorbing set) with the grid's environment.
        """
        env = getattr(env, "unwrapped", env) or self.env
        if not (np.array_equal(env.goals, self.env.goals) and env.goal_radius == self.env.goal_radius):
            raise SkillbankError("tasks on one grid must share their goals and goal radius (the absorbing set)")
        reward, _ = env.reward(self._successors, np.broadcast_to(self.actions, self._successors.shape))
        return torch.as_tensor(reward)

    def soft_value(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        """``V(s) = alpha log ∫ exp(Q(s, a) / alpha) da`` by quadrature: (S,)."""
        return alpha * torch.logsumexp(q / alpha + self.log_mass, -1)

    def policy(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        """Boltzmann policy ``exp((Q - V) / alpha)`` as a probability mass per action point: (S, A)."""
        return torch.softmax(q / alpha + self.log_mass, -1)

    def log_density(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        """``log pi(a|s) = (Q - V) / alpha`` (a density on the box, not a mass): (S, A)."""
        return (q - self.soft_value(q, alpha)[:, None]) / alpha

    def fixed_point(
        self,
        reward: torch.Tensor,
        gamma: float,
        state_value: Callable[[torch.Tensor], torch.Tensor],
        tol: float = 1e-8,
        max_iterations: int = 20_000,
    ) -> Solution:
        """Iterate ``Q <- reward + gamma (1 - done) V(s')`` with ``V = state_value(Q)`` until
        ``max |dV| < tol * max(1, max |V|)``: a gamma-contraction for each ``state_value`` used here."""
        v = torch.zeros(len(self.states), dtype=torch.float64)
        residual, iteration = math.inf, 0
        while residual >= tol * max(1.0, v.abs().max().item()) and iteration < max_iterations:
            v_new = state_value(reward + gamma * self.next_expectation(v))
            residual = (v_new - v).abs().max().item()
            v, iteration = v_new, iteration + 1
        return Solution(reward + gamma * self.next_expectation(v), v, iteration, residual)

    def solve(self, reward: torch.Tensor, alpha: float, gamma: float, tol: float = 1e-8) -> Solution:
        """Soft value iteration: ``Q*`` and ``V*`` of ``reward`` at temperature ``alpha``."""
        return self.fixed_point(reward, gamma, lambda q: self.soft_value(q, alpha), tol)

    def evaluate(
        self, reward: torch.Tensor, policy: torch.Tensor, gamma: float, alpha: float = 0.0, tol: float = 1e-8
    ) -> Solution:
        """Soft policy evaluation of a policy (masses ``policy`` (S, A)) with entropy bonus ``alpha``:
        ``V(s) = E_{a~pi}[Q(s, a) - alpha log pi(a|s)]``. With ``alpha`` 0 it is plain policy evaluation,
        which also serves the bound recursions."""
        # log pi as a density is log(mass) - log(quadrature weight).
        bonus = -alpha * (policy * (policy.clamp_min(1e-300).log() - self.log_mass)).sum(-1) if alpha else 0.0
        return self.fixed_point(reward, gamma, lambda q: (policy * q).sum(-1) + bonus, tol)

    def maximise(self, reward: torch.Tensor, gamma: float, tol: float = 1e-8) -> Solution:
        """Hard-max value iteration ``C <- r + gamma (1 - done) max_a' C(s', a')`` (the paper's C* form)."""
        return self.fixed_point(reward, gamma, lambda q: q.max(-1).values, tol)

    def state_index(self, points: np.ndarray | tuple[float, float]) -> np.ndarray | int:
        """Index of the grid state nearest to a point (an int) or to each of ``points`` (N, 2)."""
        cells = np.clip(np.rint((np.asarray(points, float) + self.bound) / self.spacing), 0, self.n - 1).astype(int)
        index = cells[..., 0] * self.n + cells[..., 1]
        return int(index) if index.ndim == 0 else index


class OraclePolicy:
    """The optimal Boltzmann policy of a solved grid task, acting in the continuous environment:
    ``Q*(s, .)`` interpolated bilinearly at the state, an action grid point drawn by its mass."""

    def __init__(self, grid: GridModel, q: torch.Tensor, alpha: float) -> None:
        self.grid, self.q, self.alpha = grid, q, alpha

    def act(self, obs: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        q = self.grid.interpolate(self.q, np.asarray(obs, np.float64)[None])[0]
        index = torch.multinomial(torch.softmax(q / self.alpha + self.grid.log_mass, -1), 1, generator=generator)
        return self.grid.actions[int(index)]
