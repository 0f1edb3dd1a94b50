"""Tasks as TOML files: environment, algorithm, hyperparameters and budget in one place.

A task reference is a path to a ``.toml`` file or a bare name looked up in ``./tasks/`` and
then in the ``tasks/`` folder of the skillbank checkout. :func:`load_task` checks every section,
its keys, their types and their values, before anything is trained: a bad entry is refused naming
the file, the section, the key and what is valid.
"""

from __future__ import annotations

import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from skillbank.algos.config import Config, require, unknown_keys
from skillbank.algos.ddpg import DDPG
from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.algos.sac import SAC
from skillbank.algos.sql import SQL
from skillbank.envs import make_env
from skillbank.errors import ConfigError, NotFoundError, SkillbankError

ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {"sql": SQL, "sac": SAC, "ddpg": DDPG}
SECTIONS = ("description", "env", "train", "eval", "experiment", *ALGORITHMS)
SEARCH_DIRS = (Path("tasks"), Path(__file__).resolve().parents[1] / "tasks")


@dataclass(frozen=True)
class TrainSection(Config):
    """``[train]``.

    :param algorithm: the algorithm ``skillbank train`` uses unless ``--algo`` is given
    :param steps: environment steps of training
    :param seed: random seed of the networks, the environment and the updates
    """

    algorithm: str = "sql"
    steps: int = 100_000
    seed: int = 0

    def validate(self) -> None:
        require(
            self.algorithm in ALGORITHMS, f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )
        require(self.steps >= 0, f"steps must be >= 0, got {self.steps}")
        require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class EvalSection(Config):
    """``[eval]``.

    :param episodes: evaluation rollouts after training
    """

    episodes: int = 100

    def validate(self) -> None:
        require(self.episodes >= 1, f"episodes must be at least 1, got {self.episodes}")


@dataclass(frozen=True)
class ExperimentSection(Config):
    """``[experiment]``: what ``skillbank experiment finetune`` measures on this task.

    :param threshold: the evaluation return that counts as solving the task (fixed before any run)
    """

    threshold: float | None = None


@dataclass
class Task:
    name: str
    path: Path
    env_id: str
    env_kwargs: dict[str, Any]
    train: TrainSection
    eval: EvalSection
    experiment: ExperimentSection = field(default_factory=ExperimentSection)
    description: str = ""
    configs: dict[str, Config] = field(default_factory=dict)  # one per algorithm section

    @property
    def algorithm(self) -> str:
        return self.train.algorithm

    @property
    def steps(self) -> int:
        return self.train.steps

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def episodes(self) -> int:
        return self.eval.episodes

    def make_env(self) -> gym.Env:
        return make_env(self.env_id, self.env_kwargs)

    def build(
        self, algorithm: str | None = None, seed: int | None = None, compile: bool = False, device: str = "cpu"
    ) -> OffPolicyAlgorithm:
        """The task's algorithm (or ``algorithm``) with the task's hyperparameters, untrained."""
        algorithm = algorithm or self.algorithm
        if algorithm not in ALGORITHMS:
            raise SkillbankError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        seed = self.seed if seed is None else seed
        config = self.configs.get(algorithm)
        algo = ALGORITHMS[algorithm](self.make_env(), config, seed=seed, compile=compile, device=device)
        algo.skill.description["task"].update(name=self.name, env_id=self.env_id, env_kwargs=self.env_kwargs)
        return algo


def find_task(ref: str) -> Path:
    path = Path(ref)
    if path.suffix == ".toml" or "/" in ref:
        if not path.is_file():
            raise NotFoundError(f"task file {path} not found")
        return path
    for directory in SEARCH_DIRS:
        if (directory / f"{ref}.toml").is_file():
            return directory / f"{ref}.toml"
    known = sorted({p.stem for d in SEARCH_DIRS if d.is_dir() for p in d.glob("*.toml")})
    raise NotFoundError(f"unknown task {ref!r}; known tasks: {', '.join(known) or 'none'} (or give a .toml path)")


def _section(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a [{name}] section (a table), got {value!r}")
    return value


def check_env(env_id: Any, kwargs: Any, where: str) -> None:
    """Refuse an unregistered id, keyword arguments the environment does not take, and values it
    rejects (by building it once)."""
    if not isinstance(env_id, str):
        raise ConfigError(f'{where} id must be a string, e.g. id = "skillbank/MultiGoal-v0"; got {env_id!r}')
    if env_id not in gym.registry:
        close = [k for k in gym.registry if k.lower() == env_id.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where} environment {env_id!r} is not registered with Gymnasium{hint}")
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where} kwargs must be a table of keyword arguments, got {kwargs!r}")
    entry_point = gym.spec(env_id).entry_point
    parameters = inspect.signature(load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point)
    names = {p.name for p in parameters.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if len(names) == len(parameters.parameters):  # no **kwargs: every accepted name is known
        try:
            unknown_keys(kwargs, names - {"render_mode"}, f"keyword argument of {env_id}")
        except ConfigError as error:
            raise ConfigError(f"{where} kwargs: {error}") from None
    try:
        make_env(env_id, kwargs).close()
    except (ValueError, TypeError, AssertionError) as error:
        raise ConfigError(f"{where} kwargs: {env_id} refuses them: {error}") from None


def load_task(ref: str) -> Task:
    """Parse and check a task file; every problem is a :class:`ConfigError` naming the file, section and key."""
    path = find_task(ref)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        unknown_keys(data, SECTIONS, "section")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description must be a string, got {description!r}")
    env = _section(data, "env", path)
    try:
        unknown_keys(env, ["id", "kwargs"], "key")
    except ConfigError as error:
        raise ConfigError(f"{path}: [env] {error}") from None
    if "id" not in env:
        raise ConfigError(f'{path}: [env] needs an id, e.g. id = "skillbank/MultiGoal-v0"')
    check_env(env["id"], env.get("kwargs", {}), f"{path}: [env]")
    train = TrainSection.from_dict(_section(data, "train", path), f"{path}: [train] ")
    evaluation = EvalSection.from_dict(_section(data, "eval", path), f"{path}: [eval] ")
    experiment = ExperimentSection.from_dict(_section(data, "experiment", path), f"{path}: [experiment] ")
    configs = {
        name: algorithm.config_class.from_dict(_section(data, name, path), f"{path}: [{name}] ")
        for name, algorithm in ALGORITHMS.items()
        if name in data
    }
    return Task(
        name=path.stem, path=path, env_id=env["id"], env_kwargs=dict(env.get("kwargs", {})), train=train,
        eval=evaluation, experiment=experiment, description=description, configs=configs,
    )  # fmt: skip
