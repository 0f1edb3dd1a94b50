"""SQL and SAC behind one interface: training lowers the TD error, seeds reproduce, save/load round-trips."""

import math

import numpy as np
import pytest
import torch

from skillbank import SAC, SQL, Skill
from skillbank.algos.buffer import ReplayBuffer
from skillbank.algos.losses import soft_bellman_target
from skillbank.errors import SkillbankError
from skillbank.nn.networks import GaussianSampler
from tests.conftest import actions_of

SMALL = dict(hidden=[32, 32], batch_size=32, learning_starts=50, buffer_size=5000)


def small_sql(seed: int = 0) -> SQL:
    return SQL("skillbank/MultiGoal-v0", alpha=10.0, kernel_particles=8, value_particles=8, seed=seed, **SMALL)


def small_sac(seed: int = 0) -> SAC:
    return SAC("skillbank/MultiGoal-v0", seed=seed, **SMALL)


@pytest.mark.slow
def test_sql_training_lowers_the_td_error():
    algo = small_sql()
    algo.config = algo.config.replace(learning_starts=10**9)  # collect without updating
    algo.learn(600)
    batch = tuple(getattr(algo.buffer, f)[: len(algo.buffer)] for f in ("observations", "actions", "rewards"))
    next_obs, terminals = algo.buffer.next_observations[:600], algo.buffer.terminals[:600]

    def td_error() -> float:
        uniform = torch.rand(600, 16, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
        target = soft_bellman_target(algo.q_target, batch[2], next_obs, terminals, uniform, 10.0, 0.99)
        with torch.no_grad():
            return (target - algo.skill.q(batch[0], batch[1])[0]).abs().mean().item()

    before = td_error()
    algo.config = algo.config.replace(target_update_interval=10**9, batch_size=64)  # onto one fixed target network
    algo.learn_offline(algo.buffer, 1500)
    after = td_error()
    assert after < 0.3 * before, (before, after)


def test_sql_target_network_copies_or_moves_by_tau():
    for tau, interval in [(1.0, 2), (0.25, 1)]:
        algo = small_sql()
        algo.config = algo.config.replace(tau=tau, target_update_interval=interval, learning_starts=10**9)
        algo.learn(100)
        before = [p.clone() for p in algo.q_target.parameters()]
        for step in range(interval):
            algo.train_step(algo.buffer.sample(32, algo.rng))
            algo.num_updates += 1
            if step < interval - 1:  # not yet: the target waits for the interval
                assert all(torch.equal(a, b) for a, b in zip(before, algo.q_target.parameters()))
        for old, target, online in zip(before, algo.q_target.parameters(), algo.skill.q.parameters()):
            torch.testing.assert_close(target, (1 - tau) * old + tau * online)
        assert not all(torch.equal(a, b) for a, b in zip(before, algo.q_target.parameters()))


@pytest.mark.parametrize("make", [small_sql, small_sac], ids=["sql", "sac"])
def test_same_seed_same_parameters_and_actions(make):
    first, second = make(seed=3).learn(150), make(seed=3).learn(150)
    for (name, a), (_, b) in zip(first.skill.state_dict().items(), second.skill.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    other = make(seed=4).learn(150)
    assert not torch.equal(first.skill.q.net.weights[0], other.skill.q.net.weights[0])


@pytest.mark.parametrize("make", [small_sql, small_sac], ids=["sql", "sac"])
def test_save_load_round_trip_gives_identical_actions(make, tmp_path):
    algo = make().learn(120)
    algo.save(tmp_path / "skill")
    loaded = type(algo).load(tmp_path / "skill")
    np.testing.assert_array_equal(actions_of(algo.skill), actions_of(loaded.skill))
    obs = torch.tensor([[0.5, 0.5]])
    acts = torch.rand(1, 5, 2)
    torch.testing.assert_close(algo.q_values(obs, acts), loaded.q_values(obs, acts))
    assert loaded.skill.description["training"]["steps"] == 120
    assert loaded.config == algo.config and loaded.config.hidden == (32, 32)
    assert loaded.skill.description["hyperparameters"] == algo.config.to_dict()


@pytest.mark.parametrize("make", [small_sql, small_sac], ids=["sql", "sac"])
def test_sb3_like_surface_shapes(make):
    algo = make().learn(60)
    obs = torch.zeros(4, 2)
    actions = algo.sample_actions(obs, 10)
    assert actions.shape == (4, 10, 2) and actions.abs().max() <= 1
    assert algo.q_values(obs, actions).shape == (4, 10)
    value = algo.soft_value(obs)
    assert value.shape == (4,)
    # V = alpha log ∫ exp(Q/alpha) da, here by a direct 16k-point Monte Carlo average over the box.
    alpha = algo.skill.alpha
    q = algo.q_values(obs, torch.rand(4, 16384, 2) * 2 - 1)
    direct = alpha * (torch.logsumexp(q / alpha, -1) - math.log(16384) + math.log(4.0))
    torch.testing.assert_close(value, direct, rtol=0, atol=0.02 * alpha)
    assert (direct >= q.mean(-1) + alpha * math.log(4.0)).all()  # Jensen


def test_callback_can_stop_training_early():
    algo = small_sql()
    algo.learn(5000, callback=lambda step, metrics: step < 200, log_interval=100)
    assert algo.num_timesteps == 200


def test_learning_offline_updates_without_environment_steps():
    algo = small_sql()
    algo.learn(100)
    steps, updates = algo.num_timesteps, algo.num_updates
    before = [p.clone() for p in algo.skill.q.parameters()]
    algo.learn_offline(algo.buffer, 7)
    assert algo.num_timesteps == steps and algo.num_updates == updates + 7 and len(algo.buffer) == 100
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.skill.q.parameters()))
    with pytest.raises(SkillbankError, match="empty buffer"):
        algo.learn_offline(ReplayBuffer(10, 2, 2), 1)


def test_negative_steps_are_refused():
    with pytest.raises(ValueError, match="total_steps"):
        small_sql().learn(-1)


def test_sac_log_prob_matches_the_change_of_variables():
    torch.manual_seed(0)
    sampler = GaussianSampler(2, 2, [16])
    obs, noise = torch.randn(3, 2), torch.randn(3, 4, 2)
    actions, log_prob = sampler.sample_with_log_prob(obs, noise)
    mean = sampler.net(obs)[0].unsqueeze(-2)[..., :2]
    log_std = sampler.squash(sampler.net(obs)[0], noise)[2]
    base = torch.distributions.Normal(mean, log_std.exp())
    pre_tanh = torch.atanh(actions.double().clamp(-1 + 1e-12, 1 - 1e-12)).float()
    expected = base.log_prob(pre_tanh).sum(-1) - torch.log(1 - actions.pow(2)).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-3, atol=1e-3)


def test_sac_tunes_its_temperature():
    algo = small_sac()
    algo.learn(300)
    assert algo.skill.alpha != pytest.approx(1.0)
    assert algo.skill.description["alpha"] == algo.skill.alpha


def test_skill_loads_only_from_its_own_files(tmp_path, skill):
    skill.save(tmp_path / "s")
    assert Skill.load(tmp_path / "s").description["algorithm"] == "sql"


def test_sql_exploration_adds_ornstein_uhlenbeck_noise_only_when_asked():
    obs = np.zeros(2, dtype=np.float32)
    plain, noisy = small_sql(), small_sql()
    noisy.config = noisy.config.replace(ou_sigma=0.3)
    assert np.array_equal(plain.explore(obs), plain.skill.act_normalised(obs, small_sql().rng))  # default: none
    steps = []
    for _ in range(40):
        expected = noisy.skill.act_normalised(obs, torch.Generator().manual_seed(0).set_state(noisy.rng.get_state()))
        steps.append(noisy.explore(obs) - expected)
    steps = np.array(steps)
    assert np.allclose(steps[-1], np.clip(expected + noisy.noise.numpy(), -1, 1) - expected, atol=1e-6)
    # Correlated in time (theta 0.15: x_t+1 = 0.85 x_t + 0.3 N), where the sampler's own draws are not
    lag1 = np.corrcoef(steps[:-1].ravel(), steps[1:].ravel())[0, 1]
    assert lag1 > 0.5
    noisy.on_episode_end()
    assert not noisy.noise.any()


def test_sql_q_in_reward_units_predicts_q_itself_and_survives_save_load_and_alpha_changes(tmp_path):
    algo = SQL("skillbank/MultiGoal-v0", alpha=0.05, q_in_reward_units=True, kernel_particles=8, value_particles=8,
               **SMALL).learn(120)  # fmt: skip
    obs, actions = torch.zeros(3, 2), torch.rand(3, 4, 2) * 2 - 1
    raw = algo.skill.q.net(actions, context=obs.unsqueeze(1).expand(3, 4, 2)).squeeze(-1).min(0).values
    torch.testing.assert_close(algo.skill.q_values(obs, actions), raw)  # the network's output is Q
    torch.testing.assert_close(algo.skill.q(obs, actions)[0], raw / 0.05)  # and Q / alpha is taken outside
    loaded = Skill.load(algo.save(tmp_path / "skill"))
    assert loaded.description_json()["networks"]["q"]["reward_units"] is True
    torch.testing.assert_close(loaded.q_values(obs, actions), raw)
    algo.set_alpha(0.5)  # a schedule: Q / alpha follows alpha, Q stays
    torch.testing.assert_close(algo.skill.q(obs, actions)[0], raw / 0.5)
    torch.testing.assert_close(algo.q_target.gain, torch.tensor(2.0))
