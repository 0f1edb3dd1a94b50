"""The SQL authors' fine-tuning recipe: frozen heads, the max target, the annealing schedules, and a run with the
recipe that resumes bit for bit."""

import math

import numpy as np
import pytest
import torch

from skillbank import SAC, SQL, Registry, SkillbankError
from skillbank.algos.losses import max_bellman_target
from skillbank.algos.offpolicy import linear_count
from skillbank.runs.finetune import build_finetune, finetune_spec, log_linear
from skillbank.runs.run import Run
from tests.runs.test_finetune import walker

ARENA = "ant-hallway-wide"


@pytest.fixture(scope="module")
def walkers(tmp_path_factory):
    """A tiny SQL and a tiny SAC walker, registered."""
    store = tmp_path_factory.mktemp("recipe") / "store"
    registry = Registry(store)
    return store, {cls.algorithm: registry.register(walker(cls).skill, f"walker-{cls.algorithm}") for cls in (SQL, SAC)}


def recipe_spec(store, ref, **options):
    options = {"heads": 4, "heads_final": 1, "anneal_steps": 200, "warmup": 60, **options}
    return finetune_spec(Registry(store).load(ref), ARENA, steps=240, seed=3, recipe="authors", store=store, **options)


@pytest.mark.parametrize("algo", ["sql", "sac"])
def test_the_frozen_policy_is_deterministic_given_its_heads(walkers, algo):
    store, refs = walkers
    spec = recipe_spec(store, refs[algo], heads=1, heads_final=1, overrides={"ou_sigma": 0.0})
    a, b = build_finetune(spec), build_finetune(spec)
    assert torch.equal(a.heads, b.heads) and a.heads.shape == (1, 8)
    obs = a.env.reset(seed=0)[0]
    actions = [a.explore(obs) for _ in range(3)] + [b.explore(obs)]
    assert all(np.array_equal(actions[0], other) for other in actions[1:])  # one head: one action per state
    with torch.no_grad():
        expected = a.skill.sampler(torch.as_tensor(obs, dtype=torch.float32)[None], a.heads[None])[0, 0]
    assert np.allclose(actions[0], expected.numpy(), atol=1e-6)
    several = build_finetune(recipe_spec(store, refs[algo], heads=5, heads_final=5, overrides={"ou_sigma": 0.0}))
    with torch.no_grad():
        heads = several.skill.sampler(torch.as_tensor(obs, dtype=torch.float32)[None], several.heads[None])[0]
    for _ in range(10):  # every action is one of the five heads' actions at this state
        assert (heads - torch.as_tensor(several.explore(obs))).abs().amax(-1).min() < 1e-6


@pytest.mark.parametrize("algo", ["sql", "sac"])
def test_the_max_target_is_the_brute_force_max_over_the_active_heads(walkers, algo):
    store, refs = walkers
    algo_ = build_finetune(recipe_spec(store, refs[algo], heads=6, heads_final=2, anneal_steps=100))
    algo_.num_timesteps = 50  # halfway: 6 -> 2 heads, so 4 are active
    g = torch.Generator().manual_seed(0)
    batch_size = 5
    next_obs = torch.randn(batch_size, algo_.skill.q.obs_dim, generator=g)
    rewards, terminals = torch.randn(batch_size, generator=g), torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])
    noise, mask = algo_.target_noise(batch_size, 1)
    assert mask.tolist() == [True] * 4 + [False] * 2
    target = max_bellman_target(algo_.q_target, algo_.skill.sampler, rewards, next_obs, terminals, noise, 0.9, 2.0,
                                mask)  # fmt: skip
    with torch.no_grad():
        for i in range(batch_size):
            best = -math.inf
            for head in algo_.heads[:4]:
                action = algo_.skill.sampler(next_obs[i : i + 1], head.reshape(1, 1, -1))
                best = max(best, float(algo_.q_target(next_obs[i : i + 1], action).min(0).values))
            expected = 2.0 * float(rewards[i]) + 0.9 * (1 - float(terminals[i])) * best
            assert target[i].item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_the_annealing_schedules_are_exact():
    heads = linear_count(32, 1, 200_000)
    assert [heads(t) for t in (0, 100_000, 200_000, 10**6)] == [32, round(16.5), 1, 1]
    assert all(heads(t) == round(32 - 31 * t / 200_000) for t in range(0, 200_001, 6_451))
    assert linear_count(10, 10, 200_000)(123_456) == 10
    alpha = log_linear(0.01, 1e-5, 200_000)
    assert alpha(0) == 0.01 and alpha(200_000) == pytest.approx(1e-5, rel=1e-12) and alpha(400_000) == alpha(200_000)
    assert alpha(100_000) == pytest.approx(10**-3.5, rel=1e-12)


def test_the_recipe_in_one_word_sets_the_authors_values_and_given_options_win(walkers):
    store, refs = walkers
    skill = Registry(store).load(refs["sql"])
    hallway = finetune_spec(skill, ARENA, steps=10, recipe="authors", store=store)
    assert [hallway[k] for k in ("heads", "heads_final", "warmup", "anneal_steps")] == [32, 1, 20_000, 200_000]
    assert hallway["anneal_alpha_to"] == pytest.approx(skill.alpha / 1000)
    assert hallway["config"]["q_target"] == "max" and hallway["config"]["ou_sigma"] == 0.3
    assert hallway["config"]["q_in_reward_units"]  # annealing alpha keeps Q's scale
    maze = finetune_spec(skill, "ant-umaze", steps=10, recipe="authors", store=store, warmup=500)
    assert (maze["heads"], maze["heads_final"], maze["warmup"]) == (10, 10, 500)
    sac = finetune_spec(Registry(store).load(refs["sac"]), ARENA, steps=10, recipe="authors", store=store)
    assert sac["anneal_alpha_to"] is None and sac["config"]["q_target"] == "max"  # SAC tunes its own temperature
    with pytest.raises(SkillbankError, match="unknown --recipe"):
        finetune_spec(skill, ARENA, steps=10, recipe="mine", store=store)
    with pytest.raises(SkillbankError, match="heads-final"):
        finetune_spec(skill, ARENA, steps=10, heads=2, heads_final=3, store=store)


@pytest.mark.parametrize("algo", ["sql", "sac"])
def test_a_run_with_the_recipe_killed_and_resumed_ends_bit_for_bit(walkers, algo, tmp_path):
    store, refs = walkers
    spec = recipe_spec(store, refs[algo])
    whole = build_finetune(spec)
    Run(tmp_path / "whole", spec).train(whole, 240, checkpoint_every=80)
    first = build_finetune(spec)
    Run(tmp_path / "split", spec).train(first, 160, checkpoint_every=80)
    second = build_finetune(spec)  # as after a restart: fresh heads drawn, then the checkpoint's over them
    second.heads.normal_()
    Run(tmp_path / "split", spec).train(second, 240, checkpoint_every=80)
    a, b = whole.state_tensors(), second.state_tensors()
    assert "heads" in a and all(torch.equal(a[k], b[k]) for k in a)
    assert second.active_heads() == 1


@pytest.mark.parametrize("algo", ["sql", "sac"])
def test_greedy_heads_act_from_the_head_of_highest_q_and_the_skill_keeps_its_heads(walkers, algo, tmp_path):
    store, refs = walkers
    spec = recipe_spec(store, refs[algo], heads=6, heads_final=6, head_select="greedy", overrides={"ou_sigma": 0.0})
    assert spec["head_select"] == "greedy" and "head_select" not in recipe_spec(store, refs[algo])
    finetuned = build_finetune(spec)
    obs = finetuned.env.reset(seed=0)[0]
    obs_t = torch.as_tensor(obs, dtype=torch.float32)[None]
    with torch.no_grad():
        heads = finetuned.skill.sampler(obs_t, finetuned.heads[None])
        best = heads[0, finetuned.skill.q_values(obs_t, heads)[0].argmax()]
    assert np.allclose(finetuned.explore(obs), best.numpy(), atol=1e-6)
    # the policy registered is the one that acted: its heads and its rule travel with it, as data
    ref = Registry(store).register(finetuned.policy, "greedy-walker")
    loaded = Registry(store).load(ref)
    assert loaded.sampler.spec() == {**loaded.sampler.spec(), "type": "heads", "count": 6, "select": "greedy"}
    assert np.allclose(loaded.act_normalised(obs), best.numpy(), atol=1e-6)
    again = build_finetune(finetune_spec(loaded, ARENA, steps=240, seed=3, store=store))  # trains its sampler on
    assert again.heads is None and again.skill.sampler.kind == finetuned.skill.sampler.kind
    with pytest.raises(SkillbankError, match="--head-select"):
        finetune_spec(loaded, ARENA, steps=240, store=store, head_select="greedy")  # no heads to select from


def test_every_key_of_a_job_spec_is_a_typed_field(walkers, tmp_path):
    from skillbank.runs.jobs import train_spec
    from skillbank.runs.specs import JobSpec

    store, refs = walkers
    specs = [train_spec("multigoal", store=tmp_path, tensorboard=tmp_path),
             recipe_spec(store, refs["sql"], head_select="greedy", critic_warmup=5, fresh_critic=True)]  # fmt: skip
    for spec in specs:
        assert set(spec) <= set(JobSpec.__annotations__), set(spec) - set(JobSpec.__annotations__)
