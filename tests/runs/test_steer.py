"""``--recipe steer``: a frozen walker steered by the origin it sees, a heading policy learned on top, stored as
data, refused where it cannot steer, and a run that resumes bit for bit."""

from pathlib import Path

import numpy as np
import pytest
import torch

from skillbank import SAC, SQL, Registry, SkillbankError
from skillbank.envs.ant import quarter_turn_frame
from skillbank.envs.symmetry import ant_quarter_turn
from skillbank.nn.skill import DESCRIPTION_FILE, WEIGHTS_FILE, Skill
from skillbank.nn.steered import SteeredWalker
from skillbank.runs.finetune import build_finetune, finetune_spec
from skillbank.runs.run import Run
from skillbank.runs.steer import steered_walker
from skillbank.runs.tasks import load_task
from tests.runs.test_finetune import TINY

MAZE = "ant-umaze"
SMALL = {"hidden": [16, 16], "batch_size": 16}  # the heading policy's networks, small for speed


@pytest.fixture(scope="module")
def walkers(tmp_path_factory):
    """Tiny SQL walkers of the walk in the world frame and in the canonical frame, registered."""
    store = tmp_path_factory.mktemp("steer") / "store"
    registry = Registry(store)
    extra = dict(kernel_particles=4, value_particles=4)
    refs = {
        frame: registry.register(SQL(env_id, seed=1, **TINY, **extra).learn(40).skill, f"walker-{frame}")
        for frame, env_id in (("world", "skillbank/AntWalk-v0"), ("canonical", "skillbank/AntWalkCanonical-v0"))
    }
    return store, refs


def steer_spec(store, ref, **options):
    skill = Registry(store).load(ref)
    return finetune_spec(skill, MAZE, steps=120, seed=2, warmup=40, recipe="steer", store=store,
                         overrides=SMALL, **options)  # fmt: skip


@pytest.mark.parametrize("frame", ["world", "canonical"])
def test_a_steered_walker_sees_the_origin_behind_it_in_the_frame_it_was_trained_in(walkers, frame):
    store, refs = walkers
    walker = Registry(store).load(refs[frame])
    steered = SteeredWalker(walker.sampler, canonical=frame == "canonical")
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(3, 29, generator=g)
    headings = torch.randn(3, 4, 2, generator=g)
    noise = torch.randn(3, 4, 8, generator=g)
    with torch.no_grad():
        got = steered(obs, headings, noise)
    turn_obs, turn_act = ant_quarter_turn()
    for b in range(3):
        for i in range(4):
            seen = obs[b].numpy().astype(np.float64)
            x, y = headings[b, i].numpy() / np.linalg.norm(headings[b, i].numpy())
            seen[27:29] = x, y  # 1 m behind the heading, as the walk measures progress away from the origin
            k = quarter_turn_frame(x, y) if frame == "canonical" else 0
            seen = np.linalg.matrix_power(turn_obs, (4 - k) % 4) @ seen
            with torch.no_grad():
                action = walker.sampler(torch.as_tensor(seen, dtype=torch.float32)[None], noise[b, i].reshape(1, 1, -1))
            expected = 0.6 * np.linalg.matrix_power(turn_act, k) @ action[0, 0].numpy()
            assert np.allclose(got[b, i].numpy(), expected, atol=1e-5)


def test_a_steered_skill_is_data_and_acts_in_the_arena_as_it_did(walkers, tmp_path):
    store, refs = walkers
    algo = build_finetune(steer_spec(store, refs["canonical"]))
    algo.learn(60)
    policy = algo.policy
    assert policy.action_dim == 8 and policy.description["steering"]["walker"] == refs["canonical"]
    assert policy.description["observation_space"]["shape"] == [29]
    ref = Registry(store).register(policy, "steered")
    loaded = Registry(store).load(ref)
    obs = load_task(MAZE).make_env().reset(seed=0)[0]
    for seed in range(3):
        a = policy.act(obs, torch.Generator().manual_seed(seed))
        b = loaded.act(obs, torch.Generator().manual_seed(seed))
        assert np.array_equal(a, b) and np.abs(a).max() <= 0.6 + 1e-6  # the walker's torques, scaled
    # the walker's sampler travels inside the skill; the body's constants do not
    policy.save(tmp_path / "skill")
    tensors = Skill.load(tmp_path / "skill").state_dict()
    assert any(k.startswith("sampler.parts.1.sampler.") for k in tensors) and not any("frame" in k for k in tensors)
    with pytest.raises(SkillbankError, match="values headings"):
        loaded.q_values(torch.zeros(1, 29), torch.zeros(1, 2, 8))
    for recipe in (None, "steer"):
        with pytest.raises(SkillbankError, match="steered skill"):
            finetune_spec(loaded, MAZE, steps=10, recipe=recipe, store=store)


def test_a_steered_skill_file_with_a_bad_walker_is_refused_before_loading(walkers, tmp_path):
    store, refs = walkers
    algo = build_finetune(steer_spec(store, refs["canonical"]))
    directory = algo.policy.save(tmp_path / "skill")
    import json

    description = json.loads((directory / DESCRIPTION_FILE).read_text())
    description["networks"]["sampler"]["parts"][1]["gain"] = 3.0
    (directory / DESCRIPTION_FILE).write_text(json.dumps(description))
    with pytest.raises(SkillbankError, match="gain"):
        Skill.load(directory)
    assert (directory / WEIGHTS_FILE).is_file()


def test_the_recipe_refuses_what_it_cannot_steer(walkers, tmp_path):
    store, refs = walkers
    walker = Registry(store).load(refs["canonical"])
    with pytest.raises(SkillbankError, match="world frame"):
        finetune_spec(walker, "ant-umaze-canonical", steps=10, recipe="steer", store=store)
    with pytest.raises(SkillbankError, match="where its body faces"):  # measured: world-frame walkers do not steer
        finetune_spec(Registry(store).load(refs["world"]), MAZE, steps=10, recipe="steer", store=store)
    with pytest.raises(SkillbankError, match="--heads"):
        finetune_spec(walker, MAZE, steps=10, recipe="steer", store=store, heads=4)
    other = Registry(tmp_path / "other")
    multigoal = other.register(SAC("skillbank/MultiGoal-v0", seed=0, **TINY).learn(30).skill, "point")
    with pytest.raises(SkillbankError, match="steers a walker"):
        finetune_spec(other.load(multigoal), MAZE, steps=10, recipe="steer", store=other.path)
    with pytest.raises(SkillbankError, match="ou_sigma"):
        spec = steer_spec(store, refs["canonical"])
        build_finetune({**spec, "config": {**spec["config"], "ou_sigma": 0.3}})


def test_a_steered_run_killed_and_resumed_ends_bit_for_bit(walkers, tmp_path):
    store, refs = walkers
    spec = steer_spec(store, refs["canonical"])
    whole = build_finetune(spec)
    Run(tmp_path / "whole", spec).train(whole, 120, checkpoint_every=40)
    first = build_finetune(spec)
    Run(tmp_path / "split", spec).train(first, 80, checkpoint_every=40)
    second = build_finetune(spec)
    Run(tmp_path / "split", spec).train(second, 120, checkpoint_every=40)
    a, b = whole.state_tensors(), second.state_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(whole.env.unwrapped.data.qpos, second.env.unwrapped.data.qpos)


@pytest.mark.shipped
def test_the_shipped_canonical_walker_walks_the_way_it_is_steered():
    walker = steered_walker(Registry(Path(__file__).resolve().parents[2] / "skills_store").load("ant-walk-sql@3"))
    env = load_task("ant-walk").make_env()
    alignments, distances = [], []
    for seed in range(2):
        for quarter in range(4):
            heading = torch.tensor([[[np.cos(quarter * np.pi / 2), np.sin(quarter * np.pi / 2)]]])
            obs, _ = env.reset(seed=100 + seed)
            g = torch.Generator().manual_seed(seed)
            for _ in range(60):  # 3 s
                with torch.no_grad():
                    torques = walker(torch.as_tensor(obs, dtype=torch.float32)[None], heading.float(),
                                     torch.randn(1, 1, 8, generator=g))  # fmt: skip
                obs, _, terminated, _, _ = env.step(torques[0, 0].numpy())
                assert not terminated
            x, y = env.unwrapped.data.qpos[:2]
            alignments.append(np.cos(np.arctan2(y, x) - quarter * np.pi / 2))
            distances.append(np.hypot(x, y))
    assert np.mean(alignments) >= 0.75 and min(alignments) >= 0.5 and np.mean(distances) >= 2.0
