"""The pieces of Soft Q-Learning checked against closed forms and autograd."""

import math

import numpy as np
import pytest
import torch

from skillbank.algos.losses import (
    rbf_kernel,
    sampler_mixture_proposal,
    soft_value_importance,
    soft_value_uniform,
    svgd_direction,
)


def test_importance_sampled_soft_value_matches_gaussian_integral():
    # Q(a) = -sum_i k_i a_i^2 on [-1, 1]^2: V = alpha log prod_i sqrt(pi / c_i) erf(sqrt(c_i)), c_i = k_i / alpha.
    alpha, k = 0.5, torch.tensor([1.5, 4.0])
    particles = torch.rand(1, 400_000, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    q = -(k * particles.pow(2)).sum(-1)
    estimate = alpha * soft_value_uniform(q / alpha, 2).item()
    c = (k / alpha).double()
    exact = alpha * sum(math.log(math.sqrt(math.pi / ci) * math.erf(math.sqrt(ci))) for ci in c.tolist())
    assert abs(estimate - exact) < 2e-3 * max(1.0, abs(exact))


def test_the_sampler_mixture_proposal_is_unbiased_and_finds_a_sharp_peak():
    # exp(Q / alpha) a narrow Gaussian (sd 0.05) at a* inside [-1, 1]^3, one near its face; the centres
    # stand for a sampler that is off the peak and too wide. Its integral is exact: prod_i of erf terms.
    g = torch.Generator().manual_seed(0)
    runs, d, sd = 20_000, 3, 0.05
    peak = torch.tensor([0.3, -0.5, 0.97])
    log_f = lambda a: -0.5 * ((a - peak) / sd).pow(2).sum(-1)  # noqa: E731
    scale = sd * math.sqrt(2)
    exact = math.prod(scale * math.sqrt(math.pi) / 2 * (math.erf((1 - p) / scale) + math.erf((1 + p) / scale))
                      for p in peak.tolist())  # fmt: skip
    centres = peak + 0.02 + 0.15 * torch.randn(runs, 8, d, generator=g)
    uniform = torch.rand(runs, 8, d, generator=g) * 2 - 1
    particles, log_q = sampler_mixture_proposal(centres, uniform, torch.randn(runs, 8, d, generator=g))
    assert particles.abs().max() <= 1 and torch.isinf(log_q).any()  # draws off the box weigh nothing
    mixture = soft_value_importance(log_f(particles), log_q).exp()
    plain = soft_value_uniform(log_f(torch.rand(runs, 16, d, generator=g) * 2 - 1), d).exp()
    for estimate in (mixture, plain):  # unbiased for exp(V / alpha): within 4 standard errors
        assert abs(estimate.mean().item() - exact) < 4 * estimate.std().item() / math.sqrt(runs)
    assert mixture.std() < plain.std() / 3  # and far more precise with the same 16 evaluations: the typical
    # uniform estimate of V / alpha is about 50 too low (no particle near the peak), the mixture's about 2
    assert (plain.log() - math.log(exact)).median() < -20 < -3 < (mixture.log() - math.log(exact)).median()


def test_soft_value_of_a_constant_q_is_q_plus_log_volume():
    q = torch.full((3, 16), 2.0)
    np.testing.assert_allclose(soft_value_uniform(q, 2).numpy(), 2.0 + math.log(4.0), rtol=1e-6)


def test_rbf_kernel_gradient_matches_autograd():
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(3, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    kappa, kappa_grad = rbf_kernel(xs, ys)
    for b in range(3):
        for i in range(5):
            for j in range(4):
                (grad,) = torch.autograd.grad(kappa[b, i, j], xs, retain_graph=True)
                np.testing.assert_allclose(kappa_grad[b, i, j].detach().numpy(), grad[b, i].numpy(), atol=1e-10)
                assert np.abs(grad.numpy()).sum() == np.abs(grad[b, i].numpy()).sum()


def test_svgd_direction_closed_form_equals_the_kernel_gradient_sum():
    g = torch.Generator().manual_seed(2)
    fixed, updated, grad = (torch.randn(4, n, 3, generator=g, dtype=torch.float64) for n in (6, 5, 6))
    kappa, kappa_grad = rbf_kernel(fixed, updated)
    explicit = (kappa.unsqueeze(-1) * grad.unsqueeze(-2) + kappa_grad).mean(-3)
    np.testing.assert_allclose(svgd_direction(fixed, updated, grad).numpy(), explicit.numpy(), rtol=1e-10)


def test_rbf_bandwidth_is_the_median_heuristic():
    xs = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]])
    kappa, _ = rbf_kernel(xs, xs)
    dist_sq = torch.cdist(xs, xs).pow(2).flatten()
    h = dist_sq.sort(descending=True).values[len(dist_sq) // 2] / math.log(3)
    np.testing.assert_allclose(kappa.numpy(), torch.exp(-torch.cdist(xs, xs).pow(2) / h).numpy(), rtol=1e-5)


def log_mixture(x: torch.Tensor) -> torch.Tensor:
    """Equal mixture of N((-2, 0), 0.5^2 I) and N((2, 0), 0.5^2 I), unnormalised."""
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    return torch.logsumexp(-((x.unsqueeze(-2) - centres) ** 2).sum(-1) / (2 * 0.25), -1)


def test_svgd_moves_particles_to_both_modes_of_a_mixture():
    particles = 0.3 * torch.randn(1, 200, 2, generator=torch.Generator().manual_seed(0))
    for _ in range(500):
        x = particles.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_mixture(x).sum(), x)
        particles = particles + 0.05 * svgd_direction(particles, particles, grad)
    x = particles[0]
    left = ((x - torch.tensor([-2.0, 0.0])).norm(dim=-1) < 1.0).float().mean()
    right = ((x - torch.tensor([2.0, 0.0])).norm(dim=-1) < 1.0).float().mean()
    assert left > 0.3 and right > 0.3, (left, right)
    assert left + right > 0.9


@pytest.mark.slow
def test_amortized_svgd_trains_a_sampler_network_to_cover_both_modes():
    # The sampler update of SQL with a fixed energy: push the Stein direction through the network.
    from skillbank.nn.networks import SVGDSampler

    torch.manual_seed(0)
    sampler = SVGDSampler(1, 2, [64, 64])
    optimizer = torch.optim.Adam(sampler.parameters(), lr=3e-3)
    obs = torch.zeros(8, 1)
    scale = 3.0  # the sampler outputs tanh in [-1, 1]: target the mixture scaled into the box
    for _ in range(1500):
        particles = sampler(obs, torch.randn(8, 32, 2))
        fixed = particles[:, :16].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_mixture(scale * fixed).sum(), fixed)
        phi = svgd_direction(fixed.detach(), particles[:, 16:].detach(), grad)
        loss = -(phi * particles[:, 16:]).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        samples = scale * sampler(torch.zeros(1, 1), torch.randn(1, 2000, 2))[0]
    left = (samples[:, 0] < -1).float().mean()
    right = (samples[:, 0] > 1).float().mean()
    assert left > 0.25 and right > 0.25, (left, right)


def output_in_noise(net, obs):
    """The network's output for one state as a function of one noise vector."""
    return lambda x: net(x[None, None], context=obs[None])[0, 0, 0]


def test_the_mlp_input_jacobian_equals_autograd():
    from skillbank.nn.mlp import MLP

    torch.manual_seed(0)
    net = MLP(5 + 3, [16, 12], 3)
    obs, noise = torch.randn(4, 5), torch.randn(4, 6, 3)
    _, record = net.forward_recorded(noise, context=obs)
    jacobian = net.input_jacobian(record)[0]  # (4, 6, 3 in, 3 out)
    for s in range(4):
        for j in range(6):
            exact = torch.autograd.functional.jacobian(output_in_noise(net, obs[s]), noise[s, j])
            assert torch.allclose(jacobian[s, j], exact.T, atol=1e-5)


def linear_sampler(obs_dim: int, act_dim: int, seed: int = 0):
    """An SVGD sampler whose ReLUs are always on, so that it is affine, hence one-to-one, in the noise: a
    squashed Gaussian with an exact density."""
    from skillbank.nn.networks import SVGDSampler

    torch.manual_seed(seed)
    sampler = SVGDSampler(obs_dim, act_dim, [16, 16])
    zero_noise, zero_obs = torch.zeros(1, 1, act_dim), torch.zeros(1, obs_dim)
    with torch.no_grad():
        sampler.net.biases[0].fill_(20.0)
        sampler.net.biases[1].fill_(20.0)
        _, record = sampler.net.forward_recorded(zero_noise, context=zero_obs)
        jacobian = sampler.net.input_jacobian(record)[0, 0, 0]  # (in, out)
        sampler.net.weights[2].copy_(sampler.net.weights[2] @ torch.linalg.inv(jacobian) * 1.2)  # spread ~1.2
        sampler.net.biases[2].sub_(sampler.net(zero_noise, context=zero_obs)[0, 0, 0])
    return sampler


def test_the_sampler_density_is_the_squashed_gaussian_density():
    obs_dim, d = 3, 2
    sampler = linear_sampler(obs_dim, d)
    obs, noise = torch.randn(2, obs_dim) * 0.1, torch.randn(2, 50, d)
    actions, log_q = sampler.sample_with_log_density(obs, noise)
    for s in range(2):  # u = A xi + c: N(c, A^T A) (row convention), then tanh
        linear = torch.autograd.functional.jacobian(output_in_noise(sampler.net, obs[s]), torch.zeros(d))
        centre = sampler.net(torch.zeros(1, 1, d), context=obs[s : s + 1])[0, 0, 0]
        u = torch.atanh(actions[s].clamp(-1 + 1e-7, 1 - 1e-7))
        gaussian = torch.distributions.MultivariateNormal(centre, linear @ linear.T)
        exact = gaussian.log_prob(u) - torch.log(1 - actions[s].pow(2) + 1e-6).sum(-1)
        assert torch.allclose(log_q[s], exact, atol=1e-3)


def test_the_soft_value_with_the_sampler_as_proposal_matches_many_uniform_particles():
    from skillbank.algos.losses import soft_value_importance
    from skillbank.nn.networks import SoftQ

    obs_dim, d, alpha = 3, 2, 0.3
    torch.manual_seed(1)
    q = SoftQ(obs_dim, d, [32, 32], output_scale=alpha)
    sampler = linear_sampler(obs_dim, d, seed=2)
    obs = torch.randn(3, obs_dim) * 0.01  # centres inside the box
    with torch.no_grad():
        many = torch.rand(3, 65_536, d, generator=torch.Generator().manual_seed(0)) * 2 - 1
        reference = soft_value_uniform(q(obs, many)[0], d)
        actions, log_q = sampler.sample_with_log_density(obs, torch.randn(3, 20_000, d))
        estimate = soft_value_importance(q(obs, actions)[0], log_q)
    assert torch.allclose(estimate, reference, atol=0.02), (estimate, reference)
