"""The skill shipped in skills_store/ works right after install and is multimodal, as the issue demands."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.shipped

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "skills_store"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skillbank.cli", *args, "--store", str(STORE)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_shipped_store_verifies():
    result = run("verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"]


@pytest.mark.slow
def test_shipped_sql_skill_reaches_all_four_goals():
    result = run("eval", "multigoal-sql", "--episodes", "100", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert min(summary["goal_counts"]) >= 10, summary["goal_counts"]
    assert sum(summary["goal_counts"]) >= 90, summary["goal_counts"]
    assert summary["success_rate"] >= 0.9


@pytest.mark.slow
def test_shipped_skill_plots_and_unknown_versions_are_explained(tmp_path):
    out = tmp_path / "multigoal_sql.png"
    assert run("plot", "multigoal-sql", "--out", str(out), "--episodes", "5").returncode == 0
    assert out.stat().st_size > 10_000
    result = run("plot", "multigoal-sql@99")
    assert result.returncode == 2 and "no version 99; versions: 1" in result.stderr


@pytest.mark.slow
def test_the_shipped_walker_rolls_out_zero_shot_in_an_arena_and_a_mismatched_task_is_refused(tmp_path):
    result = run("eval", "ant-walk-sac", "--task", "ant-hallway-wide", "--episodes", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # in the hallway's walls: SAC's walker heads 330 degrees, so it meets the wall within a few metres
    assert summary["task"] == "ant-hallway-wide" and 0 < summary["mean_distance"] < 15
    out = tmp_path / "walker_in_the_maze.png"
    assert run("plot", "ant-walk-sac", "--task", "ant-umaze", "--episodes", "2", "--out", str(out)).returncode == 0
    assert out.stat().st_size > 10_000
    refused = run("eval", "multigoal-sql", "--task", "ant-umaze", "--episodes", "2")
    assert refused.returncode == 2 and "fine-tune it to the task instead" in refused.stderr
    refused = run("plot", "ant-walk-sac", "--task", "multigoal")
    assert refused.returncode == 2 and "not the skill's" in refused.stderr
