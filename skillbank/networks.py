"""Small MLPs that describe themselves in JSON, so a checkpoint loads without training code.

Every network is an ``MLP`` with an ensemble dimension: twin critics are one MLP with
``ensemble=2`` evaluated as batched matrix products, not two modules in a Python loop.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class MLP(nn.Module):
    """``ensemble`` independent ReLU MLPs evaluated together: (..., in) -> (ensemble, ..., out)."""

    def __init__(self, in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int, ensemble: int = 1) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.out_dim, self.ensemble = in_dim, list(hidden), out_dim, ensemble
        sizes = [in_dim, *self.hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            # Xavier-uniform as in the public SQL code; zero biases.
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            self.weights.append(nn.Parameter(torch.empty(ensemble, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.zeros(ensemble, 1, fan_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = x.reshape(1, -1, self.in_dim).expand(self.ensemble, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h.reshape(self.ensemble, *lead, self.out_dim)

    def spec(self) -> dict[str, Any]:
        return {"in": self.in_dim, "hidden": self.hidden, "out": self.out_dim, "ensemble": self.ensemble}


class SoftQ(nn.Module):
    """Soft Q-function ``Q(s, a) = output_scale * net(s, a)``, one value per critic.

    SQL's network predicts ``Q / alpha`` (the public code's reward-scaled Q), so its
    ``output_scale`` is alpha; SAC's predicts Q directly (``output_scale`` 1).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], critics: int = 1, output_scale: float = 1.0):
        super().__init__()
        self.obs_dim, self.act_dim, self.output_scale = obs_dim, act_dim, float(output_scale)
        self.net = MLP(obs_dim + act_dim, hidden, 1, ensemble=critics)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Raw network output, shape (critics, *actions.shape[:-1]); ``obs`` broadcasts over particles."""
        obs = obs.reshape(*obs.shape[:-1], *([1] * (actions.dim() - obs.dim())), obs.shape[-1])
        obs = obs.expand(*actions.shape[:-1], self.obs_dim)
        return self.net(torch.cat([obs, actions], -1)).squeeze(-1)

    def spec(self) -> dict[str, Any]:
        return {"hidden": self.net.hidden, "critics": self.net.ensemble, "output_scale": self.output_scale}


class SVGDSampler(nn.Module):
    """Amortized SVGD sampler of soft Q-learning: ``a = tanh(f(s, xi))``, ``xi ~ N(0, I)``."""

    kind = "svgd"

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = MLP(obs_dim + act_dim, hidden, act_dim)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Actions for ``obs`` (B, obs_dim) and ``noise`` (B, n, act_dim): shape (B, n, act_dim)."""
        obs = obs.unsqueeze(-2).expand(*noise.shape[:-1], self.obs_dim)
        return torch.tanh(self.net(torch.cat([obs, noise], -1))[0])

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

    def _mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs)[0].unsqueeze(-2).chunk(2, -1)
        # CleanRL's squashing of log_std into [LOG_STD_MIN, LOG_STD_MAX].
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample_with_log_prob(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (B, n, act_dim) and their log-density under the squashed Gaussian (B, n)."""
        mean, log_std = self._mean_log_std(obs)
        pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh)
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable.
        log_prob = log_prob - (2 * (math.log(2) - pre_tanh - nn.functional.softplus(-2 * pre_tanh))).sum(-1)
        return action, log_prob

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.sample_with_log_prob(obs, noise)[0]

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "hidden": self.net.hidden}


SAMPLERS: dict[str, type[nn.Module]] = {"svgd": SVGDSampler, "gaussian": GaussianSampler}
