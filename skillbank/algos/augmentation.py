"""Replay augmentation by a task's symmetry (:mod:`skillbank.envs.symmetry`): each sampled transition mapped by a
random element of the group, and a skill turned by one, exactly."""

from __future__ import annotations

import copy

import torch

from skillbank.algos.buffer import Batch
from skillbank.envs.symmetry import GROUPS, check_symmetry
from skillbank.errors import ConfigError
from skillbank.nn.networks import DeterministicPolicy, GaussianSampler, SoftQ, SVGDSampler
from skillbank.nn.skill import Skill


class Augmentation:
    """Maps each transition of a batch by an element of the group ``name``, drawn uniformly and independently."""

    def __init__(self, name: str, device: torch.device) -> None:
        generator, order, _ = GROUPS[name]
        obs, actions = (torch.as_tensor(m, dtype=torch.float32, device=device) for m in generator())
        self.obs = torch.stack([torch.linalg.matrix_power(obs, k) for k in range(order)])  # (order, n, n)
        self.actions = torch.stack([torch.linalg.matrix_power(actions, k) for k in range(order)])

    def __call__(self, batch: Batch, rng: torch.Generator) -> Batch:
        obs, actions, rewards, next_obs, terminals = batch
        k = torch.randint(len(self.obs), (obs.shape[0],), generator=rng, device=obs.device)
        turn, act = self.obs[k], self.actions[k]
        return Batch(
            torch.bmm(turn, obs.unsqueeze(-1))[..., 0], torch.bmm(act, actions.unsqueeze(-1))[..., 0], rewards,
            torch.bmm(turn, next_obs.unsqueeze(-1))[..., 0], terminals,
        )  # fmt: skip


def turned(skill: Skill, name: str, k: int) -> Skill:
    """A copy of ``skill`` that does what it does in the world turned by the group ``name``'s generator ``k`` times:
    ``Q'(s, a) = Q(g^-k s, g^-k a)``, and the sampler at ``s`` with noise ``g^k xi`` gives ``g^k a`` for the action
    ``a`` it gives at ``g^-k s`` with ``xi`` (noise is isotropic, so the policy is the turned one). Exact, by editing
    the first and last layers (tanh commutes with ``g``, a signed permutation of the actions). The skill's own task must
    have the symmetry, or the turned skill would solve another task: a walker turned by one quarter walks its
    gaits 90° further round."""
    generator, order, _ = GROUPS[name]
    task = skill.description.get("task", {})
    check_symmetry(name, task.get("env_id"), skill.q.obs_dim, skill.q.act_dim)
    if not isinstance(skill.q, SoftQ) or not isinstance(
        skill.sampler, SVGDSampler | GaussianSampler | DeterministicPolicy
    ):
        raise ConfigError(f"cannot turn a {type(skill.q).__name__} with a {type(skill.sampler).__name__}; turn the "
                          "skills a composite is made of")  # fmt: skip
    turn_obs, turn_act = (torch.as_tensor(m, dtype=torch.float32) for m in generator())
    back_obs, back_act = (torch.linalg.matrix_power(m, (order - k) % order) for m in (turn_obs, turn_act))
    act = torch.linalg.matrix_power(turn_act, k % order)
    skill = copy.deepcopy(skill)
    n = skill.q.obs_dim
    with torch.no_grad():
        # the network sees A x: its first layer W becomes A^T W on those inputs
        for network in (skill.q, skill.sampler):  # SQL's sampler takes its noise as the critic its action
            w = network.net.weights[0]
            w[:, :n] = torch.einsum("ij,eif->ejf", back_obs, w[:, :n])
            if w.shape[1] > n:
                w[:, n:] = torch.einsum("ij,eif->ejf", back_act, w[:, n:])
        out = act  # and its output y becomes T y: its last layer W becomes W T^T
        if isinstance(skill.sampler, GaussianSampler):  # means turn, log standard deviations only move
            out = torch.block_diag(act, act.abs())
        for p in (skill.sampler.net.weights[-1], skill.sampler.net.biases[-1]):
            p.copy_(torch.einsum("eho,po->ehp", p, out))
    skill.description.pop("metrics", None)
    return skill
