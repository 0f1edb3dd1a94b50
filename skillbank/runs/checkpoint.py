"""Checkpoints of a training run: everything needed to continue bit for bit, and nothing that is code.

A checkpoint is a directory ``checkpoints/step-000001000/`` in the run directory holding

- ``state.safetensors``: the networks, target networks, optimiser states, the algorithm's random
  generator, the current observation and the environment's simulator state, as named tensors;
- ``replay.h5``: the replay buffer exactly as it is in memory;
- ``checkpoint.json``: counters, the training record, the environment's wrappers and random
  generator, each file's sha256, and the sha256 of all of that.

It is written under a temporary name and renamed into place, so that a run killed while writing
leaves the previous checkpoint whole; the last :data:`KEEP` are kept. :func:`latest` verifies every
checksum and falls back to the previous checkpoint when the newest is torn or corrupt, saying so.

:func:`without_replay` copies a checkpoint without ``replay.h5``, its only large file (0.9 GB for a
full Ant buffer, against about 1 MB for the rest): small enough to commit, so that a run outlives the
machine it trained on. A run restored from such a copy refills its buffer before it updates again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np
import torch
from safetensors.torch import load, save_file

from skillbank.errors import SkillbankError, write_error
from skillbank.nn.skill import check_header, safetensors_header

if TYPE_CHECKING:
    from skillbank.algos.offpolicy import OffPolicyAlgorithm

FORMAT_VERSION = 1
KEEP = 2
CHECKPOINT_FILE, TENSORS_FILE, REPLAY_FILE = "checkpoint.json", "state.safetensors", "replay.h5"
# Gymnasium's wrappers: TimeLimit's episode step count, OrderEnforcing's and PassiveEnvChecker's flags.
WRAPPER_STATE = ("_elapsed_steps", "_has_reset", "checked_reset", "checked_step")
MUJOCO_STATE = mujoco.mjtState.mjSTATE_INTEGRATION  # time, qpos, qvel, act, warm start, controls, applied forces


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _payload_digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ----- the environment's state ------------------------------------------------------------------
def _layers(env: Any) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def env_state(env: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The environment's state as JSON and arrays: each wrapper's episode counters, the random
    generator, and the simulator (MuJoCo's integration state and body positions, or what the
    environment's own ``checkpoint_state()`` returns). ``kind`` is None for an environment whose
    simulator state is unknown: a resumed run then starts a fresh episode."""
    layers = _layers(env)
    info: dict[str, Any] = {"wrappers": [], "kind": None}
    for layer in layers:
        info["wrappers"].append({k: getattr(layer, k) for k in WRAPPER_STATE if hasattr(layer, k)})
    base, arrays = layers[-1], {}
    if getattr(base, "_np_random", None) is not None:
        info["np_random"] = base.np_random.bit_generator.state
    if hasattr(base, "checkpoint_state"):
        info["kind"], arrays = "own", dict(base.checkpoint_state())
    elif hasattr(base, "model") and isinstance(getattr(base, "data", None), mujoco.MjData):
        state = np.empty(mujoco.mj_stateSize(base.model, MUJOCO_STATE))
        mujoco.mj_getState(base.model, base.data, state, MUJOCO_STATE)
        # Ant-v5 reads the torso's position before stepping: the derived positions are state too.
        info["kind"], arrays = "mujoco", {"state": state, "xpos": base.data.xpos.copy()}
    return info, arrays


def restore_env_state(env: Any, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> bool:
    """Put ``env`` back into the state :func:`env_state` saw; False where the simulator's state is unknown."""
    layers = _layers(env)
    if len(layers) != len(info["wrappers"]) or info["kind"] is None:
        return False
    for layer, saved in zip(layers, info["wrappers"]):
        for key, value in saved.items():
            setattr(layer, key, value)
        if hasattr(layer, "_previous_data"):  # Gymnasium's data-reuse check needs data no checkpoint keeps
            layer._previous_data, layer.checked_data_reuse = None, True
    base = layers[-1]
    if "np_random" in info:
        base.np_random.bit_generator.state = info["np_random"]
    if info["kind"] == "own":
        base.restore_checkpoint_state(arrays)
    else:
        mujoco.mj_setState(base.model, base.data, np.ascontiguousarray(arrays["state"]), MUJOCO_STATE)
        base.data.xpos[:] = arrays["xpos"]
    return True


# ----- writing and reading ----------------------------------------------------------------------
def save(run_dir: str | Path, algo: OffPolicyAlgorithm) -> Path:
    """Write a checkpoint of ``algo`` at its current step into ``run_dir/checkpoints/``; keep the last two."""
    directory = Path(run_dir) / "checkpoints"
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{algo.num_timesteps:09d}"
    temporary = directory / f".tmp-{final.name}-{os.getpid()}"
    try:
        return _write(directory, final, temporary, algo)
    except OSError as error:  # a full disk, most likely: the previous checkpoints are untouched
        shutil.rmtree(temporary, ignore_errors=True)
        needed = algo.buffer.transitions[: len(algo.buffer)].numel() * 4
        raise write_error(error, temporary, needed) from None


def _write(directory: Path, final: Path, temporary: Path, algo: OffPolicyAlgorithm) -> Path:
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    env_info, env_arrays = env_state(algo.env)
    tensors = {f"algo.{k}": v.detach().cpu().contiguous().clone() for k, v in algo.state_tensors().items()}
    tensors.update({f"env.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in env_arrays.items()})
    save_file(tensors, str(temporary / TENSORS_FILE))
    algo.buffer.save_state(temporary / REPLAY_FILE)
    payload = {
        "format_version": FORMAT_VERSION,
        "algorithm": algo.algorithm,
        "step": algo.num_timesteps,
        "training": algo.training_state(),
        "env": env_info,
        "files": {name: _sha256(temporary / name) for name in (TENSORS_FILE, REPLAY_FILE)},
    }
    text = json.dumps({"payload": payload, "sha256": _payload_digest(payload)}, indent=1, sort_keys=True)
    (temporary / CHECKPOINT_FILE).write_text(text)
    for name in (TENSORS_FILE, REPLAY_FILE, CHECKPOINT_FILE):
        with open(temporary / name, "rb+") as f:
            os.fsync(f.fileno())
    if final.exists():  # the same step again (a resumed run that had written it): replace it whole
        shutil.rmtree(final)
    temporary.rename(final)
    for old in sorted(directory.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


@dataclass
class Checkpoint:
    path: Path
    payload: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.payload["step"])


def verify(path: Path) -> Checkpoint:
    """Read a checkpoint's description and check every checksum; a SkillbankError says what is wrong."""
    try:
        data = json.loads((path / CHECKPOINT_FILE).read_text())
        payload, digest = data["payload"], data["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SkillbankError(f"{path / CHECKPOINT_FILE} is missing or unreadable ({error})") from None
    if _payload_digest(payload) != digest:
        raise SkillbankError(f"{path / CHECKPOINT_FILE} does not match its checksum")
    files = payload.get("files")
    if not isinstance(files, dict) or TENSORS_FILE not in files:
        raise SkillbankError(f"{path / CHECKPOINT_FILE} lists no {TENSORS_FILE}")
    for name, sha in files.items():
        if name not in (TENSORS_FILE, REPLAY_FILE):
            raise SkillbankError(f"{path / CHECKPOINT_FILE} lists an unexpected file {name!r}")
        if not (path / name).is_file() or _sha256(path / name) != sha:
            raise SkillbankError(f"{path / name} is missing or does not match its checksum")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise SkillbankError(f"{path} was written by a newer skillbank (format {payload['format_version']})")
    return Checkpoint(path, payload)


def has_replay(checkpoint: Checkpoint) -> bool:
    """Whether ``checkpoint`` holds its replay buffer (a copy made by :func:`without_replay` does not)."""
    return REPLAY_FILE in checkpoint.payload["files"]


def without_replay(source: Checkpoint, destination: Path) -> Checkpoint:
    """Copy ``source`` to the new folder ``destination`` without its replay buffer, and verify the copy."""
    destination.mkdir(parents=True)
    shutil.copyfile(source.path / TENSORS_FILE, destination / TENSORS_FILE)
    payload = {**source.payload, "files": {TENSORS_FILE: source.payload["files"][TENSORS_FILE]}}
    text = json.dumps({"payload": payload, "sha256": _payload_digest(payload)}, indent=1, sort_keys=True)
    (destination / CHECKPOINT_FILE).write_text(text)
    return verify(destination)


def latest(run_dir: str | Path) -> Checkpoint | None:
    """The newest checkpoint in ``run_dir`` whose checksums hold (None if there is none), telling on
    stderr of any newer one it skipped as torn or corrupt."""
    for path in sorted((Path(run_dir) / "checkpoints").glob("step-*"), reverse=True):
        try:
            return verify(path)
        except SkillbankError as error:
            print(f"skillbank: checkpoint {path.name} is unusable ({error}); trying the previous one", file=sys.stderr)
    return None


DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.uint8: "U8", torch.int64: "I64"}
TRAINING_FIELDS = {"num_timesteps": int, "num_updates": int, "train_time_s": (int, float), "history": list,
                   "episode_returns": list, "episode_return": (int, float), "description": dict}  # fmt: skip


def restore(algo: OffPolicyAlgorithm, checkpoint: Checkpoint) -> bool:
    """Load ``checkpoint`` into ``algo`` (built with the same configuration); returns whether the
    environment's state came back too (else the next step starts a fresh episode). Every tensor's name,
    shape and dtype, the buffer's and the counters' are checked against ``algo`` before loading. A
    checkpoint without its replay buffer leaves ``algo``'s empty: the collection loop refills
    ``learning_starts`` transitions before the next update, and the skill's training record says where."""
    path, payload = checkpoint.path, checkpoint.payload
    try:
        if payload["algorithm"] != algo.algorithm:
            raise SkillbankError(f"{path} is a {payload['algorithm']} checkpoint, not {algo.algorithm}")
        training = payload["training"]
        for key, kind in TRAINING_FIELDS.items():
            if not isinstance(training.get(key), kind) or isinstance(training.get(key), bool):
                raise SkillbankError(f"{path / CHECKPOINT_FILE}: training.{key} is missing or malformed")
        data = (path / TENSORS_FILE).read_bytes()
        header = safetensors_header(data, str(path / TENSORS_FILE))
        mine = algo.state_tensors()
        mine.setdefault("obs", torch.zeros(algo.skill.q.obs_dim, dtype=torch.float64))
        expected = {f"algo.{k}": tuple(v.shape) for k, v in mine.items()}
        saved = {k: v for k, v in header.items() if k.startswith("algo.")}
        if "algo.obs" not in saved:
            expected.pop("algo.obs")
        for name in ("obs", "rng"):
            if f"algo.{name}" in saved and isinstance(saved[f"algo.{name}"], dict):
                saved[f"algo.{name}"] = {**saved[f"algo.{name}"], "dtype": "F32"}  # checked by shape alone
        check_header(saved, expected, str(path / TENSORS_FILE), dtypes=("F32",))
        tensors = load(data)
        algo.load_state_tensors({k[5:]: v for k, v in tensors.items() if k.startswith("algo.")})
        algo.load_training_state(training)
        if has_replay(checkpoint):
            algo.buffer.load_state(path / REPLAY_FILE)
        else:
            algo.replay_refilled_at.append(algo.num_timesteps)
        env_arrays = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("env.")}
        exact = restore_env_state(algo.env, payload["env"], env_arrays)
    except SkillbankError:
        raise
    except Exception as error:  # safetensors', h5py's and MuJoCo's own errors: the checkpoint is not usable
        raise SkillbankError(f"checkpoint {path} cannot be restored ({type(error).__name__}: {error})") from None
    if not exact:
        algo.reset_episode()
    return exact
