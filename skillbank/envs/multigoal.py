"""The MultiGoal point-mass task of Haarnoja et al. (2017), Figure 3.

A point in the plane moves by its (clipped) velocity action. Reaching any goal ends the
episode; the reward charges for speed and for the squared distance to the nearest rewarded
goal, and pays a bonus on arrival. Goal positions and a weight per goal are parameters, so
that several tasks can share the same dynamics and the same absorbing set of goals and differ
only in their rewards (what composition needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

PAPER_GOALS: tuple[tuple[float, float], ...] = ((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0))


class MultiGoalEnv(gym.Env):
    """2-D point mass with several goals.

    Reward on the post-step state ``s'``::

        r = -actuation_cost * ||a||^2 - distance_cost * min_{g: w_g > 0} ||s' - g||^2
            + goal_reward * w_g   (on reaching goal g, which ends the episode)

    With the default goals and unit weights this is the environment of the paper and of the
    public ``multigoal.py``. A goal of weight 0 still ends the episode but pays no bonus and
    does not attract the distance term.

    ``goal_weights`` may also be a matrix with one row of weights per task: the reward is then
    ``sum_i task_weights[i] * r_i`` over the rows' rewards (by default their average), the
    combined task ``r_C`` of composition.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        goals: Sequence[Sequence[float]] = PAPER_GOALS,
        goal_weights: Sequence[float] | Sequence[Sequence[float]] | None = None,
        task_weights: Sequence[float] | None = None,
        goal_radius: float = 1.0,
        goal_reward: float = 10.0,
        actuation_cost: float = 30.0,
        distance_cost: float = 1.0,
        init_sigma: float = 0.1,
        bound: float = 7.0,
        render_mode: str | None = None,
    ) -> None:
        self.goals = np.asarray(goals, dtype=np.float64).reshape(-1, 2)
        if len(self.goals) == 0:
            raise ValueError("MultiGoalEnv needs at least one goal")
        weights = np.ones(len(self.goals)) if goal_weights is None else np.asarray(goal_weights, float)
        if weights.ndim not in (1, 2) or weights.shape[-1] != len(self.goals):
            raise ValueError(
                f"goal_weights must hold one weight per goal ({len(self.goals)}), or a row of them per task; "
                f"got shape {weights.shape}"
            )
        if (weights < 0).any() or not (weights > 0).any(-1).all():
            raise ValueError("goal_weights must be >= 0 with at least one positive weight in each row")
        self.goal_weights = weights
        rows = len(np.atleast_2d(weights))
        self.task_weights = np.full(rows, 1.0 / rows) if task_weights is None else np.asarray(task_weights, float)
        if self.task_weights.shape != (rows,):
            raise ValueError(f"task_weights needs one weight per row of goal_weights ({rows}), got {task_weights}")
        self.goal_radius = float(goal_radius)
        self.goal_reward = float(goal_reward)
        self.actuation_cost = float(actuation_cost)
        self.distance_cost = float(distance_cost)
        self.init_sigma = float(init_sigma)
        self.bound = float(bound)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-self.bound, self.bound, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2)

    # The reward and transition are also used vectorised by the exact solver, hence static-ish helpers.
    def transition(self, positions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Deterministic dynamics ``s' = clip(s + clip(a))`` for arrays of shape (..., 2)."""
        return np.clip(positions + np.clip(actions, -1.0, 1.0), -self.bound, self.bound)

    def reward(self, next_positions: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reward and the index of the goal reached (-1 for none) for arrays of shape (..., 2)."""
        actions = np.clip(actions, -1.0, 1.0)
        sq_dist = ((next_positions[..., None, :] - self.goals) ** 2).sum(-1)
        nearest = sq_dist.argmin(-1)
        reached = sq_dist.min(-1) < self.goal_radius**2
        effort = self.actuation_cost * (actions**2).sum(-1)
        reward = np.zeros(np.shape(reached))
        for task_weight, weights in zip(self.task_weights, np.atleast_2d(self.goal_weights)):
            pull = self.distance_cost * np.where(weights > 0, sq_dist, np.inf).min(-1)
            reward = reward + task_weight * (
                np.where(reached, self.goal_reward * weights[nearest], 0.0) - pull - effort
            )
        return reward, np.where(reached, nearest, -1)

    def transition_reward(
        self, observations: np.ndarray, actions: np.ndarray, next_observations: np.ndarray
    ) -> np.ndarray:
        """The reward of stored transitions (arrays of shape (..., 2)): what relabels another task's replay."""
        return self.reward(next_observations, actions)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        start = self.np_random.normal(0.0, self.init_sigma, size=2) if self.init_sigma > 0 else np.zeros(2)
        self._position = np.clip(start, -self.bound, self.bound)
        return self._position.astype(np.float32), {}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64).reshape(2)
        self._position = self.transition(self._position, action)
        reward, goal = self.reward(self._position, action)
        goal = int(goal)
        info = {"goal": goal}
        return self._position.astype(np.float32), float(reward), goal >= 0, False, info

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The state a checkpoint needs beyond the random generator (see :mod:`skillbank.runs.checkpoint`)."""
        return {"position": self._position.copy()}

    def restore_checkpoint_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._position = np.asarray(arrays["position"], dtype=np.float64).copy()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        size = 128
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        to_pixel = lambda p: np.clip(((p + self.bound) / (2 * self.bound) * (size - 1)).astype(int), 0, size - 1)  # noqa: E731
        for goal in self.goals:
            x, y = to_pixel(goal)
            image[size - 1 - y - 2 : size - y + 2, x - 2 : x + 3] = (200, 40, 40)
        x, y = to_pixel(self._position)
        image[size - 1 - y - 1 : size - y + 1, x - 1 : x + 2] = (20, 20, 200)
        return image
