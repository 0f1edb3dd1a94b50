"""Soft Q-Learning (Haarnoja, Tang, Abbeel, Levine, ICML 2017), read top to bottom.

Faithful to the paper and its public code: a soft Q-network trained on the soft Bellman
backup with an importance-sampled soft value (eq. 10, uniform proposal, M particles); an
amortized sampler ``a = tanh(f(s, xi))`` trained by pushing the SVGD direction (eq. 13) through
the network; an adaptive RBF kernel (median heuristic); a hard target update; no target sampler.

Temperature is alpha. The Q-network predicts ``Q / alpha``, which is exactly the public code's
reward scaling (reward scale = 1 / alpha); :class:`~skillbank.skill.Skill` reports Q in reward units.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch

from skillbank.networks import FusedAdam, SVGDSampler
from skillbank.offpolicy import OffPolicyAlgorithm, make_env
from skillbank.skill import Skill, soft_value_uniform

SQUASH_EPS = 1e-6


def _rbf(xs: torch.Tensor, ys: torch.Tensor, h_min: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)
    dist_sq = diff.pow(2).sum(-1)
    flat = dist_sq.flatten(-2).detach()
    # The public code's median: the (n // 2 + 1)-th largest of the n pairwise distances, i.e. the
    # (n - n // 2)-th smallest (kthvalue is three times faster than topk here).
    median_sq = flat.kthvalue(flat.shape[-1] - flat.shape[-1] // 2, dim=-1).values
    h = (median_sq / math.log(xs.shape[-2])).clamp(min=h_min)[..., None, None]
    return torch.exp(-dist_sq / h), diff, h


def rbf_kernel(xs: torch.Tensor, ys: torch.Tensor, h_min: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive isotropic RBF kernel ``k(x, y) = exp(-||x - y||^2 / h)`` and its gradient in x.

    ``xs`` (B, Kx, d), ``ys`` (B, Ky, d). The bandwidth is ``h = median(||x - y||^2) / log Kx``
    per batch row (floored at ``h_min``) and treated as a constant. Returns ``kappa`` (B, Kx, Ky)
    and ``grad_x kappa`` (B, Kx, Ky, d).
    """
    kappa, diff, h = _rbf(xs, ys, h_min)
    return kappa, -2.0 * diff / h.unsqueeze(-1) * kappa.unsqueeze(-1)


def svgd_direction(fixed: torch.Tensor, updated: torch.Tensor, grad_log_p: torch.Tensor) -> torch.Tensor:
    """Stein variational direction (eq. 13) for ``updated`` particles, estimated from ``fixed`` ones:

    ``phi(a) = E_{a'~fixed}[ k(a', a) grad_{a'} log p(a') + grad_{a'} k(a', a) ]``, shape of ``updated``.

    With the RBF kernel the second term sums in closed form,
    ``sum_i grad_{a_i} k(a_i, a) = (2 / h) (a sum_i k(a_i, a) - sum_i k(a_i, a) a_i)``,
    so both terms are matrix products with the kernel matrix (no (B, Kx, Ky, d) tensor).
    """
    kappa, _, h = _rbf(fixed, updated)
    kernel_t = kappa.transpose(-1, -2)
    repulsion = (2.0 / h) * (kappa.sum(-2).unsqueeze(-1) * updated - kernel_t @ fixed)
    return (kernel_t @ grad_log_p + repulsion) / fixed.shape[-2]


@torch.no_grad()
def svgd_sampler_gradients(
    q: torch.nn.Module, sampler: SVGDSampler, obs: torch.Tensor, noise: torch.Tensor, kernel_fixed: int
) -> list[torch.Tensor]:
    """Amortized SVGD (eq. 13): the gradient of the surrogate ``-mean(stopgrad(phi) * f(s, xi))`` in the
    sampler's parameters, with phi the Stein direction at the particles ``f(s, xi)`` for ``noise``
    (B, K, d), the first ``kernel_fixed`` of which estimate it for the others. ``q(obs, a)[0]`` is
    ``Q / alpha``, the log-density up to the squashing correction; ``q.action_gradient`` its gradient.

    Backpropagated by hand (:class:`~skillbank.networks.MLP`); only the updated particles carry
    gradient to the sampler, so only they are evaluated with a record for it."""
    fixed = sampler(obs, noise[:, :kernel_fixed])
    out, sampler_record = sampler.net.forward_recorded(noise[:, kernel_fixed:], context=obs)
    updated = torch.tanh(out[0])
    # grad log p(a) at the fixed particles: through Q, plus the tanh squashing's log(1 - a^2).
    grad_log_p = q.action_gradient(obs, fixed) - 2 * fixed / (1 - fixed.pow(2) + SQUASH_EPS)
    phi = svgd_direction(fixed, updated, grad_log_p)
    grad_updated = -phi / phi.shape[:-1].numel()
    return sampler.net.parameter_gradients(sampler_record, (grad_updated * (1 - updated.pow(2))).unsqueeze(0))


class SQL(OffPolicyAlgorithm):
    """Soft Q-Learning with an amortized SVGD sampler.

    >>> algo = SQL("skillbank/MultiGoal-v0", alpha=10.0)   # doctest: +SKIP
    >>> algo.learn(30_000, progress_bar=True).save("multigoal-sql")   # doctest: +SKIP
    """

    algorithm = "sql"

    def __init__(
        self,
        env: gym.Env | str,
        *,
        alpha: float = 1.0,
        gamma: float = 0.99,
        hidden: list[int] | tuple[int, ...] = (128, 128),
        q_lr: float = 3e-4,
        sampler_lr: float = 3e-4,
        batch_size: int = 128,
        value_particles: int = 16,
        kernel_particles: int = 16,
        kernel_update_ratio: float = 0.5,
        target_update_interval: int = 1000,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        gradient_steps: int = 1,
        seed: int = 0,
        skill: Skill | None = None,
        compile: bool = False,
    ) -> None:
        env = make_env(env)
        hyperparameters = dict(
            alpha=alpha, gamma=gamma, hidden=list(hidden), q_lr=q_lr, sampler_lr=sampler_lr,
            batch_size=batch_size, value_particles=value_particles, kernel_particles=kernel_particles,
            kernel_update_ratio=kernel_update_ratio, target_update_interval=target_update_interval,
            buffer_size=buffer_size, learning_starts=learning_starts, gradient_steps=gradient_steps,
        )  # fmt: skip
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.kernel_fixed = int(round(kernel_particles * kernel_update_ratio))
        if not 0 < self.kernel_fixed < kernel_particles:
            raise ValueError("kernel_update_ratio must leave at least one fixed and one updated particle")
        super().__init__(
            env, skill, hyperparameters, seed,
            q_hidden=list(hidden), critics=1, q_output_scale=alpha, sampler="svgd", sampler_hidden=list(hidden),
        )  # fmt: skip
        self.q_optimizer = FusedAdam(list(self.skill.q.parameters()), lr=q_lr)
        self.sampler_optimizer = FusedAdam(list(self.skill.sampler.parameters()), lr=sampler_lr)
        self.q_target_parameters = list(self.q_target.parameters())
        if compile:  # the gradient computation as one graph of fused kernels
            self.gradients = torch.compile(self.gradients)

    def soft_bellman_target(
        self, rewards: torch.Tensor, next_obs: torch.Tensor, terminals: torch.Tensor, uniform: torch.Tensor
    ) -> torch.Tensor:
        """``r / alpha + gamma V(s')`` in units of alpha, ``V(s')`` importance-sampled (eq. 10) under
        the target network from ``uniform`` actions (B, M, d) in [-1, 1]."""
        hp = self.hyperparameters
        with torch.no_grad():
            next_value = soft_value_uniform(self.q_target(next_obs, uniform)[0], self.skill.action_dim)
        return rewards / hp["alpha"] + hp["gamma"] * (1 - terminals) * next_value

    @torch.no_grad()
    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        """Eq. (11) for the Q-network and eq. (13) for the sampler, then one Adam step of both."""
        hp, batch_size, d = self.hyperparameters, batch[0].shape[0], self.skill.action_dim
        uniform = torch.rand(batch_size, hp["value_particles"], d, generator=self.rng) * 2 - 1
        noise = torch.randn(batch_size, hp["kernel_particles"], d, generator=self.rng)
        td_error, q_gradients, sampler_gradients = self.gradients(batch, uniform, noise)
        self.q_optimizer.step(q_gradients)
        self.sampler_optimizer.step(sampler_gradients)
        if (self.num_updates + 1) % hp["target_update_interval"] == 0:
            torch._foreach_copy_(self.q_target_parameters, self.q_optimizer.parameters)
        q_loss = 0.5 * td_error.pow(2).mean()
        return {"q_loss": q_loss.item(), "td_abs": td_error.abs().mean().item()}

    def gradients(
        self, batch: tuple[torch.Tensor, ...], uniform: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The TD errors (B,) and the gradients of eq. (11) in Q's parameters and of eq. (13) in the
        sampler's, backpropagated by hand (:class:`~skillbank.networks.MLP`): autograd's arithmetic
        (``tests/test_fast_update.py`` compares them) without its bookkeeping."""
        obs, actions, rewards, next_obs, terminals = batch
        q = self.skill.q.net
        # Eq. (11): squared soft Bellman error against the target network; its gradient in Q is -td / B.
        q_pred, record = q.forward_recorded(actions, context=obs)
        td_error = self.soft_bellman_target(rewards, next_obs, terminals, uniform) - q_pred[0, :, 0]
        q_gradients = q.parameter_gradients(record, -td_error / obs.shape[0])
        # Eq. (13): SVGD direction at the sampler's particles, pushed through the network.
        sampler_gradients = svgd_sampler_gradients(self.skill.q, self.skill.sampler, obs, noise, self.kernel_fixed)
        return td_error, q_gradients, sampler_gradients
