"""Soft Actor-Critic with automatic temperature (Haarnoja et al. 2018, arXiv 1812.05905), read top to bottom.

Twin soft Q-functions (one batched network), a tanh-Gaussian policy with reparameterisation,
Polyak-averaged targets, and the temperature tuned by ``J(alpha) = E[-alpha (log pi + H_target)]``.
The resulting :class:`~skillbank.skill.Skill` is the same kind of object SQL produces: a soft
Q-function (the minimum of the twins) plus a sampler, with alpha the final temperature.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from skillbank.offpolicy import OffPolicyAlgorithm, make_env
from skillbank.skill import Skill


class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic; defaults are those of the paper and Stable-Baselines3."""

    algorithm = "sac"

    def __init__(
        self,
        env: gym.Env | str,
        *,
        alpha: float = 1.0,
        autotune: bool = True,
        target_entropy: float | None = None,
        gamma: float = 0.99,
        hidden: list[int] | tuple[int, ...] = (256, 256),
        q_lr: float = 3e-4,
        policy_lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        tau: float = 0.005,
        batch_size: int = 256,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        gradient_steps: int = 1,
        seed: int = 0,
        skill: Skill | None = None,
    ) -> None:
        env = make_env(env)
        if target_entropy is None:
            target_entropy = -float(np.prod(env.action_space.shape))
        hyperparameters = dict(
            alpha=alpha, autotune=autotune, target_entropy=target_entropy, gamma=gamma, hidden=list(hidden),
            q_lr=q_lr, policy_lr=policy_lr, alpha_lr=alpha_lr, tau=tau, batch_size=batch_size,
            buffer_size=buffer_size, learning_starts=learning_starts, gradient_steps=gradient_steps,
        )  # fmt: skip
        super().__init__(
            env, skill, hyperparameters, seed,
            q_hidden=list(hidden), critics=2, q_output_scale=1.0, sampler="gaussian", sampler_hidden=list(hidden),
        )  # fmt: skip
        self.log_alpha = torch.tensor(math.log(self.skill.alpha), requires_grad=autotune)
        # Fused Adam: one kernel per parameter group instead of a loop over tensors. The policy and
        # the temperature share an optimizer (separate groups): their losses touch disjoint parameters.
        self.q_optimizer = torch.optim.Adam(self.skill.q.parameters(), lr=q_lr, fused=True)
        policy_groups = [{"params": self.skill.sampler.parameters(), "lr": policy_lr}]
        if autotune:
            policy_groups.append({"params": [self.log_alpha], "lr": alpha_lr})
        self.policy_optimizer = torch.optim.Adam(policy_groups, fused=True)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        obs, actions, rewards, next_obs, terminals = batch
        hp, q, policy = self.hyperparameters, self.skill.q, self.skill.sampler
        alpha = self.log_alpha.detach().exp()
        shape = (obs.shape[0], 1, self.skill.action_dim)

        # Soft Bellman target with the clipped double-Q trick.
        with torch.no_grad():
            next_actions, next_log_pi = policy.sample_with_log_prob(next_obs, torch.randn(shape, generator=self.rng))
            next_q = self.q_target(next_obs, next_actions).min(0).values - alpha * next_log_pi
            q_hat = rewards + hp["gamma"] * (1 - terminals) * next_q[:, 0]
        q_pred = q(obs, actions)
        q_loss = 0.5 * (q_pred - q_hat).pow(2).mean(-1).sum()  # J_Q, summed over the twin critics
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()

        # J_pi = E[alpha log pi(a|s) - Q(s, a)], a reparameterised. The critics are frozen for this
        # pass: only the action gradient is needed, so their weight gradients are never computed.
        new_actions, log_pi = policy.sample_with_log_prob(obs, torch.randn(shape, generator=self.rng))
        q.requires_grad_(False)
        policy_loss = (alpha * log_pi - q(obs, new_actions).min(0).values).mean()
        q.requires_grad_(True)
        # J(alpha) = E[-alpha (log pi + H_target)].
        if hp["autotune"]:
            policy_loss = policy_loss - (self.log_alpha.exp() * (log_pi.detach() + hp["target_entropy"])).mean()
        self.policy_optimizer.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.policy_optimizer.step()
        self.skill.alpha = float(self.log_alpha.detach().exp())

        with torch.no_grad():
            for target, source in zip(self.q_target.parameters(), q.parameters()):
                target.lerp_(source, hp["tau"])
        return {"q_loss": q_loss.item(), "alpha": self.skill.alpha, "entropy": -log_pi.mean().item()}
