"""Preallocated replay buffer of contiguous float32 tensors, with HDF5 export for the registry."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from skillbank.errors import SkillbankError

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")


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

    def _fields(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Views of ``rows`` (n, width) as the fields, in the order of ``FIELDS``."""
        o, a = self.obs_dim, self.act_dim
        return rows[:, :o], rows[:, o : o + a], rows[:, o + a], rows[:, o + a + 1 : 2 * o + a + 1], rows[:, -1]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
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

    @classmethod
    def load_hdf5(cls, path: str | Path, capacity: int | None = None) -> ReplayBuffer:
        with h5py.File(path, "r") as f:
            size = f["rewards"].shape[0]
            buffer = cls(capacity or max(size, 1), int(f.attrs["obs_dim"]), int(f.attrs["act_dim"]))
            keep = min(size, buffer.capacity)
            for field in FIELDS:
                getattr(buffer, field)[:keep] = torch.from_numpy(np.asarray(f[field][size - keep :]))
        buffer.size, buffer.position = keep, keep % buffer.capacity
        return buffer

    def save_state(self, path: str | Path) -> Path:
        """The buffer exactly as it is in memory (rows in place, the write position), uncompressed, for a
        checkpoint: :meth:`load_state` gives back a buffer that samples the same batches."""
        with h5py.File(path, "w") as f:
            f.create_dataset("transitions", data=self.transitions[: self.size].cpu().numpy())
            f.attrs.update(capacity=self.capacity, obs_dim=self.obs_dim, act_dim=self.act_dim)
            f.attrs.update(position=self.position, size=self.size)
        return Path(path)

    def load_state(self, path: str | Path) -> None:
        """Restore what :meth:`save_state` wrote into this buffer (of the same shape)."""
        with h5py.File(path, "r") as f:
            shape = tuple(int(f.attrs[k]) for k in ("capacity", "obs_dim", "act_dim"))
            if shape != (self.capacity, self.obs_dim, self.act_dim):
                raise SkillbankError(f"{path} holds a buffer of (capacity, obs, act) {shape}, this one is "
                                     f"{(self.capacity, self.obs_dim, self.act_dim)}")  # fmt: skip
            size = int(f.attrs["size"])
            rows = f["transitions"]
            if rows.shape != (size, self.transitions.shape[1]):
                raise SkillbankError(
                    f"{path}: transitions of shape {rows.shape}, expected {(size, self.transitions.shape[1])}"
                )
            self.transitions[:size] = torch.from_numpy(rows[:]).to(self.transitions.device)
            self.size, self.position = size, int(f.attrs["position"])
