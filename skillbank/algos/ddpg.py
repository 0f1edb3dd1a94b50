"""Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv 1509.02971), read top to bottom.

The SQL paper's baseline: a critic ``Q(s, a)`` trained on the TD error against Polyak-averaged target
critic and actor (:func:`skillbank.algos.losses.ddpg_q_loss`), a deterministic actor ``a = tanh(mu(s))``
trained by the deterministic policy gradient (:func:`skillbank.algos.losses.ddpg_actor_loss`), and
Ornstein-Uhlenbeck exploration noise (theta 0.15, sigma 0.1 as in the SQL paper's experiments),
reset at every episode. Gradients are computed by hand, like SQL's and SAC's.

Its skill is registered like any other, but it is not a maximum-entropy skill: its Q is not soft
and its policy has no density ``exp(Q / alpha)`` (alpha is recorded as 0), so composing it is refused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from skillbank.algos.buffer import Batch
from skillbank.algos.config import OffPolicyConfig, require_off_policy
from skillbank.algos.gradients import ddpg_actor_loss_gradients, ddpg_q_loss_gradients
from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.nn.private_ops import FusedAdam, polyak_update


@dataclass(frozen=True)
class DDPGConfig(OffPolicyConfig):
    """Hyperparameters of DDPG; the defaults are the paper's, with the SQL paper's exploration noise.

    :param hidden: hidden layer widths of the critic and of the actor
    :param q_lr: Adam learning rate of the critic
    :param actor_lr: Adam learning rate of the actor
    :param tau: Polyak rate of the target critic and actor
    :param ou_sigma: scale of the Ornstein-Uhlenbeck noise, in the normalised action box [-1, 1]
    :param batch_size: transitions per gradient step
    """

    hidden: tuple[int, ...] = (400, 300)
    q_lr: float = 1e-3
    actor_lr: float = 1e-4
    tau: float = 1e-3
    ou_sigma: float = 0.1
    batch_size: int = 64

    alpha = 0.0  # not a field: DDPG has no temperature, and its skill records 0

    def validate(self) -> None:
        require_off_policy(self)


class DDPG(OffPolicyAlgorithm):
    """DDPG with Ornstein-Uhlenbeck exploration; hyperparameters are :class:`DDPGConfig`'s fields."""

    algorithm = "ddpg"
    config_class = DDPGConfig

    def setup(self, compile: bool) -> None:
        config = self.config
        self.actor_target = copy.deepcopy(self.skill.sampler).requires_grad_(False)
        self.q_optimizer = FusedAdam(list(self.skill.q.parameters()), lr=config.q_lr)
        self.actor_optimizer = FusedAdam(list(self.skill.sampler.parameters()), lr=config.actor_lr)
        self.target_parameters = list(self.q_target.parameters()) + list(self.actor_target.parameters())
        self.online_parameters = list(self.skill.q.parameters()) + list(self.skill.sampler.parameters())
        if compile:
            self.critic_gradients = torch.compile(self.critic_gradients)
            self.actor_gradients = torch.compile(self.actor_gradients)

    def networks(self) -> dict[str, Any]:
        hidden = list(self.config.hidden)
        return dict(q_hidden=hidden, critics=1, q_output_scale=1.0, sampler="deterministic", sampler_hidden=hidden)

    def optimizers(self) -> dict[str, FusedAdam]:
        return {"q_optimizer": self.q_optimizer, "actor_optimizer": self.actor_optimizer}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"actor_target.{k}": v for k, v in self.actor_target.state_dict().items()}
        return {**super().state_tensors(), **tensors}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        super().load_state_tensors(tensors)
        self.actor_target.load_state_dict({k[13:]: v for k, v in tensors.items() if k.startswith("actor_target.")})

    # ----- learning -----------------------------------------------------------------------------
    @torch.no_grad()
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One Adam step of the critic, then one of the actor through the updated critic, then the targets."""
        td_error, q_gradients = self.critic_gradients(batch)
        self.q_optimizer.step(q_gradients)
        actor_loss, actor_gradients = self.actor_gradients(batch[0])
        if not self.policy_frozen:
            self.actor_optimizer.step(actor_gradients)
        polyak_update(self.target_parameters, self.online_parameters, self.config.tau)
        return {"q_loss": 0.5 * td_error.pow(2).mean().item(), "actor_loss": actor_loss.item()}

    def critic_gradients(self, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The TD errors (B,) and the gradient of :func:`~skillbank.algos.losses.ddpg_q_loss` in the critic's
        parameters, by hand (:mod:`skillbank.algos.gradients`): the TD error / B at the critic's output."""
        obs, actions, rewards, next_obs, terminals = batch
        next_actions = torch.tanh(self.actor_target.net(next_obs)[0])
        y = rewards + self.config.gamma * (1 - terminals) * self.q_target(next_obs, next_actions)[0]
        return ddpg_q_loss_gradients(self.skill.q, obs, actions, y)

    def actor_gradients(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:func:`~skillbank.algos.losses.ddpg_actor_loss` and its gradient in the actor's parameters, by hand:
        ``-grad_a Q(s, a) / B`` at ``a = mu(s)``, through the tanh, into the actor."""
        return ddpg_actor_loss_gradients(self.skill.q, self.skill.sampler, obs)
