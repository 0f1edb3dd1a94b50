"""Reuse a walker in an arena by steering it (``--recipe steer``): the walker stays frozen, and SAC learns, in the
arena, only which way to send it (:mod:`skillbank.nn.steered`).

The heading policy is trained in :class:`SteeringEnv`, the arena whose actions are headings: each step, the frozen
walker turns the heading and its own noise into the body's torques. The skill that is evaluated and registered
(:attr:`SteeredSAC.policy`) acts in the arena itself, with the body's torques, and carries the walker's sampler
inside it, so it rolls out, renders and evaluates like any other skill. One heading per arena step keeps the
budget in the arena's own steps, as from-scratch methods count theirs.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.spaces import Box

from skillbank.algos.sac import SAC
from skillbank.envs.ant import AntWalkEnv, QuarterTurnFrame
from skillbank.errors import SkillbankError
from skillbank.nn.networks import HeadsSampler
from skillbank.nn.skill import Skill, box_to_json
from skillbank.nn.steered import HEADING_DIM, WALKER_OBS_DIM, SteeredQ, SteeredSampler, SteeredWalker

CANONICAL_WALK, WORLD_WALK = "skillbank/AntWalkCanonical-v0", "skillbank/AntWalk-v0"


def steered_walker(walker: Skill) -> SteeredWalker:
    """The frozen, steerable copy of ``walker`` (a skill of the canonical walk), or an error that says what can be
    steered. Walkers of the world-frame walk are refused: they walk where their body faces whatever origin they are
    shown (``experiments/walker_origin_steering.py``: the shipped ones, alignment with the heading -0.05 to 0.11)."""
    env_id = walker.description.get("task", {}).get("env_id")
    if env_id != CANONICAL_WALK:
        hint = " (whatever origin it is shown, a walker of the world-frame walk goes where its body faces)"
        raise SkillbankError(
            f"--recipe steer steers a walker of {CANONICAL_WALK} (ant-walk-canonical: it walks away from the origin it "
            f"sees), not a skill of {env_id}{hint if env_id == WORLD_WALK else ''}; e.g. ant-walk-sql@3"
        )
    sampler = walker.sampler.base if isinstance(walker.sampler, HeadsSampler) else walker.sampler
    return SteeredWalker(sampler, canonical=True).requires_grad_(False)


def check_arena(env: gym.Env, task: str) -> None:
    """Refuse a task that is not an Ant arena seen in the world frame (the steered walker reads its first 29
    coordinates as the walk's)."""
    base, width = env.unwrapped, env.observation_space.shape[0]
    if not isinstance(base, AntWalkEnv) or isinstance(base, QuarterTurnFrame) or width < WALKER_OBS_DIM:
        raise SkillbankError(
            f"--recipe steer steers the Ant in an arena seen in the world frame (ant-umaze, ant-hallway-wide, ...); "
            f"{task} is not one"
        )


class SteeringEnv(gym.Wrapper):
    """An Ant arena whose action is a heading (a vector in ``[-1, 1]^2``; its angle is used): the frozen walker turns
    it into torques for one step. The walker's noise comes from the arena's own random generator, so that a run
    restored from a checkpoint (which keeps that generator) goes on exactly."""

    def __init__(self, env: gym.Env, walker: SteeredWalker) -> None:
        super().__init__(env)
        self.walker = walker
        self.action_space = Box(-1.0, 1.0, shape=(HEADING_DIM,), dtype=np.float32)

    @torch.no_grad()
    def step(self, action: np.ndarray):
        base = self.env.unwrapped
        noise = base.np_random.standard_normal(self.walker.act_dim)
        torques = self.walker(  # the observation is the simulator's now, also right after a checkpoint's restore
            torch.as_tensor(base._get_obs(), dtype=torch.float32).reshape(1, -1),
            torch.as_tensor(np.asarray(action), dtype=torch.float32).reshape(1, 1, HEADING_DIM),
            torch.as_tensor(noise, dtype=torch.float32).reshape(1, 1, -1),
        )[0, 0].numpy()
        return self.env.step(torques)


class SteeredSAC(SAC):
    """SAC learning a heading policy in :class:`SteeringEnv`; :attr:`policy` is the skill that acts in the arena
    (heading policy, then the steered walker), sharing the heading policy's networks as they train."""

    def __init__(self, env: SteeringEnv, *args: Any, walker_ref: str | None = None, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        if self.config.ou_sigma:
            raise SkillbankError("--recipe steer explores with the heading policy's own noise; leave ou_sigma at 0")
        arena = env.env
        steering = {"walker": walker_ref, "radius": env.walker.radius, "gain": env.walker.gain}
        description = {**self.skill.description, "observation_space": box_to_json(arena.observation_space),
                       "action_space": box_to_json(arena.action_space), "steering": steering}  # fmt: skip
        sampler = SteeredSampler(self.skill.sampler, env.walker.to(self.device))
        self._steered = Skill(SteeredQ(self.skill.q, arena.action_space.shape[0]), sampler, description)

    @property
    def policy(self) -> Skill:
        """The skill that acts in the arena: what is evaluated and registered."""
        self._steered.description.update(
            {k: v for k, v in self.skill.description.items() if k not in ("observation_space", "action_space")}
        )
        return self._steered

    @torch.no_grad()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """A heading from the heading policy (collection acts in :class:`SteeringEnv`)."""
        return self.skill.act_normalised(obs, self.rng)


def build_steered(spec: dict[str, Any], walker: Skill, arena: gym.Env) -> SteeredSAC:
    """The algorithm of a ``--recipe steer`` job: a fresh heading policy over the frozen ``walker`` in ``arena``."""
    check_arena(arena, spec["task_name"])
    env = SteeringEnv(arena, steered_walker(walker))
    config = SAC.config_class.from_dict(spec["config"])
    algo = SteeredSAC(env, config, seed=spec["seed"], compile=spec["compile"], device=spec["device"],
                      walker_ref=spec.get("pretrained"))  # fmt: skip
    algo.skill.description["task"] = {"name": spec["task_name"], "env_id": spec["env_id"],
                                      "env_kwargs": spec["env_kwargs"]}  # fmt: skip
    algo.skill.description["pretraining"] = walker.description.get("training")
    return algo


__all__ = ["SteeredSAC", "SteeringEnv", "build_steered", "check_arena", "steered_walker"]
