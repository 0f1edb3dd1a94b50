"""Every objective skillbank optimises, as plain differentiable PyTorch named after its equation.

Soft Q-Learning (Haarnoja, Tang, Abbeel, Levine, ICML 2017, arXiv 1702.08165):

- :func:`soft_value_uniform`: eq. (10), the importance-sampled soft value with a uniform proposal;
  :func:`soft_value_importance` and :func:`sampler_mixture_proposal` the same with a proposal that also
  draws near the sampler's actions (skillbank's change, for sharp Q-functions: ``docs/results/walker.md``);
- :func:`sql_q_loss`: eq. (11), ``J_Q``, the squared soft Bellman error against a target network;
- :func:`svgd_direction` and :func:`sql_sampler_loss`: eq. (13), the Stein variational direction
  and the surrogate whose gradient pushes it through the amortized sampler.

Soft Actor-Critic with automatic temperature (Haarnoja et al. 2018, arXiv 1812.05905):

- :func:`sac_q_loss`: section 4.2's ``J_Q``, with the clipped double-Q soft target;
- :func:`sac_policy_loss`: section 4.2's ``J_pi``, with reparameterised actions;
- :func:`sac_alpha_loss`: section 5's ``J(alpha)``, the temperature's dual objective.

Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv 1509.02971), the paper's baseline:

- :func:`ddpg_q_loss`: the critic's squared TD error against target critic and target actor;
- :func:`ddpg_actor_loss`: ``-E[Q(s, mu(s))]``, whose gradient is the deterministic policy gradient.

The algorithms (:mod:`skillbank.algos.sql`, :mod:`skillbank.algos.sac`, :mod:`skillbank.algos.ddpg`) compute their
targets with these functions and the gradients of these same objectives by hand, without an autograd graph, for
speed, in one place (:mod:`skillbank.algos.gradients`); ``tests/algos/test_losses.py`` checks that they equal
autograd on the functions here. Networks follow :mod:`skillbank.nn.networks`: a Q-network called as
``q(obs, actions)`` returns (critics, ...) raw outputs (``Q / alpha`` for SQL).
"""

from __future__ import annotations

import math

import torch

from skillbank.algos.buffer import Batch
from skillbank.nn.networks import SQUASH_EPS, soft_value_uniform  # noqa: F401 (the soft value is eq. (10)'s)

KERNEL_BANDWIDTH_FLOOR = 1e-3


def soft_value_importance(q_scaled: torch.Tensor, log_proposal: torch.Tensor) -> torch.Tensor:
    """Eq. (10) with any proposal: ``log mean_j exp(q_j - log q(a_j))`` for ``q_scaled`` ``Q(s, a_j) / alpha``
    and the proposal's log-density ``log_proposal`` at the same M particles (``+inf`` off the action box,
    where ``exp(Q / alpha)`` is not integrated)."""
    return torch.logsumexp(q_scaled - log_proposal, -1) - math.log(q_scaled.shape[-1])


def sampler_mixture_proposal(
    centres: torch.Tensor, uniform: torch.Tensor, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Particles for :func:`soft_value_importance` that also find a sharp ``exp(Q / alpha)``: the ``uniform``
    actions (B, U, d) and one Gaussian draw ``c_k + sigma * offsets_k`` around each of the sampler's actions
    ``centres`` (B, K, d), with the log-density of the mixture ``(U q_uniform + sum_k N(c_k, sigma^2 I)) / (U + K)``.

    With each component drawn its share of the times (a deterministic mixture) the estimate of
    ``exp(V / alpha)`` stays unbiased whatever the centres. ``sigma`` is Scott's rule on the centres' spread.
    """
    k, d = centres.shape[-2:]
    m = uniform.shape[-2] + k
    sigma = (centres.std(-2).mean(-1).clamp(min=1e-2) * k ** (-1.0 / (d + 4)))[..., None]  # (B, 1)
    particles = torch.cat([uniform, centres + sigma[..., None] * offsets], -2)
    dist_sq = (particles.unsqueeze(-2) - centres.unsqueeze(-3)).pow(2).sum(-1)  # (B, M, K)
    log_gauss = torch.logsumexp(-0.5 * dist_sq / sigma[..., None].pow(2), -1) - d * torch.log(
        sigma * math.sqrt(2 * math.pi)
    )
    log_uniform = torch.full_like(log_gauss, -d * math.log(2.0))
    log_proposal = torch.logaddexp(log_uniform + math.log(uniform.shape[-2] / m), log_gauss - math.log(m))
    inside = (particles.abs() <= 1).all(-1)
    return particles.clamp(-1, 1), log_proposal.masked_fill(~inside, math.inf)


def soft_bellman_target(
    q_target: torch.nn.Module,
    rewards: torch.Tensor,
    next_obs: torch.Tensor,
    terminals: torch.Tensor,
    particles: torch.Tensor,
    alpha: float | torch.Tensor,
    gamma: float,
    log_proposal: torch.Tensor | None = None,
) -> torch.Tensor:
    """SQL's backup ``r / alpha + gamma (1 - done) V(s') / alpha`` in units of alpha (the public code's
    reward scaling), ``V(s')`` by eq. (10) under the target network from ``particles`` (B, M, d): uniform
    actions, or drawn from a proposal whose log-density they have in ``log_proposal`` (B, M).
    With two or more critics each particle takes the least of them (clipped double Q, as in SAC)."""
    with torch.no_grad():
        q_scaled = q_target(next_obs, particles).min(0).values
        if log_proposal is None:
            next_value = soft_value_uniform(q_scaled, particles.shape[-1])
        else:
            next_value = soft_value_importance(q_scaled, log_proposal)
    return rewards / alpha + gamma * (1 - terminals) * next_value


def max_bellman_target(
    q_target: torch.nn.Module,
    policy: torch.nn.Module,
    rewards: torch.Tensor,
    next_obs: torch.Tensor,
    terminals: torch.Tensor,
    noise: torch.Tensor,
    gamma: float,
    reward_scale: float | torch.Tensor = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The SQL authors' fine-tuning target (their arena scripts' ``q_target_type="max"``, "make it like DDPG"):
    ``reward_scale r + gamma (1 - done) max_k Q_target(s', pi(s', xi_k))`` over the policy's actions at the noise
    draws ``noise`` (B, K, d), its frozen heads, in the units of ``q_target``'s outputs (SQL: ``reward_scale`` is
    ``1 / alpha``). ``mask`` (K,) leaves out the heads not yet annealed away. The least of several critics."""
    with torch.no_grad():
        q = q_target(next_obs, policy(next_obs, noise)).min(0).values  # (B, K)
        if mask is not None:
            q = q.masked_fill(~mask, -math.inf)
        next_value = q.max(-1).values
    return rewards * reward_scale + gamma * (1 - terminals) * next_value


def sql_q_loss(
    q: torch.nn.Module,
    q_target: torch.nn.Module,
    batch: Batch,
    particles: torch.Tensor,
    alpha: float,
    gamma: float,
    log_proposal: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SQL eq. (11): ``J_Q = E[(Q_hat(s, a) - Q(s, a))^2] / 2`` in units of alpha, summed over critics, and
    the TD errors (critics, B); ``particles`` and ``log_proposal`` as in :func:`soft_bellman_target`."""
    obs, actions, rewards, next_obs, terminals = batch
    target = soft_bellman_target(q_target, rewards, next_obs, terminals, particles, alpha, gamma, log_proposal)
    td_error = target - q(obs, actions)
    return 0.5 * td_error.pow(2).sum(0).mean(), td_error


def _rbf(xs: torch.Tensor, ys: torch.Tensor, h_min: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)
    dist_sq = diff.pow(2).sum(-1)
    flat = dist_sq.flatten(-2).detach()
    # The public code's median: the (n // 2 + 1)-th largest of the n pairwise distances, i.e. the
    # (n - n // 2)-th smallest (kthvalue is three times faster than topk here).
    median_sq = flat.kthvalue(flat.shape[-1] - flat.shape[-1] // 2, dim=-1).values
    h = (median_sq / math.log(xs.shape[-2])).clamp(min=h_min)[..., None, None]
    return torch.exp(-dist_sq / h), diff, h


def rbf_kernel(
    xs: torch.Tensor, ys: torch.Tensor, h_min: float = KERNEL_BANDWIDTH_FLOOR
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adaptive isotropic RBF kernel of SQL's SVGD, ``k(x, y) = exp(-||x - y||^2 / h)``, and its gradient in x.

    ``xs`` (B, Kx, d), ``ys`` (B, Ky, d). The bandwidth is ``h = median(||x - y||^2) / log Kx``
    per batch row (floored at ``h_min``) and treated as a constant. Returns ``kappa`` (B, Kx, Ky)
    and ``grad_x kappa`` (B, Kx, Ky, d).
    """
    kappa, diff, h = _rbf(xs, ys, h_min)
    return kappa, -2.0 * diff / h.unsqueeze(-1) * kappa.unsqueeze(-1)


def svgd_direction(fixed: torch.Tensor, updated: torch.Tensor, grad_log_p: torch.Tensor) -> torch.Tensor:
    """SQL eq. (13): the Stein variational direction for ``updated`` particles, estimated from ``fixed`` ones,

    ``phi(a) = E_{a'~fixed}[ k(a', a) grad_{a'} log p(a') + grad_{a'} k(a', a) ]``, shape of ``updated``.

    With the RBF kernel the second term sums in closed form,
    ``sum_i grad_{a_i} k(a_i, a) = (2 / h) (a sum_i k(a_i, a) - sum_i k(a_i, a) a_i)``,
    so both terms are matrix products with the kernel matrix (no (B, Kx, Ky, d) tensor).
    """
    kappa, _, h = _rbf(fixed, updated, KERNEL_BANDWIDTH_FLOOR)
    kernel_t = kappa.transpose(-1, -2)
    repulsion = (2.0 / h) * (kappa.sum(-2).unsqueeze(-1) * updated - kernel_t @ fixed)
    return (kernel_t @ grad_log_p + repulsion) / fixed.shape[-2]


def squashed_log_density_gradient(q: torch.nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``grad_a log p(a|s)`` for SQL's sampler target ``p ∝ exp(Q / alpha)`` seen through the tanh:
    the least critic's ``grad_a Q(s, a) / alpha`` plus ``grad_a sum log(1 - a^2)``."""
    with torch.enable_grad():
        a = actions.detach().requires_grad_(True)
        log_p = q(obs, a).min(0).values.sum() + torch.log(1 - a.pow(2) + SQUASH_EPS).sum()
        (grad,) = torch.autograd.grad(log_p, a)
    return grad


def sql_sampler_loss(
    q: torch.nn.Module, sampler: torch.nn.Module, obs: torch.Tensor, noise: torch.Tensor, kernel_fixed: int
) -> torch.Tensor:
    """SQL eq. (13) as a surrogate: ``-E[stopgrad(phi(a)) . a]`` with ``a = f(s, xi)`` for ``noise``
    (B, K, d), whose gradient in the sampler's parameters is the amortized SVGD update. The first
    ``kernel_fixed`` particles estimate phi (no gradient flows through them); the others are moved."""
    fixed = sampler(obs, noise[:, :kernel_fixed]).detach()
    updated = sampler(obs, noise[:, kernel_fixed:])
    phi = svgd_direction(fixed, updated.detach(), squashed_log_density_gradient(q, obs, fixed))
    return -(phi * updated).sum(-1).mean()


def sac_q_loss(
    q: torch.nn.Module,
    q_target: torch.nn.Module,
    policy: torch.nn.Module,
    batch: Batch,
    next_noise: torch.Tensor,
    alpha: torch.Tensor | float,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAC's ``J_Q = sum_k E[(Q_k(s, a) - Q_hat(s, a))^2] / 2`` over the twin critics, with
    ``Q_hat = r + gamma (1 - done) (min_k Q_target_k(s', a') - alpha log pi(a'|s'))``, ``a' ~ pi(s')``
    from ``next_noise`` (B, 1, d); and the TD errors (critics, B)."""
    obs, actions, rewards, next_obs, terminals = batch
    with torch.no_grad():
        next_actions, next_log_pi = policy.sample_with_log_prob(next_obs, next_noise)
        next_q = q_target(next_obs, next_actions).min(0).values - alpha * next_log_pi
        q_hat = rewards + gamma * (1 - terminals) * next_q[:, 0]
    td_error = q(obs, actions) - q_hat
    return 0.5 * td_error.pow(2).mean(-1).sum(), td_error


def sac_policy_loss(
    q: torch.nn.Module, policy: torch.nn.Module, obs: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAC's ``J_pi = E[alpha log pi(a|s) - min_k Q_k(s, a)]`` with ``a = tanh(mu + sigma xi)``
    reparameterised by ``noise`` (B, 1, d); and ``log pi(a|s)`` (B, 1)."""
    actions, log_pi = policy.sample_with_log_prob(obs, noise)
    return (alpha * log_pi - q(obs, actions).min(0).values).mean(), log_pi


def sac_alpha_loss(log_alpha: torch.Tensor, log_pi: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """SAC's ``J(alpha) = E[-alpha (log pi(a|s) + H_target)]``, differentiated in ``log alpha``."""
    return -(log_alpha.exp() * (log_pi.detach() + target_entropy)).mean()


def ddpg_q_loss(
    q: torch.nn.Module,
    q_target: torch.nn.Module,
    actor_target: torch.nn.Module,
    batch: Batch,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DDPG's critic loss ``E[(Q(s, a) - y)^2] / 2`` with ``y = r + gamma (1 - done) Q'(s', mu'(s'))``;
    and the TD errors (B,)."""
    obs, actions, rewards, next_obs, terminals = batch
    with torch.no_grad():
        next_actions = actor_target(next_obs, next_obs.new_empty(next_obs.shape[0], 1, actions.shape[-1]))
        y = rewards + gamma * (1 - terminals) * q_target(next_obs, next_actions)[0, :, 0]
    td_error = q(obs, actions.unsqueeze(1))[0, :, 0] - y
    return 0.5 * td_error.pow(2).mean(), td_error


def ddpg_actor_loss(q: torch.nn.Module, actor: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """DDPG's actor loss ``-E[Q(s, mu(s))]``."""
    actions = actor(obs, obs.new_empty(obs.shape[0], 1, q.act_dim))
    return -q(obs, actions)[0].mean()
