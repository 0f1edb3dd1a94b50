"""The MuJoCo Ant tasks of the SQL paper's fine-tuning experiment (section 6.3), on Gymnasium's Ant-v5 body.

``AntWalkEnv`` rewards the torso's progress away from the start in any direction, on empty ground: the
pretraining task of a general walking skill. ``AntArenaEnv`` adds walls (2 m high boxes, built into the
model with :class:`mujoco.MjSpec`); the hallways reward progress like the walk, the U-maze a Gaussian
around its goal. Geometry and rewards follow the authors' experiment scripts (florensacc/rllab-curriculum,
sandbox/haoran/mddpg), but for one change: they rewarded the instantaneous speed ``||v_xy||``, which a
noisy policy collects by jittering in place (measured here: SQL after 1.35M steps earned 0.7 to 0.9 m/s of it while its
torso's displacement speed was 0.2 m/s), so ours rewards the growth of the distance from the origin,
whose sum over an episode is the distance covered. Unlike Ant-v5 alone, a body that has flipped over
ends the episode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.spaces import Box

from skillbank.envs.models import model_file
from skillbank.envs.symmetry import ant_quarter_turn_frames

WALL_HEIGHT = 2.0
Rectangle = tuple[float, float, float, float]  # x0, x1, y0, y1


def hallway_walls(offset: float) -> tuple[Rectangle, ...]:
    """A corridor along +x, ``2 + 2 offset`` metres wide, closed behind the start."""
    side = (-1.0, 29.0)
    return (
        (*side, 1.0 + offset, 2.0 + offset),
        (*side, -2.0 - offset, -1.0 - offset),
        (-2.0, -1.0, -2.0 - offset, 2.0 + offset),
    )


HALLWAY_WIDE = hallway_walls(0.5)  # a 3 m corridor
HALLWAY_NARROW = hallway_walls(0.0)  # a 2 m corridor
UMAZE = (  # corridors 2.5 m wide: east from the start, north, then west to the goal at (0, 7)
    (-1.0, 0.5, 1.25, 2.25),
    (-1.0, 3.0, -2.25, -1.25),
    (-1.0, 0.5, 4.75, 5.75),
    (-1.0, 3.0, 8.25, 9.25),
    (-0.5, 0.5, 1.25, 5.75),
    (3.0, 4.0, -2.25, 9.25),
    (-2.0, -1.0, -2.25, 2.25),
    (-2.0, -1.0, 4.75, 9.25),
)
UMAZE_GOAL = (0.0, 7.0)


def ant_with_walls(walls: Sequence[Rectangle]) -> str:
    """The path of an Ant-v5 model with ``walls`` added (written once per wall layout, then reused)."""
    source = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "ant.xml"
    spec = mujoco.MjSpec.from_file(str(source))
    for i, (x0, x1, y0, y1) in enumerate(walls):
        spec.worldbody.add_geom(
            name=f"wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX, contype=1, conaffinity=1, rgba=[0.55, 0.5, 0.45, 1],
            size=[(x1 - x0) / 2, (y1 - y0) / 2, WALL_HEIGHT / 2],
            pos=[(x0 + x1) / 2, (y0 + y1) / 2, WALL_HEIGHT / 2],
        )  # fmt: skip
    return model_file(spec.to_xml(), "ant")


class AntWalkEnv(AntEnv):
    """Ant-v5 rewarded for walking away from the origin in any direction::

        r = progress_weight * (||p_xy'|| - ||p_xy||) / dt + healthy_reward - ctrl_cost - contact_cost

    with ``p_xy`` the torso's planar position before and after the step. The observation is Ant-v5's
    without the 84 contact forces (by default: they are mostly zeros and noise, and a smaller input is
    a cheaper update), with the torso's x, y appended (29-D): the reward depends on the position, so
    the observation must carry it. An episode ends when the torso leaves Ant-v5's healthy height range
    or turns upside down.
    """

    def __init__(
        self,
        progress_weight: float = 1.0,
        include_cfrc_ext_in_observation: bool = False,
        walls: Sequence[Rectangle] = (),
        **kwargs: Any,
    ) -> None:
        self.progress_weight = float(progress_weight)
        self.walls = tuple(tuple(float(v) for v in wall) for wall in walls)
        if any(len(wall) != 4 or wall[0] >= wall[1] or wall[2] >= wall[3] for wall in self.walls):
            raise ValueError("each wall is (x0, x1, y0, y1) with x0 < x1 and y0 < y1")
        xml_file = ant_with_walls(self.walls) if self.walls else "ant.xml"
        super().__init__(xml_file=xml_file, include_cfrc_ext_in_observation=include_cfrc_ext_in_observation, **kwargs)
        self.observation_space = Box(-np.inf, np.inf, shape=self._get_obs().shape, dtype=np.float64)

    @property
    def is_flipped(self) -> bool:
        """The torso's own up axis points below the horizon (from its orientation quaternion)."""
        _, qx, qy, _ = self.data.qpos[3:7]
        return 1.0 - 2.0 * (qx * qx + qy * qy) < 0.0

    @property
    def is_healthy(self) -> bool:
        return bool(super().is_healthy) and not self.is_flipped

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([super()._get_obs(), self.data.qpos[:2]])

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        reward, info = super()._get_rew(x_velocity, action)
        after = np.linalg.norm(self.data.body(self._main_body).xpos[:2])
        progress = self.progress_weight * (after - np.linalg.norm(self._pending_before)) / self.dt
        reward += progress - info["reward_forward"]
        info["reward_forward"] = 0.0
        info["reward_progress"] = progress
        return reward, info

    def step(self, action: np.ndarray):
        self._pending_before = self.data.body(self._main_body).xpos[:2].copy()
        return super().step(action)


class AntArenaEnv(AntWalkEnv):
    """:class:`AntWalkEnv` among ``walls``.

    With a ``goal``, the progress reward is replaced by ``goal_reward * exp(-b d^2)``, ``d`` the torso's
    distance to the goal and ``b = ln(100) / ||goal||^2`` (so 1% of ``goal_reward`` at the start),
    and ``info["success"]`` says whether the torso is within ``success_radius`` of the goal.
    """

    def __init__(
        self,
        walls: Sequence[Rectangle] = HALLWAY_WIDE,
        goal: Sequence[float] | None = None,
        goal_reward: float = 10.0,
        success_radius: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.goal = None if goal is None else np.asarray(goal, dtype=np.float64).reshape(2)
        if self.goal is not None and not np.linalg.norm(self.goal) > 0:
            raise ValueError("the goal must be away from the start at the origin")
        self.goal_reward, self.success_radius = float(goal_reward), float(success_radius)
        super().__init__(walls=walls, **kwargs)

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        reward, info = super()._get_rew(x_velocity, action)
        if self.goal is None:
            return reward, info
        distance = float(np.linalg.norm(self.data.qpos[:2] - self.goal))
        b = math.log(100.0) / float(self.goal @ self.goal)
        near = self.goal_reward * math.exp(-b * distance**2)
        reward += near - info["reward_progress"]
        info.update(reward_progress=0.0, reward_goal=near, distance_to_goal=distance)
        info["success"] = distance <= self.success_radius
        return reward, info

    def render_markers(self) -> list[dict[str, Any]]:
        """What a video draws beyond the model (:mod:`skillbank.viz.video`): the goal's disc of success."""
        if self.goal is None:
            return []
        r = self.success_radius
        return [{"type": mujoco.mjtGeom.mjGEOM_CYLINDER, "pos": np.array([*self.goal, 0.01]),
                 "size": np.array([r, r, 0.01]), "rgba": np.array([0.1, 0.8, 0.2, 0.5])}]  # fmt: skip


def quarter_turn_frame(x: float, y: float) -> int:
    """The quarter turn k (0 to 3) nearest the bearing atan2(y, x) of the point (x, y) from the origin."""
    return int(math.floor((math.atan2(y, x) + math.pi / 4) / (math.pi / 2))) % 4


class QuarterTurnFrame:
    """An Ant task seen from the quarter turn of the world that puts the torso within 45° of +x (a mixin).

    The agent sees and acts in the frame ``k`` (a multiple of 90°) nearest the torso's bearing from the origin:
    observations are turned by ``-k`` and actions by ``k`` (:mod:`skillbank.envs.symmetry`'s turn, legs relabelled).
    Rewards, terminations and ``info`` (the torso's world x, y) are the task's own.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._to_frame, self._from_frame = ant_quarter_turn_frames()
        super().__init__(**kwargs)

    def frame(self) -> int:
        """The quarter turn k (0 to 3) nearest the torso's bearing from the origin."""
        return quarter_turn_frame(*self.data.qpos[:2])

    def _get_obs(self) -> np.ndarray:
        return self._to_frame[self.frame()] @ super()._get_obs()

    def step(self, action: np.ndarray):
        return super().step(self._from_frame[self.frame()] @ np.asarray(action, dtype=np.float64))


class AntWalkCanonicalEnv(QuarterTurnFrame, AntWalkEnv):
    """:class:`AntWalkEnv` seen from the quarter turn of the world that puts the torso within 45° of +x.

    The walk is unchanged by the Ant's quarter turn, so it is one walk seen four ways: in the frame a state and its
    three turns are the same observation, so any critic is invariant and any policy equivariant by construction, and
    a policy's heading is learned once for all four. Near the origin the frame follows Ant-v5's reset noise, drawn
    anew each episode: a walker that goes one way in its frame goes each of the four ways equally often.
    """


class AntArenaCanonicalEnv(QuarterTurnFrame, AntArenaEnv):
    """An arena (:class:`AntArenaEnv`) seen in the same frame as :class:`AntWalkCanonicalEnv`, followed by the torso's
    world x, y (31-D): walls break the symmetry, so the frame alone would hide where they are. A walker trained in
    the canonical walk fine-tunes here, its networks widened to the two new inputs with zero weights."""

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([super()._get_obs(), self.data.qpos[:2]])
