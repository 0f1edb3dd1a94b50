"""Long runs: checkpoints are exact, a run killed by SIGKILL and resumed ends bit for bit where an
uninterrupted one does, and a corrupt newest checkpoint falls back to the previous one."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import skillbank.envs  # noqa: F401
from skillbank import DDPG, SAC, SQL
from skillbank.errors import SkillbankError
from skillbank.runs import checkpoint
from skillbank.runs.run import Run

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(hidden=[16, 16], batch_size=16, learning_starts=50, buffer_size=300)  # the buffer wraps around
BUILD = {
    "sql": lambda: SQL("skillbank/MultiGoal-v0", kernel_particles=4, value_particles=4, seed=3, **SMALL),
    "sac": lambda: SAC("skillbank/MultiGoal-v0", seed=3, **SMALL),
    "ddpg": lambda: DDPG("skillbank/MultiGoal-v0", seed=3, **SMALL),
    "sql-ou": lambda: SQL(
        "skillbank/MultiGoal-v0",
        kernel_particles=4,
        value_particles=4,
        seed=3,
        ou_sigma=0.3,
        critics=2,
        value_proposal="sampler",
        tau=0.1,
        target_update_interval=1,
        q_in_reward_units=True,
        **SMALL,
    ),
}


def parameters(algo) -> dict[str, torch.Tensor]:
    return {k: v for k, v in algo.state_tensors().items() if k != "obs"}


def assert_identical(a, b):
    pa, pb = parameters(a), parameters(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key
    assert torch.equal(a.buffer.transitions, b.buffer.transitions)
    assert a.num_timesteps == b.num_timesteps and a.num_updates == b.num_updates


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILD))
def test_resuming_in_a_new_process_object_equals_the_uninterrupted_run(name, tmp_path):
    whole = BUILD[name]()
    Run(tmp_path / "whole", {"t": name}).train(whole, 700, checkpoint_every=100)
    first = BUILD[name]()
    assert Run(tmp_path / "split", {"t": name}).train(first, 350, checkpoint_every=100)
    second = BUILD[name]()  # a fresh object, as after a restart: everything comes from the checkpoint
    assert Run(tmp_path / "split", {"t": name}).train(second, 700, checkpoint_every=100)
    assert_identical(whole, second)
    rows = Run(tmp_path / "split").metrics()
    assert [row["step"] for row in rows] == list(range(100, 701, 100))  # no duplicates, nothing lost


def test_the_environment_state_round_trips_exactly_for_mujoco():
    one, two = gym.make("skillbank/AntWalk-v0"), gym.make("skillbank/AntWalk-v0")
    one.reset(seed=0)
    two.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(37):
        one.step(rng.uniform(-1, 1, 8))
    info, arrays = checkpoint.env_state(one)
    assert checkpoint.restore_env_state(two, info, arrays)
    for _ in range(200):
        action = rng.uniform(-1, 1, 8)
        a, b = one.step(action), two.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2] or a[3]:
            assert np.array_equal(one.reset()[0], two.reset()[0])


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    algo = BUILD["sql"]()
    Run(tmp_path, {"t": 1}).train(algo, 300, checkpoint_every=100)
    newest, previous = sorted((tmp_path / "checkpoints").glob("step-*"))[-2:][::-1]
    assert newest.name == "step-000000300" and previous.name == "step-000000200"
    data = bytearray((newest / checkpoint.REPLAY_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / checkpoint.REPLAY_FILE).write_bytes(bytes(data))
    found = checkpoint.latest(tmp_path)
    assert found is not None and found.step == 200
    assert "step-000000300 is unusable" in capsys.readouterr().err
    (previous / checkpoint.CHECKPOINT_FILE).write_text("{")  # torn too: nothing usable is left
    assert checkpoint.latest(tmp_path) is None


KILLED = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r})
from tests.runs.test_runs import BUILD
from skillbank.runs.run import Run
Run({run!r}, {{"t": {name!r}}}).train(BUILD[{name!r}](), 6000, checkpoint_every=500)
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILD))
def test_a_run_killed_by_sigkill_resumes_bit_for_bit(name, tmp_path):
    run = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", KILLED.format(repo=str(REPO), run=str(run), name=name)])
    try:
        deadline = time.time() + 300
        while not (run / "checkpoints" / "step-000001000").exists():
            assert child.poll() is None and time.time() < deadline, "the run ended before it could be killed"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert not (run / "finished.json").exists()
    resumed = BUILD[name]()
    assert Run(run, {"t": name}).train(resumed, 6000, checkpoint_every=500)
    # the training clock goes on from the checkpoint's, not from zero: the time before the kill counts
    clock = [row["wall_time_s"] for row in Run(run).metrics()]
    assert clock == sorted(clock) and clock[0] > 0
    assert json.loads((run / "finished.json").read_text())["wall_time_s"] >= round(clock[-1], 2)
    whole = BUILD[name]()
    Run(tmp_path / "whole", {"t": name}).train(whole, 6000, checkpoint_every=500)
    assert_identical(whole, resumed)


def test_a_run_directory_refuses_another_run(tmp_path):
    Run(tmp_path, {"task_name": "a"})
    with pytest.raises(Exception, match="holds another run"):
        Run(tmp_path, {"task_name": "b"})


def test_a_run_moved_to_other_folders_is_the_same_run_with_the_same_id(tmp_path):
    here = {"task": "/here/tasks/t.toml", "store": "/here/store", "pretrained_store": "/here/store"}
    spec = {"task_name": "t", "seed": 0, **here}
    first = Run(tmp_path / "run", spec)
    there = {"task": "/there/t.toml", "store": "/there/store", "pretrained_store": "/there/skills"}
    moved = Run(tmp_path / "run", {**spec, **there})  # the same command on another machine: not another run
    assert moved.run_id == first.run_id and Run(tmp_path / "run").spec == {**spec, **there, "run_id": first.run_id}
    assert Run(tmp_path / "fresh", {**spec, **there}).run_id == first.run_id  # where the inputs are is not the id
    assert Run(tmp_path / "seed-1", {**spec, "seed": 1}).run_id != first.run_id
    with pytest.raises(SkillbankError, match="locations are"):
        moved.relocate(seed=3)

    # A run written before ids were kept in run.json keeps the id it was registered under then, moved or not
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "run.json").write_text(json.dumps(spec))
    legacy = Run(tmp_path / "legacy").run_id
    assert legacy == hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16] != first.run_id
    assert Run(tmp_path / "legacy", spec).run_id == legacy and "run_id" not in Run(tmp_path / "legacy").spec
    assert Run(tmp_path / "legacy", {**spec, **there}).run_id == legacy == Run(tmp_path / "legacy").spec["run_id"]


def test_a_run_written_before_a_setting_existed_resumes_under_the_same_command(tmp_path):
    from skillbank.algos.sql import SQLConfig

    spec = {"algo": "sql", "config": SQLConfig(alpha=0.1).to_dict(), "steps": 10}
    older = {**spec, "config": {k: v for k, v in spec["config"].items() if k != "symmetry"}}
    (tmp_path / "run.json").write_text(json.dumps(older))
    run = Run(tmp_path, spec)  # the setting at its default: the same job, and the same run id as before
    assert run.spec == older and run.run_id == Run(tmp_path).run_id
    with pytest.raises(Exception, match="holds another run"):
        Run(tmp_path, {**spec, "config": SQLConfig(alpha=0.1, symmetry="ant-c4").to_dict()})


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_prints_how_to_resume(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "skillbank.cli", "train", "multigoal", "--steps", "100000", "--no-progress"]
    command += ["--store", str(tmp_path / "store"), "--run-dir", str(run), "--checkpoint-every", "100000"]
    command += ["--threads", "1"]  # two threads beside other training spin instead of working
    child = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "metrics.csv").exists() or not (run / "metrics.csv").read_text().count("\n") > 1:
            assert child.poll() is None and time.time() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
    finally:
        child.kill()  # a failed assertion must not leave a training process behind
    assert child.returncode == 130, stderr
    assert f"resume with: skillbank train --resume {run}" in stderr
    found = checkpoint.latest(run)
    assert found is not None and 1000 <= found.step < 100_000
    assert not (run / "finished.json").exists()


def test_the_training_time_counts_every_segment_of_a_run_whose_clock_restarted(tmp_path):
    run = Run(tmp_path / "run", {"t": "clock"})
    assert run.training_time_s() is None
    # Written by a run that started at clock 10 (after a graceful stop), was killed after its checkpoint at step
    # 200 (its clock 30, but the checkpoint kept 10), and resumed from there at 10 steps per second
    rows = [(100, 20.0, 10.0), (200, 30.0, 10.0), (300, 20.0, 10.0), (400, 30.0, 10.0)]
    (run.path / "metrics.csv").write_text(
        "step,wall_time_s,steps_per_s\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    )
    assert run.training_time_s() == 50.0  # 30 s to step 200, then 20 s more
    (run.path / "finished.json").write_text(json.dumps({"steps": 400, "wall_time_s": 30.5}))
    assert run.training_time_s() == 50.5


def test_a_snapshot_without_the_replay_buffer_goes_on_elsewhere_after_refilling_it(tmp_path, capsys):
    from skillbank.runs.run import snapshot

    original = BUILD["sql"]()
    Run(tmp_path / "run", {"t": "sql"}).train(original, 300, checkpoint_every=100)
    copied = snapshot(tmp_path / "run", tmp_path / "snapshot")
    assert copied.step == 300 and not checkpoint.has_replay(copied)
    files = {p.relative_to(tmp_path / "snapshot").as_posix() for p in (tmp_path / "snapshot").rglob("*") if p.is_file()}
    assert files == {"run.json", "metrics.csv", "checkpoints/step-000000300/state.safetensors",
                     "checkpoints/step-000000300/checkpoint.json"}  # fmt: skip
    assert [row["step"] for row in Run(tmp_path / "snapshot").metrics()] == [100, 200, 300]

    shutil.copytree(tmp_path / "snapshot", tmp_path / "elsewhere")  # another machine, with nothing but the copy
    resumed = BUILD["sql"]()
    assert Run(tmp_path / "elsewhere", {"t": "sql"}).train(resumed, 300, checkpoint_every=100)
    assert "no replay buffer (a snapshot), so 50 transitions refill it" in capsys.readouterr().err
    for key, value in parameters(original).items():  # everything but the buffer came back
        assert torch.equal(value, parameters(resumed)[key]), key
    assert len(resumed.buffer) == 0

    later = BUILD["sql"]()
    assert Run(tmp_path / "elsewhere", {"t": "sql"}).train(later, 600, checkpoint_every=100)
    # 251 updates up to step 300, none while 50 transitions refill the buffer, then one per step to 600
    assert later.num_timesteps == 600 and later.num_updates == 251 + 251 and len(later.buffer) == 300
    assert later.skill.description["training"]["replay_refilled_at"] == [300]
    assert [row["step"] for row in Run(tmp_path / "elsewhere").metrics()] == list(range(100, 601, 100))


def test_a_snapshot_replaces_its_older_self_and_nothing_else(tmp_path):
    from skillbank.runs.run import snapshot

    with pytest.raises(SkillbankError, match="no usable checkpoint"):
        Run(tmp_path / "run", {"t": "sql"})
        snapshot(tmp_path / "run", tmp_path / "snapshot")
    algo = BUILD["sql"]()
    Run(tmp_path / "run", {"t": "sql"}).train(algo, 200, checkpoint_every=100)
    assert snapshot(tmp_path / "run", tmp_path / "snapshot").step == 200
    Run(tmp_path / "run", {"t": "sql"}).train(algo, 300, checkpoint_every=100)
    assert snapshot(tmp_path / "run", tmp_path / "snapshot").step == 300
    assert [p.name for p in (tmp_path / "snapshot" / "checkpoints").iterdir()] == ["step-000000300"]
    Run(tmp_path / "other", {"t": "other"})
    for taken in (tmp_path / "other", tmp_path / "run"):
        with pytest.raises(SkillbankError, match="give a new folder|the run itself"):
            snapshot(tmp_path / "run", taken)
    assert not (tmp_path / "other" / "checkpoints").exists()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SkillbankError, match="could not write"):
        snapshot(tmp_path / "run", tmp_path / "file" / "snapshot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "other", "run", "snapshot"]  # no temporary left


def test_the_snapshot_command_says_what_it_wrote_and_how_to_go_on(tmp_path, capsys):
    from skillbank.cli.main import main

    Run(tmp_path / "run", {"t": "sql", "kind": "train"}).train(BUILD["sql"](), 100, checkpoint_every=100)
    assert main(["snapshot", str(tmp_path / "run"), str(tmp_path / "copy")]) == 0
    out = capsys.readouterr().out
    assert "at step 100" in out and "MB without its replay buffer" in out and "skillbank train --resume DIR" in out
    assert main(["snapshot", str(tmp_path / "nothing"), str(tmp_path / "copy2")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_a_run_directory_written_before_the_subpackages_resumes_bit_for_bit(tmp_path):
    """``tests/data/run-0.1.0`` was written by skillbank as it was before its modules moved into subpackages (commit
    38648ab): ``skillbank train multigoal --steps 1200 --checkpoint-every 300 --set hidden=[16,16]
    --set kernel_particles=8 --name fixture``, killed right after its checkpoint at step 600. Resumed now it ends
    where an uninterrupted run of today's code ends. (Regenerate it if a change to the algorithm is meant to
    change its numbers.)"""
    from skillbank import Registry
    from skillbank.cli.main import main

    run, store = tmp_path / "run", tmp_path / "store"
    shutil.copytree(REPO / "tests" / "data" / "run-0.1.0", run)
    Registry(store)  # the run's store, here
    assert main(["train", "--resume", str(run), "--store", str(store), "--no-progress"]) == 0
    assert [row["step"] for row in Run(run).metrics()][-1] == 1200
    options = ["--steps", "1200", "--checkpoint-every", "300", "--set", "hidden=[16,16]", "--set", "kernel_particles=8"]
    whole = ["train", "multigoal", *options, "--name", "fixture", "--run-dir", str(tmp_path / "whole")]
    assert main([*whole, "--store", str(tmp_path / "store-whole"), "--no-progress"]) == 0
    resumed, uninterrupted = Registry(store).load("fixture"), Registry(tmp_path / "store-whole").load("fixture")
    for key, value in uninterrupted.state_tensors().items():
        assert torch.equal(value, resumed.state_tensors()[key]), key
    assert main(["verify", "--store", str(store)]) == 0
