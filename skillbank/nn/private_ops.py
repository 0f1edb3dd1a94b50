"""The private PyTorch calls skillbank makes for speed, in one place, each with a public fallback.

``torch._fused_adam_``, ``torch._foreach_*`` and ``aten.threshold_backward`` are not public API and
may change in any release. Each is used only where this torch has it and :data:`PRIVATE` is true;
otherwise the public equivalent runs, with the same arithmetic (``tests/algos/test_losses.py``
compares the two routes).
"""

from __future__ import annotations

import math

import torch

PRIVATE = all(hasattr(torch, name) for name in ("_fused_adam_", "_foreach_add_", "_foreach_lerp_", "_foreach_copy_"))
PRIVATE = PRIVATE and hasattr(torch.ops.aten, "threshold_backward")


@torch.no_grad()
def polyak_update(target: list[torch.Tensor], source: list[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` for each pair; ``tau`` 1 is a hard copy."""
    if PRIVATE:
        if tau == 1.0:
            torch._foreach_copy_(target, source)
        else:
            torch._foreach_lerp_(target, source, tau)
        return
    for t, s in zip(target, source, strict=True):
        t.copy_(s) if tau == 1.0 else t.lerp_(s, tau)


def relu_backward(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """The gradient through a ReLU, from its output: ``grad * (output > 0)``."""
    if PRIVATE:
        return torch.ops.aten.threshold_backward(grad, output, 0)
    return grad * (output > 0)


class FusedAdam:
    """Adam (Kingma and Ba 2015) for gradients computed by hand: ``step(gradients)`` takes them as a
    list in the parameters' order and updates every parameter, in one fused kernel where this torch has it.

    The arithmetic of ``torch.optim.Adam(fused=True)`` (``tests/algos/test_losses.py`` compares the
    two), called directly: the optimizer's per-step Python work costs 0.17 ms, more than its kernel.
    """

    def __init__(
        self, parameters: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.parameters = list(parameters)
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.exp_avg = [torch.zeros_like(p) for p in self.parameters]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.parameters]
        self.steps = [torch.zeros((), device=p.device) for p in self.parameters]

    @torch.no_grad()
    def step(self, gradients: list[torch.Tensor]) -> None:
        if len(gradients) != len(self.parameters):
            raise ValueError(f"expected {len(self.parameters)} gradients, got {len(gradients)}")
        beta1, beta2 = self.betas
        if PRIVATE:
            torch._foreach_add_(self.steps, 1.0)
            torch._fused_adam_(
                self.parameters, gradients, self.exp_avg, self.exp_avg_sq, [], self.steps,
                lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        for p, g, m, v, t in zip(self.parameters, gradients, self.exp_avg, self.exp_avg_sq, self.steps, strict=True):
            t.add_(1.0)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step = float(t)
            denominator = (v.sqrt() / math.sqrt(1 - beta2**step)).add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / (1 - beta1**step))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The moment estimates and step counts, as named tensors (for pickle-free checkpoints)."""
        out = {}
        for i, (m, v, t) in enumerate(zip(self.exp_avg, self.exp_avg_sq, self.steps)):
            out[f"{i}.exp_avg"], out[f"{i}.exp_avg_sq"], out[f"{i}.step"] = m, v, t
        return out

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for i, (m, v, t) in enumerate(zip(self.exp_avg, self.exp_avg_sq, self.steps)):
            m.copy_(tensors[f"{i}.exp_avg"])
            v.copy_(tensors[f"{i}.exp_avg_sq"])
            t.copy_(tensors[f"{i}.step"])
