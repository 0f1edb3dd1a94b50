"""A walking skill steered by the origin it sees: a heading command for walkers rewarded for their distance
from the origin.

``skillbank/AntWalk-v0`` and its canonical frame reward the torso's progress away from the origin, and show the
walker the torso's x, y: where a walker goes is set by where it believes the origin is. :class:`SteeredWalkerEnv`
tells a frozen walker that the origin lies ``radius`` metres behind it, opposite a commanded heading ``theta``,
so that it walks towards ``theta``; an action of the wrapped environment is that heading, as a 2-D vector (its
angle is used), held for ``hold`` steps. The walker's torques are scaled by ``gain``: below 1, it hops less and
ends fewer episodes above the Ant's healthy height. Hierarchical reuse of a max-ent skill, as in Haarnoja,
Hartikainen, Abbeel and Levine, "Latent Space Policies for Hierarchical Reinforcement Learning" (ICML 2018), with
the skill's own task coordinate as the interface instead of its noise (which does not steer these walkers).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.spaces import Box

from skillbank.envs.ant import quarter_turn_frame
from skillbank.envs.symmetry import ant_quarter_turn
from skillbank.errors import SkillbankError

WALKER_ENVS = {"skillbank/AntWalk-v0": False, "skillbank/AntWalkCanonical-v0": True}  # id: seen in the quarter turn
POSITION = slice(27, 29)  # the torso's x, y in the walkers' 29-D observation


class SteeredWalker:
    """A frozen walker (a :class:`~skillbank.nn.skill.Skill` trained on ``skillbank/AntWalk-v0`` or its canonical
    frame) that walks towards a commanded heading: :meth:`act` takes the arena's world-frame observation (whose
    first 29 coordinates are the walk's) and a heading in radians."""

    def __init__(self, walker, radius: float = 1.0, gain: float = 0.6) -> None:
        env_id = walker.description["task"]["env_id"]
        if env_id not in WALKER_ENVS:
            raise SkillbankError(
                f"a steered walker is a skill of {' or '.join(WALKER_ENVS)} (rewarded for its distance from the "
                f"origin), not of {env_id}"
            )
        if not radius > 0 or not 0 < gain <= 1:
            raise SkillbankError(f"radius must be > 0 and gain in (0, 1]; got radius {radius}, gain {gain}")
        self.walker, self.radius, self.gain = walker, float(radius), float(gain)
        self.canonical = WALKER_ENVS[env_id]
        turn_obs, turn_act = ant_quarter_turn()
        self._to_frame = [np.linalg.matrix_power(turn_obs, (4 - k) % 4) for k in range(4)]
        self._from_frame = [np.linalg.matrix_power(turn_act, k) for k in range(4)]

    @torch.no_grad()
    def act(self, obs: np.ndarray, heading: float, generator: torch.Generator | None = None) -> np.ndarray:
        seen = np.array(obs[:29], dtype=np.float64)
        seen[POSITION] = self.radius * np.cos(heading), self.radius * np.sin(heading)
        k = quarter_turn_frame(*seen[POSITION]) if self.canonical else 0
        action = self.walker.act(self._to_frame[k] @ seen, generator)
        return self.gain * (self._from_frame[k] @ action)


class SteeredWalkerEnv(gym.Wrapper):
    """``env`` (an Ant arena in the world frame) driven by a steered walker: an action is a heading vector in
    ``[-1, 1]^2``, held for ``hold`` steps; the reward is the sum of theirs, ``info["success"]`` whether any of
    them succeeded. Observations are the arena's."""

    def __init__(self, env: gym.Env, walker, hold: int = 5, radius: float = 1.0, gain: float = 0.6) -> None:
        super().__init__(env)
        self.steered, self.hold = SteeredWalker(walker, radius, gain), int(hold)
        self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._obs: np.ndarray | None = None
        self.inner_steps = 0
        self._generator = torch.Generator()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._generator.manual_seed(seed)
        self._obs, info = self.env.reset(seed=seed, options=options)
        return self._obs, info

    def step(self, action: np.ndarray):
        heading = float(np.arctan2(action[1], action[0]))
        total, success = 0.0, False
        for _ in range(self.hold):
            self._obs, reward, terminated, truncated, info = self.env.step(
                self.steered.act(self._obs, heading, self._generator)
            )
            self.inner_steps += 1
            total += float(reward)
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
        info["success"] = success
        return self._obs, total, terminated, truncated, info
