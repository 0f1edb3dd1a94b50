"""The Ant's quarter turn is a symmetry of ant-walk: MuJoCo steps a turned state with the turned action to the
turned next state and pays the same reward, the start pose is fixed, and training on turned transitions is refused
where walls break it."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import skillbank.envs  # noqa: F401
from skillbank import DDPG, SAC, SQL
from skillbank.algos.augmentation import Augmentation
from skillbank.envs.symmetry import ant_quarter_turn
from skillbank.errors import ConfigError
from skillbank.runs.finetune import finetune

TURN, ACT = ant_quarter_turn()


def state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qpos and qvel of ant-walk's observation (it holds both whole: x, y at its end)."""
    return np.concatenate([obs[27:29], obs[:13]]), obs[13:27].copy()


def walked(env, rng: np.random.Generator, steps: int) -> np.ndarray:
    """The observation after ``steps`` random actions from the reset of seed 0: away from the start, in motion."""
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-1, 1, 8))
    return obs


def test_mujoco_steps_a_turned_ant_to_the_turned_next_state_with_the_same_reward():
    env = gym.make("skillbank/AntWalk-v0").unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(30):  # away from the start, legs and torso in motion
        obs, *_ = env.step(rng.uniform(-1, 1, 8))
    actions = rng.uniform(-1, 1, (20, 8))
    paths = []
    for k in range(4):
        env.set_state(*state(np.linalg.matrix_power(TURN, k) @ obs))
        paths.append([env.step(np.linalg.matrix_power(ACT, k) @ a)[:3] for a in actions])
    for k, path in enumerate(paths[1:], start=1):
        for (base, reward, done), (turned, turned_reward, turned_done) in zip(paths[0], path):
            np.testing.assert_allclose(np.linalg.matrix_power(TURN, k) @ base, turned, atol=1e-8)
            assert turned_reward == pytest.approx(reward, abs=1e-9) and turned_done == done
    wrong = TURN.copy()
    wrong[8, 6] *= -1  # leg 1's ankle turned to leg 2's without its sign change: no longer a symmetry
    env.set_state(*state(wrong @ obs))
    assert np.abs(wrong @ paths[0][0][0] - env.step(ACT @ actions[0])[0]).max() > 1e-3


def test_the_canonical_walk_sees_a_state_and_its_turns_alike_and_steps_them_alike():
    env = gym.make("skillbank/AntWalkCanonical-v0").unwrapped
    world = gym.make("skillbank/AntWalk-v0").unwrapped
    rng = np.random.default_rng(1)
    obs = walked(world, rng, 30)
    actions = rng.uniform(-1, 1, (20, 8))
    paths = []
    for k in range(4):  # the same world state turned four ways: one state of the canonical walk
        env.set_state(*state(np.linalg.matrix_power(TURN, k) @ obs))
        seen = env._get_obs()
        x, y = seen[27:29]
        assert abs(np.arctan2(y, x)) <= np.pi / 4 and np.hypot(x, y) == pytest.approx(np.hypot(*obs[27:29]))
        paths.append([seen] + [env.step(a)[:3] for a in actions])
    for path in paths[1:]:
        np.testing.assert_allclose(path[0], paths[0][0], atol=1e-9)
        for (base, reward, done), (other, other_reward, other_done) in zip(paths[0][1:], path[1:]):
            np.testing.assert_allclose(other, base, atol=1e-8)
            assert other_reward == pytest.approx(reward, abs=1e-9) and other_done == done
    # and the world moved as the frame says: the canonical action, turned into the world's, walks the walk
    env.set_state(*state(obs))
    world.set_state(*state(obs))
    k = env.frame()
    for a in actions[:5]:
        assert env.frame() == k  # (no diagonal crossed in five steps from here)
        turned, reward, *_ = env.step(a)
        moved, world_reward, *_ = world.step(np.linalg.matrix_power(ACT, k) @ a)
        np.testing.assert_allclose(np.linalg.matrix_power(TURN, k) @ turned, moved, atol=1e-9)
        assert reward == pytest.approx(world_reward, abs=1e-12)


def test_the_quarter_turn_has_order_four_and_fixes_the_start_pose():
    assert np.allclose(np.linalg.matrix_power(TURN, 4), np.eye(29))
    assert not np.allclose(np.linalg.matrix_power(TURN, 2), np.eye(29))
    env = gym.make("skillbank/AntWalk-v0", reset_noise_scale=0.0).unwrapped
    start, _ = env.reset(seed=0)
    assert np.allclose(TURN @ start, start)


def test_augmentation_turns_each_transition_by_its_own_element_and_keeps_rewards():
    augment = Augmentation("ant-c4", torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    obs, next_obs = torch.randn(64, 29, generator=g), torch.randn(64, 29, generator=g)
    actions, rewards, terminals = torch.rand(64, 8, generator=g), torch.randn(64, generator=g), torch.zeros(64)
    o, a, r, o2, t = augment((obs, actions, rewards, next_obs, terminals), torch.Generator().manual_seed(1))
    assert torch.equal(r, rewards) and torch.equal(t, terminals)
    turns = [torch.as_tensor(np.linalg.matrix_power(TURN, k), dtype=torch.float32) for k in range(4)]
    elements = [next(k for k in range(4) if torch.allclose(turns[k] @ obs[i], o[i], atol=1e-6)) for i in range(64)]
    assert len(set(elements)) == 4  # drawn per transition
    for i, k in enumerate(elements):
        assert torch.allclose(turns[k] @ next_obs[i], o2[i], atol=1e-6)
        action_turn = torch.as_tensor(np.linalg.matrix_power(ACT, k), dtype=torch.float32)
        assert torch.allclose(action_turn @ actions[i], a[i], atol=1e-6)


@pytest.mark.parametrize("cls", [SQL, SAC], ids=["sql", "sac"])
def test_training_on_turned_transitions_runs_in_the_walk_and_is_refused_among_walls(cls):
    tiny = dict(hidden=[16, 16], learning_starts=20, buffer_size=500, batch_size=16, symmetry="ant-c4")
    extra = dict(kernel_particles=4, value_particles=4) if cls is SQL else {}
    algo = cls("skillbank/AntWalk-v0", seed=0, **tiny, **extra).learn(40)
    assert algo.num_updates == 21 and algo.skill.description["hyperparameters"]["symmetry"] == "ant-c4"
    tuned = finetune(algo.skill, "ant-hallway-narrow", steps=30, warmup=20)  # the walk's symmetry is left behind
    assert tuned.augment is None and tuned.config.symmetry == "none"
    with pytest.raises(ConfigError, match="holds in skillbank/AntWalk-v0 only"):
        cls("skillbank/AntHallwayNarrow-v0", **tiny, **extra)
    with pytest.raises(ConfigError, match="unknown symmetry 'ant-d4'"):
        cls("skillbank/AntWalk-v0", **{**tiny, "symmetry": "ant-d4"}, **extra)


def test_a_canonical_arena_is_the_arena_in_the_walk_s_frame_plus_the_world_position():
    arena = gym.make("skillbank/AntUMaze-v0").unwrapped
    canonical = gym.make("skillbank/AntUMazeCanonical-v0").unwrapped
    rng = np.random.default_rng(2)
    obs = walked(arena, rng, 20)
    qpos, qvel = state(obs)
    qpos[:2] = (0.1, 1.0)  # north of the start, inside the maze: the frame of a quarter turn
    for env in (arena, canonical):
        env.set_state(qpos, qvel)
    assert canonical.frame() == 1
    seen, world = canonical._get_obs(), arena._get_obs()
    np.testing.assert_allclose(seen[:29], np.linalg.matrix_power(TURN, 3) @ world, atol=1e-12)
    np.testing.assert_allclose(seen[29:], qpos[:2])
    for a in rng.uniform(-1, 1, (5, 8)):
        k = canonical.frame()
        seen, reward, *_ = canonical.step(a)
        world, world_reward, *_ = arena.step(np.linalg.matrix_power(ACT, k) @ a)
        np.testing.assert_allclose(seen[29:], world[27:29], atol=1e-12)
        np.testing.assert_allclose(np.linalg.matrix_power(TURN, canonical.frame()) @ seen[:29], world, atol=1e-9)
        assert reward == pytest.approx(world_reward, abs=1e-12)


def test_a_walker_of_the_canonical_walk_fine_tunes_in_a_canonical_arena():
    tiny = dict(hidden=[16, 16], learning_starts=20, buffer_size=500, batch_size=16, kernel_particles=4)
    walker = SQL("skillbank/AntWalkCanonical-v0", seed=0, value_particles=4, **tiny).learn(40)
    tuned = finetune(walker.skill, "ant-hallway-narrow-canonical", steps=30, warmup=20)
    assert tuned.skill.q.obs_dim == 31 and tuned.num_updates == 11


@pytest.mark.parametrize("cls", [SQL, SAC, DDPG], ids=["sql", "sac", "ddpg"])
def test_a_turned_skill_acts_in_the_turned_world_as_the_skill_does_in_the_world(cls):
    from skillbank.algos.augmentation import turned

    extra = dict(kernel_particles=4, value_particles=4) if cls is SQL else {}
    tiny = dict(hidden=[16, 16], learning_starts=20, buffer_size=500, batch_size=16)
    skill = cls("skillbank/AntWalk-v0", seed=0, **tiny, **extra).learn(40).skill
    g = torch.Generator().manual_seed(0)
    obs, actions = torch.randn(5, 29, generator=g), torch.rand(5, 3, 8, generator=g) * 2 - 1
    noise = torch.randn(5, 3, 8, generator=g)
    power = lambda m, k: torch.as_tensor(np.linalg.matrix_power(m, k % 4), dtype=torch.float32)  # noqa: E731
    for k in (1, 2, 3, 5):
        turn = turned(skill, "ant-c4", k)
        back_obs, back_act, act = power(TURN, -k), power(ACT, -k), power(ACT, k)
        with torch.no_grad():
            expected_q = skill.q(obs @ back_obs.T, actions @ back_act.T)
            torch.testing.assert_close(turn.q(obs, actions), expected_q, atol=1e-4, rtol=1e-5)
            expected = skill.sampler(obs @ back_obs.T, noise) @ act.T  # the noise turned with the action
            torch.testing.assert_close(turn.sampler(obs, noise @ act.T), expected, atol=1e-5, rtol=1e-5)
        assert "metrics" not in turn.description
    with torch.no_grad():
        torch.testing.assert_close(turned(skill, "ant-c4", 4).sampler(obs, noise), skill.sampler(obs, noise))
    arena = finetune(skill, "ant-hallway-narrow", steps=20, warmup=20).skill  # walls break the symmetry
    with pytest.raises(ConfigError, match="holds in skillbank/AntWalk-v0 only"):
        turned(arena, "ant-c4", 1)


def test_the_turn_command_registers_the_turned_walker_with_its_lineage(tmp_path, capsys):
    from skillbank import Registry
    from skillbank.cli.main import main

    tiny = dict(hidden=[16, 16], learning_starts=20, buffer_size=500, batch_size=16)
    registry = Registry(tmp_path)
    ref = registry.register(SAC("skillbank/AntWalk-v0", seed=0, **tiny).learn(30).skill, "walker")
    args = ["turn", "walker", "--by", "1", "--name", "walker-north", "--episodes", "2", "--store", str(tmp_path)]
    assert main(args) == 0 and "registered walker-north@1" in capsys.readouterr().out
    info = registry.info("walker-north")
    assert [(p["ref"], p["relation"]) for p in info["parents"]] == [(ref, "turned-from")]
    assert main([*args[:-4], "--name", "bad name!", "--store", str(tmp_path)]) == 2
