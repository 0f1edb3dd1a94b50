"""Preallocated replay buffer of contiguous float32 tensors, with HDF5 export for the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import torch

from skillbank.errors import SkillbankError, SkillFormatError

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")

MAX_ROWS = 50_000_000  # rows of an HDF5 dataset skillbank reads


def dataset(f: h5py.File, name: str, ndim: int, kinds: str = "fiu", rows: int | None = None) -> h5py.Dataset:
    """``f[name]`` checked before reading: a dataset of ``ndim`` dimensions, a numeric dtype, at most
    :data:`MAX_ROWS` rows (exactly ``rows`` where given)."""
    item = f.get(name)
    if not isinstance(item, h5py.Dataset) or item.ndim != ndim or item.dtype.kind not in kinds:
        raise SkillFormatError(f"{f.filename}: {name!r} must be a {ndim}-D numeric dataset")
    if item.shape[0] > MAX_ROWS or (rows is not None and item.shape[0] != rows):
        raise SkillFormatError(f"{f.filename}: {name!r} has {item.shape[0]} rows, expected {rows or f'<= {MAX_ROWS}'}")
    return item


class Batch(NamedTuple):
    """Transitions ``(s, a, r, s', terminal)``, each field with the batch first; a tuple, so it also unpacks."""

    obs: torch.Tensor  # (B, obs_dim)
    actions: torch.Tensor  # (B, act_dim), in [-1, 1]
    rewards: torch.Tensor  # (B,)
    next_obs: torch.Tensor  # (B, obs_dim)
    terminals: torch.Tensor  # (B,), 1.0 where the episode ended there (not where a time limit cut it)


class ReplayBuffer:
    """A ring buffer of transitions ``(s, a, r, s', terminal)`` with actions in [-1, 1]^d."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu") -> None:
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        # One row per transition, so that a batch is gathered by one indexing operation, not five.
        self.transitions = torch.zeros(capacity, 2 * obs_dim + act_dim + 2, device=device)
        self.observations, self.actions, self.rewards, self.next_observations, self.terminals = self._fields(
            self.transitions
        )
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminal: bool) -> None:
        row = np.concatenate([np.ravel(obs), np.ravel(action), [reward], np.ravel(next_obs), [float(terminal)]])
        self.transitions[self.position] = torch.from_numpy(row.astype(np.float32, copy=False)).to(
            self.transitions.device
        )
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _fields(self, rows: torch.Tensor) -> Batch:
        """Views of ``rows`` (n, width) as the fields, in the order of ``FIELDS``."""
        o, a = self.obs_dim, self.act_dim
        return Batch(rows[:, :o], rows[:, o : o + a], rows[:, o + a], rows[:, o + a + 1 : 2 * o + a + 1], rows[:, -1])

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """A batch ``(s, a, r, s', terminal)`` drawn uniformly with replacement."""
        device = self.transitions.device
        return self._fields(
            self.transitions[torch.randint(0, self.size, (batch_size,), generator=generator, device=device)]
        )

    @classmethod
    def concatenate(cls, buffers: list[ReplayBuffer]) -> ReplayBuffer:
        """One buffer holding every transition of ``buffers`` (e.g. the constituents' shared experience)."""
        total = sum(len(b) for b in buffers)
        if total == 0:
            raise SkillbankError("the replay buffers are empty")
        union = cls(total, buffers[0].obs_dim, buffers[0].act_dim)
        start = 0
        for buffer in buffers:
            union.transitions[start : start + len(buffer)] = buffer.transitions[: len(buffer)]
            start += len(buffer)
        union.size, union.position = total, 0
        return union

    def save_hdf5(self, path: str | Path) -> Path:
        """Write the filled part as chunked, gzip-compressed datasets, oldest transition first."""
        order = np.roll(np.arange(self.size), -self.position if self.size == self.capacity else 0)
        with h5py.File(path, "w") as f:
            for field in FIELDS:
                data = getattr(self, field)[: self.size].numpy()[order]
                f.create_dataset(field, data=data, chunks=True if self.size else None, compression="gzip")
            f.attrs["obs_dim"], f.attrs["act_dim"] = self.obs_dim, self.act_dim
        return Path(path)

    @staticmethod
    def _datasets(f: h5py.File) -> tuple[int, int, int, dict[str, h5py.Dataset]]:
        """The fields of a file written by :meth:`save_hdf5`, checked (names, shapes, dtypes), unread."""
        dims = [f.attrs.get(k) for k in ("obs_dim", "act_dim")]
        if not all(isinstance(d, np.integer | int) and 0 < int(d) <= 100_000 for d in dims):
            raise SkillFormatError(f"{f.filename}: obs_dim and act_dim must be positive whole numbers")
        obs_dim, act_dim = (int(d) for d in dims)
        size = dataset(f, "rewards", 1, "f").shape[0]
        widths = {"observations": obs_dim, "actions": act_dim, "next_observations": obs_dim}
        fields = {}
        for field in FIELDS:
            fields[field] = dataset(f, field, 2 if field in widths else 1, "f", rows=size)
            if field in widths and fields[field].shape[1] != widths[field]:
                raise SkillFormatError(f"{f.filename}: {field} is {widths[field]} wide in the attributes, "
                                       f"{fields[field].shape[1]} in the data")  # fmt: skip
        return obs_dim, act_dim, size, fields

    @classmethod
    def check_hdf5(cls, path: str | Path | Any) -> None:
        """Check a replay file's structure without reading its data (a SkillFormatError if it is wrong)."""
        cls._open(path, lambda f: cls._datasets(f))

    @staticmethod
    def _open(path: str | Path | Any, read):
        try:
            with h5py.File(path, "r") as f:
                return read(f)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, OverflowError) as error:
            raise SkillFormatError(f"{getattr(path, 'name', path)} is not a replay buffer file ({error})") from None

    @classmethod
    def load_hdf5(cls, path: str | Path | Any, capacity: int | None = None) -> ReplayBuffer:
        """A buffer written by :meth:`save_hdf5`, every dataset's name, shape and dtype checked before
        it is read (a shared file may be anything)."""

        def read(f: h5py.File) -> ReplayBuffer:
            obs_dim, act_dim, size, fields = cls._datasets(f)
            buffer = cls(capacity or max(size, 1), obs_dim, act_dim)
            keep = min(size, buffer.capacity)
            for field in FIELDS:
                getattr(buffer, field)[:keep] = torch.from_numpy(np.asarray(fields[field][size - keep :]))
            buffer.size, buffer.position = keep, keep % buffer.capacity
            return buffer

        return cls._open(path, read)

    def save_state(self, path: str | Path) -> Path:
        """The buffer exactly as it is in memory (rows in place, the write position), uncompressed, for a
        checkpoint: :meth:`load_state` gives back a buffer that samples the same batches."""
        with h5py.File(path, "w") as f:
            f.create_dataset("transitions", data=self.transitions[: self.size].cpu().numpy())
            f.attrs.update(capacity=self.capacity, obs_dim=self.obs_dim, act_dim=self.act_dim)
            f.attrs.update(position=self.position, size=self.size)
        return Path(path)

    def load_state(self, path: str | Path) -> None:
        """Restore what :meth:`save_state` wrote into this buffer (of the same shape), checked before reading."""

        def read(f: h5py.File) -> None:
            shape = tuple(int(f.attrs.get(k, -1)) for k in ("capacity", "obs_dim", "act_dim"))
            if shape != (self.capacity, self.obs_dim, self.act_dim):
                raise SkillFormatError(f"{path} holds a buffer of (capacity, obs, act) {shape}, this one is "
                                       f"{(self.capacity, self.obs_dim, self.act_dim)}")  # fmt: skip
            size, position = int(f.attrs.get("size", -1)), int(f.attrs.get("position", -1))
            if not (0 <= size <= self.capacity and 0 <= position < self.capacity):
                raise SkillFormatError(f"{path}: size {size} and position {position} do not fit the buffer")
            rows = f.get("transitions")
            if not isinstance(rows, h5py.Dataset) or rows.shape != (size, self.transitions.shape[1]):
                raise SkillFormatError(f"{path}: the transitions are not ({size}, {self.transitions.shape[1]})")
            if rows.dtype != np.float32:
                raise SkillFormatError(f"{path}: the transitions are {rows.dtype}, not float32")
            self.transitions[:size] = torch.from_numpy(rows[:]).to(self.transitions.device)
            self.size, self.position = size, position

        self._open(path, read)
