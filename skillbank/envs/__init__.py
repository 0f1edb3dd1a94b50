"""Environments shipped with skillbank, registered with Gymnasium under the ``skillbank/`` namespace."""

import gymnasium as gym

from skillbank.envs.multigoal import PAPER_GOALS, MultiGoalEnv

MULTIGOAL_ID = "skillbank/MultiGoal-v0"

if MULTIGOAL_ID not in gym.registry:
    gym.register(id=MULTIGOAL_ID, entry_point="skillbank.envs.multigoal:MultiGoalEnv", max_episode_steps=30)

__all__ = ["MULTIGOAL_ID", "PAPER_GOALS", "MultiGoalEnv"]
