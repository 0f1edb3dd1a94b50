"""Stores a person cannot write, and disks that fill up: one clear line, and nothing half-written.

The filesystems are real: small tmpfs mounts (the tests run as root, as CI does), remounted read-only
for the read-only store, and filled with a ballast file for the full disk."""

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skillbank import SQL, Registry, SkillbankError
from skillbank.algos.buffer import ReplayBuffer
from skillbank.runs import checkpoint
from skillbank.runs.run import Run
from tests.conftest import tiny_skill

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size)`` mounts a fresh tmpfs of ``size`` and returns its path; all are unmounted after."""
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode:
            pytest.skip(f"these tests mount a small tmpfs, which needs root: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skillbank.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)  # fmt: skip


def fill(point: Path, leave: int = 0) -> None:
    """Fill the filesystem at ``point`` with a ballast file, leaving about ``leave`` bytes."""
    free = shutil.disk_usage(point).free - leave
    with open(point / "ballast", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(free, 0))


@pytest.mark.slow
def test_a_read_only_store_can_be_read_and_exported_and_refuses_writes(tmpfs, tmp_path):
    point = tmpfs("8m")
    registry = Registry(point / "store")
    ref = registry.register(tiny_skill(), "shared", replay=ReplayBuffer(10, 2, 2))
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    store = ["--store", str(point / "store")]
    for args in (["list"], ["show", ref], ["verify"], ["lineage", ref], ["export", ref, str(tmp_path / "out.tar.gz")]):
        result = cli(*args, *store)
        assert result.returncode == 0, (args, result.stderr)
    assert Registry(point / "store").read_only and Registry(point / "store").load(ref).ref == ref
    for args in (["alias", ref, "best"], ["tag", ref, "x"], ["import", str(tmp_path / "out.tar.gz")]):
        result = cli(*args, *store)
        assert result.returncode == 2 and "is read-only" in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(SkillbankError, match="is read-only"):
        Registry(point / "store").register(tiny_skill(), "mine")


@pytest.mark.slow
def test_a_store_that_does_not_exist_is_an_error_for_reading_commands(tmp_path):
    for args in (["list"], ["show", "x"], ["verify"]):
        result = cli(*args, "--store", str(tmp_path / "nowhere"))
        assert result.returncode == 2 and "no skill store at" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def big_replay() -> ReplayBuffer:
    buffer = ReplayBuffer(60_000, 2, 2)
    buffer.transitions.uniform_(-1, 1, generator=torch.Generator().manual_seed(0))  # incompressible
    buffer.size = buffer.capacity
    return buffer


def assert_consistent(store: Path, versions: int) -> None:
    """After the space is freed again: the store verifies, with exactly the versions it had."""
    (store.parent / "ballast").unlink(missing_ok=True)
    registry = Registry(store)
    report = registry.verify()
    assert report["ok"] and report["versions"] == versions, report


def test_registering_on_a_full_disk_fails_clearly_and_leaves_the_store_consistent(tmpfs):
    point = tmpfs("16m")
    registry = Registry(point / "store")
    registry.register(tiny_skill(), "first")
    fill(point, leave=200_000)
    with pytest.raises(SkillbankError, match=r"no space left on the device writing .*: it needs [\d,]+ bytes"):
        registry.register(tiny_skill(1), "second", replay=big_replay())
    assert_consistent(point / "store", 1)
    assert [r["name"] for r in registry.list()] == ["first"]


@pytest.mark.slow
def test_train_keep_replay_on_a_full_disk_fails_clearly(tmpfs):
    point = tmpfs("16m")
    Registry(point / "store").register(tiny_skill(), "first")
    fill(point)
    store = str(point / "store")
    result = cli("train", "multigoal", "--steps", "300", "--keep-replay", "--no-progress", "--store", store,
                 "--run-dir", str(point.parent / "run"))  # fmt: skip
    assert result.returncode == 2 and "no space left on the device" in result.stderr, result.stderr
    assert_consistent(point / "store", 1)


def test_importing_onto_a_full_disk_fails_clearly_and_writes_nothing(tmpfs, tmp_path):
    source = Registry(tmp_path / "source")
    ref = source.register(tiny_skill(), "big", replay=big_replay())
    source.export(ref, tmp_path / "big.tar.gz")
    point = tmpfs("16m")
    target = Registry(point / "store")
    target.register(tiny_skill(1), "first")
    fill(point, leave=300_000)
    with pytest.raises(SkillbankError, match="no space left on the device"):
        target.import_(tmp_path / "big.tar.gz")
    assert_consistent(point / "store", 1)
    assert not list((point / "store" / "tmp").iterdir())  # the scratch folder is cleaned up


def test_a_checkpoint_on_a_full_disk_fails_clearly_and_keeps_the_previous_one(tmpfs):
    point = tmpfs("16m")
    algo = SQL("skillbank/MultiGoal-v0", hidden=[8], batch_size=8, learning_starts=20, buffer_size=60_000,
               kernel_particles=4, value_particles=4)  # fmt: skip
    run = Run(point / "run", {"t": 1})
    run.train(algo, 200, checkpoint_every=100)
    fill(point, leave=50_000)
    algo.buffer.transitions.uniform_(-1, 1)
    algo.buffer.size = algo.buffer.capacity  # a checkpoint now needs about 1.9 MB
    with pytest.raises(SkillbankError, match="no space left on the device"):
        checkpoint.save(point / "run", algo)
    found = checkpoint.latest(point / "run")
    assert found is not None and found.step == 200
    assert not [p for p in (point / "run" / "checkpoints").iterdir() if p.name.startswith(".tmp")]
