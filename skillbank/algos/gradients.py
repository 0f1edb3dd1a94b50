"""The gradients of :mod:`skillbank.algos.losses`' objectives, written by hand, in one place.

Each function here returns what autograd would give for the loss of the same name in ``losses.py``
(``tests/algos/test_losses.py`` compares them), computed by backpropagating through the networks' MLPs by hand
(:meth:`~skillbank.nn.mlp.MLP.forward_recorded`, ``parameter_gradients``, ``input_gradient``) without an autograd
graph: 24% to 32% faster per update on this project's machine (``docs/results/speed.md``). The algorithms compute
their targets with ``losses.py`` and their gradients here, so an objective changes in those two places only.
"""

from __future__ import annotations

import torch

from skillbank.algos.losses import SQUASH_EPS, svgd_direction
from skillbank.nn.networks import SoftQ, SVGDSampler


def sql_q_loss_gradients(
    q: SoftQ, obs: torch.Tensor, actions: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SQL eq. (11), :func:`~skillbank.algos.losses.sql_q_loss`: the TD errors (critics, B) against ``target``
    (in the units of the network's outputs) and the gradient in Q's parameters, ``-gain td / B`` at the output."""
    net, gain = q.net, q.gain
    q_pred, record = net.forward_recorded(actions, context=obs)
    td_error = target - gain * q_pred[..., 0]
    return td_error, net.parameter_gradients(record, -gain * td_error / obs.shape[0])


@torch.no_grad()
def sql_sampler_loss_gradients(
    q: torch.nn.Module, sampler: SVGDSampler, obs: torch.Tensor, noise: torch.Tensor, kernel_fixed: int
) -> list[torch.Tensor]:
    """SQL eq. (13), :func:`~skillbank.algos.losses.sql_sampler_loss`, in the sampler's parameters: only the
    updated particles carry gradient to the sampler, so only they are evaluated with a record for it.
    ``q(obs, a)[0]`` is ``Q / alpha``, the log-density up to the squashing correction; ``q.action_gradient`` its
    gradient."""
    fixed = sampler(obs, noise[:, :kernel_fixed])
    out, sampler_record = sampler.net.forward_recorded(noise[:, kernel_fixed:], context=obs)
    updated = torch.tanh(out[0])
    # grad log p(a) at the fixed particles: through Q, plus the tanh squashing's log(1 - a^2).
    grad_log_p = q.action_gradient(obs, fixed) - 2 * fixed / (1 - fixed.pow(2) + SQUASH_EPS)
    phi = svgd_direction(fixed, updated, grad_log_p)
    grad_updated = -phi / phi.shape[:-1].numel()
    return sampler.net.parameter_gradients(sampler_record, (grad_updated * (1 - updated.pow(2))).unsqueeze(0))


def sac_q_loss_gradients(
    q: SoftQ, obs: torch.Tensor, actions: torch.Tensor, q_hat: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SAC's ``J_Q``, :func:`~skillbank.algos.losses.sac_q_loss`: the sum over the twin critics of
    ``E[(Q(s, a) - q_hat)^2] / 2``; the TD errors (2, B) and the gradient, the TD error / B at each output."""
    net = q.net
    q_pred, record = net.forward_recorded(actions, context=obs)  # (2, B, 1)
    td_error = q_pred[..., 0] - q_hat
    return td_error, net.parameter_gradients(record, td_error / obs.shape[0])


def sac_policy_loss_gradients(
    q: SoftQ, policy: torch.nn.Module, obs: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SAC's ``J_pi``, :func:`~skillbank.algos.losses.sac_policy_loss`: ``E[alpha log pi(a|s) - min_k Q_k(s, a)]``
    with ``a`` reparameterised, through the critics as they are: log pi (B, 1) and the gradient in the policy's
    parameters. ``dJ/dQ`` is ``-1/B`` at the smaller critic of each pair; the critics' own gradients are not
    needed."""
    net, batch_size = q.net, obs.shape[0]
    out, policy_record = policy.net.forward_recorded(obs)
    new_actions, log_pi, log_std = policy.squash(out[0], noise)
    q_pi, q_record = net.forward_recorded(new_actions[:, 0], context=obs)
    grad_q = torch.zeros_like(q_pi).scatter_(0, q_pi.argmin(0, keepdim=True), -1.0 / batch_size)
    grad_action = net.input_gradient(q_record, grad_q).unsqueeze(1)
    grad_out = policy.squash_backward(grad_action, alpha / batch_size, new_actions, log_std, noise)
    return log_pi, policy.net.parameter_gradients(policy_record, grad_out.unsqueeze(0))


def sac_alpha_loss_gradient(alpha: torch.Tensor, log_pi: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """SAC's ``J(alpha)``, :func:`~skillbank.algos.losses.sac_alpha_loss`: ``E[-alpha (log pi + H_target)]``,
    differentiated in log alpha."""
    return -alpha * (log_pi.mean() + target_entropy)


def ddpg_q_loss_gradients(
    q: SoftQ, obs: torch.Tensor, actions: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """DDPG's critic loss, :func:`~skillbank.algos.losses.ddpg_q_loss`: the TD errors (B,) against ``y`` and the
    gradient in the critic's parameters, the TD error / B at its output."""
    net = q.net
    q_pred, record = net.forward_recorded(actions, context=obs)
    td_error = q_pred[0, :, 0] - y
    return td_error, net.parameter_gradients(record, (td_error / obs.shape[0]).reshape(1, -1, 1))


def ddpg_actor_loss_gradients(
    q: SoftQ, actor: torch.nn.Module, obs: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """DDPG's actor loss, :func:`~skillbank.algos.losses.ddpg_actor_loss`, ``-E[Q(s, mu(s))]``, and its gradient
    in the actor's parameters: ``-grad_a Q(s, a) / B`` at ``a = mu(s)``, through the tanh, into the actor."""
    net, actor_net = q.net, actor.net
    out, actor_record = actor_net.forward_recorded(obs)
    actions = torch.tanh(out[0])
    q_pi, q_record = net.forward_recorded(actions, context=obs)
    grad_actions = net.input_gradient(q_record, torch.full_like(q_pi, -1.0 / obs.shape[0]))
    grad_out = (grad_actions * (1 - actions.pow(2))).unsqueeze(0)
    return -q_pi.mean(), actor_net.parameter_gradients(actor_record, grad_out)
