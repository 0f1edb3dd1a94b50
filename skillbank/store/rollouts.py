"""Rollouts, and the HDF5 file a registered version keeps them in (its ``rollouts`` data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from skillbank.algos.buffer import MAX_ROWS, dataset
from skillbank.errors import SkillFormatError


@dataclass
class Rollout:
    observations: np.ndarray  # (T + 1, obs_dim), the start state first
    episode_return: float
    goal: int  # index of the goal reached, -1 for none (or for tasks without goals)
    positions: np.ndarray | None = None  # (T + 1, 2) planar body positions, for tasks that report them (Ant)
    success: bool = False  # the task's own "success" (e.g. near the U-maze's goal) at any step
    final_goal_distance: float | None = None  # where the task reports "goal_distance" (the pusher): at the end


def save_rollouts(paths: list[Rollout], file: str | Path) -> Path:
    """Rollouts as HDF5: all observations concatenated, with each episode's start, length, return and goal."""
    lengths = np.array([len(p.observations) for p in paths])
    with h5py.File(file, "w") as f:
        f.create_dataset("observations", data=np.concatenate([p.observations for p in paths]), compression="gzip")
        f.create_dataset("episode_start", data=np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        f.create_dataset("episode_length", data=lengths)
        f.create_dataset("episode_return", data=np.array([p.episode_return for p in paths]))
        f.create_dataset("goal", data=np.array([p.goal for p in paths]))
    return Path(file)


def _rollout_datasets(f: h5py.File) -> dict[str, Any]:
    lengths = dataset(f, "episode_length", 1, "iu")[:]
    n = len(lengths)
    starts = dataset(f, "episode_start", 1, "iu", rows=n)[:]
    out = {"lengths": lengths, "starts": starts, "returns": dataset(f, "episode_return", 1, rows=n),
           "goals": dataset(f, "goal", 1, "iu", rows=n)}  # fmt: skip
    if (lengths < 1).any() or (lengths > MAX_ROWS).any():
        raise SkillFormatError(f"{f.filename}: episode lengths must be in [1, {MAX_ROWS}]")
    if not np.array_equal(starts, np.concatenate([[0], np.cumsum(lengths)[:-1]])):
        raise SkillFormatError(f"{f.filename}: episode_start and episode_length do not tile the observations")
    out["observations"] = dataset(f, "observations", 2, "f", rows=int(lengths.sum()))
    return out


def _open_rollouts(file: str | Path | Any, read):
    try:
        with h5py.File(file, "r") as f:
            return read(_rollout_datasets(f))
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as error:
        raise SkillFormatError(f"{getattr(file, 'name', file)} is not a rollouts file ({error})") from None


def check_rollouts(file: str | Path | Any) -> None:
    """Check a rollouts file's structure (names, shapes, dtypes) without reading its observations."""
    _open_rollouts(file, lambda datasets: None)


def load_rollouts(file: str | Path | Any) -> list[Rollout]:
    """Rollouts written by :func:`save_rollouts` (e.g. a registered version's ``rollouts`` data),
    every dataset's name, shape and dtype checked before it is read."""

    def read(d: dict[str, Any]) -> list[Rollout]:
        observations, returns, goals = d["observations"][:], d["returns"][:], d["goals"][:]
        return [
            Rollout(observations[s : s + n], float(r), int(g))
            for s, n, r, g in zip(d["starts"], d["lengths"], returns, goals)
        ]

    return _open_rollouts(file, read)
