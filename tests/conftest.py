import os
import tempfile

import gymnasium as gym
import numpy as np
import pytest
import torch

import skillbank.envs  # noqa: F401
from skillbank.nn.skill import Skill

torch.set_num_threads(1)
# Run directories of the tests' training go to a temporary folder, not ~/skillbank-runs.
os.environ["SKILLBANK_RUNS"] = tempfile.mkdtemp(prefix="skillbank-test-runs-")


def tiny_skill(seed: int = 0, algorithm: str = "sql") -> Skill:
    """An untrained skill with small networks on the MultiGoal spaces."""
    env = gym.make("skillbank/MultiGoal-v0")
    torch.manual_seed(seed)
    sampler = "svgd" if algorithm == "sql" else "gaussian"
    skill = Skill.build(
        env.observation_space, env.action_space, algorithm=algorithm, alpha=1.0, gamma=0.99,
        q_hidden=[8], critics=1 if algorithm == "sql" else 2, q_output_scale=1.0, sampler=sampler, sampler_hidden=[8],
        task={"name": "multigoal", "env_id": "skillbank/MultiGoal-v0", "env_kwargs": {}},
    )  # fmt: skip
    return skill


def actions_of(skill: Skill, seed: int = 123) -> np.ndarray:
    obs = torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 3.0]])
    with torch.no_grad():
        return skill.sample_actions(obs, 7, torch.Generator().manual_seed(seed)).numpy()


@pytest.fixture
def skill() -> Skill:
    return tiny_skill()
