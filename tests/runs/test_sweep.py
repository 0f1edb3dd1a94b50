"""Sweeps on both backends: the same weights from the local pool and from Ray, a killed run retried,
resumed and registered once, and a rerun that registers nothing twice."""

import pytest
import torch

from skillbank import Registry
from skillbank.errors import ConfigError
from skillbank.runs.run import CRASH_ENV
from skillbank.runs.sweep import label, parse_seeds, parse_sets, sweep

GRID = {"alpha": [1.0, 10.0], "hidden": [[16, 16]], "batch_size": [16], "kernel_particles": [4],
        "value_particles": [4], "learning_starts": [50], "buffer_size": [1000]}  # fmt: skip


def run(tmp_path, backend, name):
    store = tmp_path / f"store-{name}"
    summary = sweep("multigoal", seeds=[0, 1], grid=GRID, steps=300, workers=2, backend=backend, store=store,
                    runs_dir=tmp_path / f"runs-{name}", checkpoint_every=100, say=lambda line: None)  # fmt: skip
    return Registry(store), summary


def weights(registry, ref):
    return registry.load(ref).state_dict()


@pytest.fixture
def ray_instance():
    """A local Ray instance of two CPUs (started after the test's environment is set: its workers inherit it)."""
    import ray

    def start():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)

    yield start
    ray.shutdown()


def test_parsing_seeds_and_sets():
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    assert parse_sets(["alpha=0.1", "alpha=1", "hidden=[64, 64]", "name=x"]) == {
        "alpha": [0.1, 1], "hidden": [[64, 64]], "name": ["x"]}  # fmt: skip
    assert label({"alpha": 0.1, "hidden": [64, 64]}) == "alpha-0.1_hidden-64x64"
    for bad in ("4-2", "a", "1,1"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match="unknown SQLConfig field 'alhpa'"):
        sweep("multigoal", grid={"alhpa": [1.0]}, steps=10, say=lambda line: None)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_gives_the_local_backends_weights_and_registers_once(tmp_path, ray_instance):
    ray_instance()
    local, summary = run(tmp_path, "local", "local")
    assert len(summary["points"]) == 2 and all(len(p["runs"]) == 2 for p in summary["points"])
    assert {"mean", "std"} <= set(summary["points"][0]["mean_return"])
    remote, _ = run(tmp_path, "ray", "ray")
    refs = sorted(r["ref"] for p in summary["points"] for r in p["runs"])
    for ref in refs:
        a, b = weights(local, ref), weights(remote, ref)
        assert all(torch.equal(a[k], b[k]) for k in a), ref
    assert [v["tags"] for v in local.versions(refs[0].split("@")[0])] == [[summary["tag"]]]

    # A rerun, as after the driver was killed: everything is already registered, nothing is added.
    _, again = run(tmp_path, "ray", "ray")
    assert again["points"] == run(tmp_path, "ray", "ray")[1]["points"]
    assert all(r["versions"] == 1 for r in remote.list())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_a_worker_killed_mid_run_is_retried_resumes_and_is_registered_once(backend, tmp_path, request, monkeypatch):
    reference, summary = run(tmp_path, "local", "reference")
    monkeypatch.setenv(CRASH_ENV, "200")  # every run's worker dies once, after its checkpoint at step 200
    if backend == "ray":
        request.getfixturevalue("ray_instance")()
    crashed, _ = run(tmp_path, backend, "crashed")
    runs = list((tmp_path / "runs-crashed").glob("sweep-*/*"))
    assert len(runs) == 4 and all((r / ".crashed").exists() for r in runs)
    for point in summary["points"]:
        for entry in point["runs"]:
            a, b = weights(reference, entry["ref"]), weights(crashed, entry["ref"])
            assert all(torch.equal(a[k], b[k]) for k in a)  # resumed from step 200, bit for bit
    assert all(r["versions"] == 1 for r in crashed.list())
