"""The Ant tasks: valid Gymnasium environments, walls that hold, and a flipped body that ends the episode."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import skillbank.envs  # noqa: F401

ANT_TASKS = ["skillbank/AntWalk-v0", "skillbank/AntHallwayWide-v0", "skillbank/AntHallwayNarrow-v0",
             "skillbank/AntUMaze-v0", "skillbank/AntUMaze-v1"]  # fmt: skip


@pytest.mark.parametrize("env_id", ANT_TASKS)
def test_the_ant_tasks_pass_gymnasiums_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (29,)  # Ant-v5's 27 without contact forces, then the torso's x, y


def pushed_towards(env_id: str, velocity: tuple[float, float], steps: int = 60) -> np.ndarray:
    """The torso's path when it is shoved at ``velocity`` (m/s) before every step, legs relaxed."""
    env = gym.make(env_id)
    env.reset(seed=0)
    base, path = env.unwrapped, []
    for _ in range(steps):
        qvel = base.data.qvel.copy()
        qvel[:2] = velocity
        base.set_state(base.data.qpos.copy(), qvel)
        _, _, terminated, truncated, info = env.step(np.zeros(8))
        path.append((info["x_position"], info["y_position"]))
        if terminated or truncated:
            break
    return np.array(path)


def test_a_walk_into_a_wall_does_not_pass_through_it():
    free = pushed_towards("skillbank/AntWalk-v0", (0.0, 3.0))
    assert free[:, 1].max() > 3.0  # on empty ground the shove carries the torso past where the wall would be
    walled = pushed_towards("skillbank/AntHallwayWide-v0", (0.0, 3.0))
    assert walled[:, 1].max() < 1.5  # the wall's face is at y = 1.5
    back = pushed_towards("skillbank/AntUMaze-v0", (-3.0, 0.0))
    assert back[:, 0].min() > -1.0  # the U-maze's back wall at x = -1


def upside_down(env):
    env.reset(seed=0)
    base = env.unwrapped
    qpos = base.data.qpos.copy()
    qpos[2], qpos[3:7] = 0.5, (0.0, 1.0, 0.0, 0.0)  # half a turn about x, torso within the healthy height range
    base.set_state(qpos, np.zeros_like(base.data.qvel))
    return env.step(np.zeros(8))


def test_a_flipped_body_ends_the_episode():
    _, _, terminated, _, _ = upside_down(gym.make("skillbank/AntWalk-v0"))
    assert terminated
    _, _, terminated, _, _ = upside_down(gym.make("Ant-v5"))
    assert not terminated  # Ant-v5 alone does not notice (Gymnasium issue 1464)


def test_the_u_maze_rewards_the_goal_and_reports_success():
    env = gym.make("skillbank/AntUMaze-v0")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(8))
    assert info["reward_goal"] == pytest.approx(0.1, rel=0.2) and not info["success"]  # 1% of 10 at the start
    base = env.unwrapped
    qpos = base.data.qpos.copy()
    qpos[:2] = (0.2, 6.6)
    base.set_state(qpos, np.zeros_like(base.data.qvel))
    _, _, _, _, info = env.step(np.zeros(8))
    assert info["success"] and info["reward_goal"] > 9


def test_the_fair_u_maze_pays_the_authors_survive_bonus_so_standing_still_earns_little():
    returns = {}
    for version in ("v0", "v1"):
        env = gym.make(f"skillbank/AntUMaze-{version}")
        env.reset(seed=0)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, info = env.step(np.zeros(8))
            total, done = total + reward, terminated or truncated
        returns[version] = total
        assert info["reward_survive"] == (1.0 if version == "v0" else 0.05)
    # 400 steps at the start: the goal's 0.1 a step, and the survive bonus
    assert returns["v0"] == pytest.approx(449, abs=2) and returns["v1"] == pytest.approx(70, abs=2)


def test_a_body_in_a_plane_reports_its_speed_along_x():
    # HalfCheetah's steps report x_position only: its rollouts move along x, with y 0, and evaluate
    from skillbank import SAC
    from skillbank.runs.evaluate import evaluate

    env = gym.make("HalfCheetah-v5", max_episode_steps=20)
    skill = SAC(env, hidden=[8], learning_starts=10, buffer_size=100).learn(20).skill
    summary = evaluate(skill, episodes=2, env=env)
    assert summary["mean_speed"] > 0 and summary["mean_distance"] > 0 and sum(summary["octant_counts"]) == 2
