"""Preallocated replay buffer of contiguous float32 tensors, with HDF5 export for the registry."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")


class ReplayBuffer:
    """A ring buffer of transitions ``(s, a, r, s', terminal)`` with actions in [-1, 1]^d."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        self.observations = torch.zeros(capacity, obs_dim)
        self.actions = torch.zeros(capacity, act_dim)
        self.rewards = torch.zeros(capacity)
        self.next_observations = torch.zeros(capacity, obs_dim)
        self.terminals = torch.zeros(capacity)
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminal: bool) -> None:
        i = self.position
        self.observations[i] = torch.as_tensor(obs)
        self.actions[i] = torch.as_tensor(action)
        self.rewards[i] = reward
        self.next_observations[i] = torch.as_tensor(next_obs)
        self.terminals[i] = float(terminal)
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        index = torch.randint(0, self.size, (batch_size,), generator=generator)
        return tuple(getattr(self, field)[index] for field in FIELDS)

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
