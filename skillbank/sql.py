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


def svgd_sampler_loss(
    q: torch.nn.Module,
    sampler: torch.nn.Module,
    obs: torch.Tensor,
    kernel_particles: int,
    kernel_fixed: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Amortized SVGD (eq. 13): the Stein direction at the sampler's particles, pushed through the
    network as the surrogate ``-sum(stopgrad(phi) * f(s, xi))``. ``q(obs, a)[0]`` is ``Q / alpha``."""
    noise = torch.randn(obs.shape[0], kernel_particles, q.act_dim, generator=generator)
    # Only the updated particles carry gradient to the sampler, so only they are evaluated with it.
    with torch.no_grad():
        fixed = sampler(obs, noise[:, :kernel_fixed])
    updated = sampler(obs, noise[:, kernel_fixed:])
    fixed.requires_grad_(True)
    log_p = q(obs, fixed)[0] + torch.log(1 - fixed.pow(2) + SQUASH_EPS).sum(-1)
    (grad_log_p,) = torch.autograd.grad(log_p.sum(), fixed)
    phi = svgd_direction(fixed.detach(), updated.detach(), grad_log_p)
    return -(phi * updated).sum(-1).mean()


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
        # One fused Adam (two parameter groups) steps both networks in a single kernel per group.
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.skill.q.parameters(), "lr": q_lr},
                {"params": self.skill.sampler.parameters(), "lr": sampler_lr},
            ],
            fused=True,
        )

    @torch.no_grad()
    def soft_bellman_target(self, rewards: torch.Tensor, next_obs: torch.Tensor, terminals: torch.Tensor):
        """``r / alpha + gamma V(s')`` in units of alpha, ``V(s')`` importance-sampled (eq. 10) from
        M uniform actions under the target network."""
        hp = self.hyperparameters
        uniform = torch.rand(next_obs.shape[0], hp["value_particles"], self.skill.action_dim, generator=self.rng)
        next_value = soft_value_uniform(self.q_target(next_obs, uniform * 2 - 1)[0], self.skill.action_dim)
        return rewards / hp["alpha"] + hp["gamma"] * (1 - terminals) * next_value

    def losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. (11) and eq. (13) on one batch: ``(q_loss, sampler_loss, td_error)``."""
        obs, actions, rewards, next_obs, terminals = batch
        hp, q, sampler = self.hyperparameters, self.skill.q, self.skill.sampler

        # Eq. (11): squared soft Bellman error against the target network.
        td_error = self.soft_bellman_target(rewards, next_obs, terminals) - q(obs, actions)[0]
        q_loss = 0.5 * td_error.pow(2).mean()

        # Eq. (13): SVGD direction at the sampler's particles, pushed through the network.
        sampler_loss = svgd_sampler_loss(q, sampler, obs, hp["kernel_particles"], self.kernel_fixed, self.rng)
        return q_loss, sampler_loss, td_error

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        q_loss, sampler_loss, td_error = self.losses(batch)
        # The two losses touch disjoint parameters (the SVGD direction is detached from Q), so one
        # backward pass of their sum gives each network exactly its own gradient.
        self.optimizer.zero_grad(set_to_none=True)
        (q_loss + sampler_loss).backward()
        self.optimizer.step()

        if (self.num_updates + 1) % self.hyperparameters["target_update_interval"] == 0:
            with torch.no_grad():
                for target, source in zip(self.q_target.parameters(), self.skill.q.parameters()):
                    target.copy_(source)
        return {"q_loss": q_loss.item(), "td_abs": td_error.abs().mean().item()}
