"""Small MLPs that describe themselves in JSON, so a checkpoint loads without training code.

Every network is an ``MLP`` with an ensemble dimension: twin critics are one MLP with
``ensemble=2`` evaluated as batched matrix products, not two modules in a Python loop.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn


class Record(NamedTuple):
    """What backpropagation through an :class:`MLP` needs from a forward pass: each layer's input."""

    rows: torch.Tensor  # first layer's per-row input, (rows, in) or (rows, in - c) with a context
    context: torch.Tensor | None  # (states, c), or None when concatenated into ``rows``
    hidden: list[torch.Tensor]  # the later layers' inputs (ReLU outputs), (ensemble, rows, width)
    lead: torch.Size  # x.shape[:-1]
    x_dim: int


class FusedAdam:
    """Adam (Kingma and Ba 2015) for gradients computed by hand: ``step(gradients)`` takes them as a
    list in the parameters' order and updates every parameter in one fused kernel.

    The arithmetic of ``torch.optim.Adam(fused=True)`` (``tests/test_fast_update.py`` compares the
    two), called directly: the optimizer's per-step Python work costs 0.17 ms, more than its kernel.
    """

    def __init__(
        self, parameters: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.parameters = list(parameters)
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.exp_avg = [torch.zeros_like(p) for p in self.parameters]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.parameters]
        self.steps = [torch.zeros(()) for _ in self.parameters]

    @torch.no_grad()
    def step(self, gradients: list[torch.Tensor]) -> None:
        if len(gradients) != len(self.parameters):
            raise ValueError(f"expected {len(self.parameters)} gradients, got {len(gradients)}")
        torch._foreach_add_(self.steps, 1.0)
        torch._fused_adam_(
            self.parameters, gradients, self.exp_avg, self.exp_avg_sq, [], self.steps,
            lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
            amsgrad=False, maximize=False,
        )  # fmt: skip


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Eagerly, baddbmm is faster (7.3 against 8.2 ms per SAC update); compiled, a separate add is
    # (2.6x against 2.3x SB3's SAC), because inductor fuses it into the following ReLU.
    return torch.bmm(x, w).add_(b) if torch.compiler.is_compiling() else torch.baddbmm(b, x, w)


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
        # Indexing a ParameterList costs microseconds per call, a tenth of a small update's time;
        # a plain list of the same Parameter objects does not (deepcopy and load_state_dict keep it in sync).
        self.layers = list(zip(self.weights, self.biases))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (..., in) -> (ensemble, ..., out).

        With ``context`` (*states, c), the input is ``[context, x]`` for ``x`` (*states, *rows, in - c):
        each state's context goes through the first layer once, not once per row, which makes
        evaluating many action particles per state cheap (same function, fewer multiplications).
        """
        return self.forward_recorded(x, context)[0]

    def forward_recorded(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, Record]:
        """:meth:`forward`, also returning the :class:`Record` that backpropagation needs."""
        lead, ensemble, x_dim = x.shape[:-1], self.ensemble, x.shape[-1]
        rows = x.reshape(lead.numel(), x_dim)
        w, b = self.layers[0]
        if context is not None and context.shape[:-1].numel() == lead.numel():  # one row per state
            rows, context = torch.cat([context.reshape(lead.numel(), -1), rows], -1), None
        if context is None:
            h = _affine(rows.expand(ensemble, -1, -1), w, b)
        else:
            context = context.reshape(-1, context.shape[-1])
            c, states = context.shape[-1], context.shape[0]
            per_state = _affine(context.expand(ensemble, -1, -1), w[:, :c], b)
            per_row = torch.bmm(rows.expand(ensemble, -1, -1), w[:, c:])
            h = (per_row.view(ensemble, states, -1, w.shape[-1]) + per_state.unsqueeze(2)).view(
                ensemble, -1, w.shape[-1]
            )
        hidden = []
        for w, b in self.layers[1:]:
            hidden.append(h.relu_())
            h = _affine(hidden[-1], w, b)
        return h.reshape(ensemble, *lead, self.out_dim), Record(rows, context, hidden, lead, x_dim)

    # Backpropagation by hand: autograd's arithmetic (tests compare the two) without an autograd graph,
    # so that torch.compile takes a whole update as one graph, and only the gradients used are computed.
    def parameter_gradients(self, record: Record, grad_out: torch.Tensor) -> list[torch.Tensor]:
        """The gradient of ``sum(grad_out * forward(x, context))`` in each parameter, in the order
        of :meth:`parameters` (weights, then biases)."""
        rows, context, hidden, lead, x_dim = record
        ensemble, width = self.ensemble, self.layers[0][0].shape[-1]
        weights, biases = [], []
        g = grad_out.reshape(ensemble, -1, self.out_dim)
        for (w, _), h in zip(reversed(self.layers[1:]), reversed(hidden)):
            weights.append(torch.bmm(h.transpose(1, 2), g))
            biases.append(g.sum(1, keepdim=True))
            g = torch.ops.aten.threshold_backward(torch.bmm(g, w.transpose(1, 2)), h, 0)
        biases.append(g.sum(1, keepdim=True))
        if context is None:
            weights.append(torch.bmm(rows.t().expand(ensemble, -1, -1), g))
        else:
            per_state = g.view(ensemble, context.shape[0], -1, width).sum(2)
            weights.append(
                torch.cat(
                    [
                        torch.bmm(context.t().expand(ensemble, -1, -1), per_state),
                        torch.bmm(rows.t().expand(ensemble, -1, -1), g),
                    ],
                    1,
                )
            )
        return weights[::-1] + biases[::-1]

    def input_gradient(self, record: Record, grad_out: torch.Tensor) -> torch.Tensor:
        """The gradient of ``sum(grad_out * forward(x, context))`` in ``x``, summed over the ensemble."""
        rows, context, hidden, lead, x_dim = record
        g = grad_out.reshape(self.ensemble, -1, self.out_dim)
        for (w, _), h in zip(reversed(self.layers[1:]), reversed(hidden)):
            g = torch.ops.aten.threshold_backward(torch.bmm(g, w.transpose(1, 2)), h, 0)
        w = self.layers[0][0]
        return torch.bmm(g, w[:, w.shape[1] - x_dim :].transpose(1, 2)).sum(0).view(*lead, x_dim)

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
        states = actions.shape[: obs.dim() - 1]
        return self.net(actions, context=obs.expand(*states, self.obs_dim)).squeeze(-1)

    def values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Soft Q in reward units, the minimum over critics: shape ``actions.shape[:-1]``."""
        return self.output_scale * self(obs, actions).min(0).values

    @torch.no_grad()
    def action_gradient(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``d/da sum(self(obs, a)[0])``, the first critic's gradient in the actions, by hand."""
        states = actions.shape[: obs.dim() - 1]
        out, record = self.net.forward_recorded(actions, context=obs.expand(*states, self.obs_dim))
        grad_out = torch.zeros_like(out)
        grad_out[0] = 1.0
        return self.net.input_gradient(record, grad_out)

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
        return torch.tanh(self.net(noise, context=obs)[0])

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


SAMPLERS: dict[str, type[nn.Module]] = {"svgd": SVGDSampler, "gaussian": GaussianSampler}

# ----- composites -------------------------------------------------------------------------------
OPERATORS = ("sum", "mean", "or", "gpi", "dc")


class CompositeQ(nn.Module):
    """A soft Q-function made of others (see :mod:`skillbank.compose`), in reward units::

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
        w = torch.tensor(self.weights, dtype=qs.dtype).reshape(-1, *([1] * (qs.dim() - 1)))
        if self.op == "or":
            return self.output_scale * torch.logsumexp(qs / self.output_scale + w.log(), 0)
        if self.op == "gpi":
            return qs.max(0).values
        combined = (w * qs).sum(0)
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


def build_q(spec: dict[str, Any], obs_dim: int, act_dim: int) -> nn.Module:
    """The (untrained) Q-network described by ``spec``, composites included."""
    if spec.get("type", "mlp") == "mlp":
        return SoftQ(obs_dim, act_dim, spec["hidden"], spec["critics"], spec["output_scale"])
    if spec["type"] != "composite":
        raise ValueError(f"unknown Q-network type {spec['type']!r}")
    correction = None if spec["correction"] is None else build_q(spec["correction"], obs_dim, act_dim)
    parts = [build_q(part, obs_dim, act_dim) for part in spec["parts"]]
    return CompositeQ(parts, spec["op"], spec["weights"], spec["alpha"], spec["scales"], correction)


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


def build_sampler(spec: dict[str, Any], obs_dim: int, act_dim: int) -> nn.Module:
    """The (untrained) sampler described by ``spec``."""
    if spec["type"] == ResamplingSampler.kind:
        parts = [build_sampler(part, obs_dim, act_dim) for part in spec["parts"]]
        options = {k: spec[k] for k in ("proposals", "uniform_fraction", "langevin_steps", "step_size")}
        return ResamplingSampler(parts, **options)
    if spec["type"] not in SAMPLERS:
        raise ValueError(f"unknown sampler type {spec['type']!r}")
    return SAMPLERS[spec["type"]](obs_dim, act_dim, spec["hidden"])
