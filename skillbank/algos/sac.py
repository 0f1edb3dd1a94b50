"""Soft Actor-Critic with automatic temperature (Haarnoja et al. 2018, arXiv 1812.05905), read top to bottom.

Twin soft Q-functions (one batched network), a tanh-Gaussian policy with reparameterisation,
Polyak-averaged targets, and the temperature tuned by ``J(alpha) = E[-alpha (log pi + H_target)]``.
The objectives are :func:`skillbank.algos.losses.sac_q_loss`, :func:`~skillbank.algos.losses.sac_policy_loss`
and :func:`~skillbank.algos.losses.sac_alpha_loss`; here their gradients are computed by hand.
The resulting :class:`~skillbank.nn.skill.Skill` is the same kind of object SQL produces: a soft
Q-function (the minimum of the twins) plus a sampler, with alpha the final temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skillbank.algos.buffer import Batch
from skillbank.algos.config import OffPolicyConfig, require_off_policy
from skillbank.algos.gradients import sac_alpha_loss_gradient, sac_policy_loss_gradients, sac_q_loss_gradients
from skillbank.algos.losses import max_bellman_target
from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.nn.private_ops import FusedAdam, polyak_update


@dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    """Hyperparameters of Soft Actor-Critic; the defaults are the paper's and Stable-Baselines3's.

    :param alpha: the temperature, or its initial value when ``autotune`` is on
    :param autotune: tune the temperature by ``J(alpha)`` towards ``target_entropy``
    :param target_entropy: the entropy the tuned policy keeps (default: minus the action dimension)
    :param hidden: hidden layer widths of the critics and of the policy
    :param q_lr: Adam learning rate of the critics
    :param policy_lr: Adam learning rate of the policy
    :param alpha_lr: Adam learning rate of ``log alpha``
    :param tau: Polyak rate of the target critics
    :param batch_size: transitions per gradient step
    :param q_target: the critics' target: ``"soft"``, the soft Bellman backup (the paper), or ``"max"``, the greatest
        target Q over the policy's frozen heads, as :class:`~skillbank.algos.sql.SQLConfig`'s (fine-tuning; with no
        heads, at one fresh sample, without the entropy term)
    :param ou_sigma: the scale of :class:`~skillbank.algos.config.OffPolicyConfig`'s exploration noise; 0 (the paper)
        adds none
    :param symmetry: a symmetry of the task to train on, as in :class:`~skillbank.algos.sql.SQLConfig`
    """

    alpha: float = 1.0
    autotune: bool = True
    target_entropy: float | None = None
    hidden: tuple[int, ...] = (256, 256)
    q_lr: float = 3e-4
    policy_lr: float = 3e-4
    alpha_lr: float = 3e-4
    tau: float = 0.005
    batch_size: int = 256
    q_target: str = "soft"
    symmetry: str = "none"

    def validate(self) -> None:
        require_off_policy(self)


class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic; hyperparameters are :class:`SACConfig`'s fields.

    Constructed like every algorithm (:class:`~skillbank.algos.offpolicy.OffPolicyAlgorithm`).
    """

    algorithm = "sac"
    config_class = SACConfig

    def setup(self, compile: bool) -> None:
        config = self.config
        self.log_alpha = torch.tensor(math.log(self.skill.alpha), device=self.device)
        self.q_optimizer = FusedAdam(list(self.skill.q.parameters()), lr=config.q_lr)
        self.q_target_parameters = list(self.q_target.parameters())
        self.policy_optimizer = FusedAdam(list(self.skill.sampler.parameters()), lr=config.policy_lr)
        self.alpha_optimizer = FusedAdam([self.log_alpha], lr=config.alpha_lr)
        if compile:  # the two gradient computations, each one graph of fused kernels
            self.critic_gradients = torch.compile(self.critic_gradients)
            self.policy_gradients = torch.compile(self.policy_gradients)

    def configure(self, config: SACConfig) -> SACConfig:
        if config.target_entropy is None:
            return config.replace(target_entropy=-float(np.prod(self.env.action_space.shape)))
        return config

    def optimizers(self) -> dict[str, FusedAdam]:
        return {"q_optimizer": self.q_optimizer, "policy_optimizer": self.policy_optimizer,
                "alpha_optimizer": self.alpha_optimizer}  # fmt: skip

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().state_tensors(), "log_alpha": self.log_alpha}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        super().load_state_tensors(tensors)
        self.log_alpha.copy_(tensors["log_alpha"])

    def networks(self) -> dict[str, Any]:
        hidden = list(self.config.hidden)
        return dict(q_hidden=hidden, critics=2, q_output_scale=1.0, sampler="gaussian", sampler_hidden=hidden)

    @torch.no_grad()
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One Adam step of the critics, then one of the policy and the temperature."""
        batch_size = batch[0].shape[0]
        if self.config.q_target == "max":
            next_noise, next_mask = self.target_noise(batch_size, 1)
        else:
            next_noise, next_mask = self.policy_noise(batch_size, 1), None
        noise = self.policy_noise(batch_size, 1)
        td_error, q_gradients = self.critic_gradients(batch, next_noise, next_mask)
        self.q_optimizer.step(q_gradients)
        log_pi, policy_gradients, alpha_gradient = self.policy_gradients(batch[0], noise)
        if not self.policy_frozen:
            self.policy_optimizer.step(policy_gradients)
            if self.config.autotune:
                self.alpha_optimizer.step([alpha_gradient])
        self.skill.alpha = float(self.log_alpha.exp())
        polyak_update(self.q_target_parameters, self.q_optimizer.parameters, self.config.tau)
        q_loss = 0.5 * td_error.pow(2).mean(-1).sum()
        return {"q_loss": q_loss.item(), "alpha": self.skill.alpha, "entropy": -log_pi.mean().item()}

    def critic_gradients(
        self, batch: Batch, next_noise: torch.Tensor, next_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The TD errors (2, B) and the gradient of :func:`~skillbank.algos.losses.sac_q_loss` in the critics'
        parameters: the target here, the gradient by hand in :mod:`skillbank.algos.gradients`."""
        obs, actions, rewards, next_obs, terminals = batch
        if self.config.q_target == "max":  # the SQL authors' fine-tuning target, over the frozen heads
            q_hat = max_bellman_target(self.q_target, self.skill.sampler, rewards, next_obs, terminals, next_noise,
                                       self.config.gamma, mask=next_mask)  # fmt: skip
        else:  # soft Bellman target with the clipped double-Q trick
            next_actions, next_log_pi = self.skill.sampler.sample_with_log_prob(next_obs, next_noise)
            next_q = self.q_target(next_obs, next_actions).min(0).values - self.log_alpha.exp() * next_log_pi
            q_hat = rewards + self.config.gamma * (1 - terminals) * next_q[:, 0]
        return sac_q_loss_gradients(self.skill.q, obs, actions, q_hat)

    def policy_gradients(
        self, obs: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """log pi (B, 1), the gradient of :func:`~skillbank.algos.losses.sac_policy_loss` in the policy's parameters
        and that of :func:`~skillbank.algos.losses.sac_alpha_loss` in log alpha."""
        alpha = self.log_alpha.exp()
        log_pi, policy_gradients = sac_policy_loss_gradients(self.skill.q, self.skill.sampler, obs, noise, alpha)
        alpha_gradient = (
            sac_alpha_loss_gradient(alpha, log_pi, self.config.target_entropy) if self.config.autotune else None
        )
        return log_pi, policy_gradients, alpha_gradient
