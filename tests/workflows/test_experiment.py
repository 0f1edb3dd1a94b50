"""``skillbank experiment finetune`` at a tiny budget: killed half-way and run again, it completes without
repeating finished runs, and its summary.json follows the schema."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillbank import SQL, Registry
from skillbank.runs.run import Run
from skillbank.workflows.experiment import compare, verdict

REPO = Path(__file__).resolve().parents[2]
SMALL = "hidden = [16, 16]\nbatch_size = 16\nlearning_starts = 50\nbuffer_size = 2000\n"
TASK = f"""description = "corner-north with a threshold, for the experiment test"
[env]
id = "skillbank/MultiGoal-v0"
kwargs = {{ goals = [[5, 5], [5, -5], [-5, 5], [-5, -5]], goal_weights = [1, 0, 1, 0] }}
[train]
steps = 400
[eval]
episodes = 3
[experiment]
threshold = -150
[sql]
alpha = 10.0
kernel_particles = 4
value_particles = 4
{SMALL}[sac]
{SMALL}[ddpg]
{SMALL}"""


@pytest.fixture
def setup(tmp_path):
    store = tmp_path / "store"
    east = SQL("skillbank/MultiGoal-v0", alpha=10.0, hidden=[16, 16], kernel_particles=4, value_particles=4,
               learning_starts=50, buffer_size=2000)  # fmt: skip
    east.skill.description["task"]["name"] = "corner-east"
    Registry(store).register(east.learn(200).skill, "east")
    (tmp_path / "tiny-north.toml").write_text(TASK)
    command = [sys.executable, "-m", "skillbank.cli", "experiment", "finetune", "--pretrained", "east", "--tasks"]
    command += [str(tmp_path / "tiny-north.toml"), "--seeds", "2", "--steps", "400", "--workers", "2"]
    command += ["--out", str(tmp_path / "out"), "--eval-every", "100", "--eval-episodes", "3", "--store", str(store)]
    return tmp_path / "out", command


@pytest.mark.slow
def test_a_killed_experiment_resumes_without_repeating_finished_runs(setup):
    out, command = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not list(out.glob("runs/*/result/result.json")):
        assert child.poll() is None and time.time() < deadline, "the experiment ended before it could be killed"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    finished = {p.parent.parent: (p.read_text(), (p.parent.parent / "metrics.csv").stat().st_mtime_ns)
                for p in out.glob("runs/*/result/result.json")}  # fmt: skip
    assert 0 < len(finished) < 8

    result = subprocess.run([*command, "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for run, (registered, mtime) in finished.items():  # untouched: not trained again, not registered again
        assert (run / "result" / "result.json").read_text() == registered
        assert (run / "metrics.csv").stat().st_mtime_ns == mtime
    store = Registry(out / "store")
    assert sorted(r["name"] for r in store.list()) == sorted(
        ["east", "tiny-north-finetuned"]
        + [
            f"tiny-north-{m}-s{s}" for m in ("finetune", "sql-scratch", "sac-scratch", "ddpg-scratch") for s in (0, 1)
        ]  # fmt: skip
    )
    assert all(r["versions"] == 1 for r in store.list())
    lineage = store.info("tiny-north-finetune-s0")["parents"]
    assert [(p["ref"], p["relation"]) for p in lineage] == [("east@1", "fine-tuned-from")]

    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(result.stdout) == summary
    task = summary["tasks"]["tiny-north"]
    assert summary["pretrained"] == "east@1"
    assert (task["threshold"], task["seeds"], task["budget_steps"]) == (-150, 2, 400)
    assert set(task["methods"]) == {"finetune", "sql-scratch", "sac-scratch", "ddpg-scratch"}
    for method in task["methods"].values():
        assert set(method) >= {"steps_to_threshold", "final_return", "final_success_rate", "wall_time_s"}
        assert method["steps_to_threshold"] is None or 100 <= method["steps_to_threshold"] <= 400
        assert isinstance(method["final_return"], float) and method["wall_time_s"] > 0
        assert [s["steps"] for s in method["per_seed"]] == [400, 400]
    assert (out / "finetune_tiny-north.png").stat().st_size > 10_000
    assert task["verdict"] == verdict(task) and task["verdict"]["finetune_steps"] == tuned_median(task)
    compared = compare([out], out=out)["tasks"]["tiny-north"]  # one experiment: the same verdict, the same best runs
    assert compared["verdicts"] == {"finetune from east@1": task["verdict"]}
    # The best fine-tuned seed, registered again under the task's name, and drawn beside the best from scratch
    best, tuned = task["best"], task["methods"]["finetune"]["per_seed"]
    top = max(tuned, key=lambda s: s["final_return"])
    assert best["finetuned"] == "tiny-north-finetuned@1"
    assert store.info(best["finetuned"])["parents"][0]["ref"] == top["ref"]
    assert best["scratch"]["method"] in {"sql-scratch", "sac-scratch", "ddpg-scratch"}
    assert best["scratch"]["ref"].startswith(f"tiny-north-{best['scratch']['method']}-s")
    assert best["figure"] == "finetune_tiny-north_rollouts.png"  # relative to OUT, like the runs: the folder moves
    assert (out / best["figure"]).stat().st_size > 10_000
    assert [s["run"] for s in tuned] == ["runs/tiny-north-finetune-s0", "runs/tiny-north-finetune-s1"]
    assert compared["best"]["finetuned"]["ref"] == top["ref"]
    assert compared["best"]["scratch"]["ref"] == best["scratch"]["ref"]
    assert Path(compared["best"]["figure"]).stat().st_size > 10_000

    # Moved, with its task file, to other folders (as onto another machine): the same runs, finished, not trained or
    # registered again, pointed at the new places
    ids = {run.name: Run(run).run_id for run in out.glob("runs/*")}
    listing = store.list()
    moved, task = out.parent / "moved", out.parent / "tasks" / "tiny-north.toml"
    out.rename(moved)
    task.parent.mkdir()
    (out.parent / "tiny-north.toml").rename(task)
    where = {str(out): str(moved), str(out.parent / "tiny-north.toml"): str(task)}
    again = subprocess.run([where.get(c, c) for c in command], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "8 of 8 runs already finished; training 0" in again.stderr
    assert Registry(moved / "store").list() == listing
    for name, run_id in ids.items():
        spec = Run(moved / "runs" / name).spec
        assert (Run(moved / "runs" / name).run_id, spec["task"]) == (run_id, str(task.resolve()))
        assert spec["store"] == str((moved / "store").resolve())


def tuned_median(task):
    return task["methods"]["finetune"]["steps_to_threshold"]


@pytest.mark.parametrize(
    ("finetune", "scratch", "within_half", "speedup"),
    [
        (40_000, {"sac-scratch": 100_000, "ddpg-scratch": 80_000}, True, 2.0),  # against the best, DDPG
        (50_000, {"sac-scratch": 90_000}, False, 1.8),
        (70_000, {"sac-scratch": None}, True, None),  # SAC needs more than the 150k budget: 70k is under half
        (80_000, {"sac-scratch": None}, False, None),  # 80k against more than 150k: not known to be half
        (None, {"sac-scratch": 100_000}, False, None),
        (None, {"sac-scratch": None}, False, None),
    ],
)
def test_the_verdict_compares_fine_tuning_with_the_best_from_scratch(finetune, scratch, within_half, speedup):
    methods = {"finetune": {"steps_to_threshold": finetune}}
    methods.update({m: {"steps_to_threshold": steps} for m, steps in scratch.items()})
    result = verdict({"budget_steps": 150_000, "methods": methods})
    assert result["within_half"] is within_half and result["speedup"] == speedup
    assert result["finetune_steps"] == finetune


def finished_run(folder, method, seed, evals, pretrained=None):
    """A finished run directory of ``folder``'s grid whose evaluations return ``evals`` every 10k steps."""
    spec = {"task_name": "arena", "method": method, "seed": seed, "threshold": 350, "steps": 150_000}
    spec.update({"pretrained": pretrained} if pretrained else {})
    run = Run(folder / "runs" / f"arena-{method}-s{seed}", spec)
    rows = "".join(f"{10_000 * (i + 1)},{r}\n" for i, r in enumerate(evals))
    (run.path / "metrics.csv").write_text("step,eval_return\n" + rows)
    (run.path / "result").mkdir()
    (run.path / "result" / "result.json").write_text(json.dumps({"wall_time_s": 1.0}))


def test_compare_judges_each_pretrained_skill_against_the_scratch_runs_of_every_experiment(tmp_path):
    grid, other = tmp_path / "grid", tmp_path / "other"
    for seed in range(3):
        finished_run(grid, "sac-scratch", seed, [100, 200, 300, 360])  # reaches 350 at 40k
        finished_run(grid, "finetune", seed, [300, 340, 350, 400], pretrained="slow@1")  # at 30k: not half
        finished_run(other, "finetune", seed, [200, 360, 380, 400], pretrained="fast@1")  # at 20k: half
    Run(other / "runs" / "arena-finetune-s3", {"task_name": "arena", "method": "finetune", "seed": 3})  # unfinished
    tasks = compare([grid, other], out=tmp_path)["tasks"]
    assert set(tasks["arena"]["methods"]) == {"sac-scratch", "finetune from slow@1", "finetune from fast@1"}
    assert [len(e["per_seed"]) for e in tasks["arena"]["methods"].values()] == [3, 3, 3]
    verdicts = tasks["arena"]["verdicts"]
    assert set(verdicts) == {"finetune from slow@1", "finetune from fast@1"}
    assert verdicts["finetune from slow@1"]["within_half"] is False
    assert verdicts["finetune from fast@1"] == {
        "finetune_steps": 20_000, "best_scratch_method": "sac-scratch", "best_scratch_steps": 40_000, "speedup": 2.0,
        "within_half": True,
    }  # fmt: skip
    assert Path(tasks["arena"]["figure"]) == tmp_path / "finetune_arena_compared.png"
    assert (tmp_path / "finetune_arena_compared.png").stat().st_size > 10_000


@pytest.mark.slow
def test_workers_whose_driver_is_killed_stop_with_a_checkpoint_instead_of_training_on(setup):
    out, command = setup
    command[command.index("--steps") + 1] = "200000"  # minutes of training per run, unless the workers stop
    child = subprocess.Popen(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while len(list(out.glob("runs/*/checkpoints/step-*"))) < 2:  # both workers are training
        assert child.poll() is None and time.time() < deadline, "the experiment ended before it could be killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)  # the driver alone: its workers are orphaned
    child.wait()
    deadline = time.time() + 60
    while living := group_members(child.pid):
        if time.time() > deadline:
            os.killpg(child.pid, signal.SIGKILL)
            pytest.fail(f"workers went on training after their driver was killed:\n{living}")
        time.sleep(0.2)
    for run in {p.parent.parent for p in out.glob("runs/*/checkpoints/step-*")}:
        last = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
        assert last < 200_000 and not (run / "finished.json").exists()


def group_members(group: int) -> str:
    """The processes of a process group that are still running (zombies, which init reaps, left out)."""
    ps = subprocess.run(["ps", "-o", "pid=,stat=,etime=,args=", "-g", str(group)], capture_output=True, text=True)
    return "\n".join(line for line in ps.stdout.splitlines() if line.split()[1][0] != "Z")
