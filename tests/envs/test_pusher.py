"""The pusher: its observation, its reward term by term, a goal coordinate left free, its reset and its length."""

import numpy as np
import pytest

from skillbank.nn.skill import Skill
from skillbank.runs.evaluate import evaluate
from skillbank.runs.tasks import load_task


@pytest.mark.parametrize("task, given", [("pusher-x", [True, False]), ("pusher-y", [False, True]),
                                         ("pusher-xy", [True, True])])  # fmt: skip
def test_the_reward_is_the_distance_over_the_goals_coordinates_and_the_control_cost(task, given):
    env = load_task(task).make_env()
    obs, _ = env.reset(seed=3)
    base = env.unwrapped
    assert obs.shape == (12,) and base.given.tolist() == given
    assert np.allclose(obs[9:11], base.puck) and np.allclose(obs[6:8], base.fingertip[:2])
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 3)
        obs, reward, terminated, truncated, info = env.step(action)
        offset = (np.array([-1.0, -1.0]) - obs[9:11])[given]
        assert info["goal_distance"] == pytest.approx(np.linalg.norm(offset))
        assert reward == pytest.approx(-np.linalg.norm(offset) - base.ctrl_cost_weight * np.square(action).sum())
        assert reward == pytest.approx(info["reward_dist"] + info["reward_ctrl"]) and not terminated


def test_the_puck_starts_in_its_region_away_from_the_corner_and_an_episode_is_300_steps():
    env = load_task("pusher-x").make_env()
    for seed in range(200):
        env.reset(seed=seed)
        puck = env.unwrapped.puck
        assert 0.3 <= puck[0] <= 1 and -1 <= puck[1] <= -0.4 and np.linalg.norm(puck - [1, -1]) >= 0.45
    steps, done = 0, False
    while not done:
        *_, terminated, truncated, _ = env.step(np.zeros(3))
        steps, done = steps + 1, terminated or truncated
    assert steps == 300 and env.unwrapped.dt == pytest.approx(0.05)


def test_the_arm_pushes_the_puck():
    env = load_task("pusher-xy").make_env()
    env.reset(seed=1)
    start = env.unwrapped.puck
    for _ in range(100):  # the shoulder sweeps clockwise through the start region
        env.step(np.array([-1.0, 0.0, 0.0]))
    assert np.linalg.norm(env.unwrapped.puck - start) > 0.5


def test_a_goal_needs_a_coordinate():
    from skillbank.envs.pusher import PusherEnv

    with pytest.raises(ValueError, match="at least one coordinate"):
        PusherEnv(goal_x="any", goal_y=None)


def pusher_skill(name: str) -> Skill:
    """An untrained tiny SQL skill of a pusher task."""
    task = load_task(name)
    env = task.make_env()
    return Skill.build(env.observation_space, env.action_space, algorithm="sql", alpha=1.0, gamma=0.99, q_hidden=[8],
                       critics=1, q_output_scale=1.0, sampler="svgd", sampler_hidden=[8],
                       task={"name": name, "env_id": task.env_id, "env_kwargs": task.env_kwargs})  # fmt: skip


def test_eval_on_the_pusher_reports_the_final_goal_distance():
    env = load_task("pusher-y").make_env()
    skill = pusher_skill("pusher-y")
    metrics = evaluate(skill, episodes=2, env=env)
    assert 0 <= metrics["final_goal_distance"] < 5 and "success_rate" not in metrics
    assert 0 <= metrics["median_final_goal_distance"] < 5


def test_the_sum_of_the_two_line_skills_is_evaluated_at_their_corner():
    from skillbank.composition.compose import combined_task

    skills = [pusher_skill(name) for name in ("pusher-x", "pusher-y")]
    combined = combined_task(skills, "sum", [1.0, 1.0])
    assert combined["env_kwargs"] == {"goal_x": -1.0, "goal_y": -1.0} == load_task("pusher-xy").env_kwargs


@pytest.mark.parametrize("env_id, ctrl_cost_weight, reach", [("skillbank/Pusher-v0", 0.1, 1.8),
                                                             ("skillbank/Pusher-v1", 0.9, 1.2)])  # fmt: skip
def test_both_versions_build_with_their_arm_and_control_cost(env_id, ctrl_cost_weight, reach):
    """v0 (the arm the first pusher skills were trained on) keeps its meaning beside v1, the public code's arm."""
    import itertools

    import mujoco

    from skillbank.envs import make_env

    env = make_env(env_id, {"goal_x": -1.0, "goal_y": "any"})
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    assert obs.shape == (12,) and base.ctrl_cost_weight == ctrl_cost_weight
    farthest = 0.0
    for angles in itertools.product(*[np.linspace(low, high, 15) for low, high in base.model.jnt_range[:3]]):
        base.data.qpos[:3] = angles if base.model.jnt_limited[0] else [0.0, *angles[1:]]
        mujoco.mj_kinematics(base.model, base.data)
        farthest = max(farthest, float(np.linalg.norm(base.fingertip[:2])))
    assert farthest == pytest.approx(reach, abs=0.02)


def test_a_skill_of_one_pusher_version_is_not_rolled_out_on_a_task_of_the_other():
    from skillbank import SkillbankError
    from skillbank.runs.evaluate import task_env

    skill = pusher_skill("pusher-y")
    skill.description["task"]["env_id"] = "skillbank/Pusher-v0"  # as the first shipped pusher skills record
    with pytest.raises(SkillbankError, match="Pusher-v1 and the skill was trained on skillbank/Pusher-v0"):
        task_env(skill, "pusher-x")
    assert task_env(pusher_skill("pusher-y"), "pusher-x").unwrapped.given.tolist() == [True, False]


def test_the_reward_of_stored_transitions_is_the_steps_within_a_substep_of_the_puck():
    env = load_task("pusher-y").make_env()
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(1)
    stored, transitions = [], []
    for _ in range(120):  # the shoulder sweeps the puck along, with noise: the puck moves
        action = np.clip(np.array([-0.8, 0.0, 0.0]) + rng.normal(0, 0.5, 3), -1, 1)
        next_obs, reward, *_ = env.step(action)
        stored.append(reward)
        transitions.append((obs, action, next_obs))
        obs = next_obs
    observations, actions, next_observations = (np.array(column) for column in zip(*transitions))
    relabelled = env.unwrapped.transition_reward(observations, actions, next_observations)
    assert relabelled.shape == (120,) and np.abs(relabelled - np.array(stored)).max() < 0.02
    assert np.ptp(next_observations[:, 10]) > 0.1  # the puck moved, so the check is not of a resting puck
