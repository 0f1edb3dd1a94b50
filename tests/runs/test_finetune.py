"""Fine-tuning: widened networks compute exactly the pretrained functions, an observation that does not
extend is refused, and a fine-tuned skill records its new task, its experience and its lineage."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from skillbank import DDPG, SAC, SQL, Registry, SkillbankError
from skillbank.cli.main import main
from skillbank.nn.skill import box_to_json
from skillbank.runs.finetune import finetune, widen
from skillbank.runs.tasks import load_task
from tests.conftest import tiny_skill

TINY = dict(hidden=[16, 16], learning_starts=20, buffer_size=1000, batch_size=16)


def walker(cls):
    extra = dict(kernel_particles=4, value_particles=4) if cls is SQL else {}
    return cls("skillbank/AntWalk-v0", seed=1, **TINY, **extra).learn(60)


@pytest.mark.parametrize("cls", [SQL, SAC, DDPG], ids=["sql", "sac", "ddpg"])
def test_widened_networks_compute_exactly_the_pretrained_functions(cls):
    extra = dict(kernel_particles=4, value_particles=4) if cls is SQL else {}
    plain = gym.make("Ant-v5", include_cfrc_ext_in_observation=False)  # 27-D: the arenas' first coordinates
    skill = cls(plain, seed=1, **TINY, **extra).learn(60).skill
    arena = load_task("ant-hallway-wide").make_env()
    wide = widen(skill, box_to_json(arena.observation_space))
    assert wide.q.obs_dim == 29 and wide.description["observation_space"]["shape"] == [29]
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(6, 27, generator=g)
    position = 10 * torch.randn(6, 2, generator=g)  # whatever the new inputs are
    actions = torch.rand(6, 5, 8, generator=g) * 2 - 1
    noise = torch.randn(6, 5, 8, generator=g)
    with torch.no_grad():
        assert torch.equal(skill.q(obs, actions), wide.q(torch.cat([obs, position], -1), actions))
        assert torch.equal(skill.sampler(obs, noise), wide.sampler(torch.cat([obs, position], -1), noise))
    assert all(torch.equal(a, b) for a, b in zip(skill.q.net.weights[1:], wide.q.net.weights[1:]))


def test_an_observation_that_does_not_extend_is_refused_naming_both_spaces():
    with pytest.raises(SkillbankError, match=r"Box\(shape \(29,\).*does not extend the skill's Box\(shape \(2,\)"):
        finetune(tiny_skill(), "ant-hallway-wide", steps=10)


def test_finetune_records_the_new_task_its_experience_and_its_steps():
    pretrained = walker(SQL).skill
    algo = finetune(pretrained, "ant-umaze", steps=150, warmup=50, anneal_alpha_to=0.01, anneal_steps=100)
    task = algo.skill.description["task"]
    assert task["name"] == "ant-umaze" and task["env_id"] == "skillbank/AntUMaze-v1"
    assert algo.num_timesteps == 150 and len(algo.buffer) == 150 and algo.num_updates == 101
    assert algo.skill.description["training"]["steps"] == 150
    assert algo.skill.description["pretraining"]["steps"] == 60
    assert algo.skill.alpha == pytest.approx(0.01)  # annealed log-linearly from 1 to 0.01 over 100 steps
    assert algo.buffer.observations.shape[1] == 29


def test_finetune_command_registers_with_lineage(tmp_path, capsys):
    store = tmp_path / "store"
    registry = Registry(store)
    ref = registry.register(walker(SQL).skill, "walker")
    args = ["finetune", "walker", "--task", "ant-hallway-narrow", "--steps", "120", "--warmup", "40", "--seed", "2"]
    args += ["--name", "narrow-ft", "--store", str(store), "--no-progress", "--run-dir", str(tmp_path / "run")]
    assert main(args) == 0
    info = registry.info("narrow-ft")
    assert info["task"] == "ant-hallway-narrow" and info["metadata"]["training"]["steps"] == 120
    assert [(p["ref"], p["relation"]) for p in info["parents"]] == [(ref, "fine-tuned-from")]
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert main(args) == 0  # run again: the finished job is not trained or registered twice
    assert [v["version"] for v in registry.versions("narrow-ft")] == [1]
    assert np.isfinite(info["metadata"]["metrics"]["mean_return"])


def test_plot_draws_an_ant_skill_over_its_arena(tmp_path):
    store = tmp_path / "store"
    registry = Registry(store)
    algo = finetune(walker(SAC).skill, "ant-umaze", steps=30, warmup=30)
    registry.register(algo.skill, "umaze-tiny")
    out = tmp_path / "arena.png"
    assert main(["plot", "umaze-tiny", "--out", str(out), "--episodes", "2", "--store", str(store)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_rollouts_beside_draws_every_panel_in_its_own_colour(tmp_path, monkeypatch):
    import skillbank.viz.plot as plot
    from skillbank.store.rollouts import Rollout

    figures = []
    monkeypatch.setattr(plot, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    env = load_task("ant-hallway-wide").make_env()
    path = np.stack([np.linspace(0, 5, 20), np.zeros(20)], 1)
    paths = [Rollout(np.zeros((20, 29)), 1.0, -1, path)]
    plot.plot_rollouts_beside({f"walker {i}": (env, paths) for i in range(4)}, tmp_path / "beside.png")
    axes = figures[0].axes
    assert [ax.get_title().splitlines()[0] for ax in axes] == [f"walker {i}" for i in range(4)]
    colours = [ax.lines[0].get_color() for ax in axes]
    assert len(set(colours)) == 4, colours


def test_a_finetuning_run_resumes_bit_for_bit(tmp_path):
    from skillbank.runs.finetune import build_finetune, finetune_spec
    from skillbank.runs.run import Run

    store = tmp_path / "store"
    registry = Registry(store)
    ref = registry.register(walker(SQL).skill, "walker")
    spec = finetune_spec(registry.load(ref), "ant-umaze", steps=240, seed=1, warmup=60, anneal_alpha_to=0.1,
                         anneal_steps=200, store=store)  # fmt: skip
    whole = build_finetune(spec)
    Run(tmp_path / "whole", spec).train(whole, 240, checkpoint_every=80)
    first = build_finetune(spec)
    Run(tmp_path / "split", spec).train(first, 160, checkpoint_every=80)
    second = build_finetune(spec)  # as after a restart: pretrained weights again, then the checkpoint over them
    Run(tmp_path / "split", spec).train(second, 240, checkpoint_every=80)
    a, b = whole.state_tensors(), second.state_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a) and second.skill.alpha == whole.skill.alpha != 1.0


@pytest.mark.slow
@pytest.mark.shipped
def test_the_demo_shows_the_stored_ant_skills_and_says_which_are_missing(tmp_path, monkeypatch):
    from skillbank.workflows import demo

    monkeypatch.setattr(demo, "WALK_EPISODES", 3)
    monkeypatch.setattr(demo, "MAZE_EPISODES", 2)
    registry = Registry(tmp_path / "store")
    sql_walker, sac_walker = demo.WALKERS
    found, text = demo._ant_skills(registry, tmp_path)
    assert found == {sql_walker: None, sac_walker: None, demo.MAZE_SKILL: None}
    assert text.count("is not in the store") == 3

    pretrained = walker(SQL).skill
    registry.register(pretrained, sql_walker)
    found, text = demo._ant_skills(registry, tmp_path)  # one walker: shown, and the other said missing
    assert found[sac_walker] is None and f"{sac_walker} is not in the store" in text
    assert found[sql_walker]["rollouts"] == 3 and "heading octants" in text

    registry.register(walker(SAC).skill, sac_walker)
    registry.register(finetune(pretrained, "ant-umaze", steps=30, warmup=30).skill, demo.MAZE_SKILL)
    found, text = demo._ant_skills(registry, tmp_path)
    maze = found[demo.MAZE_SKILL]
    for name in demo.WALKERS:
        walk = found[name]
        assert walk["rollouts"] == 3 and sum(walk["octant_counts"]) == 3 and 1 <= walk["octants_covered"] <= 3
        assert walk["mean_speed"] >= 0 and walk["figure"] == str(tmp_path / "ant_walk_headings.png")
    assert maze["episodes"] == 2 and 0 <= maze["success_rate"] <= 1
    for figure in (found[sql_walker]["figure"], maze["figure"]):
        assert Path(figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "is not in the store" not in text and text.count("heading octants") == 2 and "reach the goal" in text

    found, text = demo._pusher_skills(registry)  # no pusher skills in this store: said, not failed
    assert found == dict.fromkeys(demo.PUSHERS) and text.count("is not in the store") == len(demo.PUSHERS)


def test_fine_tuning_sac_goes_on_at_the_temperature_it_learned():
    from skillbank.runs.finetune import build_finetune, finetune_spec

    pretrained = walker(SAC).skill
    pretrained.alpha = 0.05  # as if tuned down from the configuration's 1.0
    algo = build_finetune(finetune_spec(pretrained, "ant-hallway-wide", steps=10), pretrained)
    assert algo.config.alpha == 1.0 and float(algo.log_alpha.exp()) == pytest.approx(0.05)


@pytest.mark.parametrize("cls", [SQL, SAC, DDPG], ids=["sql", "sac", "ddpg"])
def test_a_fresh_critic_learns_alone_through_its_warm_up_then_the_policy_follows(cls):
    from skillbank.runs.finetune import build_finetune, finetune_spec
    from skillbank.runs.jobs import method_label

    pretrained = walker(cls).skill
    authors = finetune_spec(pretrained, "ant-hallway-narrow", steps=60, warmup=20)
    assert "fresh_critic" not in authors and "critic_warmup" not in authors  # the grid's run ids stay as they were
    spec = finetune_spec(pretrained, "ant-hallway-narrow", steps=60, warmup=20, fresh_critic=True, critic_warmup=15)
    assert method_label({**spec, "method": "finetune"}) == "finetune (fresh_critic=True, critic_warmup=15)"
    algo = build_finetune(spec, pretrained)
    widened = widen(pretrained, algo.skill.description["observation_space"])
    fresh = build_finetune(spec, pretrained).skill.q
    policy = [p.clone() for p in algo.skill.sampler.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(policy, widened.sampler.parameters()))
    assert not torch.equal(algo.skill.q.net.weights[0], widened.q.net.weights[0])  # a new critic...
    assert all(torch.equal(a, b) for a, b in zip(algo.skill.q.parameters(), fresh.parameters()))  # ...from the seed
    critic = [p.clone() for p in algo.skill.q.parameters()]
    temperature = algo.skill.alpha
    algo.learn(30)  # 11 updates, all within the warm-up: the critic learns, the policy waits
    assert algo.num_updates == 11 and algo.skill.alpha == temperature
    assert all(torch.equal(a, b) for a, b in zip(policy, algo.skill.sampler.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(critic, algo.skill.q.parameters()))
    algo.learn(10)  # past the warm-up
    assert not all(torch.equal(a, b) for a, b in zip(policy, algo.skill.sampler.parameters()))
    with pytest.raises(SkillbankError, match="--critic-warmup"):
        finetune_spec(pretrained, "ant-hallway-narrow", critic_warmup=-1)


def test_the_grid_fine_tunes_with_the_authors_annealing_or_set_values_and_names_the_method_for_them(tmp_path):
    from skillbank.runs.jobs import method_label
    from skillbank.workflows.experiment import grid

    registry = Registry(tmp_path / "source")
    registry.register(walker(SQL).skill, "walker")
    recipe = {"fresh_critic": False, "critic_warmup": 0, "anneal_alpha_to": 0.001, "anneal_steps": 100}
    (path, spec), = grid("walker", registry, ["ant-hallway-narrow"], ["finetune"], 1, 100, tmp_path / "out",
                         recipe=recipe)  # fmt: skip
    assert (spec["anneal_alpha_to"], spec["anneal_steps"]) == (0.001, 100)
    assert method_label(spec) == "finetune from walker@1 (anneal_alpha_to=0.001, anneal_steps=100)"
    plain = grid("walker", registry, ["ant-hallway-narrow"], ["finetune"], 1, 100, tmp_path / "out")[0][1]
    assert method_label(plain) == "finetune from walker@1" and plain["anneal_alpha_to"] is None
    assert "set" not in plain  # the run ids of grids without --set stay as they were
    polyak = grid("walker", registry, ["ant-hallway-narrow"], ["finetune"], 1, 100, tmp_path / "polyak",
                  recipe={"overrides": {"tau": 0.005, "target_update_interval": 1}})[0][1]  # fmt: skip
    assert (polyak["config"]["tau"], polyak["config"]["target_update_interval"]) == (0.005, 1)
    assert method_label(polyak) == "finetune from walker@1 (tau=0.005, target_update_interval=1)"
    command = ["experiment", "finetune", "--pretrained", "walker", "--tasks", "ant-hallway-narrow", "--steps", "10",
               "--methods", "finetune", "--store", str(tmp_path / "source")]  # fmt: skip
    assert main([*command, "--anneal-alpha-to", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert main([*command, "--set", "hidden=[8, 8]", "--out", str(tmp_path / "bad")]) == 2


def test_evaluating_a_walker_records_its_speed_and_heading_octants_and_leaves_training_alone():
    from skillbank.runs.jobs import evaluator

    algo = walker(SAC)
    state = algo.rng.get_state()
    row = evaluator({"eval_episodes": 3, "seed": 0})(algo)
    assert set(row) == {"eval_return", "eval_speed", "eval_octants"}
    assert row["eval_speed"] >= 0 and row["eval_octants"] in (1, 2, 3)
    assert torch.equal(algo.rng.get_state(), state)


def test_finetune_set_changes_the_skills_hyperparameters_but_not_its_networks_or_a_symmetry_walls_break(
    tmp_path, capsys
):
    from skillbank.runs.finetune import build_finetune, finetune_spec

    pretrained = walker(SQL).skill
    spec = finetune_spec(pretrained, "ant-walk", steps=40, warmup=20, overrides={"symmetry": "ant-c4", "tau": 0.5})
    assert spec["config"]["symmetry"] == "ant-c4" and spec["config"]["tau"] == 0.5
    algo = build_finetune(spec, pretrained)
    assert algo.augment is not None and algo.config.tau == 0.5
    assert finetune_spec(pretrained, "ant-walk")["config"]["symmetry"] == "none"
    with pytest.raises(SkillbankError, match="--set hidden: the pretrained networks fix it"):
        finetune_spec(pretrained, "ant-walk", overrides={"hidden": [8, 8]})
    with pytest.raises(SkillbankError, match="--anneal-alpha-to"):
        finetune_spec(pretrained, "ant-walk", overrides={"alpha": 0.5})
    store = tmp_path / "store"
    Registry(store).register(pretrained, "walker")
    args = ["finetune", "walker", "--task", "ant-hallway-wide", "--set", "symmetry=ant-c4", "--store", str(store)]
    assert main([*args, "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "symmetry 'ant-c4' holds in skillbank/AntWalk-v0 only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run directory


def test_finetuning_in_reward_units_keeps_q_and_lets_annealing_keep_it_too():
    from skillbank.runs.finetune import build_finetune, finetune_spec

    pretrained = walker(SQL).skill  # its network predicts Q / alpha, the public code's units
    g = torch.Generator().manual_seed(0)
    obs, actions = torch.randn(5, 29, generator=g), torch.rand(5, 8, generator=g) * 2 - 1
    before = widen(pretrained, box_to_json(load_task("ant-hallway-wide").make_env().observation_space))
    q = before.q.values(obs, actions)
    spec = finetune_spec(pretrained, "ant-hallway-wide", steps=40, warmup=20,
                         overrides={"q_in_reward_units": True})  # fmt: skip
    algo = build_finetune(spec, pretrained)
    assert algo.skill.q.reward_units and algo.skill.q.spec()["reward_units"]
    torch.testing.assert_close(algo.skill.q.values(obs, actions), q)
    torch.testing.assert_close(algo.q_target.values(obs, actions), q)
    algo.set_alpha(algo.skill.alpha / 10)  # the temperature of annealing: Q in reward units stays
    torch.testing.assert_close(algo.skill.q.values(obs, actions), q)
    plain = build_finetune(finetune_spec(pretrained, "ant-hallway-wide", steps=40, warmup=20), pretrained)
    plain.set_alpha(plain.skill.alpha / 10)  # in the public code's units, Q falls with alpha
    torch.testing.assert_close(plain.skill.q.values(obs, actions), q / 10)
