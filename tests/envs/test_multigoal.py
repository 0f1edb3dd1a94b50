"""The MultiGoal environment against the paper's definition."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from skillbank.envs import MULTIGOAL_ID, PAPER_GOALS, MultiGoalEnv


def test_passes_gymnasium_env_checker():
    check_env(gym.make(MULTIGOAL_ID).unwrapped, skip_render_check=True)
    check_env(MultiGoalEnv(goals=[[5, 5], [-5, 5]], goal_weights=[1.0, 0.0]), skip_render_check=True)


def test_reward_dynamics_and_termination_follow_the_paper():
    env = MultiGoalEnv(init_sigma=0.0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0, 0])
    obs, reward, terminated, truncated, info = env.step(np.array([2.0, -0.5]))  # clipped to (1, -0.5)
    np.testing.assert_allclose(obs, [1.0, -0.5])
    nearest = min(np.sum((obs - np.array(g)) ** 2) for g in PAPER_GOALS)
    assert reward == pytest.approx(-30 * (1 + 0.25) - nearest)
    assert not terminated and not truncated and info["goal"] == -1
    for step in range(4):
        obs, reward, terminated, _, info = env.step(np.array([0.9, 0.125]))
        assert terminated == (step == 3)
    # At (4.6, 0): within radius 1 of (5, 0): the episode ends with the bonus.
    np.testing.assert_allclose(obs, [4.6, 0.0], atol=1e-6)
    assert info["goal"] == 0
    assert reward == pytest.approx(-30 * (0.81 + 0.015625) - 0.16 + 10, rel=1e-6)


def test_positions_are_clipped_and_episodes_last_thirty_steps():
    env = gym.make(MULTIGOAL_ID, goals=[[6.5, 6.5]], init_sigma=0.0)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = env.step(np.array([-1.0, 1.0]))
        steps += 1
        assert not terminated
    assert steps == 30 and obs.tolist() == [-7.0, 7.0]


def test_goal_weights_scale_bonus_and_select_the_distance_term():
    env = MultiGoalEnv(goals=[[5, 0], [-5, 0]], goal_weights=[0.0, 2.0], init_sigma=0.0)
    reward, goal = env.reward(np.array([[4.5, 0.0], [-4.5, 0.0]]), np.zeros((2, 2)))
    np.testing.assert_array_equal(goal, [0, 1])
    # Distance is to the rewarded goal only; the weight-0 goal ends the episode without a bonus.
    np.testing.assert_allclose(reward, [-(9.5**2), -0.25 + 20.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"goals": []}, "at least one goal"),
        ({"goal_weights": [1, 1]}, "one weight per goal"),
        ({"goal_weights": [0] * 4}, "positive"),
    ],
)
def test_bad_parameters_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiGoalEnv(**kwargs)
