"""Soft Q-Learning (Haarnoja, Tang, Abbeel, Levine, ICML 2017), read top to bottom.

Faithful to the paper and its public code: a soft Q-network trained on the soft Bellman
backup with an importance-sampled soft value (eq. 10, uniform proposal, M particles); an
amortized sampler ``a = tanh(f(s, xi))`` trained by pushing the SVGD direction (eq. 13) through
the network; an adaptive RBF kernel (median heuristic); a hard target update; no target sampler.
The objectives are :func:`skillbank.algos.losses.sql_q_loss` (eq. 11) and
:func:`skillbank.algos.losses.sql_sampler_loss` (eq. 13); here their gradients are computed by hand.

Temperature is alpha. The Q-network predicts ``Q / alpha``, which is exactly the public code's
reward scaling (reward scale = 1 / alpha); :class:`~skillbank.nn.skill.Skill` reports Q in reward units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from skillbank.algos.buffer import Batch
from skillbank.algos.config import OffPolicyConfig, require, require_off_policy
from skillbank.algos.gradients import sql_q_loss_gradients, sql_sampler_loss_gradients
from skillbank.algos.losses import max_bellman_target, sampler_mixture_proposal, soft_bellman_target
from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.nn.private_ops import FusedAdam, polyak_update

VALUE_PROPOSALS = ("uniform", "sampler", "sampler-density")


@dataclass(frozen=True)
class SQLConfig(OffPolicyConfig):
    """Hyperparameters of Soft Q-Learning; the defaults are the public code's MuJoCo settings.

    :param alpha: temperature; the Q-network predicts ``Q / alpha`` (the public code's reward scale is ``1 / alpha``)
    :param hidden: hidden layer widths of the Q-network and of the sampler
    :param q_in_reward_units: the Q-network predicts Q, divided by alpha outside it, instead of ``Q / alpha``
        (the public code): 1 / alpha times smaller outputs, which Adam's steps of a fixed size then learn as
        fast at any alpha. The paper's outputs reach ``Q / alpha`` ~ 10^4 on the Ant at alpha 0.01. Only in
        reward units does annealing alpha keep Q (in the paper's units Q falls with alpha); fine-tuning with
        ``--set q_in_reward_units=true`` rescales a pretrained network's output layer, keeping Q.
    :param critics: Q-networks; with 2 the soft value and the sampler's target use the least of them (clipped
        double Q, as in SAC: one critic's soft maximum over actions overestimates). The paper has 1.
    :param q_lr: Adam learning rate of the Q-network
    :param sampler_lr: Adam learning rate of the sampler
    :param batch_size: transitions per gradient step
    :param value_particles: actions M that estimate the soft value (eq. 10)
    :param value_proposal: where they are drawn: ``"uniform"`` on the action box (the paper); ``"sampler"``,
        half uniform and half around the sampler's actions (:func:`~skillbank.algos.losses.sampler_mixture_proposal`):
        16 uniform actions in 8 dimensions miss a sharp ``exp(Q / alpha)``, and the value they estimate
        is low where a precise action matters; or ``"sampler-density"``, the sampler's own actions weighted by
        their log-density (:meth:`~skillbank.nn.networks.SVGDSampler.sample_with_log_density`): eq. (10) with the
        policy as the proposal, which is where ``exp(Q / alpha)`` is large once the sampler has learned.
    :param q_target: the Q-network's target: ``"soft"``, eq. (10)'s soft value (the paper), or ``"max"``, the
        greatest target Q over the policy's actions (:func:`~skillbank.algos.losses.max_bellman_target`): the authors'
        fine-tuning, over its frozen heads (:meth:`~skillbank.algos.offpolicy.OffPolicyAlgorithm.freeze_heads`), else
        over ``value_particles`` fresh samples
    :param kernel_particles: sampler particles K per state in the SVGD step (eq. 13)
    :param kernel_update_ratio: the share of the K particles moved; the rest estimate the Stein direction
    :param target_update_interval: gradient steps between updates of the target Q-network
    :param tau: Polyak rate of those updates: 1 copies the Q-network (the paper, every 1000 steps); SAC's
        0.005 every step moves the target smoothly
    :param ou_sigma: the scale of :class:`~skillbank.algos.config.OffPolicyConfig`'s exploration noise; 0 (the public
        code) adds none, the authors' Ant code 0.3
    :param symmetry: a symmetry of the task to train on (:mod:`skillbank.envs.symmetry`): every sampled transition
        is mapped by a random element of the group; ``"none"`` (the paper), or ``"ant-c4"`` in ``ant-walk``
    """

    alpha: float = 1.0
    hidden: tuple[int, ...] = (128, 128)
    q_in_reward_units: bool = False
    critics: int = 1
    q_lr: float = 3e-4
    sampler_lr: float = 3e-4
    batch_size: int = 128
    value_particles: int = 16
    value_proposal: str = "uniform"
    q_target: str = "soft"
    kernel_particles: int = 16
    kernel_update_ratio: float = 0.5
    target_update_interval: int = 1000
    tau: float = 1.0
    symmetry: str = "none"

    @property
    def proposal_draws(self) -> tuple[int, int]:
        """How many uniform actions and how many noise draws of the sampler eq. (10)'s particles take."""
        if self.value_proposal == "sampler-density":
            return 0, self.value_particles
        near = self.value_particles // 2 if self.value_proposal == "sampler" else 0
        return self.value_particles - near, 2 * near  # a centre and an offset per sampler particle

    @property
    def kernel_fixed(self) -> int:
        """How many of the K particles estimate the Stein direction (the others are moved)."""
        return int(round(self.kernel_particles * self.kernel_update_ratio))

    def validate(self) -> None:
        require_off_policy(self)
        require(
            self.value_proposal in VALUE_PROPOSALS,
            f"value_proposal must be one of {', '.join(VALUE_PROPOSALS)}, got {self.value_proposal!r}",
        )
        require(
            self.value_proposal == "uniform" or self.value_particles >= 2,
            f"value_proposal 'sampler' needs value_particles of at least 2, got {self.value_particles}",
        )
        require(1 <= self.critics <= 16, f"critics must be between 1 and 16, got {self.critics}")
        for name in ("value_particles", "target_update_interval"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(
            0 < self.kernel_fixed < self.kernel_particles,
            f"kernel_particles {self.kernel_particles} with kernel_update_ratio {self.kernel_update_ratio} must "
            "leave at least one fixed and one updated particle",
        )


class SQL(OffPolicyAlgorithm):
    """Soft Q-Learning with an amortized SVGD sampler; hyperparameters are :class:`SQLConfig`'s fields.

    >>> algo = SQL("skillbank/MultiGoal-v0", alpha=10.0)   # doctest: +SKIP
    >>> algo.learn(30_000, progress_bar=True).save("multigoal-sql")   # doctest: +SKIP

    Constructed like every algorithm (:class:`~skillbank.algos.offpolicy.OffPolicyAlgorithm`).
    """

    algorithm = "sql"
    config_class = SQLConfig

    def setup(self, compile: bool) -> None:
        self.q_optimizer = FusedAdam(list(self.skill.q.parameters()), lr=self.config.q_lr)
        self.sampler_optimizer = FusedAdam(list(self.skill.sampler.parameters()), lr=self.config.sampler_lr)
        self.q_target_parameters = list(self.q_target.parameters())
        # alpha as a tensor: a schedule (fine-tuning's annealing) changes it without recompiling.
        self.alpha = torch.tensor(self.skill.alpha, device=self.device)
        self.alpha_schedule: Callable[[int], float] | None = None
        if compile:  # the gradient computation as one graph of fused kernels
            self.gradients = torch.compile(self.gradients)

    def optimizers(self) -> dict[str, FusedAdam]:
        return {"q_optimizer": self.q_optimizer, "sampler_optimizer": self.sampler_optimizer}

    def networks(self) -> dict[str, Any]:
        hidden = list(self.config.hidden)
        return dict(
            q_hidden=hidden,
            critics=self.config.critics,
            q_output_scale=self.config.alpha,
            sampler="svgd",
            sampler_hidden=hidden,
            q_reward_units=self.config.q_in_reward_units,
        )

    @torch.no_grad()
    def train_step(self, batch: Batch) -> dict[str, float]:
        """Eq. (11) for the Q-network and eq. (13) for the sampler, then one Adam step of both."""
        config, batch_size, d = self.config, batch[0].shape[0], self.skill.action_dim
        if self.alpha_schedule is not None:
            self.set_alpha(self.alpha_schedule(self.num_timesteps))
        n_uniform, n_proposal = config.proposal_draws
        uniform = torch.rand(batch_size, n_uniform, d, generator=self.rng, device=self.device)
        if self.heads is None:  # one draw for the kernel's and the proposal's noise alike
            noise = self.policy_noise(batch_size, config.kernel_particles + n_proposal)
        else:  # the kernel's particles are the policy's frozen heads
            proposal = torch.randn(batch_size, n_proposal, d, generator=self.rng, device=self.device)
            noise = torch.cat([self.policy_noise(batch_size, config.kernel_particles), proposal], 1)
        target = self.target_noise(batch_size, config.value_particles) if config.q_target == "max" else (None, None)
        td_error, q_gradients, sampler_gradients = self.gradients(batch, uniform * 2 - 1, noise, *target)
        self.q_optimizer.step(q_gradients)
        if not self.policy_frozen:
            self.sampler_optimizer.step(sampler_gradients)
        if (self.num_updates + 1) % config.target_update_interval == 0:
            polyak_update(self.q_target_parameters, self.q_optimizer.parameters, config.tau)
        q_loss = 0.5 * td_error.pow(2).mean()
        return {"q_loss": q_loss.item(), "td_abs": td_error.abs().mean().item()}

    def set_alpha(self, alpha: float) -> None:
        """Change the temperature (the reward scale 1 / alpha) from the next update on."""
        self.alpha.fill_(alpha)
        self.skill.alpha = alpha
        self.skill.q.output_scale = self.q_target.output_scale = float(alpha)

    def soft_value_particles(
        self, next_obs: torch.Tensor, uniform: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The particles of eq. (10) at ``next_obs`` and their proposal's log-density (None: uniform). With
        ``value_proposal`` "sampler", ``noise`` (B, 2 N, d) draws N sampler actions and one offset around each;
        with "sampler-density", ``noise`` (B, M, d) draws the M particles from the sampler itself."""
        if self.config.value_proposal == "uniform":
            return uniform, None
        if self.config.value_proposal == "sampler-density":
            return self.skill.sampler.sample_with_log_density(next_obs, noise)
        near = noise.shape[-2] // 2
        centres = self.skill.sampler(next_obs, noise[:, :near])
        return sampler_mixture_proposal(centres, uniform, noise[:, near:])

    def gradients(
        self,
        batch: Batch,
        uniform: torch.Tensor,
        noise: torch.Tensor,
        target_noise: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The TD errors (critics, B) and the gradients of :func:`~skillbank.algos.losses.sql_q_loss` (eq. 11) in Q's
        parameters and of :func:`~skillbank.algos.losses.sql_sampler_loss` (eq. 13) in the sampler's: the target
        here, the gradients by hand in :mod:`skillbank.algos.gradients`. ``noise`` (B, K + 2 N, d): the K kernel
        particles', then :meth:`soft_value_particles`'. With ``q_target`` "max", ``target_noise`` and
        ``target_mask`` are :meth:`~skillbank.algos.offpolicy.OffPolicyAlgorithm.target_noise`'s."""
        obs, actions, rewards, next_obs, terminals = batch
        config = self.config
        noise, proposal_noise = noise[:, : config.kernel_particles], noise[:, config.kernel_particles :]
        # Eq. (11): the squared soft Bellman error against the target network (or the max over the heads).
        if config.q_target == "max":
            target = max_bellman_target(self.q_target, self.skill.sampler, rewards, next_obs, terminals,
                                        target_noise, config.gamma, 1 / self.alpha, target_mask)  # fmt: skip
        else:
            particles, log_proposal = self.soft_value_particles(next_obs, uniform, proposal_noise)
            target = soft_bellman_target(
                self.q_target, rewards, next_obs, terminals, particles, self.alpha, config.gamma, log_proposal
            )
        td_error, q_gradients = sql_q_loss_gradients(self.skill.q, obs, actions, target)
        # Eq. (13): the SVGD direction at the sampler's particles, pushed through the network.
        sampler_gradients = sql_sampler_loss_gradients(
            self.skill.q, self.skill.sampler, obs, noise, self.config.kernel_fixed
        )
        return td_error, q_gradients, sampler_gradients
