"""The hand-written gradients of SQL and SAC equal autograd on the objectives in ``skillbank.algos.losses``,
and the private fast paths equal their public fallbacks."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from skillbank import DDPG, SAC, SQL
from skillbank.algos import losses
from skillbank.nn import private_ops
from skillbank.nn.mlp import MLP
from skillbank.nn.private_ops import FusedAdam, polyak_update

OBS, ACT = 11, 3


def random_batch(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, OBS, generator=g),
        torch.rand(n, ACT, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, OBS, generator=g),
        (torch.rand(n, generator=g) < 0.1).float(),
    )


def make(cls, **kwargs):
    e = gym.make("skillbank/MultiGoal-v0")
    e.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    e.action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)
    return cls(e, hidden=[32, 32], buffer_size=100, seed=0, **kwargs)


def autograd_of(loss: torch.Tensor, parameters) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(parameters)))


def assert_all_close(got, want, **tolerances):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tolerances)


@pytest.mark.parametrize(
    "critics, proposal, reward_units",
    [(1, "uniform", False), (2, "uniform", False), (1, "sampler", True), (1, "sampler-density", False)],
)
def test_sql_hand_gradients_equal_autograd_on_eq_11_and_eq_13(critics, proposal, reward_units):
    algo = make(SQL, alpha=0.5, kernel_particles=8, value_particles=8, batch_size=16, critics=critics,
                value_proposal=proposal, q_in_reward_units=reward_units)  # fmt: skip
    config, q, sampler = algo.config, algo.skill.q, algo.skill.sampler
    for step in range(3):
        batch = random_batch(16, step)
        g = torch.Generator().manual_seed(step)
        n_uniform, n_proposal = config.proposal_draws  # value particles drawn uniformly, and with the sampler
        uniform = torch.rand(16, n_uniform, ACT, generator=g) * 2 - 1
        noise = torch.randn(16, 8 + n_proposal, ACT, generator=g)
        td_error, q_gradients, sampler_gradients = algo.gradients(batch, uniform, noise)

        particles, log_proposal = algo.soft_value_particles(batch[3], uniform, noise[:, 8:])
        assert particles.shape == (16, 8, ACT) and (log_proposal is None) == (proposal == "uniform")
        q_loss, td_autograd = losses.sql_q_loss(
            q, algo.q_target, batch, particles, config.alpha, config.gamma, log_proposal
        )
        noise = noise[:, :8]
        sampler_loss = losses.sql_sampler_loss(q, sampler, batch[0], noise, config.kernel_fixed)
        torch.testing.assert_close(td_error, td_autograd.detach())
        assert_all_close(q_gradients, autograd_of(q_loss, q.parameters()), rtol=1e-4, atol=1e-6)
        assert_all_close(sampler_gradients, autograd_of(sampler_loss, sampler.parameters()), rtol=1e-4, atol=1e-6)
        assert max(g.abs().max() for g in sampler_gradients) > 0  # a real comparison, not of zeros
        algo.train_step(batch)  # move on to other parameters


def test_sac_hand_gradients_equal_autograd_on_j_q_j_pi_and_j_alpha():
    algo = make(SAC, batch_size=16)
    q, policy = algo.skill.q, algo.skill.sampler
    for step in range(3):
        batch = random_batch(16, step)
        g = torch.Generator().manual_seed(step)
        next_noise, noise = torch.randn(16, 1, ACT, generator=g), torch.randn(16, 1, ACT, generator=g)
        alpha = algo.log_alpha.exp()

        td_error, q_gradients = algo.critic_gradients(batch, next_noise)
        q_loss, td_autograd = losses.sac_q_loss(q, algo.q_target, policy, batch, next_noise, alpha, algo.config.gamma)
        torch.testing.assert_close(td_error, td_autograd.detach())
        assert_all_close(q_gradients, autograd_of(q_loss, q.parameters()), rtol=1e-4, atol=1e-6)

        log_pi, policy_gradients, alpha_gradient = algo.policy_gradients(batch[0], noise)
        policy_loss, log_pi_autograd = losses.sac_policy_loss(q, policy, batch[0], noise, alpha)
        torch.testing.assert_close(log_pi, log_pi_autograd.detach(), rtol=1e-4, atol=1e-5)
        assert_all_close(policy_gradients, autograd_of(policy_loss, policy.parameters()), rtol=1e-4, atol=1e-6)
        log_alpha = algo.log_alpha.clone().requires_grad_(True)
        alpha_loss = losses.sac_alpha_loss(log_alpha, log_pi_autograd, algo.config.target_entropy)
        torch.testing.assert_close(alpha_gradient, autograd_of(alpha_loss, [log_alpha])[0])
        algo.train_step(batch)
    assert algo.skill.alpha != 1.0


def test_ddpg_hand_gradients_equal_autograd_on_its_critic_and_actor_losses():
    algo = make(DDPG, batch_size=16)
    q, actor = algo.skill.q, algo.skill.sampler
    for step in range(3):
        batch = random_batch(16, step)
        td_error, q_gradients = algo.critic_gradients(batch)
        q_loss, td_autograd = losses.ddpg_q_loss(q, algo.q_target, algo.actor_target, batch, algo.config.gamma)
        torch.testing.assert_close(td_error, td_autograd.detach())
        assert_all_close(q_gradients, autograd_of(q_loss, q.parameters()), rtol=1e-4, atol=1e-6)
        actor_loss, actor_gradients = algo.actor_gradients(batch[0])
        expected = losses.ddpg_actor_loss(q, actor, batch[0])
        torch.testing.assert_close(actor_loss, expected.detach())
        assert_all_close(actor_gradients, autograd_of(expected, actor.parameters()), rtol=1e-4, atol=1e-6)
        algo.train_step(batch)


@pytest.mark.parametrize("rows", [1, 5])
def test_split_first_layer_equals_the_concatenated_input(rows):
    torch.manual_seed(0)
    net = MLP(OBS + ACT, [16, 16], 1, ensemble=2)
    obs, actions = torch.randn(7, OBS), torch.randn(7, rows, ACT)
    joined = torch.cat([obs.unsqueeze(1).expand(-1, rows, -1), actions], -1)
    torch.testing.assert_close(net(actions, context=obs), net(joined), rtol=1e-5, atol=1e-6)
    expected = joined @ net.weights[0][1] + net.biases[0][1, 0]  # the second critic's first layer, plainly
    expected = torch.relu(expected) @ net.weights[1][1] + net.biases[1][1, 0]
    expected = torch.relu(expected) @ net.weights[2][1] + net.biases[2][1, 0]
    torch.testing.assert_close(net(actions, context=obs)[1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("private", [True, False], ids=["private", "public"])
@pytest.mark.parametrize(("ensemble", "rows"), [(2, None), (2, 1), (1, 5), (2, 3)])
def test_hand_written_backward_equals_autograd(ensemble, rows, private, monkeypatch):
    """``MLP.parameter_gradients`` and ``input_gradient`` give autograd's gradients: plain input (rows
    None), a context concatenated into one row per state (rows 1), and a context shared by several rows."""
    monkeypatch.setattr(private_ops, "PRIVATE", private)
    torch.manual_seed(0)
    net = MLP(OBS + ACT, [16, 16], 4, ensemble=ensemble)
    obs = torch.randn(7, OBS)
    x = torch.randn(7, OBS + ACT) if rows is None else torch.randn(7, rows, ACT)
    context = None if rows is None else obs
    grad_out = torch.randn(ensemble, *x.shape[:-1], 4)

    x_auto = x.clone().requires_grad_(True)
    (net(x_auto, context) * grad_out).sum().backward()
    expected = [p.grad.clone() for p in net.parameters()] + [x_auto.grad]

    with torch.no_grad():
        out, record = net.forward_recorded(x, context)
    gradients = net.parameter_gradients(record, grad_out) + [net.input_gradient(record, grad_out)]
    torch.testing.assert_close(out, net(x, context))
    assert_all_close(gradients, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("private", [True, False], ids=["private", "public"])
def test_fused_adam_equals_torch_adam(private, monkeypatch):
    monkeypatch.setattr(private_ops, "PRIVATE", private)
    torch.manual_seed(0)
    ours = [torch.randn(5, 3), torch.randn(3)]
    theirs = [p.clone().requires_grad_(True) for p in ours]
    optimizer, reference = FusedAdam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2)
    for _ in range(20):
        gradients = [torch.randn_like(p) for p in ours]
        optimizer.step(gradients)
        for p, g in zip(theirs, gradients):
            p.grad = g.clone()
        reference.step()
    assert_all_close(ours, [p.detach() for p in theirs], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("private", [True, False], ids=["private", "public"])
@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_polyak_update(tau, private, monkeypatch):
    monkeypatch.setattr(private_ops, "PRIVATE", private)
    target, source = [torch.zeros(3), torch.ones(2)], [torch.full((3,), 2.0), torch.full((2,), 5.0)]
    polyak_update(target, source, tau)
    torch.testing.assert_close(target[0], torch.full((3,), 2.0 * tau))
    torch.testing.assert_close(target[1], torch.full((2,), 1.0 + 4.0 * tau))


@pytest.mark.slow
@pytest.mark.parametrize("cls", [SQL, SAC, DDPG], ids=["sql", "sac", "ddpg"])
def test_compiled_update_equals_the_eager_update(cls):
    """``compile=True`` compiles the gradient computations; the parameters must come out the same."""
    eager, compiled = make(cls, batch_size=16), make(cls, batch_size=16, compile=True)
    initial = [p.clone() for p in compiled.skill.parameters()]
    for step in range(3):
        batch = random_batch(16, step)
        eager.train_step(batch)
        compiled.train_step(batch)
    assert_all_close(list(eager.skill.parameters()), list(compiled.skill.parameters()), rtol=1e-4, atol=1e-6)
    assert all(not torch.equal(a, b) for a, b in zip(initial, compiled.skill.parameters()))
