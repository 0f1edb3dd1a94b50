"""The networks of a skill: a soft Q-function and the samplers of its Boltzmann policy.

Each is built on :class:`~skillbank.nn.mlp.MLP` and describes itself in JSON (``spec``), so that a
skill loads without training code (:func:`skillbank.nn.skill.build_q`, :func:`skillbank.nn.skill.build_sampler`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from skillbank.nn.mlp import MLP

SQUASH_EPS = 1e-6  # keeps log(1 - tanh^2) finite at the box's faces


def soft_value_uniform(q_scaled: torch.Tensor, action_dim: int) -> torch.Tensor:
    """SQL eq. (10), ``V(s) = alpha log E_{a~q}[exp(Q(s, a) / alpha) / q(a)]``, with the uniform
    proposal ``q`` on [-1, 1]^d, in units of alpha.

    ``q_scaled`` holds ``Q(s, a_j) / alpha`` for M uniform particles in its last dimension; the
    result is ``log( mean_j exp(q_j) / q(a_j) ) = logsumexp_j q_j - log M + d log 2``.
    """
    return torch.logsumexp(q_scaled, -1) - math.log(q_scaled.shape[-1]) + action_dim * math.log(2.0)


class SoftQ(nn.Module):
    """Soft Q-function ``Q(s, a) = output_scale * self(s, a)``, one value per critic.

    SQL's ``self(s, a)`` is ``Q / alpha`` (the public code's reward-scaled Q), so its ``output_scale``
    is alpha; SAC's is Q (``output_scale`` 1). With ``reward_units`` the network itself predicts Q,
    and ``self(s, a) = net(s, a) / output_scale``: its outputs then do not grow with 1 / alpha.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: list[int], critics: int = 1, output_scale: float = 1.0,
        reward_units: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.obs_dim, self.act_dim, self.reward_units = obs_dim, act_dim, bool(reward_units)
        # self(s, a) / net(s, a), a tensor that follows output_scale in place: compiled code reads it without
        # recompiling when a schedule changes alpha; not persistent, since output_scale is in the spec
        self.register_buffer("gain", torch.ones(()), persistent=False)
        self.output_scale = output_scale
        self.net = MLP(obs_dim + act_dim, hidden, 1, ensemble=critics)

    @property
    def output_scale(self) -> float:
        return self._output_scale

    @output_scale.setter
    def output_scale(self, value: float) -> None:
        self._output_scale = float(value)
        self.gain.fill_(1.0 / self._output_scale if self.reward_units else 1.0)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``Q / output_scale``, shape (critics, *actions.shape[:-1]); ``obs`` broadcasts over particles."""
        states = actions.shape[: obs.dim() - 1]
        return self.gain * self.net(actions, context=obs.expand(*states, self.obs_dim)).squeeze(-1)

    def values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Soft Q in reward units, the minimum over critics: shape ``actions.shape[:-1]``."""
        return self.output_scale * self(obs, actions).min(0).values

    @torch.no_grad()
    def action_gradient(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``d/da sum(min_k self(obs, a)[k])``, the least critic's gradient in the actions, by hand."""
        states = actions.shape[: obs.dim() - 1]
        out, record = self.net.forward_recorded(actions, context=obs.expand(*states, self.obs_dim))
        grad_out = torch.zeros_like(out).scatter_(0, out.argmin(0, keepdim=True), 1.0)
        return self.gain * self.net.input_gradient(record, grad_out)

    @torch.no_grad()
    def set_reward_units(self, reward_units: bool) -> None:
        """The same Q-function, its network now predicting Q (True) or ``Q / output_scale`` (False): the output
        layer is rescaled in place. Only in reward units does a change of the temperature keep Q as it is."""
        if bool(reward_units) != self.reward_units:
            weight, bias = self.net.layers[-1]
            factor = self.output_scale if reward_units else 1.0 / self.output_scale
            weight.mul_(factor)
            bias.mul_(factor)
            self.reward_units = bool(reward_units)
            self.output_scale = self.output_scale  # refreshes the gain

    def spec(self) -> dict[str, Any]:
        spec = {"hidden": self.net.hidden, "critics": self.net.ensemble, "output_scale": self.output_scale}
        return {**spec, "reward_units": True} if self.reward_units else spec


class SVGDSampler(nn.Module):
    """Amortized SVGD sampler of soft Q-learning: ``a = tanh(f(s, xi))``, ``xi ~ N(0, I)``."""

    kind = "svgd"

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = MLP(obs_dim + act_dim, hidden, act_dim)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Actions for ``obs`` (B, obs_dim) and ``noise`` (B, n, act_dim): shape (B, n, act_dim)."""
        return torch.tanh(self.net(noise, context=obs)[0])

    def sample_with_log_density(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (B, n, d) and the sampler's log-density at them (B, n), by the change of variables
        ``xi -> u = f(s, xi) -> a = tanh(u)``: ``log N(xi) - log |det du/dxi| - sum log(1 - a^2)``. Exact where
        ``f`` is one-to-one in the noise (a ReLU network need not be: then it is the density of one branch)."""
        out, record = self.net.forward_recorded(noise, context=obs)
        actions = torch.tanh(out[0])
        _, log_det = torch.linalg.slogdet(self.net.input_jacobian(record)[0])
        log_noise = -0.5 * noise.pow(2).sum(-1) - 0.5 * noise.shape[-1] * math.log(2 * math.pi)
        return actions, log_noise - log_det - torch.log(1 - actions.pow(2) + SQUASH_EPS).sum(-1)

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "hidden": self.net.hidden}


class GaussianSampler(nn.Module):
    """SAC's tanh-Gaussian policy: ``a = tanh(mu(s) + sigma(s) * xi)``, ``xi ~ N(0, I)``."""

    kind = "gaussian"
    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = MLP(obs_dim, hidden, 2 * act_dim)

    def sample_with_log_prob(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (B, n, act_dim) and their log-density under the squashed Gaussian (B, n)."""
        return self.squash(self.net(obs)[0], noise)[:2]

    def squash(self, out: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The network's output (B, 2 act_dim) and noise (B, n, act_dim) -> actions, log-densities
        and log standard deviations (B, 1, act_dim)."""
        pre_tanh, log_std = self._pre_tanh(out, noise)
        action = torch.tanh(pre_tanh)
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable.
        log_prob = log_prob - (2 * (math.log(2) - pre_tanh - nn.functional.softplus(-2 * pre_tanh))).sum(-1)
        return action, log_prob, log_std

    def _pre_tanh(self, out: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = out.unsqueeze(-2).chunk(2, -1)
        # CleanRL's squashing of log_std into [LOG_STD_MIN, LOG_STD_MAX].
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean + log_std.exp() * noise, log_std

    def squash_backward(
        self,
        grad_action: torch.Tensor,
        grad_log_prob: torch.Tensor | float,
        action: torch.Tensor,
        log_std: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """By hand, the gradient of ``sum(grad_action * action) + grad_log_prob * sum(log_prob)`` in
        the network's output (B, 2 act_dim), from what :meth:`squash` returned."""
        # d log_prob / du = 2 tanh(u) (the squashing correction; the Gaussian term is constant in u
        # for fixed noise), and d log_prob / d log_std = -1 besides the path through u.
        grad_pre_tanh = grad_action * (1 - action.pow(2)) + grad_log_prob * 2 * action
        grad_log_std = grad_pre_tanh * log_std.exp() * noise - grad_log_prob
        half_range = 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN)
        tanh_raw = (log_std - self.LOG_STD_MIN) / half_range - 1
        grad_raw = grad_log_std * half_range * (1 - tanh_raw.pow(2))
        return torch.cat([grad_pre_tanh, grad_raw], -1).sum(-2)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self._pre_tanh(self.net(obs)[0], noise)[0])

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "hidden": self.net.hidden}


class DeterministicPolicy(nn.Module):
    """DDPG's actor ``a = tanh(mu(s))``: every "sample" is the same action (the noise is ignored)."""

    kind = "deterministic"

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = MLP(obs_dim, hidden, act_dim)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs)[0]).unsqueeze(-2).expand(*noise.shape)

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "hidden": self.net.hidden}


class HeadsSampler(nn.Module):
    """A trained sampler frozen to ``count`` fixed noise draws ("heads"), as the SQL authors fine-tuned their
    walker: the policy's actions are ``f(s, xi_k)`` for those draws only. ``select`` says which head acts:
    ``uniform``, one at random per action (the authors' policy); ``greedy``, the head whose action has the
    highest Q at that state, the policy whose value a max target over the heads estimates. Both need the skill's
    Q (``needs_target``), so that the skill samples it as it samples any policy (:meth:`Skill.sample_actions`)."""

    kind = "heads"
    needs_target = True
    SELECT = ("uniform", "greedy")

    def __init__(self, base: nn.Module, heads: torch.Tensor | int, select: str = "uniform") -> None:
        super().__init__()
        if select not in self.SELECT:
            raise ValueError(f"heads select {select!r}: choose from {', '.join(self.SELECT)}")
        self.parts = nn.ModuleList([base])
        self.obs_dim, self.act_dim, self.select = base.obs_dim, base.act_dim, select
        # given heads are kept as a view, not a copy, so that a run restored from a checkpoint acts from its own
        self.register_buffer("heads", torch.zeros(heads, base.act_dim) if isinstance(heads, int) else heads.detach())

    @property
    def base(self) -> nn.Module:
        return self.parts[0]

    def head_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """Every head's action at each state: (B, count, d)."""
        return self.base(obs, self.heads.expand(obs.shape[0], *self.heads.shape))

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, log_density, generator=None) -> torch.Tensor:
        """``noise.shape[1]`` actions per state (B, n, d), each from a head chosen by :attr:`select`."""
        batch, n = noise.shape[:2]
        if self.select == "uniform":  # only the chosen heads are evaluated: this runs at every collected step
            chosen = torch.randint(self.heads.shape[0], (batch, n), generator=generator, device=obs.device)
            return self.base(obs, self.heads[chosen])
        actions = self.head_actions(obs)
        chosen = log_density(obs, actions).argmax(1, keepdim=True).expand(batch, n)
        return actions.gather(1, chosen.unsqueeze(-1).expand(batch, n, self.act_dim))

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "parts": [self.base.spec()], "count": self.heads.shape[0], "select": self.select}


SAMPLERS: dict[str, type[nn.Module]] = {
    "svgd": SVGDSampler,
    "gaussian": GaussianSampler,
    "deterministic": DeterministicPolicy,
}
