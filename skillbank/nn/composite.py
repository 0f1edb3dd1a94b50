"""The networks of a composite skill: a Q-function made of others, and a sampler made of theirs.

:func:`skillbank.composition.compose.compose` builds them; they save, load and compose again like any skill's
networks. The weights of an operator and the weighted sum of Q-functions are defined here once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from skillbank.errors import SkillbankError
from skillbank.nn.networks import SoftQ

OPERATORS = ("sum", "mean", "or", "gpi", "dc")


def normalise_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """``n`` non-negative weights scaled to sum 1 (equal ones by default)."""
    weights = [1.0] * n if weights is None else [float(w) for w in weights]
    if len(weights) != n:
        raise SkillbankError(f"got {len(weights)} weights for {n} skills; give one weight per skill")
    if min(weights) < 0 or sum(weights) <= 0:
        raise SkillbankError(f"weights must be >= 0 with a positive sum, got {weights}")
    return [w / sum(weights) for w in weights]


def operator_weights(op: str, weights: Sequence[float] | None, n: int) -> list[float]:
    """The weights an operator uses: explicit ones checked, defaults 1 (sum) or 1/n (others)."""
    if op not in OPERATORS:
        raise SkillbankError(f"unknown operator {op!r}; choose one of {', '.join(OPERATORS)}")
    if n < 2:
        raise SkillbankError("composition needs at least two skills")
    if op == "gpi" and weights is not None and len({float(w) for w in weights}) > 1:
        raise SkillbankError("gpi takes the max over Q-functions and has no weights; leave --weights out")
    if op == "sum":  # the public code's plain sum: the weights as given, 1 by default
        if weights is None:
            return [1.0] * n
        normalise_weights(weights, n)  # the same checks
        return [float(w) for w in weights]
    return normalise_weights(weights, n)


def weighted_sum(weights: Sequence[float], values: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k values[k]`` over the leading dimension: the composite ``Q_Sigma`` of weighted skills."""
    w = torch.as_tensor(weights, dtype=values.dtype).reshape(-1, *([1] * (values.dim() - 1)))
    return (w * values).sum(0)


class CompositeQ(nn.Module):
    """A soft Q-function made of others (see :mod:`skillbank.composition.compose`), in reward units::

        sum, mean   sum_k w_k Q_k            (mean: weights normalised to sum 1; Haarnoja et al. 2018)
        or          alpha log sum_k w_k exp(Q_k / alpha)                  (van Niekerk et al. 2019)
        gpi         max_k Q_k                                  (max-ent GPI; weights must be equal)
        dc          sum_k w_k Q_k - C(s, a)      (divergence correction, Hunt et al. 2019; weights sum 1)

    ``scales`` multiply each constituent (1, or alpha / alpha_k when temperatures are rescaled).
    Like :class:`SoftQ`, ``forward`` returns ``Q / output_scale`` with a leading critic dimension
    of 1, so the SQL machinery (samplers, fine-tuning) applies unchanged.
    """

    def __init__(
        self,
        parts: list[nn.Module],
        op: str,
        weights: list[float],
        alpha: float,
        scales: list[float] | None = None,
        correction: SoftQ | None = None,
    ) -> None:
        super().__init__()
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}; choose one of {', '.join(OPERATORS)}")
        if (op == "dc") != (correction is not None):
            raise ValueError("the dc operator, and only it, needs a correction network")
        self.parts = nn.ModuleList(parts)
        self.op, self.weights, self.output_scale = op, [float(w) for w in weights], float(alpha)
        self.scales = [1.0] * len(parts) if scales is None else [float(s) for s in scales]
        self.correction = correction
        self.obs_dim, self.act_dim = parts[0].obs_dim, parts[0].act_dim

    def values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        qs = torch.stack([s * part.values(obs, actions) for s, part in zip(self.scales, self.parts)])
        if self.op == "or":
            log_w = torch.tensor(self.weights, dtype=qs.dtype).log().reshape(-1, *([1] * (qs.dim() - 1)))
            return self.output_scale * torch.logsumexp(qs / self.output_scale + log_w, 0)
        if self.op == "gpi":
            return qs.max(0).values
        combined = weighted_sum(self.weights, qs)
        return combined if self.correction is None else combined - self.correction.values(obs, actions)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return (self.values(obs, actions) / self.output_scale).unsqueeze(0)

    def action_gradient(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``d/da sum(self(obs, a)[0])``, by autograd (composites mix operators)."""
        with torch.enable_grad():
            a = actions.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(obs, a)[0].sum(), a)
        return grad

    def spec(self) -> dict[str, Any]:
        return {
            "type": "composite",
            "op": self.op,
            "weights": self.weights,
            "scales": self.scales,
            "alpha": self.output_scale,
            "parts": [part.spec() for part in self.parts],
            "correction": None if self.correction is None else self.correction.spec(),
        }


class ResamplingSampler(nn.Module):
    """A training-free sampler for ``exp(Q(s, a) / alpha)``: sampling-importance-resampling.

    Per state it draws ``proposals`` actions (or as many as asked for) from each constituent
    sampler and a share of uniform actions (a defensive mixture, so that modes no constituent
    covers are still reached), weighs
    each by ``exp(Q / alpha) / q``, with ``q`` the mixture density (a Gaussian kernel density
    estimate for samplers without one), resamples, and optionally refines the result with a few
    Langevin steps on ``log p = Q / alpha``.
    """

    kind = "resample"
    needs_target = True

    def __init__(
        self,
        parts: list[nn.Module],
        proposals: int = 64,
        uniform_fraction: float = 0.25,
        langevin_steps: int = 0,
        step_size: float = 2e-3,
    ) -> None:
        super().__init__()
        if proposals < 2 or not 0 <= uniform_fraction < 1 or langevin_steps < 0 or step_size <= 0:
            raise ValueError("need proposals >= 2, 0 <= uniform_fraction < 1, langevin_steps >= 0, step_size > 0")
        self.parts = nn.ModuleList(parts)
        self.proposals, self.uniform_fraction = int(proposals), float(uniform_fraction)
        self.langevin_steps, self.step_size = int(langevin_steps), float(step_size)
        self.obs_dim, self.act_dim = parts[0].obs_dim, parts[0].act_dim

    def _candidates(
        self, obs: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # At least as many candidates per sampler as actions asked for, or resampling repeats them.
        batch, d, p = obs.shape[0], self.act_dim, max(self.proposals, n)
        draws = [part(obs, torch.randn(batch, p, d, generator=generator)) for part in self.parts]
        uniform = round(p * len(self.parts) * self.uniform_fraction / (1 - self.uniform_fraction))
        candidates = torch.cat([*draws, torch.rand(batch, uniform, d, generator=generator) * 2 - 1], 1)
        # Mixture density: each sampler's share by its Gaussian KDE (Scott's bandwidth), plus uniform.
        log_terms = []
        for x in draws:
            h = (x.std(1).mean(-1) * p ** (-1 / (d + 4))).clamp_min(1e-2)[:, None, None]  # (B, 1, 1)
            sq = (candidates.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1) / h.pow(2)  # (B, N, p)
            log_kde = torch.logsumexp(-0.5 * sq, -1) - math.log(p) - d * (h[..., 0].log() + 0.5 * math.log(2 * math.pi))
            log_terms.append(log_kde + math.log(p))
        if uniform:
            log_terms.append(torch.full_like(log_terms[0], math.log(uniform) - d * math.log(2.0)))
        log_q = torch.logsumexp(torch.stack(log_terms), 0) - math.log(candidates.shape[1])
        return candidates, log_q

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, log_target, generator: torch.Generator | None = None):
        """``noise.shape[1]`` actions per state, distributed approximately as ``exp(log_target(obs, a))``."""
        batch, n, _ = noise.shape
        with torch.no_grad():
            candidates, log_q = self._candidates(obs, n, generator)
            log_w = log_target(obs, candidates) - log_q
            index = torch.multinomial(torch.softmax(log_w, -1), n, replacement=True, generator=generator)
            actions = candidates.gather(1, index.unsqueeze(-1).expand(-1, -1, self.act_dim))
        for _ in range(self.langevin_steps):
            with torch.enable_grad():
                a = actions.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(log_target(obs, a).sum(), a)
            step = self.step_size * grad + math.sqrt(2 * self.step_size) * torch.randn(
                actions.shape, generator=generator
            )
            actions = (actions + step).clamp(-1.0, 1.0).detach()
        return actions

    def spec(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "parts": [part.spec() for part in self.parts],
            "proposals": self.proposals,
            "uniform_fraction": self.uniform_fraction,
            "langevin_steps": self.langevin_steps,
            "step_size": self.step_size,
        }
