"""A walking skill steered by the origin it believes in, and a heading policy on top: the networks of a skill that
reuses a frozen walker in an arena.

The canonical Ant walk (``skillbank/AntWalkCanonical-v0``) rewards the torso's progress away from the origin and
shows the walker the world from the quarter turn nearest the torso's bearing from the origin, x, y included: a walker
trained there walks away from the origin it is shown. Told that the origin lies ``radius`` metres behind it,
opposite a heading, it walks that heading (``experiments/walker_origin_steering.py``: the shipped ``ant-walk-sql@3``,
alignment 0.87 over the four quarter turns; 0.39 on the diagonals, where the frame it is shown flips). Walkers of the
world-frame walk do not: they walk where their body faces, whatever origin they are shown (alignment -0.05 to 0.11).

:class:`SteeredWalker` is that: the walker's sampler with its position input replaced, seen in the quarter turn of
the world its heading falls in (:mod:`skillbank.envs.symmetry`), and its torques scaled by ``gain``.
:class:`SteeredSampler` puts a heading policy (learned in the arena, the walker untouched) in front of it: the
hierarchical reuse of a max-ent skill of Haarnoja, Hartikainen, Abbeel and Levine, "Latent Space Policies for
Hierarchical Reinforcement Learning" (ICML 2018), with the skill's own task coordinate as the interface instead of
its noise, which does not steer these walkers (``docs/results/umaze/README.md``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from skillbank.envs.symmetry import ant_quarter_turn_frames
from skillbank.errors import SkillbankError

WALKER_OBS_DIM, WALKER_ACT_DIM = 29, 8  # the Ant walk's observation (Ant-v5's without contact forces, then x, y)
POSITION = slice(27, 29)
HEADING_DIM = 2  # a heading is a planar vector; its angle is used
# 1 m, and torques at 0.6: a waypoint script steering ant-walk-sql@3 along the U-maze's centre line reached the goal
# in 14 of 20 episodes at gain 0.6, 11 at 0.5, 9 at 0.8 and 6 at 1, where it hops above the healthy height and ends
# 15 of 20 early (experiments/walker_origin_steering.py); radius 0.5 to 5 did alike
RADIUS, GAIN = 1.0, 0.6


class SteeredWalker(nn.Module):
    """The torques of a frozen walker's ``sampler`` that walk towards commanded headings: :meth:`forward` takes the
    arena's observations (their first 29 coordinates are the walk's, in the world frame), headings (B, n, 2) and the
    walker's noise (B, n, 8). ``canonical``: the walker sees the world in the quarter turn of its heading (the
    canonical walk's; the recipe steers no other)."""

    def __init__(self, sampler: nn.Module, radius: float = RADIUS, gain: float = GAIN, canonical: bool = False) -> None:
        super().__init__()
        if (sampler.obs_dim, sampler.act_dim) != (WALKER_OBS_DIM, WALKER_ACT_DIM):
            raise ValueError(f"a steered walker is an Ant walk's {WALKER_OBS_DIM}-D sampler, not "
                             f"{sampler.obs_dim}-D to {sampler.act_dim}-D")  # fmt: skip
        if not (math.isfinite(radius) and radius > 0 and 0 < gain <= 1):
            raise ValueError(f"a steered walker needs radius > 0 and gain in (0, 1]; got {radius}, {gain}")
        self.sampler, self.radius, self.gain, self.canonical = sampler, float(radius), float(gain), bool(canonical)
        self.obs_dim, self.act_dim = WALKER_OBS_DIM, WALKER_ACT_DIM
        to_frame, from_frame = ant_quarter_turn_frames()
        # constants of the Ant's body, not weights: left out of the skill's file
        self.register_buffer("to_frame", torch.as_tensor(to_frame, dtype=torch.float32), persistent=False)
        self.register_buffer("from_frame", torch.as_tensor(from_frame, dtype=torch.float32), persistent=False)

    def forward(self, obs: torch.Tensor, headings: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        batch, n = headings.shape[:2]
        seen = obs[:, None, :WALKER_OBS_DIM].expand(batch, n, WALKER_OBS_DIM).clone()
        angle = torch.atan2(headings[..., 1], headings[..., 0])
        seen[..., POSITION] = self.radius * torch.stack((angle.cos(), angle.sin()), -1)
        if self.canonical:  # the quarter turn the believed position's bearing falls in, as the canonical walk sees it
            k = torch.remainder(torch.floor((angle + math.pi / 4) / (math.pi / 2)), 4).long()
            seen = torch.einsum("bnij,bnj->bni", self.to_frame[k], seen)
        actions = self.sampler(seen.reshape(batch * n, -1), noise.reshape(batch * n, 1, -1)).reshape(batch, n, -1)
        if self.canonical:
            actions = torch.einsum("bnij,bnj->bni", self.from_frame[k], actions)
        return self.gain * actions

    def spec(self) -> dict[str, Any]:
        return {"type": "steered-walker", "parts": [self.sampler.spec()], "radius": self.radius, "gain": self.gain,
                "canonical": self.canonical}  # fmt: skip


class SteeredSampler(nn.Module):
    """A heading policy (a sampler from the arena's observation to a 2-D heading) in front of a
    :class:`SteeredWalker`: the sampler of a skill whose actions are the walker's torques. The heading's noise is
    drawn from the skill's generator (``needs_target``), the walker's is the skill's own."""

    kind = "steered"
    needs_target = True

    def __init__(self, heading: nn.Module, walker: SteeredWalker) -> None:
        super().__init__()
        if heading.act_dim != HEADING_DIM or heading.obs_dim < WALKER_OBS_DIM:
            raise ValueError(f"a heading policy maps the arena's observation (at least {WALKER_OBS_DIM}-D) to "
                             f"{HEADING_DIM}-D, not {heading.obs_dim}-D to {heading.act_dim}-D")  # fmt: skip
        self.parts = nn.ModuleList([heading, walker])
        self.obs_dim, self.act_dim = heading.obs_dim, walker.act_dim

    @property
    def heading(self) -> nn.Module:
        return self.parts[0]

    @property
    def walker(self) -> SteeredWalker:
        return self.parts[1]

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, log_density=None, generator=None) -> torch.Tensor:
        batch, n = noise.shape[:2]
        heading_noise = torch.randn(batch, n, HEADING_DIM, generator=generator, device=obs.device)
        return self.walker(obs, self.heading(obs, heading_noise), noise)

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "parts": [self.heading.spec(), self.walker.spec()]}


class SteeredQ(nn.Module):
    """The heading policy's soft Q-function, over headings: what a steered skill keeps of its training. It values
    no torques, so what needs a Q over the skill's actions (composition, bounds, fine-tuning) is refused."""

    kind = "steered"

    def __init__(self, heading_q: nn.Module, act_dim: int) -> None:
        super().__init__()
        self.parts = nn.ModuleList([heading_q])
        self.obs_dim, self.act_dim = heading_q.obs_dim, act_dim

    def values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        raise SkillbankError(
            "a steered skill's Q-function values headings, not the body's actions, so it cannot be composed, bounded "
            "or fine-tuned; use the walker it steers (its lineage) for that"
        )

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "parts": [self.parts[0].spec()]}


def build_steered_sampler(spec: dict[str, Any], obs_dim: int, act_dim: int, build_sampler) -> SteeredSampler:
    """The :class:`SteeredSampler` a ``skill.json`` describes (``build_sampler`` builds its parts)."""
    heading, walker = spec["parts"]
    if walker.get("type") != "steered-walker" or len(walker.get("parts", [])) != 1:
        raise ValueError("a steered sampler's second part is a steered walker with one sampler")
    radius, gain, canonical = walker["radius"], walker["gain"], walker["canonical"]
    if not isinstance(canonical, bool) or not all(isinstance(v, int | float) for v in (radius, gain)):
        raise ValueError("a steered walker's radius and gain are numbers and canonical true or false")
    inner = build_sampler(walker["parts"][0], WALKER_OBS_DIM, act_dim)
    return SteeredSampler(build_sampler(heading, obs_dim, HEADING_DIM), SteeredWalker(inner, radius, gain, canonical))
