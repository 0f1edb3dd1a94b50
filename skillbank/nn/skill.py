"""A skill: a soft Q-function, a sampler for its Boltzmann policy, and a JSON description.

On disk a skill is a directory with ``skill.json`` (everything needed to rebuild the networks,
plus task, algorithm, hyperparameters and metrics) and ``weights.safetensors`` (tensors only:
the safetensors format cannot carry code, so loading never unpickles anything).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file as save_safetensors_file
from torch import nn

from skillbank.errors import SkillFormatError
from skillbank.nn.composite import CompositeQ, ResamplingSampler
from skillbank.nn.networks import SAMPLERS, HeadsSampler, SoftQ, soft_value_uniform
from skillbank.nn.steered import HEADING_DIM, SteeredQ, SteeredSampler, build_steered_sampler

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
        return SoftQ(obs_dim, act_dim, spec["hidden"], spec["critics"], spec["output_scale"],
                     spec.get("reward_units", False))  # fmt: skip
    if spec["type"] == SteeredQ.kind:
        if len(spec["parts"]) != 1:
            raise ValueError("a steered Q-function has one part, the heading policy's")
        return SteeredQ(build_q(spec["parts"][0], obs_dim, HEADING_DIM), act_dim)
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
    if spec["type"] == HeadsSampler.kind:
        if len(spec["parts"]) != 1 or spec["select"] not in HeadsSampler.SELECT:
            raise ValueError(f"a heads sampler has one part and selects {' or '.join(HeadsSampler.SELECT)}")
        count = _count(spec["count"], "networks.sampler.count", 1, MAX_HEADS)
        return HeadsSampler(build_sampler(spec["parts"][0], obs_dim, act_dim), count, spec["select"])
    if spec["type"] == SteeredSampler.kind:
        return build_steered_sampler(spec, obs_dim, act_dim, build_sampler)
    if spec["type"] not in SAMPLERS:
        raise ValueError(f"unknown sampler type {spec['type']!r}")
    return SAMPLERS[spec["type"]](obs_dim, act_dim, spec["hidden"])


MAX_PARAMETERS = 50_000_000  # 200 MB of float32 weights: far above any skill here, far below a machine's memory
MAX_WIDTH, MAX_LAYERS, MAX_PARTS, MAX_DEPTH, MAX_DIM = 1_000_000, 64, 64, 8, 100_000
MAX_HEADER = 16 << 20  # bytes of a safetensors header
MAX_HEADS = 1024


def _count(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SkillFormatError(f"{DESCRIPTION_FILE}: {what} must be a whole number in [{low}, {high}], got {value!r}")
    return value


def _bounded(spec: Any, where: str, depth: int = 0, parts: list[int] | None = None) -> None:
    """Refuse network descriptions too deep, too wide or too many to build, before building them."""
    parts = [0] if parts is None else parts
    if not isinstance(spec, dict):
        raise SkillFormatError(f"{DESCRIPTION_FILE}: {where} must be an object, got {type(spec).__name__}")
    if depth > MAX_DEPTH:
        raise SkillFormatError(f"{DESCRIPTION_FILE}: {where} nests composites more than {MAX_DEPTH} deep")
    if "hidden" in spec:
        hidden = spec["hidden"]
        if not isinstance(hidden, list) or not 1 <= len(hidden) <= MAX_LAYERS:
            raise SkillFormatError(f"{DESCRIPTION_FILE}: {where}.hidden must be a list of 1 to {MAX_LAYERS} widths")
        for width in hidden:
            _count(width, f"{where}.hidden", 1, MAX_WIDTH)
    if "critics" in spec:
        _count(spec["critics"], f"{where}.critics", 1, 16)
    if not isinstance(spec.get("reward_units", False), bool):
        raise SkillFormatError(f"{DESCRIPTION_FILE}: {where}.reward_units must be true or false")
    children = list(spec.get("parts") or []) + ([spec["correction"]] if spec.get("correction") else [])
    if not isinstance(spec.get("parts", []), list):
        raise SkillFormatError(f"{DESCRIPTION_FILE}: {where}.parts must be a list")
    parts[0] += len(children)
    if parts[0] > MAX_PARTS:
        raise SkillFormatError(f"{DESCRIPTION_FILE}: the networks have more than {MAX_PARTS} parts")
    for i, child in enumerate(children):
        _bounded(child, f"{where}.parts[{i}]", depth + 1, parts)


def parse_description(description: bytes) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """``skill.json`` checked: the description, its network specs and the observation and action sizes."""
    try:
        info = json.loads(description)
    except (ValueError, UnicodeDecodeError) as error:
        raise SkillFormatError(f"{DESCRIPTION_FILE} is not valid JSON ({error})") from None
    if not isinstance(info, dict) or not isinstance(info.get("networks"), dict):
        raise SkillFormatError(f"{DESCRIPTION_FILE} is not a skill description (no networks)")
    if not isinstance(info.get("format_version", 0), int) or info.get("format_version", 0) > FORMAT_VERSION:
        raise SkillFormatError(
            f"skill format {info.get('format_version')!r} is newer than this skillbank's ({FORMAT_VERSION}); upgrade it"
        )
    dims = []
    for key in ("observation_space", "action_space"):
        space = info.get(key)
        if not isinstance(space, dict) or not isinstance(space.get("shape"), list) or not space["shape"]:
            raise SkillFormatError(f"{DESCRIPTION_FILE}: {key} must have a shape (a list of sizes)")
        size = int(np.prod([_count(n, f"{key}.shape", 1, MAX_DIM) for n in space["shape"]]))
        for bound in ("low", "high"):
            values = np.asarray(space.get(bound), dtype=object).ravel()
            if values.size != size or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise SkillFormatError(f"{DESCRIPTION_FILE}: {key}.{bound} must hold {size} numbers")
        dims.append(_count(size, f"{key} size", 1, MAX_DIM))
    for key in ("alpha", "gamma"):
        if not isinstance(info.get(key), int | float) or isinstance(info.get(key), bool):
            raise SkillFormatError(f"{DESCRIPTION_FILE}: {key} must be a number, got {info.get(key)!r}")
    networks = info.pop("networks")
    for key in ("q", "sampler"):
        _bounded(networks.get(key), f"networks.{key}")
    return info, networks, dims[0], dims[1]


def expected_tensors(networks: dict[str, Any], obs_dim: int, act_dim: int) -> dict[str, tuple[int, ...]]:
    """The weight tensors (name -> shape) the described networks have, built on the ``meta`` device
    (no memory), refused when they would hold more than :data:`MAX_PARAMETERS` numbers."""
    try:
        with torch.device("meta"):
            q = build_q(networks["q"], obs_dim, act_dim)
            sampler = build_sampler(networks["sampler"], obs_dim, act_dim)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as error:
        raise SkillFormatError(f"{DESCRIPTION_FILE} is not a valid skill description ({error!r})") from None
    shapes = {f"q.{k}": tuple(v.shape) for k, v in q.state_dict().items()}
    shapes.update({f"sampler.{k}": tuple(v.shape) for k, v in sampler.state_dict().items()})
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > MAX_PARAMETERS:
        raise SkillFormatError(
            f"{DESCRIPTION_FILE} declares networks of {total:,} parameters ({4 * total / 1e9:.1f} GB), more than "
            f"skillbank loads ({MAX_PARAMETERS:,}); refusing it before allocating anything"
        )
    return shapes


def safetensors_header(data: bytes, name: str) -> dict[str, Any]:
    """The tensors a safetensors file declares (name -> dtype, shape, offsets), read without loading them."""
    if len(data) < 10:
        raise SkillFormatError(f"{name} is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER, len(data) - 8):
        raise SkillFormatError(f"{name} is not a safetensors file (its header length {length} is out of range)")
    try:
        header = json.loads(data[8 : 8 + length])
    except (ValueError, UnicodeDecodeError):
        raise SkillFormatError(f"{name} is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise SkillFormatError(f"{name} is not a safetensors file (its header is not an object)")
    header.pop("__metadata__", None)
    return header


def check_header(header: dict[str, Any], expected: dict[str, tuple[int, ...]], name: str, dtypes=("F32",)) -> None:
    """Every expected tensor present with its shape and a float dtype, and no other."""
    missing, unexpected = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or unexpected:
        raise SkillFormatError(
            f"{name} does not match the networks described: missing {', '.join(missing) or 'nothing'}; "
            f"unexpected {', '.join(unexpected) or 'nothing'}"
        )
    for tensor, shape in expected.items():
        entry = header[tensor]
        if not isinstance(entry, dict) or entry.get("dtype") not in dtypes or tuple(entry.get("shape", ())) != shape:
            found = entry.get("dtype") if isinstance(entry, dict) else entry
            found_shape = entry.get("shape") if isinstance(entry, dict) else None
            raise SkillFormatError(
                f"{name}: tensor {tensor} is {found} {found_shape}, the description needs {dtypes[0]} {list(shape)}"
            )


def refuse_pickle(data: bytes, name: str) -> None:
    """Raise before parsing if ``data`` looks like a pickle or a ``torch.save`` archive. A safetensors file opens with
    its header's length (8 bytes, little-endian) and then the header's ``{``; that length's first byte may be a
    pickle's opening 0x80 (a header of 640 or 1,664 bytes), so the ``{`` decides."""
    if (data[:1] == b"\x80" and data[8:9] != b"{") or data[:2] == b"PK":
        raise SkillFormatError(
            f"{name} is a pickle or torch.save archive; skillbank loads weights only from safetensors "
            "files, never by unpickling. Re-save the weights with safetensors.torch.save_file."
        )


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
        q_reward_units: bool = False,
        sampler_hidden: list[int],
        **description: Any,
    ) -> Skill:
        """A freshly initialised skill for the given spaces and network sizes."""
        if not isinstance(observation_space, spaces.Box) or not isinstance(action_space, spaces.Box):
            raise SkillFormatError("skills need Box observation and action spaces")
        obs_dim, act_dim = int(np.prod(observation_space.shape)), int(np.prod(action_space.shape))
        q = SoftQ(obs_dim, act_dim, list(q_hidden), critics, q_output_scale, q_reward_units)
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
        """Rebuild a skill from the two files' contents. Everything is checked before anything is
        allocated: the description's structure and size (its networks are first built on PyTorch's
        ``meta`` device, which allocates nothing), then the weights' header against those networks,
        tensor by tensor; pickles and malformed files are refused with a :class:`SkillFormatError`."""
        info, networks, obs_dim, act_dim = parse_description(description)
        expected = expected_tensors(networks, obs_dim, act_dim)
        refuse_pickle(weights, WEIGHTS_FILE)
        check_header(safetensors_header(weights, WEIGHTS_FILE), expected, WEIGHTS_FILE)
        try:
            tensors = load_safetensors(weights)
        except Exception as error:  # safetensors raises its own SafetensorError
            raise SkillFormatError(f"{WEIGHTS_FILE} could not be read as safetensors: {error}") from error
        skill = cls(
            build_q(networks["q"], obs_dim, act_dim), build_sampler(networks["sampler"], obs_dim, act_dim), info
        )
        skill.load_state_dict(tensors, strict=True)  # names, shapes and dtypes were checked above
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
