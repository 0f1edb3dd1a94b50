"""The pusher of the composition paper (Haarnoja, Pong, Zhou, Dalal, Abbeel, Levine, ICRA 2018): a planar 3-DoF arm
pushes a puck across a table in zero gravity, towards a goal given per task. Our own MuJoCo model, after the
public code's environment (haarnoja/softqlearning, ``softqlearning/environments/pusher.py``):

- observation (12-D): the 3 joint angles, the 3 joint velocities, the fingertip's x, y, z and the puck's x, y, z;
- reward: ``-||goal - puck_xy||`` over the goal's given coordinates, ``- 0.1 ||a||^2``; a coordinate given as
  ``"any"`` (or None) drops out, as in the public code, so ``goal_x=-1, goal_y="any"`` rewards the puck reaching the
  line x = -1, whatever its y; the default goal is the corner (-1, -1);
- reset: the arm near its straight pose along +x, the puck uniform in x in [0.3, 1], y in [-1, -0.4], drawn again
  while within 0.45 of (1, -1); 300 steps of 0.05 s.

``info`` reports each reward term and ``goal_distance`` (the puck's distance to the goal in the goal's
coordinates) and ``arm_distance`` (the fingertip's to the puck).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

from skillbank.envs.models import model_file

# Links of 0.8, 0.6 and 0.4 m from a base at the origin reach 1.8 m: behind the puck anywhere on its way from the
# start region to the lines x = -1 and y = -1. Arm and puck collide; the links do not collide with each other.
MODEL = """
<mujoco model="skillbank-pusher">
  <compiler angle="radian"/>
  <option timestep="0.01" gravity="0 0 0"/>
  <default>
    <joint damping="1.0" armature="0.05"/>
    <geom contype="1" conaffinity="2" friction="0.5 0.005 0.0001" rgba="0.3 0.45 0.7 1"/>
    <motor ctrlrange="-1 1" ctrllimited="true" gear="3"/>
  </default>
  <visual><headlight ambient="0.3 0.3 0.3" diffuse="0.5 0.5 0.5"/></visual>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1"/>
    <geom name="table" type="plane" pos="0 0 -0.06" size="2.2 2.2 0.1" contype="0" conaffinity="0"
          rgba="0.93 0.93 0.9 1"/>
    <geom name="base" type="cylinder" size="0.08 0.05" contype="0" conaffinity="0" rgba="0.2 0.2 0.2 1"/>
    <body name="link0">
      <joint name="shoulder" type="hinge" axis="0 0 1"/>
      <geom type="capsule" fromto="0 0 0 0.8 0 0" size="0.04" mass="0.5"/>
      <body name="link1" pos="0.8 0 0">
        <joint name="elbow" type="hinge" axis="0 0 1" limited="true" range="-2.8 2.8"/>
        <geom type="capsule" fromto="0 0 0 0.6 0 0" size="0.04" mass="0.3"/>
        <body name="link2" pos="0.6 0 0">
          <joint name="wrist" type="hinge" axis="0 0 1" limited="true" range="-2.8 2.8"/>
          <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.04" mass="0.2"/>
          <geom name="fingertip" type="sphere" pos="0.4 0 0" size="0.06" mass="0.05" rgba="0.9 0.6 0.1 1"/>
        </body>
      </body>
    </body>
    <body name="puck">
      <joint name="puck_x" type="slide" axis="1 0 0" damping="3.0" armature="0"/>
      <joint name="puck_y" type="slide" axis="0 1 0" damping="3.0" armature="0"/>
      <geom name="puck" type="cylinder" size="0.1 0.04" mass="0.5" contype="2" conaffinity="1" rgba="0.8 0.2 0.2 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder"/>
    <motor joint="elbow"/>
    <motor joint="wrist"/>
  </actuator>
</mujoco>
"""
# v1: the public code's arm (haarnoja/softqlearning, models/pusher.xml, as facts: our own model). Three links of
# 0.4 m start bent (+0.785, -0.785, -1.57 rad) so that the hand hangs over the puck's start region, facing -y; the
# hand is a paddle, a 0.4 m crossbar with two 0.2 m prongs, that can hold the puck in front of it while it pushes.
# Torques up to 3, contacts without friction (condim 1), a nearly massless puck whose slide joints carry the
# inertia (armature 0.04) and damping 0.5. The reach (1.2 m to the crossbar) ends just short of the corner, 1.41 m
# away: the corner is pushed to, not carried to.
PADDLE_MODEL = """
<mujoco model="skillbank-pusher-paddle">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option timestep="0.01" gravity="0 0 0" integrator="Euler"/>
  <default>
    <joint damping="1.0" armature="0.04" limited="true"/>
    <geom contype="1" conaffinity="2" condim="1" density="300" rgba="0.3 0.45 0.7 1"/>
    <motor ctrlrange="-1 1" ctrllimited="true" gear="3"/>
  </default>
  <visual><headlight ambient="0.3 0.3 0.3" diffuse="0.5 0.5 0.5"/></visual>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1"/>
    <geom name="table" type="plane" pos="0 0 -0.12" size="2.2 2.2 0.1" contype="0" conaffinity="0"
          rgba="0.93 0.93 0.9 1"/>
    <geom name="base" type="cylinder" size="0.12 0.1" contype="0" conaffinity="0" rgba="0.2 0.2 0.2 1"/>
    <body name="link0" euler="0 0 0.785">
      <joint name="shoulder" type="hinge" axis="0 0 1" range="-2.5 2.5"/>
      <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.06"/>
      <body name="link1" pos="0.4 0 0" euler="0 0 -0.785">
        <joint name="elbow" type="hinge" axis="0 0 1" range="-2.32 2.3"/>
        <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.06"/>
        <body name="link2" pos="0.4 0 0" euler="0 0 -1.57">
          <joint name="wrist" type="hinge" axis="0 0 1" range="-2.32 2.3"/>
          <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.06"/>
          <body name="hand" pos="0.4 0 0">
            <geom name="fingertip" type="capsule" fromto="0 -0.2 0 0 0.2 0" size="0.04" rgba="0.9 0.6 0.1 1"/>
            <geom type="capsule" fromto="0 -0.2 0 0.2 -0.2 0" size="0.04" rgba="0.9 0.6 0.1 1"/>
            <geom type="capsule" fromto="0 0.2 0 0.2 0.2 0" size="0.04" rgba="0.9 0.6 0.1 1"/>
          </body>
        </body>
      </body>
    </body>
    <body name="puck">
      <joint name="puck_x" type="slide" axis="1 0 0" limited="false" damping="0.5"/>
      <joint name="puck_y" type="slide" axis="0 1 0" limited="false" damping="0.5"/>
      <geom name="puck" type="cylinder" size="0.1 0.06" mass="0.001" contype="2" conaffinity="1"
            rgba="0.8 0.2 0.2 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder"/>
    <motor joint="elbow"/>
    <motor joint="wrist"/>
  </actuator>
</mujoco>
"""
PUCK_OBSERVED = slice(9, 11)  # the puck's x, y in the observation
PUCK_LOW, PUCK_HIGH = np.array([0.3, -1.0]), np.array([1.0, -0.4])
PUCK_AWAY_FROM, PUCK_MIN_DISTANCE = np.array([1.0, -1.0]), 0.45


class PusherEnv(MujocoEnv):
    """The composition paper's pusher; ``goal_x`` and ``goal_y`` are the goal's coordinates, ``"any"`` where free.
    ``skillbank/Pusher-v0``: an arm of 1.8 m with a round fingertip, written from the paper's description."""

    model, model_name = MODEL, "pusher"
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 20}

    def __init__(
        self,
        goal_x: float | str | None = -1.0,
        goal_y: float | str | None = -1.0,
        ctrl_cost_weight: float = 0.1,
        reset_noise_scale: float = 0.1,
        **kwargs: Any,
    ) -> None:
        coordinates = [np.nan if value in (None, "any") else value for value in (goal_x, goal_y)]
        if any(isinstance(value, str) for value in coordinates):
            raise ValueError(f"a goal coordinate is a number or 'any', got {goal_x!r}, {goal_y!r}")
        if all(np.isnan(coordinates)):
            raise ValueError("give the goal at least one coordinate: goal_x, goal_y or both")
        self.goal = np.array(coordinates, dtype=float)
        self.given = ~np.isnan(self.goal)
        self.ctrl_cost_weight, self.reset_noise_scale = float(ctrl_cost_weight), float(reset_noise_scale)
        observation_space = Box(-np.inf, np.inf, shape=(12,), dtype=np.float64)
        kwargs.setdefault("default_camera_config", {"distance": 4.5, "elevation": -90.0, "azimuth": 90.0,
                                                    "lookat": np.array([0.0, -0.2, 0.0])})  # fmt: skip
        super().__init__(model_file(self.model, self.model_name), 5, observation_space=observation_space, **kwargs)

    @property
    def puck(self) -> np.ndarray:
        return self.data.qpos[3:5].copy()

    @property
    def fingertip(self) -> np.ndarray:
        return self.data.geom("fingertip").xpos.copy()

    def goal_distance(self) -> float:
        """The puck's distance to the goal in the goal's given coordinates."""
        return float(np.linalg.norm((self.goal - self.puck)[self.given]))

    def render_markers(self) -> list[dict[str, Any]]:
        """What a video draws beyond the model (:mod:`skillbank.viz.video`): the goal's lines (a point where both are
        given)."""
        green = np.array([0.1, 0.7, 0.2, 0.6])
        if self.given.all():
            return [{"type": mujoco.mjtGeom.mjGEOM_CYLINDER, "pos": np.array([*self.goal, -0.05]),
                     "size": np.array([0.15, 0.15, 0.005]), "rgba": green}]  # fmt: skip
        axis = int(self.given[1])  # 0: the line x = goal_x, 1: the line y = goal_y
        pos, size = np.zeros(3), np.array([2.2, 2.2, 0.005])
        pos[axis], size[axis], pos[2] = self.goal[axis], 0.02, -0.05
        return [{"type": mujoco.mjtGeom.mjGEOM_BOX, "pos": pos, "size": size, "rgba": green}]

    def transition_reward(
        self, observations: np.ndarray, actions: np.ndarray, next_observations: np.ndarray
    ) -> np.ndarray:
        """The reward of stored transitions (arrays of shape (..., 12), (..., 3)): what relabels another task's
        replay. The observed puck is where the last physics substep began, so this differs from :meth:`step`'s
        reward by at most one substep of the puck's motion (under 0.013 over the skills' replay)."""
        puck = np.asarray(next_observations)[..., PUCK_OBSERVED]
        distance = np.linalg.norm((self.goal - puck)[..., self.given], axis=-1)
        return -distance - self.ctrl_cost_weight * np.square(np.clip(actions, -1.0, 1.0)).sum(-1)

    def _get_obs(self) -> np.ndarray:
        puck = self.data.body("puck").xpos
        return np.concatenate([self.data.qpos[:3], self.data.qvel[:3], self.fingertip, puck])

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.do_simulation(action, self.frame_skip)
        distance = self.goal_distance()
        ctrl = self.ctrl_cost_weight * float(np.square(action).sum())
        info = {"reward_dist": -distance, "reward_ctrl": -ctrl, "goal_distance": distance,
                "arm_distance": float(np.linalg.norm(self.fingertip[:2] - self.puck))}  # fmt: skip
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), -distance - ctrl, False, False, info

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.init_qpos.copy(), self.init_qvel.copy()
        scale = self.reset_noise_scale
        qpos[:3] += self.np_random.uniform(-scale, scale, 3)
        while True:
            puck = self.np_random.uniform(PUCK_LOW, PUCK_HIGH)
            if np.linalg.norm(puck - PUCK_AWAY_FROM) >= PUCK_MIN_DISTANCE:
                break
        qpos[3:5] = puck
        qvel[:3] += self.np_random.uniform(-scale, scale, 3)
        self.set_state(qpos, qvel)
        return self._get_obs()


class PaddlePusherEnv(PusherEnv):
    """``skillbank/Pusher-v1``: the public code's arm (three 0.4 m links, a paddle for a hand, torques up to 3) and its
    control cost, 0.1 per unit of squared torque: 0.9 per unit of squared action, actions being torques / 3."""

    model, model_name = PADDLE_MODEL, "pusher-paddle"

    def __init__(self, goal_x: float | str | None = -1.0, goal_y: float | str | None = -1.0,
                 ctrl_cost_weight: float = 0.9, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(goal_x, goal_y, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
