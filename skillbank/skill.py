"""A skill: a soft Q-function, a sampler for its Boltzmann policy, and a JSON description.

On disk a skill is a directory with ``skill.json`` (everything needed to rebuild the networks,
plus task, algorithm, hyperparameters and metrics) and ``weights.safetensors`` (tensors only:
the safetensors format cannot carry code, so loading never unpickles anything).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file as save_safetensors_file
from torch import nn

from skillbank.composite import CompositeQ, ResamplingSampler
from skillbank.errors import SkillFormatError
from skillbank.losses import soft_value_uniform
from skillbank.networks import SAMPLERS, SoftQ

FORMAT_VERSION = 1
DESCRIPTION_FILE = "skill.json"
WEIGHTS_FILE = "weights.safetensors"


def box_to_json(box: spaces.Box) -> dict[str, Any]:
    return {"shape": list(box.shape), "low": box.low.tolist(), "high": box.high.tolist()}


def box_from_json(data: dict[str, Any]) -> spaces.Box:
    return spaces.Box(np.array(data["low"], np.float32), np.array(data["high"], np.float32), dtype=np.float32)


def build_q(spec: dict[str, Any], obs_dim: int, act_dim: int) -> nn.Module:
    """The (untrained) Q-network described by ``spec``, composites included."""
    if spec.get("type", "mlp") == "mlp":
        return SoftQ(obs_dim, act_dim, spec["hidden"], spec["critics"], spec["output_scale"])
    if spec["type"] != "composite":
        raise ValueError(f"unknown Q-network type {spec['type']!r}")
    correction = None if spec["correction"] is None else build_q(spec["correction"], obs_dim, act_dim)
    parts = [build_q(part, obs_dim, act_dim) for part in spec["parts"]]
    return CompositeQ(parts, spec["op"], spec["weights"], spec["alpha"], spec["scales"], correction)


def build_sampler(spec: dict[str, Any], obs_dim: int, act_dim: int) -> nn.Module:
    """The (untrained) sampler described by ``spec``."""
    if spec["type"] == ResamplingSampler.kind:
        parts = [build_sampler(part, obs_dim, act_dim) for part in spec["parts"]]
        options = {k: spec[k] for k in ("proposals", "uniform_fraction", "langevin_steps", "step_size")}
        return ResamplingSampler(parts, **options)
    if spec["type"] not in SAMPLERS:
        raise ValueError(f"unknown sampler type {spec['type']!r}")
    return SAMPLERS[spec["type"]](obs_dim, act_dim, spec["hidden"])


def refuse_pickle(data: bytes, name: str) -> None:
    """Raise before parsing if ``data`` looks like a pickle or a ``torch.save`` archive."""
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise SkillFormatError(
            f"{name} is a pickle or torch.save archive; skillbank loads weights only from safetensors "
            "files, never by unpickling. Re-save the weights with safetensors.torch.save_file."
        )
    if len(data) < 10:
        raise SkillFormatError(f"{name} is too short to be a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or data[8:9] != b"{":
        raise SkillFormatError(f"{name} is not a safetensors file (bad header)")


class Skill(nn.Module):
    """A maximum-entropy skill: ``pi(a|s) ∝ exp(Q(s, a) / alpha)`` with an amortized sampler.

    Actions are in the normalised box [-1, 1]^d; :meth:`act` maps them to the environment's bounds.
    """

    def __init__(self, q: nn.Module, sampler: nn.Module, description: dict[str, Any]) -> None:
        super().__init__()
        self.q = q
        self.sampler = sampler
        self.description = description
        space = description["action_space"]
        self._action_low = np.asarray(space["low"], np.float32)
        self._action_high = np.asarray(space["high"], np.float32)

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        *,
        algorithm: str,
        alpha: float,
        gamma: float,
        q_hidden: list[int],
        critics: int,
        q_output_scale: float,
        sampler: str,
        sampler_hidden: list[int],
        **description: Any,
    ) -> Skill:
        """A freshly initialised skill for the given spaces and network sizes."""
        if not isinstance(observation_space, spaces.Box) or not isinstance(action_space, spaces.Box):
            raise SkillFormatError("skills need Box observation and action spaces")
        obs_dim, act_dim = int(np.prod(observation_space.shape)), int(np.prod(action_space.shape))
        q = SoftQ(obs_dim, act_dim, list(q_hidden), critics, q_output_scale)
        pi = SAMPLERS[sampler](obs_dim, act_dim, list(sampler_hidden))
        info = {
            "format_version": FORMAT_VERSION,
            "algorithm": algorithm,
            "alpha": float(alpha),
            "gamma": float(gamma),
            "observation_space": box_to_json(observation_space),
            "action_space": box_to_json(action_space),
            **description,
        }
        return cls(q, pi, info)

    @property
    def alpha(self) -> float:
        return float(self.description["alpha"])

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.description["alpha"] = float(value)

    @property
    def gamma(self) -> float:
        return float(self.description["gamma"])

    @property
    def observation_space(self) -> spaces.Box:
        return box_from_json(self.description["observation_space"])

    @property
    def action_space(self) -> spaces.Box:
        return box_from_json(self.description["action_space"])

    @property
    def action_dim(self) -> int:
        return self.q.act_dim

    # ----- the policy ---------------------------------------------------------------------------
    def q_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Soft Q in reward units for ``obs`` (B, o) and ``actions`` (B, ..., d); the minimum over critics."""
        return self.q.values(obs, actions)

    def sample_actions(self, obs: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` actions per observation from the sampler: shape (B, n, d), in [-1, 1]."""
        noise = torch.randn(obs.shape[0], n, self.action_dim, generator=generator, device=obs.device)
        if getattr(self.sampler, "needs_target", False):
            return self.sampler(obs, noise, self.log_density, generator)
        return self.sampler(obs, noise)

    def log_density(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``Q(s, a) / alpha``: the policy's log-density up to the state's normaliser."""
        return self.q_values(obs, actions) / self.alpha

    def soft_value(self, obs: torch.Tensor, n_particles: int = 1024, generator: torch.Generator | None = None):
        """``V(s) = alpha log ∫ exp(Q(s,a)/alpha) da`` by importance sampling with a uniform proposal."""
        particles = torch.rand(obs.shape[0], n_particles, self.action_dim, generator=generator, device=obs.device)
        particles = particles * 2 - 1
        return self.alpha * soft_value_uniform(self.q_values(obs, particles) / self.alpha, self.action_dim)

    @torch.no_grad()
    def act_normalised(self, obs: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        """One action in [-1, 1]^d for one observation."""
        device = generator.device if generator is not None else next(self.parameters()).device
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device).reshape(1, -1)
        return self.sample_actions(obs_t, 1, generator)[0, 0].cpu().numpy()

    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        """Map an action from [-1, 1]^d to the environment's action bounds."""
        return self._action_low + (action + 1.0) * 0.5 * (self._action_high - self._action_low)

    def act(self, obs: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        """One action for one observation, scaled to the environment's action bounds."""
        return self.to_env_action(self.act_normalised(obs, generator))

    # ----- files --------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}

    def description_json(self) -> dict[str, Any]:
        networks = {"q": self.q.spec(), "sampler": self.sampler.spec()}
        return {**self.description, "networks": networks}

    def save(self, directory: str | Path) -> Path:
        """Write ``skill.json`` and ``weights.safetensors`` into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_safetensors_file(self.state_tensors(), str(directory / WEIGHTS_FILE))
        (directory / DESCRIPTION_FILE).write_text(json.dumps(self.description_json(), indent=2, sort_keys=True))
        return directory

    @classmethod
    def from_bytes(cls, description: bytes, weights: bytes) -> Skill:
        """Rebuild a skill from the two files' contents, refusing pickles and malformed files."""
        try:
            info = json.loads(description)
            networks = info.pop("networks")
            obs_dim = int(np.prod(info["observation_space"]["shape"]))
            act_dim = int(np.prod(info["action_space"]["shape"]))
            q = build_q(networks["q"], obs_dim, act_dim)
            sampler = build_sampler(networks["sampler"], obs_dim, act_dim)
        except (ValueError, KeyError, TypeError) as error:
            raise SkillFormatError(f"{DESCRIPTION_FILE} is not a valid skill description ({error!r})") from error
        if info.get("format_version", 0) > FORMAT_VERSION:
            raise SkillFormatError(
                f"skill format {info['format_version']} is newer than this skillbank's ({FORMAT_VERSION}); upgrade it"
            )
        refuse_pickle(weights, WEIGHTS_FILE)
        try:
            tensors = load_safetensors(weights)
        except Exception as error:  # safetensors raises its own SafetensorError
            raise SkillFormatError(f"{WEIGHTS_FILE} could not be read as safetensors: {error}") from error
        skill = cls(q, sampler, info)
        try:
            skill.load_state_dict(tensors, strict=True)
        except RuntimeError as error:
            raise SkillFormatError(
                f"{WEIGHTS_FILE} does not match the networks in {DESCRIPTION_FILE}: {error}"
            ) from error
        return skill

    @classmethod
    def load(cls, directory: str | Path) -> Skill:
        """Load a skill directory written by :meth:`save`."""
        directory = Path(directory)
        files = [directory / DESCRIPTION_FILE, directory / WEIGHTS_FILE]
        for path in files:
            if not path.is_file():
                raise SkillFormatError(
                    f"{path} not found: a skill directory holds {DESCRIPTION_FILE} and {WEIGHTS_FILE}"
                )
        return cls.from_bytes(files[0].read_bytes(), files[1].read_bytes())
