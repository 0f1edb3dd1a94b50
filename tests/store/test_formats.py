"""Nothing a file can do takes skillbank down: a seeded fuzzer over every format it reads, and the
size checks that come before any allocation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzzing import fuzz

REPO = Path(__file__).resolve().parents[2]
CASES = 2000  # per format in CI; benchmarks/fuzz.py runs more


@pytest.fixture(scope="module")
def report():
    return fuzz(CASES, seed=0, limit_s=10.0)


@pytest.mark.parametrize("name", ["skill.json", "weights.safetensors", "replay.h5", "rollouts.h5", "archive.tar.gz",
                                  "task.toml", "index.sqlite", "checkpoint"])  # fmt: skip
@pytest.mark.slow
def test_every_mutation_is_refused_clearly_or_loads_something_valid(report, name):
    entry = report[name]
    assert entry["outcomes"].get("FAILED", 0) == 0, entry["failures"]
    assert sum(entry["outcomes"].values()) == CASES
    assert sum(v for k, v in entry["outcomes"].items() if k != "ok") > CASES // 4  # the mutations do bite
    assert entry["slowest_s"] < 10.0


OVERSIZED = """
import json, resource, sys
sys.path.insert(0, {repo!r})
from tests.conftest import tiny_skill
from skillbank import Skill, SkillFormatError
skill = tiny_skill()
skill.save({out!r})
path = {out!r} + "/skill.json"
info = json.load(open(path))
for net in ("q", "sampler"):
    info["networks"][net]["hidden"] = [40_000, 40_000]
json.dump(info, open(path, "w"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    Skill.load({out!r})
    print("LOADED")
except SkillFormatError as error:
    print(json.dumps({{"message": str(error), "kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}}))
"""


@pytest.mark.slow
def test_an_oversized_description_is_refused_before_allocating(tmp_path):
    out = subprocess.run([sys.executable, "-c", OVERSIZED.format(repo=str(REPO), out=str(tmp_path / "big"))],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    result = json.loads(out.stdout)
    assert "declares networks of 3,20" in result["message"] and "refusing it before allocating" in result["message"]
    assert result["kib"] < 100 * 1024, result  # under 100 MB more than the interpreter had
