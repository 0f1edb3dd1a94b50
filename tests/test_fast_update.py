"""The optimised updates (split first layer, fused Adam, one backward pass, frozen critics) give the
same parameters as a plain, line-by-line reference update on the same batches and random numbers."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from skillbank import SAC, SQL
from skillbank.networks import MLP

OBS, ACT = 11, 3


def plain_mlp(net: MLP, x: torch.Tensor) -> torch.Tensor:
    """The reference network: concatenated input, one matrix product per layer and critic."""
    outputs = []
    for k in range(net.ensemble):
        h = x
        for i, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[k] + b[k, 0]
            if i < len(net.weights) - 1:
                h = torch.relu(h)
        outputs.append(h)
    return torch.stack(outputs)


def plain_q(net: MLP, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    obs = obs.reshape(*obs.shape[:-1], *([1] * (actions.dim() - obs.dim())), obs.shape[-1])
    return plain_mlp(net, torch.cat([obs.expand(*actions.shape[:-1], -1), actions], -1))[..., 0]


def plain_sampler(net: MLP, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return torch.tanh(plain_mlp(net, torch.cat([obs.unsqueeze(1).expand(*noise.shape[:-1], -1), noise], -1))[0])


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


def reference_sql_update(algo: SQL, q: MLP, q_target: MLP, sampler: MLP, optimizers, batch, rng) -> None:
    """SQL eq. (10), (11), (13) written out plainly, each network with its own Adam and backward pass."""
    obs, actions, rewards, next_obs, terminals = batch
    hp = algo.hyperparameters
    alpha, m, k, k_fixed = hp["alpha"], hp["value_particles"], hp["kernel_particles"], algo.kernel_fixed
    with torch.no_grad():
        uniform = torch.rand(obs.shape[0], m, ACT, generator=rng) * 2 - 1
        value = torch.logsumexp(plain_q(q_target, next_obs, uniform)[0], -1) - math.log(m) + ACT * math.log(2)
        target = rewards / alpha + hp["gamma"] * (1 - terminals) * value
    q_loss = 0.5 * (target - plain_q(q, obs, actions)[0]).pow(2).mean()

    particles = plain_sampler(sampler, obs, torch.randn(obs.shape[0], k, ACT, generator=rng))
    fixed = particles[:, :k_fixed].detach().requires_grad_(True)
    updated = particles[:, k_fixed:]
    log_p = plain_q(q, obs, fixed)[0] + torch.log(1 - fixed.pow(2) + 1e-6).sum(-1)
    (grad_log_p,) = torch.autograd.grad(log_p.sum(), fixed)
    diff = fixed.detach().unsqueeze(2) - updated.detach().unsqueeze(1)  # (B, Kf, Ku, d)
    dist = diff.pow(2).sum(-1)
    flat = dist.flatten(1)
    h = (flat.topk(flat.shape[1] // 2 + 1, dim=1).values[:, -1] / math.log(k_fixed)).clamp(min=1e-3)[:, None, None]
    kappa = torch.exp(-dist / h)
    phi = (kappa.unsqueeze(-1) * grad_log_p.unsqueeze(2) - 2 * diff / h.unsqueeze(-1) * kappa.unsqueeze(-1)).mean(1)
    sampler_loss = -(phi * updated).sum(-1).mean()

    q_opt, s_opt = optimizers
    q_opt.zero_grad()
    q_loss.backward()
    q_opt.step()
    s_opt.zero_grad()
    sampler_loss.backward()
    s_opt.step()


def test_sql_update_equals_the_reference_update():
    algo = make(SQL, alpha=0.5, kernel_particles=8, value_particles=8, batch_size=16)
    q, sampler = copy.deepcopy(algo.skill.q.net), copy.deepcopy(algo.skill.sampler.net)
    q_target = copy.deepcopy(algo.q_target.net)
    optimizers = torch.optim.Adam(q.parameters(), lr=3e-4), torch.optim.Adam(sampler.parameters(), lr=3e-4)
    rng = torch.Generator().manual_seed(0)
    for step in range(5):
        batch = random_batch(16, step)
        algo.train_step(batch)
        algo.num_updates += 1
        reference_sql_update(algo, q, q_target, sampler, optimizers, batch, rng)
    assert algo.num_updates == 5
    for fast, plain in ((algo.skill.q.net, q), (algo.skill.sampler.net, sampler)):
        for a, b in zip(fast.parameters(), plain.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # And the update really moved them (the comparison is not between untouched copies).
    assert not torch.allclose(q.weights[0], algo.q_target.net.weights[0])


def reference_sac_update(algo: SAC, nets, optimizers, log_alpha, batch, rng) -> None:
    """SAC's three losses written out plainly, as in CleanRL: separate optimizers and backward passes."""
    q, q_target, policy = nets
    obs, actions, rewards, next_obs, terminals = batch
    hp = algo.hyperparameters
    alpha = log_alpha.detach().exp()

    def sample(states):
        mean, log_std = plain_mlp(policy, states)[0].unsqueeze(1).chunk(2, -1)
        log_std = -5.0 + 0.5 * 7.0 * (torch.tanh(log_std) + 1)
        noise = torch.randn(states.shape[0], 1, ACT, generator=rng)
        u = mean + log_std.exp() * noise
        normal = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
        return torch.tanh(u), normal - torch.log(1 - torch.tanh(u).pow(2) + 1e-12).sum(-1)

    with torch.no_grad():
        next_actions, next_log_pi = sample(next_obs)
        next_q = plain_q(q_target, next_obs, next_actions).min(0).values - alpha * next_log_pi
        q_hat = rewards + hp["gamma"] * (1 - terminals) * next_q[:, 0]
    q_loss = 0.5 * (plain_q(q, obs, actions) - q_hat).pow(2).mean(-1).sum()
    q_opt, pi_opt, alpha_opt = optimizers
    q_opt.zero_grad()
    q_loss.backward()
    q_opt.step()

    new_actions, log_pi = sample(obs)
    policy_loss = (alpha * log_pi - plain_q(q, obs, new_actions).min(0).values).mean()
    pi_opt.zero_grad()
    policy_loss.backward()
    pi_opt.step()
    alpha_loss = -(log_alpha.exp() * (log_pi.detach() + hp["target_entropy"])).mean()
    alpha_opt.zero_grad()
    alpha_loss.backward()
    alpha_opt.step()
    with torch.no_grad():
        for t, s in zip(q_target.parameters(), q.parameters()):
            t.mul_(1 - hp["tau"]).add_(hp["tau"] * s)


def test_sac_update_equals_the_reference_update():
    algo = make(SAC, batch_size=16)
    nets = [copy.deepcopy(n) for n in (algo.skill.q.net, algo.q_target.net, algo.skill.sampler.net)]
    log_alpha = torch.tensor(0.0, requires_grad=True)
    optimizers = (
        torch.optim.Adam(nets[0].parameters(), lr=3e-4),
        torch.optim.Adam(nets[2].parameters(), lr=3e-4),
        torch.optim.Adam([log_alpha], lr=3e-4),
    )
    rng = torch.Generator().manual_seed(0)
    for step in range(5):
        batch = random_batch(16, step)
        algo.train_step(batch)
        reference_sac_update(algo, nets, optimizers, log_alpha, batch, rng)
    pairs = zip((algo.skill.q.net, algo.q_target.net, algo.skill.sampler.net), nets)
    for fast, plain in pairs:
        for a, b in zip(fast.parameters(), plain.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert algo.skill.alpha == pytest.approx(float(log_alpha.detach().exp()), rel=1e-5)
    assert algo.skill.alpha != 1.0


@pytest.mark.parametrize("rows", [1, 5])
def test_split_first_layer_equals_the_concatenated_input(rows):
    torch.manual_seed(0)
    net = MLP(OBS + ACT, [16, 16], 1, ensemble=2)
    obs, actions = torch.randn(7, OBS), torch.randn(7, rows, ACT)
    expected = plain_mlp(net, torch.cat([obs.unsqueeze(1).expand(-1, rows, -1), actions], -1))
    torch.testing.assert_close(net(actions, context=obs), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("ensemble", "rows"), [(2, None), (2, 1), (1, 5), (2, 3)])
def test_hand_written_backward_equals_autograd(ensemble, rows):
    """``MLP.backward`` gives autograd's parameter and input gradients: plain input (rows None),
    a context concatenated into one row per state (rows 1), and a context shared by several rows."""
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
    for got, want in zip(gradients, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [SQL, SAC], ids=["sql", "sac"])
def test_compiled_update_equals_the_eager_update(cls):
    """``compile=True`` compiles the gradient computations; the parameters must come out the same."""
    eager, compiled = make(cls, batch_size=16), make(cls, batch_size=16, compile=True)
    initial = [p.clone() for p in compiled.skill.parameters()]
    for step in range(3):
        batch = random_batch(16, step)
        eager.train_step(batch)
        compiled.train_step(batch)
    for a, b in zip(eager.skill.parameters(), compiled.skill.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert all(not torch.equal(a, b) for a, b in zip(initial, compiled.skill.parameters()))
