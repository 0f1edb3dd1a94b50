"""A seeded mutation fuzzer for every file format skillbank reads (used by tests/store/test_formats.py, and at
length by benchmarks/fuzz.py).

Each case mutates a valid file (bit flips, truncations, inserted and deleted bytes; for JSON and TOML
also values of the wrong type and huge numbers) and hands it to skillbank's reader. The case passes
when the reader raises a :class:`SkillbankError` with a message, or returns something that passes
verification; it fails on any other exception, on a hang (a per-case time limit) or on a change to a
store that refused the input.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import re
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from skillbank.algos.buffer import ReplayBuffer
from skillbank.algos.sql import SQL
from skillbank.errors import SkillbankError
from skillbank.nn.skill import DESCRIPTION_FILE, WEIGHTS_FILE, Skill
from skillbank.runs import checkpoint
from skillbank.runs.tasks import load_task
from skillbank.store.registry import Registry
from skillbank.store.rollouts import load_rollouts

ODD_VALUES = [None, "x", "", -1, 0, 1e308, -1e308, 10**12, 2**63, [], {}, True, [1e9, 1e9], {"a": 1}, 0.5]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(("flip", "flip", "truncate", "insert", "delete", "overwrite"))
    if not data or kind == "insert":
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)) :]
    elif kind == "delete":
        at = rng.randrange(len(data))
        del data[at : at + rng.randint(1, 256)]
    else:
        at = rng.randrange(len(data))
        data[at : at + 8] = bytes(rng.randrange(256) for _ in range(8))
    return bytes(data)


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """A value somewhere in the document replaced by one of the wrong type or size (or a key removed)."""
    document = json.loads(data)
    paths = []

    def walk(node, path):
        paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            walk(child, [*path, key])

    walk(document, [])
    path = rng.choice(paths[1:] or paths)
    if not path:
        return json.dumps(rng.choice(ODD_VALUES)).encode()
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(ODD_VALUES)
    return json.dumps(document).encode()


def mutate_toml(text: bytes, rng: random.Random) -> bytes:
    """A number, string or list in the task file replaced by another kind of value (or a key misspelt)."""
    source = text.decode()
    tokens = list(re.finditer(r"(?<== )(\S.*)$", source, re.M))
    if rng.random() < 0.2 or not tokens:
        keys = list(re.finditer(r"^(\w+) =", source, re.M))
        if keys:
            k = rng.choice(keys)
            return (source[: k.start(1)] + k.group(1)[::-1] + source[k.end(1) :]).encode()
    token = rng.choice(tokens)
    value = rng.choice(["-1", "0", "1e308", "inf", "nan", '"x"', "[]", "{}", "true", "[1, 2]", "99999999999999999"])
    return (source[: token.start(1)] + value + source[token.end(1) :]).encode()


def mutate(data: bytes, rng: random.Random, structured: Callable | None) -> bytes:
    if structured is not None and rng.random() < 0.5:
        try:
            return structured(data, rng)
        except (ValueError, UnicodeDecodeError):
            pass
    return mutate_bytes(data, rng)


# ----- the formats -------------------------------------------------------------------------------
def store_state(path: Path) -> str:
    """A digest of everything a store holds, but its scratch folder: to check that nothing changed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "tmp" not in p.relative_to(path).parts):
        if file.name.endswith(("-wal", "-shm")):
            continue
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def acts(skill: Skill) -> None:
    """A loaded skill passes verification when it acts: an action of its dimension for a zero observation
    (finite weights can still overflow to a non-finite action: that is the weights' values, not the format)."""
    with torch.no_grad():
        action = skill.act_normalised(np.zeros(skill.q.obs_dim), torch.Generator().manual_seed(0))
    if action.shape != (skill.action_dim,):
        raise AssertionError(f"a loaded skill gives an action of shape {action.shape}")


@dataclass
class Fixtures:
    """One valid file of every format, made once in a temporary folder."""

    root: Path
    description: bytes = b""
    weights: bytes = b""
    replay: bytes = b""
    rollouts: bytes = b""
    archive: bytes = b""
    task: bytes = b""
    index: bytes = b""
    checkpoint: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path) -> Fixtures:
        fixtures = cls(root)
        algo = SQL("skillbank/MultiGoal-v0", hidden=[8], batch_size=8, learning_starts=20, buffer_size=200,
                   kernel_particles=4, value_particles=4)  # fmt: skip
        algo.skill.description["task"]["name"] = "multigoal"
        algo.learn(60)
        store = Registry(root / "store")
        ref = store.register(algo.skill, "fuzz", replay=algo.buffer)
        info = store.info(ref)
        read = lambda name: (store.path / "objects" / info["files"][name]["sha256"][:2]  # noqa: E731
                             / info["files"][name]["sha256"]).read_bytes()  # fmt: skip
        fixtures.description, fixtures.weights, fixtures.replay = (
            read(DESCRIPTION_FILE),
            read(WEIGHTS_FILE),
            read("replay.h5"),
        )
        from skillbank.runs.evaluate import rollouts
        from skillbank.store.rollouts import save_rollouts

        save_rollouts(rollouts(algo.skill, 3), root / "rollouts.h5")
        fixtures.rollouts = (root / "rollouts.h5").read_bytes()
        store.export(ref, root / "fuzz.tar.gz")
        fixtures.archive = (root / "fuzz.tar.gz").read_bytes()
        fixtures.task = (Path(__file__).resolve().parents[1] / "tasks" / "corner-east.toml").read_bytes()
        fixtures.index = (store.path / "index.sqlite").read_bytes()
        path = checkpoint.save(root / "run", algo)
        fixtures.checkpoint = {p.name: p.read_bytes() for p in path.iterdir()}
        return fixtures


REFUSALS = ("SkillbankError", "SkillFormatError", "IntegrityError", "NotFoundError", "ConfigError")


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run_case(reader: Callable[[bytes, Path], None], data: bytes, workdir: Path, limit_s: float) -> tuple[str, float]:
    """``"ok"``, ``"SkillbankError"`` or the name of the unexpected outcome, and the seconds it took."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    start = time.perf_counter()
    try:
        reader(data, workdir)
        outcome = "ok"
    except SkillbankError as error:
        outcome = type(error).__name__ if str(error) else "an error without a message"
    except Hang:
        outcome = "hang"
    except Exception as error:  # what the fuzzer is for: anything else is a bug
        outcome = f"{type(error).__name__}: {str(error)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return outcome, time.perf_counter() - start


def readers(fx: Fixtures) -> dict[str, tuple[bytes, Callable | None, Callable[[bytes, Path], None]]]:
    """Each format: its valid bytes, its structured mutator, and the reader a case goes through."""

    def skill_json(data, work):
        acts(Skill.from_bytes(data, fx.weights))

    def weights(data, work):
        acts(Skill.from_bytes(fx.description, data))

    def replay(data, work):
        buffer = ReplayBuffer.load_hdf5(io.BytesIO(data))
        if len(buffer):
            buffer.sample(4, torch.Generator().manual_seed(0))

    def rollouts(data, work):
        load_rollouts(io.BytesIO(data))

    def archive(data, work):
        store = work / "store"
        if not store.exists():
            shutil.copytree(fx.root / "store", store)
        before = store_state(store)
        (work / "in.tar.gz").write_bytes(data)
        registry = Registry(store)
        try:
            mapping = registry.import_(work / "in.tar.gz")
        except SkillbankError:
            if store_state(store) != before:
                raise AssertionError("a refused archive changed the store") from None
            raise
        for ref in mapping.values():
            acts(registry.load(ref))
        if not registry.verify()["ok"]:
            raise AssertionError("the store does not verify after an import")

    def task(data, work):
        (work / "task.toml").write_bytes(data)
        load_task(str(work / "task.toml"))

    def index(data, work):
        store = work / "store"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(fx.root / "store", store)
        (store / "index.sqlite").write_bytes(data)
        before = store_state(store)
        try:
            registry = Registry(store)
            for row in registry.list():
                acts(registry.load(f"{row['name']}@{row['latest']}"))
            registry.verify()
        finally:
            if store_state(store) != before:
                raise AssertionError("reading a store changed it")

    return {
        "skill.json": (fx.description, mutate_json, skill_json),
        "weights.safetensors": (fx.weights, None, weights),
        "replay.h5": (fx.replay, None, replay),
        "rollouts.h5": (fx.rollouts, None, rollouts),
        "archive.tar.gz": (fx.archive, None, archive),
        "task.toml": (fx.task, mutate_toml, task),
        "index.sqlite": (fx.index, None, index),
    }


def checkpoint_cases(fx: Fixtures, rng: random.Random, work: Path) -> Callable[[], None]:
    """A checkpoint with one of its files mutated, half the time with every checksum made to match (as a
    careful forger would), restored into a fresh algorithm."""
    name = rng.choice(sorted(fx.checkpoint))
    files = dict(fx.checkpoint)
    files[name] = mutate(files[name], rng, mutate_json if name.endswith(".json") else None)
    if rng.random() < 0.5 and name != checkpoint.CHECKPOINT_FILE:
        try:
            data = json.loads(files[checkpoint.CHECKPOINT_FILE])
            data["payload"]["files"][name] = hashlib.sha256(files[name]).hexdigest()
            data["sha256"] = checkpoint._payload_digest(data["payload"])
            files[checkpoint.CHECKPOINT_FILE] = json.dumps(data).encode()
        except (ValueError, KeyError, TypeError):
            pass

    def read(data, work_dir):
        run = work_dir / "run" / "checkpoints" / "step-000000060"
        shutil.rmtree(work_dir / "run", ignore_errors=True)
        run.mkdir(parents=True)
        for file, content in files.items():
            (run / file).write_bytes(content)
        found = checkpoint.latest(work_dir / "run")
        if found is None:
            raise SkillbankError("no usable checkpoint")  # what Run.train says then
        if found is not None:
            algo = SQL("skillbank/MultiGoal-v0", hidden=[8], batch_size=8, learning_starts=20, buffer_size=200,
                       kernel_particles=4, value_particles=4)  # fmt: skip
            checkpoint.restore(algo, found)
            algo.learn(5)

    return read


def fuzz(cases: int, seed: int = 0, limit_s: float = 10.0, formats: list[str] | None = None) -> dict[str, dict]:
    """Run ``cases`` mutations of every format; per format: counts of outcomes (``ok``, each refusal's
    error type, ``FAILED``) and the slowest case. What skillbank tells on stderr is silenced."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        root = Path(tmp)
        fx = Fixtures.make(root / "fixtures")
        table = readers(fx)
        report: dict[str, dict] = {}
        for name in [*table, "checkpoint"]:
            if formats and name not in formats:
                continue
            rng = random.Random(f"{seed}-{name}")
            counts: Counter[str] = Counter()
            slowest = (0.0, -1)
            failures: list[dict] = []
            work = root / f"work-{name}"
            work.mkdir()
            for case in range(cases):
                if name == "checkpoint":
                    reader, data = checkpoint_cases(fx, rng, work), b""
                else:
                    valid, structured, reader = table[name]
                    data = mutate(valid, rng, structured)
                outcome, seconds = run_case(reader, data, work, limit_s)
                refused = outcome in REFUSALS
                counts[outcome if outcome == "ok" or refused else "FAILED"] += 1
                if outcome != "ok" and not refused and len(failures) < 5:
                    failures.append({"case": case, "outcome": outcome})
                slowest = max(slowest, (seconds, case))
            report[name] = {"cases": cases, "outcomes": dict(counts), "slowest_s": round(slowest[0], 3),
                            "slowest_case": slowest[1], "failures": failures}  # fmt: skip
        return report


if __name__ == "__main__":
    print(json.dumps(fuzz(50), indent=2))
