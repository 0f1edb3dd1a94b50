"""The registry: versions, aliases, search, lineage, integrity, concurrency, crash safety, hostile input."""

import io
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from skillbank import IntegrityError, NotFoundError, Parent, Registry, SkillbankError, SkillFormatError
from skillbank.algos.buffer import ReplayBuffer
from skillbank.nn.skill import Skill
from tests.conftest import actions_of, tiny_skill

REPO = Path(__file__).resolve().parents[2]


def test_versions_aliases_tags_and_search(tmp_path):
    reg = Registry(tmp_path / "store")
    assert reg.register(tiny_skill(0), "walker", tags=["paper"]) == "walker@1"
    assert reg.register(tiny_skill(1), "walker", description="second") == "walker@2"
    assert reg.register(tiny_skill(2, "sac"), "other") == "other@1"
    assert str(reg.resolve("walker")) == "walker@2"
    assert str(reg.resolve("walker@latest")) == "walker@2"
    reg.alias("walker@1", "best")
    assert str(reg.resolve("walker@best")) == "walker@1"
    reg.alias("walker@2", "best")  # aliases move; versions do not
    assert str(reg.resolve("walker@best")) == "walker@2"
    reg.tag("walker@2", "fast")
    assert [v["ref"] for v in reg.versions("walker")] == ["walker@1", "walker@2"]
    assert [v["ref"] for v in reg.find(tag="paper")] == ["walker@1"]
    assert [v["ref"] for v in reg.find(algo="sac")] == ["other@1"]
    assert [v["ref"] for v in reg.find(task="multigoal", tag="fast")] == ["walker@2"]
    assert {r["name"]: r["versions"] for r in reg.list()} == {"other": 1, "walker": 2}
    info = reg.info("walker@2")
    assert info["aliases"][0] == "latest" and "best" in info["aliases"]
    meta = info["metadata"]
    for key in ("alpha", "gamma", "observation_space", "action_space", "networks", "library_versions", "algorithm"):
        assert key in meta, key
    assert meta["library_versions"]["torch"] == torch.__version__.split("+")[0] or meta["library_versions"]["torch"]
    np.testing.assert_array_equal(actions_of(reg.load("walker@1")), actions_of(tiny_skill(0)))


def test_unknown_names_versions_and_aliases_say_what_exists(tmp_path):
    reg = Registry(tmp_path)
    reg.register(tiny_skill(), "multigoal-sql")
    with pytest.raises(NotFoundError, match="did you mean multigoal-sql"):
        reg.load("multigoal-sq")
    with pytest.raises(NotFoundError, match="versions: 1"):
        reg.load("multigoal-sql@3")
    with pytest.raises(NotFoundError, match="aliases: latest"):
        reg.load("multigoal-sql@best")
    with pytest.raises(SkillbankError, match="reserved"):
        reg.alias("multigoal-sql", "latest")


@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", "", ".hidden", "x" * 200, "a\\b", "a b"])
def test_unsafe_names_are_refused_and_nothing_is_written(tmp_path, bad):
    reg = Registry(tmp_path / "store")
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(SkillbankError, match="invalid name"):
        reg.register(tiny_skill(), bad)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert reg.list() == []


def test_lineage_records_parents_with_relations(tmp_path):
    reg = Registry(tmp_path)
    east, north = reg.register(tiny_skill(0), "east"), reg.register(tiny_skill(1), "north")
    both = reg.register(
        tiny_skill(2), "east-north",
        parents=[Parent(east, "composed-of", {"weight": 0.5}), Parent(north, "composed-of", {"weight": 0.5})],
    )  # fmt: skip
    tuned = reg.register(tiny_skill(3), "maze", parents=[Parent(both, "fine-tuned-from", {"task": "maze"})])
    graph = reg.lineage(tuned)
    assert set(graph.nodes) == {"east@1", "north@1", "east-north@1", "maze@1"}
    assert graph.edges["east@1", "east-north@1"] == {"relation": "composed-of", "weight": 0.5}
    assert graph.edges["east-north@1", "maze@1"]["relation"] == "fine-tuned-from"
    assert graph.nodes["east@1"]["origin"] == "trained"
    assert set(reg.lineage("east").nodes) == {"east@1", "east-north@1", "maze@1"}  # descendants too


def test_replay_data_is_stored_compressed_and_loaded_only_when_asked(tmp_path):
    reg = Registry(tmp_path)
    buffer = ReplayBuffer(100, 2, 2)
    for i in range(130):  # wraps around: the oldest 30 are overwritten
        buffer.add([i, 0], [0.1, -0.1], float(i), [i + 1, 0], i % 7 == 0)
    ref = reg.register(tiny_skill(), "with-data", replay=buffer)
    with reg.open_data(ref, "replay") as f:
        assert f["rewards"].compression == "gzip"
        np.testing.assert_array_equal(f["rewards"][:], np.arange(30, 130))
    restored = reg.replay_buffer(ref)
    assert len(restored) == 100 and restored.rewards[0] == 30 and restored.terminals[5] == 1.0  # 35 % 7 == 0
    # A corrupt data file does not stop the skill itself from loading: data is read only on request.
    replay_sha = reg.info(ref)["files"]["replay.h5"]["sha256"]
    path = tmp_path / "objects" / replay_sha[:2] / replay_sha
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    reg.load(ref)
    with pytest.raises(IntegrityError, match="replay.h5"):
        reg.replay_buffer(ref)
    with pytest.raises(NotFoundError, match="without replay"):
        reg.replay_buffer(reg.register(tiny_skill(), "no-data"))


def test_flipped_byte_is_caught_on_load_and_by_verify(tmp_path):
    reg = Registry(tmp_path)
    good, bad = reg.register(tiny_skill(0), "good"), reg.register(tiny_skill(1), "bad")
    sha = reg.info(bad)["files"]["weights.safetensors"]["sha256"]
    path = tmp_path / "objects" / sha[:2] / sha
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"weights\.safetensors of bad@1 is corrupt"):
        reg.load(bad)
    report = reg.verify()
    assert not report["ok"] and len(report["problems"]) == 1 and "bad@1" in report["problems"][0]
    reg.load(good)  # nothing else is affected


class Boom:
    """Unpickling this writes a marker file: proof that a loader executed the payload."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickle_payloads_are_refused_without_being_executed(tmp_path):
    marker = tmp_path / "executed"
    skill_dir = tiny_skill().save(tmp_path / "skill")
    for payload in (pickle.dumps(Boom(str(marker))), None):
        if payload is None:  # a torch.save zip archive carrying the same object
            buffer = io.BytesIO()
            torch.save({"weights": Boom(str(marker))}, buffer)
            payload = buffer.getvalue()
        (skill_dir / "weights.safetensors").write_bytes(payload)
        with pytest.raises(SkillFormatError, match="pickle"):
            Skill.load(skill_dir)
    assert not marker.exists()

    # The same payload planted inside a store, with a matching checksum, is refused too.
    reg = Registry(tmp_path / "store")
    ref = reg.register(tiny_skill(), "victim")
    files = reg.info(ref)["files"]
    sha = reg._put_object(pickle.dumps(Boom(str(marker))))
    files["weights.safetensors"] = {"sha256": sha, "size": 0}
    with reg._write() as db:
        db.execute("UPDATE versions SET files=? WHERE name='victim'", (json.dumps(files),))
    with pytest.raises(SkillFormatError, match="pickle"):
        reg.load(ref)
    assert not marker.exists()


def test_a_safetensors_header_whose_length_opens_like_a_pickle_still_loads(tmp_path):
    from safetensors.torch import save as save_safetensors

    skill_dir = tiny_skill().save(tmp_path / "skill")
    tensors = Skill.load(skill_dir).state_tensors()
    base = int.from_bytes(save_safetensors(tensors, {"pad": ""})[:8], "little")
    for length in [n for n in range(128, 8192, 256) if n >= base][:2]:  # the file's first byte is 0x80, as a pickle's
        pads = (save_safetensors(tensors, {"pad": " " * n}) for n in range(length))
        data = next(d for d in pads if int.from_bytes(d[:8], "little") == length)
        assert data[0] == 0x80 and int.from_bytes(data[:8], "little") == length
        (skill_dir / "weights.safetensors").write_bytes(data)
        np.testing.assert_array_equal(actions_of(Skill.load(skill_dir)), actions_of(tiny_skill()))


def test_export_import_round_trip_keeps_actions_and_lineage(tmp_path):
    src, dst = Registry(tmp_path / "a"), Registry(tmp_path / "b")
    parent = src.register(tiny_skill(0), "base", tags=["pretrained"])
    child = src.register(tiny_skill(1), "tuned", parents=[Parent(parent, "fine-tuned-from", {"task": "maze"})])
    dst.register(tiny_skill(5), "tuned")  # the name exists there already: the import gets version 2
    archive = tmp_path / "tuned.tar.gz"
    assert src.export(child, archive) == ["tuned@1", "base@1"]
    mapping = dst.import_(archive)
    assert mapping == {"base@1": "base@1", "tuned@1": "tuned@2"}
    np.testing.assert_array_equal(actions_of(dst.load("tuned@2")), actions_of(src.load(child)))
    assert dst.info("base@1")["tags"] == ["pretrained"]
    assert dst.lineage("tuned@2").edges["base@1", "tuned@2"]["task"] == "maze"
    assert dst.info("tuned@2")["metadata"]["imported_from"] == "tuned@1"
    assert dst.import_(archive) == mapping  # importing twice adds nothing
    assert dst.verify()["ok"]


def hostile_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_hostile_archives_are_refused_and_nothing_is_written(tmp_path):
    src = Registry(tmp_path / "src")
    good = tmp_path / "good.tar.gz"
    src.export(src.register(tiny_skill(), "s"), good)
    with tarfile.open(good) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    symlink = tarfile.TarInfo("objects/" + "0" * 64)
    symlink.type, symlink.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hardlink = tarfile.TarInfo("objects/" + "1" * 64)
    hardlink.type, hardlink.linkname = tarfile.LNKTYPE, "skillbank-export.json"
    (name, blob) = next((m.name, d) for m, d in members if m.name.startswith("objects/"))
    cases = {
        "traversal": members + [file_member("../../escaped", b"x")],
        "absolute": members + [file_member("/tmp/escaped-skillbank", b"x")],
        "symlink": members + [(symlink, b"")],
        "hardlink": members + [(hardlink, b"")],
        "bad checksum": [m for m in members if m[0].name != name] + [file_member(name, blob + b"!")],
        "no manifest": [m for m in members if m[0].name.startswith("objects/")],
    }
    dst = Registry(tmp_path / "dst")
    for label, case in cases.items():
        archive = hostile_archive(tmp_path / f"{label}.tar.gz", case)
        with pytest.raises(SkillbankError, match="refusing|not a skillbank"):
            dst.import_(archive)
    assert dst.list() == [] and not list((tmp_path / "dst" / "objects").rglob("*/*"))
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped-skillbank").exists()
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive")
    with pytest.raises(SkillbankError, match="not a skillbank export"):
        dst.import_(garbage)


WORKER = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r})
from skillbank import Registry
from tests.conftest import tiny_skill
reg = Registry({store!r})
for i in range({count}):
    print(reg.register(tiny_skill(i), {name!r}), flush=True)
"""


def start_worker(store: Path, name: str, count: int) -> subprocess.Popen:
    code = WORKER.format(repo=str(REPO), store=str(store), name=name, count=count)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_eight_processes_registering_at_once_get_distinct_consecutive_versions(tmp_path):
    store = tmp_path / "store"
    Registry(store)
    workers = [start_worker(store, "shared", 3) for _ in range(8)]
    refs = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        refs += out.split()
    assert sorted(refs, key=lambda r: int(r.split("@")[1])) == [f"shared@{v}" for v in range(1, 25)]
    reg = Registry(store)
    for ref in refs:
        reg.load(ref)
    assert reg.verify()["ok"]


@pytest.mark.slow
def test_sigkill_during_register_leaves_a_consistent_store(tmp_path):
    store = tmp_path / "store"
    Registry(store)
    rng = random.Random(0)
    for _ in range(4):
        worker = start_worker(store, "crashy", 10_000)
        # Wait until it is registering, then kill it at a random point.
        first = worker.stdout.readline()
        assert first.startswith("crashy@"), worker.stderr.read()
        time.sleep(rng.uniform(0.0, 0.5))
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    reg = Registry(store)
    report = reg.verify()
    assert report["ok"], report["problems"]
    versions = [v["version"] for v in reg.versions("crashy")]
    assert versions == list(range(1, len(versions) + 1))
    for version in versions:
        reg.load(f"crashy@{version}")
    assert reg.register(tiny_skill(), "crashy") == f"crashy@{len(versions) + 1}"


def test_reading_leaves_the_store_files_byte_identical(tmp_path):
    Registry(tmp_path).register(tiny_skill(), "s")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    reg = Registry(tmp_path)
    reg.list(), reg.load("s"), reg.info("s@1"), reg.find(task="multigoal"), reg.lineage("s"), reg.verify()
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
