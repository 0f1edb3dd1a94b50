"""Environments shipped with skillbank, registered with Gymnasium under the ``skillbank/`` namespace,
and :func:`make_env`, the one place that builds an environment from an id and keyword arguments."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from skillbank.envs.ant import HALLWAY_NARROW, HALLWAY_WIDE, UMAZE, UMAZE_GOAL
from skillbank.envs.multigoal import PAPER_GOALS, MultiGoalEnv
from skillbank.errors import SkillbankError

MULTIGOAL_ID = "skillbank/MultiGoal-v0"
PUSHER_IDS = ("skillbank/Pusher-v0", "skillbank/Pusher-v1")

# Episode lengths: Ant-v5 steps 0.05 s, so the authors' 10 s episodes are 200 steps. The walk and the hallways
# (which reward speed, 29 m long: more than 10 s of walking) keep them; the U-maze's path from the start to the
# goal is about 10.5 m, so it gets 20 s, in which a 0.5 m/s walker arrives with time to stay.
# Control and contact costs are 10x lower than Ant-v5's in the walk and in the arenas alike: the authors' walk
# charged about 0.005 per unit of squared action (florensacc/rllab-curriculum, sandbox/tuomas/mddpg), Ant-v5 0.5,
# and at 0.5 a max-ent walker's exploration noise cost it 0.7 per step, more than its walking earned (SQL, alpha
# 0.03, 300k steps).
ANT_COSTS = {"ctrl_cost_weight": 0.05, "contact_cost_weight": 5e-5}
# The U-maze's v1 is the authors' (florensacc/rllab-curriculum, sandbox/haoran/mddpg): a survive bonus of 0.05 per
# step instead of Ant-v5's healthy reward of 1 (with 1, standing still at the start earned 449 of v0's threshold of
# 1000, an attractor that fine-tuning ended near), and control and contact costs 10x lower than the walk's.
UMAZE_V1 = {"walls": UMAZE, "goal": UMAZE_GOAL, "healthy_reward": 0.05, "ctrl_cost_weight": 0.005,
            "contact_cost_weight": 5e-6}  # fmt: skip
ENVIRONMENTS: dict[str, tuple[str, int, dict[str, Any]]] = {
    MULTIGOAL_ID: ("multigoal:MultiGoalEnv", 30, {}),
    "skillbank/AntWalk-v0": ("ant:AntWalkEnv", 200, ANT_COSTS),
    "skillbank/AntWalkCanonical-v0": ("ant:AntWalkCanonicalEnv", 200, ANT_COSTS),
    "skillbank/AntHallwayWide-v0": ("ant:AntArenaEnv", 200, {"walls": HALLWAY_WIDE, **ANT_COSTS}),
    "skillbank/AntHallwayNarrow-v0": ("ant:AntArenaEnv", 200, {"walls": HALLWAY_NARROW, **ANT_COSTS}),
    "skillbank/AntUMaze-v0": ("ant:AntArenaEnv", 400, {"walls": UMAZE, "goal": UMAZE_GOAL, **ANT_COSTS}),
    "skillbank/AntUMaze-v1": ("ant:AntArenaEnv", 400, UMAZE_V1),
    # The same arenas in the canonical walk's frame, with the world x, y appended (31-D)
    "skillbank/AntHallwayWideCanonical-v0": ("ant:AntArenaCanonicalEnv", 200, {"walls": HALLWAY_WIDE, **ANT_COSTS}),
    "skillbank/AntHallwayNarrowCanonical-v0": ("ant:AntArenaCanonicalEnv", 200, {"walls": HALLWAY_NARROW, **ANT_COSTS}),
    "skillbank/AntUMazeCanonical-v0": (
        "ant:AntArenaCanonicalEnv",
        400,
        {"walls": UMAZE, "goal": UMAZE_GOAL, **ANT_COSTS},
    ),
    "skillbank/AntUMazeCanonical-v1": ("ant:AntArenaCanonicalEnv", 400, UMAZE_V1),
    # The composition paper's pusher: 300 steps of 0.05 s; the goal is given per task (goal_x, goal_y)
    "skillbank/Pusher-v0": ("pusher:PusherEnv", 300, {}),
    # v1: the public code's arm and control cost (skillbank/envs/pusher.py says what differs)
    "skillbank/Pusher-v1": ("pusher:PaddlePusherEnv", 300, {}),
}
for env_id, (entry_point, steps, kwargs) in ENVIRONMENTS.items():
    if env_id not in gym.registry:
        gym.register(env_id, f"skillbank.envs.{entry_point}", max_episode_steps=steps, kwargs=kwargs)


def make_env(env: gym.Env | str, env_kwargs: dict[str, Any] | None = None, **options: Any) -> gym.Env:
    """``env`` itself, or the registered environment ``env`` built with ``env_kwargs`` (the task's
    keyword arguments) and ``options`` (Gymnasium's own, e.g. ``max_episode_steps``)."""
    if not isinstance(env, str):
        return env
    return gym.make(env, **(env_kwargs or {}), **options)


def make_task_env(task: dict[str, Any], **options: Any) -> gym.Env:
    """The environment of a skill's ``task`` description (its ``env_id`` and ``env_kwargs``)."""
    if not task.get("env_id"):
        raise SkillbankError("this skill records no environment id; pass an environment explicitly")
    return make_env(task["env_id"], task.get("env_kwargs"), **options)


__all__ = ["PUSHER_IDS", "MULTIGOAL_ID", "PAPER_GOALS", "MultiGoalEnv", "make_env", "make_task_env"]
