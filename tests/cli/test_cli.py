"""The command line, end to end on temporary stores, and on the shipped skill."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skillbank.cli.main import main
from skillbank.runs.run import Run
from skillbank.store.registry import Registry

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skillbank.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    assert main(["train", "multigoal", "--steps", "300", "--name", "tiny", "--store", str(store), "--no-progress"]) == 0
    return store


@pytest.mark.slow
def test_train_registers_a_skill_with_metrics(trained_store, capsys):
    info = Registry(trained_store).info("tiny")
    assert info["metadata"]["training"]["steps"] == 300
    assert set(info["metadata"]["metrics"]) >= {"goal_counts", "success_rate", "mean_return"}
    assert info["task"] == "multigoal" and info["algorithm"] == "sql"
    with Registry(trained_store).open_data("tiny", "rollouts") as f:  # the evaluation rollouts, as HDF5
        assert len(f["episode_length"]) == 100 and (f["goal"][:] >= 0).sum() == round(
            100 * info["metadata"]["metrics"]["success_rate"]
        )
        assert f["observations"].shape == (f["episode_length"][:].sum(), 2)


def test_eval_json_has_the_promised_keys(trained_store, capsys):
    assert main(["eval", "tiny", "--episodes", "5", "--json", "--store", str(trained_store)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["goal_counts"]) == 4 and sum(out["goal_counts"]) == round(out["success_rate"] * 5)
    assert isinstance(out["mean_return"], float)


def test_plot_writes_a_png(trained_store, tmp_path):
    out = tmp_path / "fig.png"
    assert main(["plot", "tiny", "--out", str(out), "--episodes", "3", "--store", str(trained_store)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_registry_commands(trained_store, tmp_path, capsys):
    store = ["--store", str(trained_store)]
    assert main(["alias", "tiny@1", "best", *store]) == 0
    assert main(["tag", "tiny@best", "smoke", *store]) == 0
    assert main(["list", "--json", *store]) == 0
    assert main(["show", "tiny@best", "--json", *store]) == 0
    assert main(["lineage", "tiny", "--out", str(tmp_path / "lineage.png"), *store]) == 0
    assert main(["verify", *store]) == 0
    archive = tmp_path / "tiny.tar.gz"
    assert main(["export", "tiny", str(archive), *store]) == 0
    assert main(["import", str(archive), "--store", str(tmp_path / "other")]) == 0
    out = capsys.readouterr().out
    assert "tiny@1 -> tiny@1" in out and "smoke" in out and (tmp_path / "lineage.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "no-such-task"], "unknown task 'no-such-task'; known tasks: ant-hallway-narrow, ant-hall"),
        (["train", "multigoal", "--steps", "-5"], "must be >= 0"),
        (["train", "multigoal", "--name", "../evil", "--steps", "1"], "invalid name"),
        (["eval", "missing-skill"], "no skill named 'missing-skill'"),
        (["plot", "missing@99"], "no skill named 'missing'"),
        (["show", "a/b"], "invalid name"),
        (["import", "nothing.tar.gz"], "not a skillbank export"),
    ],
)
@pytest.mark.slow
def test_bad_input_exits_2_with_a_clear_message(args, message, tmp_path):
    Registry(tmp_path / "store")  # an empty store: the reading commands refuse a path with none
    result = run(*args, "--store", str(tmp_path / "store"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


@pytest.mark.slow
def test_help_explains_every_command():
    result = run("--help")
    for command in ("train", "eval", "plot", "list", "show", "alias", "tag", "lineage", "verify", "export", "import"):
        assert command in result.stdout


@pytest.mark.slow
@pytest.mark.shipped
def test_a_reader_that_leaves_early_gets_no_traceback():
    process = subprocess.Popen([sys.executable, "-m", "skillbank.cli", "list", "--store", str(REPO / "skills_store")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)  # fmt: skip
    process.stdout.close()  # before skillbank writes a line, as `skillbank list | head -0` does
    error = process.stderr.read().decode()
    assert process.wait(timeout=600) == 1 and "Traceback" not in error, error


def test_list_stays_aligned_with_long_names(tmp_path, capsys):
    from tests.conftest import tiny_skill

    registry = Registry(tmp_path / "store")
    registry.register(tiny_skill(), "a")
    registry.register(tiny_skill(1), "a-very-long-composite-name-" + "x" * 40)
    assert main(["list", "--store", str(tmp_path / "store")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header_end = lines[0].index("latest") + len("latest")
    assert len(lines) == 3 and all(line[header_end - 1] == "1" for line in lines[1:]), lines


def test_curves_draws_runs_from_different_skills_or_settings_as_different_methods(tmp_path, monkeypatch):
    import skillbank.viz.plot
    from skillbank.runs.run import COLUMNS, Run

    specs = {
        "scratch-s0": {"kind": "train", "algo": "sac", "method": "sac-scratch"},
        "tuned-sql-s0": {"kind": "finetune", "algo": "sql", "method": "finetune", "pretrained": "ant-walk-sql@1"},
        "tuned-sql-s1": {"kind": "finetune", "algo": "sql", "method": "finetune", "pretrained": "ant-walk-sql@1"},
        "tuned-sac-s0": {"kind": "finetune", "algo": "sac", "method": "finetune", "pretrained": "ant-walk-sac@1"},
        "sql-s0": {"kind": "train", "algo": "sql", "seed": 0, "config": {"alpha": 0.1, "value_particles": 16}},
        "sql-s1": {"kind": "train", "algo": "sql", "seed": 1, "config": {"alpha": 0.1, "value_particles": 16}},
        "sql-mix": {"kind": "train", "algo": "sql", "seed": 0, "config": {"alpha": 0.1, "value_particles": 32}},
    }
    for name, spec in specs.items():
        run = Run(tmp_path / name, spec)
        (run.path / "metrics.csv").write_text(",".join(COLUMNS) + "\n" + "10,1,1,5,7" + "," * (len(COLUMNS) - 5) + "\n")
    drawn = {}
    monkeypatch.setattr(
        skillbank.viz.plot,
        "plot_curves",
        lambda methods, out, *a, threshold, **k: drawn.update(methods, threshold=threshold) or out,
    )
    command = ["curves", *(str(tmp_path / n) for n in specs), "--out", str(tmp_path / "c.png"), "--threshold", "350"]
    assert main(command) == 0 and drawn.pop("threshold") == 350
    assert {m: len(runs) for m, runs in drawn.items()} == {
        "sac-scratch": 1, "finetune from ant-walk-sql@1": 2, "finetune from ant-walk-sac@1": 1,
        "train sql (value_particles=16)": 2, "train sql (value_particles=32)": 1,  # seeds are one method, settings not
    }  # fmt: skip
    assert drawn["sac-scratch"][0][0]["eval_return"] == 7


@pytest.mark.slow
def test_resume_with_more_steps_goes_on_exactly_and_registers_a_continued_version(tmp_path, capsys):
    def train(run: str, *more: str) -> int:
        return main(["train", "multigoal", "--no-progress", "--store", str(tmp_path / run), "--run-dir",
                     str(tmp_path / run / "run"), "--checkpoint-every", "100", "--name", "walk", *more])  # fmt: skip

    assert train("whole", "--steps", "600") == 0
    assert train("split", "--steps", "300") == 0
    split = ["--store", str(tmp_path / "split")]
    assert main(["train", "--resume", str(tmp_path / "split" / "run"), "--steps", "200", *split]) == 2
    assert "already has a budget of 300 steps" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "split" / "run"), "--steps", "600", "--no-progress"]) == 0
    whole, extended = Registry(tmp_path / "whole").load("walk@1"), Registry(tmp_path / "split").load("walk@2")
    for key, tensor in whole.state_tensors().items():  # as if it had been launched with 600 steps
        assert torch.equal(tensor, extended.state_tensors()[key]), key
    info = Registry(tmp_path / "split").info("walk@2")
    assert info["metadata"]["training"]["steps"] == 600
    assert [(p["ref"], p["relation"]) for p in info["parents"]] == [("walk@1", "continued-from")]
    # running it again registers nothing new: the longer run is finished
    assert main(["train", "--resume", str(tmp_path / "split" / "run"), "--no-progress"]) == 0
    assert [v["version"] for v in Registry(tmp_path / "split").versions("walk")] == [1, 2]


@pytest.mark.slow
def test_a_run_copied_to_another_machine_resumes_there_once_pointed_at_its_store(tmp_path, capsys):
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["train", "multigoal", "--steps", "300", "--name", "walk", "--no-progress", "--store",
                 str(here / "store"), "--run-dir", str(here / "run"), "--checkpoint-every", "100"]) == 0  # fmt: skip
    run_id = Run(here / "run").run_id
    here.rename(there)  # another machine: the store and the task file are not where run.json says
    spec = json.loads((there / "run" / "run.json").read_text())
    (there / "run" / "run.json").write_text(json.dumps({**spec, "task": "/elsewhere/tasks/multigoal.toml"}))
    more = ["train", "--resume", str(there / "run"), "--steps", "400", "--no-progress"]
    assert main(more) == 2
    assert f"its store at {here / 'store'}, which is not a skill store here; give --store" in capsys.readouterr().err
    assert not here.exists()  # no store made where the old one was
    assert main([*more, "--store", str(there / "store")]) == 0  # walk@2, continued from walk@1 in the same store
    moved = Run(there / "run").spec
    assert moved["store"] == str((there / "store").resolve()) and moved["task"] == str(REPO / "tasks/multigoal.toml")
    assert moved["continues"] == run_id
    info = Registry(there / "store").info("walk@2")
    assert [(p["ref"], p["relation"]) for p in info["parents"]] == [("walk@1", "continued-from")]


@pytest.mark.slow
def test_register_takes_a_training_run_s_newest_checkpoint_once_and_the_run_still_registers_at_its_end(
    tmp_path, capsys
):
    store, run = tmp_path / "store", tmp_path / "run"
    common = ["--no-progress", "--store", str(store), "--run-dir", str(run), "--checkpoint-every", "100"]
    assert main(["train", "multigoal", "--steps", "300", "--name", "walk", *common]) == 0  # walk@1, finished
    assert main(["train", "--resume", str(run), "--steps", "600", "--no-progress"]) == 0  # walk@2
    registry = Registry(store)
    shutil.rmtree(run / "result")  # as if the run were still on its way to 600: its newest checkpoint is step 600
    assert main(["register", str(run), "--tag", "milestone", "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "registered walk@3" in out and "at step 600" in out and "mean_return" in out
    info = registry.info("walk@3")
    assert info["metadata"]["training"]["steps"] == 600 and "milestone" in info["tags"]
    assert info["metadata"]["training"]["checkpoint_of_run"] == Run(run).run_id
    assert [(p["ref"], p["relation"]) for p in info["parents"]] == [("walk@1", "continued-from")]
    for key, tensor in registry.load("walk@2").state_tensors().items():  # the same parameters as the run's end
        assert torch.equal(tensor, registry.load("walk@3").state_tensors()[key]), key
    assert main(["register", str(run), "--episodes", "3"]) == 0  # the same checkpoint again: nothing new
    assert [v["version"] for v in registry.versions("walk")] == [1, 2, 3]
    assert main(["register", str(tmp_path / "nothing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
