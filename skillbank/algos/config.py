"""Typed configurations: frozen dataclasses whose fields are checked, by name, type and range, on creation.

Every algorithm's hyperparameters (:class:`~skillbank.algos.sql.SQLConfig`, :class:`~skillbank.algos.sac.SACConfig`)
and every section of a task file (:mod:`skillbank.runs.tasks`) is a :class:`Config`. Bad values are refused
with a :class:`~skillbank.errors.ConfigError` naming the key and what is valid, before any compute.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Self

from skillbank.envs.symmetry import GROUPS
from skillbank.errors import ConfigError


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if typing.get_origin(tp) is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ')}s"
    return str(tp)


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` as a field of type ``tp`` (an int for a float, a list for a tuple), or a ConfigError."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        tp = options[0]
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif typing.get_origin(tp) is tuple:
        if isinstance(value, list | tuple):
            items = [_coerce(name, item, typing.get_args(tp)[0]) for item in value]
            return tuple(items)
    else:  # a field of another type: taken as it is
        ok = True
    if not ok:
        raise ConfigError(f"{name} must be {_describe(tp)}, got {value!r}")
    return value


def unknown_keys(given: Mapping[str, Any] | set[str], valid: set[str] | list[str], what: str) -> None:
    """Refuse keys that are not in ``valid``, suggesting the closest valid one."""
    for key in sorted(set(given) - set(valid)):
        close = difflib.get_close_matches(key, list(valid), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown {what} {key!r}{hint}; valid: {', '.join(sorted(valid))}")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every configuration: subclasses declare typed fields and check ranges in :meth:`validate`."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _coerce(field.name, getattr(self, field.name), hints[field.name]))
        self.validate()

    def validate(self) -> None:
        """Raise a ConfigError for a value out of range."""

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "") -> Self:
        """The configuration with ``values`` for its fields (defaults for the rest); ``where`` (e.g. a
        file and section) prefixes any error."""
        try:
            unknown_keys(values, cls.names(), "key")
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{where}{error}") from None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (checked like the original)."""
        unknown_keys(changes, self.names(), f"{type(self).__name__} field")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values: what a skill's ``hyperparameters`` record holds."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def require_off_policy(config: Config) -> None:
    """The checks every off-policy configuration shares: discount, widths, rates, batch and buffer sizes."""
    require(0 < config.gamma <= 1, f"gamma must be in (0, 1], got {config.gamma}")
    require(len(config.hidden) > 0 and min(config.hidden) > 0, f"hidden must be positive widths, got {config.hidden}")
    fields = set(config.names())
    for name in ("alpha", "q_lr", "sampler_lr", "policy_lr", "alpha_lr", "actor_lr"):
        if name in fields:
            require(getattr(config, name) > 0, f"{name} must be positive, got {getattr(config, name)}")
    if "tau" in fields:
        require(0 < config.tau <= 1, f"tau must be in (0, 1], got {config.tau}")
    for name in ("batch_size", "buffer_size", "gradient_steps"):
        require(getattr(config, name) >= 1, f"{name} must be at least 1, got {getattr(config, name)}")
    require(config.learning_starts >= 0, f"learning_starts must be >= 0, got {config.learning_starts}")
    if "ou_sigma" in fields:
        require(0 <= config.ou_theta <= 1 and config.ou_sigma >= 0, "need 0 <= ou_theta <= 1 and ou_sigma >= 0")
    if "q_target" in fields:
        require(config.q_target in ("soft", "max"), f"q_target must be 'soft' or 'max', got {config.q_target!r}")
    if "symmetry" in fields:
        known = ("none", *GROUPS)
        require(config.symmetry in known, f"unknown symmetry {config.symmetry!r}; choose from {', '.join(known)}")


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig(Config):
    """The fields every off-policy algorithm here shares (each algorithm's configuration adds its own).

    :param gamma: discount factor
    :param buffer_size: replay buffer capacity, in transitions
    :param learning_starts: transitions collected before the first gradient step
    :param gradient_steps: gradient steps per environment step
    :param ou_theta: mean reversion of Ornstein-Uhlenbeck noise added to the actions while collecting
    :param ou_sigma: its scale in the normalised action box [-1, 1]; 0 adds none
    """

    gamma: float = 0.99
    buffer_size: int = 1_000_000
    learning_starts: int = 1000
    gradient_steps: int = 1
    ou_theta: float = 0.15
    ou_sigma: float = 0.0

    def validate(self) -> None:
        require_off_policy(self)
