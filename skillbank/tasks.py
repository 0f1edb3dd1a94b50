"""Tasks as TOML files: environment, algorithm, hyperparameters and budget in one place.

A task reference is a path to a ``.toml`` file or a bare name looked up in ``./tasks/`` and
then in the ``tasks/`` folder of the skillbank checkout.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

import skillbank.envs  # noqa: F401  (registers the skillbank/ environments)
from skillbank.errors import NotFoundError, SkillbankError
from skillbank.offpolicy import OffPolicyAlgorithm
from skillbank.sac import SAC
from skillbank.sql import SQL

ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {"sql": SQL, "sac": SAC}
TOP_KEYS = {"description", "env", "train", "eval", *ALGORITHMS}
SEARCH_DIRS = (Path("tasks"), Path(__file__).resolve().parents[1] / "tasks")


@dataclass
class Task:
    name: str
    path: Path
    env_id: str
    env_kwargs: dict[str, Any]
    algorithm: str
    steps: int
    seed: int
    episodes: int
    description: str = ""
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def make_env(self) -> gym.Env:
        return gym.make(self.env_id, **self.env_kwargs)

    def build(self, algorithm: str | None = None, seed: int | None = None, compile: bool = False) -> OffPolicyAlgorithm:
        """The task's algorithm (or ``algorithm``) with the task's hyperparameters, untrained."""
        algorithm = algorithm or self.algorithm
        if algorithm not in ALGORITHMS:
            raise SkillbankError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        seed = self.seed if seed is None else seed
        try:
            algo = ALGORITHMS[algorithm](
                self.make_env(), seed=seed, compile=compile, **self.hyperparameters.get(algorithm, {})
            )
        except TypeError as error:
            raise SkillbankError(f"{self.path}: bad [{algorithm}] hyperparameter ({error})") from error
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


def load_task(ref: str) -> Task:
    """Parse and validate a task file; every problem is a :class:`SkillbankError` naming the file."""
    path = find_task(ref)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SkillbankError(f"{path} is not valid TOML: {error}") from error
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise SkillbankError(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(TOP_KEYS))}"
        )
    env, train, evaluation = data.get("env", {}), data.get("train", {}), data.get("eval", {})
    if "id" not in env:
        raise SkillbankError(f'{path}: [env] needs an id, e.g. id = "skillbank/MultiGoal-v0"')
    if env["id"] not in gym.registry:
        raise SkillbankError(f"{path}: environment {env['id']!r} is not registered with Gymnasium")
    task = Task(
        name=path.stem,
        path=path,
        env_id=env["id"],
        env_kwargs=dict(env.get("kwargs", {})),
        algorithm=train.get("algorithm", "sql"),
        steps=train.get("steps", 100_000),
        seed=train.get("seed", 0),
        episodes=evaluation.get("episodes", 100),
        description=data.get("description", ""),
        hyperparameters={a: dict(data.get(a, {})) for a in ALGORITHMS},
    )
    for key in ("steps", "seed", "episodes"):
        value = getattr(task, key)
        if not isinstance(value, int) or value < 0:
            raise SkillbankError(f"{path}: {key} must be a non-negative integer, got {value!r}")
    if task.algorithm not in ALGORITHMS:
        raise SkillbankError(f"{path}: unknown algorithm {task.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    return task
