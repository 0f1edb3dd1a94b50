"""Fine-tune a skill to a new task (SQL paper, section 6.3): keep training its Q-function and its
sampler there, starting from exactly the pretrained functions.

A downstream observation may extend the pretraining one (the arenas add the x, y position to the
walking observation): :func:`widen` gives the first layer of every network zero-initialised
weights for the new inputs, so the widened networks compute exactly what the pretrained ones did.

Plain fine-tuning goes on with the skill's own algorithm. The SQL authors fine-tuned otherwise (their arena
scripts in florensacc/rllab-curriculum, sandbox/haoran/mddpg/runs/vddpg/ant/exp-004h.py and exp-004e7.py, say
"make it like DDPG"); ``recipe="authors"`` (:func:`authors_recipe`) sets all of it at once, and each part is an
option of its own:

- ``heads``: the policy acts from that many fixed noise draws instead of fresh noise, annealed linearly to
  ``heads_final`` over ``anneal_steps`` (:meth:`~skillbank.algos.offpolicy.OffPolicyAlgorithm.freeze_heads`);
- ``q_target="max"`` (a configuration field, ``overrides``): the Q target is the greatest target Q over those
  heads instead of eq. (10)'s soft value;
- ``anneal_alpha_to``: SQL's temperature annealed log-linearly over ``anneal_steps`` (the authors: reward scale
  1 to 1000 over 200k steps, i.e. alpha 1000x lower);
- ``warmup``: a fresh replay pool filled by the pretrained policy before the first update (theirs: 20k);
- ``ou_sigma`` (``overrides``): Ornstein-Uhlenbeck noise on the actions (theirs: 0.3).

``recipe="steer"`` (:mod:`skillbank.runs.steer`) updates no network of the walker: SAC learns a heading policy in
the arena and the frozen walker walks each heading, so the gait cannot be lost (every update of the walker's sampler
tried in the U-maze lost it within 10k to 20k updates: ``docs/results/umaze/README.md``).

``fresh_critic`` keeps the pretrained policy but starts the Q-function afresh (the pretrained one predicts the
walk's returns, several times what an arena pays), and ``critic_warmup`` holds the policy (and SAC's
temperature) fixed for that many first updates, so that it improves against a critic that has learned the new
task first: skillbank's own probes, not the authors'.

>>> algo = finetune(registry.load("ant-walk-sql"), "ant-umaze", steps=200_000)   # doctest: +SKIP
>>> registry.register(algo.policy, "ant-umaze-finetuned", parents=[Parent(ref, "fine-tuned-from")])   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from skillbank.algos.offpolicy import OffPolicyAlgorithm, env_description
from skillbank.envs import make_env
from skillbank.envs.symmetry import check_symmetry
from skillbank.errors import SkillbankError
from skillbank.nn.composite import CompositeQ
from skillbank.nn.networks import DeterministicPolicy, GaussianSampler, HeadsSampler, SoftQ, SVGDSampler
from skillbank.nn.skill import Skill, box_to_json, build_q
from skillbank.nn.steered import SteeredQ
from skillbank.runs.specs import JobSpec
from skillbank.runs.steer import build_steered, check_arena, steered_walker
from skillbank.runs.tasks import ALGORITHMS, Task, load_task
from skillbank.store.registry import Registry

WARMUP = 10_000  # transitions the fine-tuned skill collects before its first update
NETWORK_KEYS = {"hidden", "critics"}  # hyperparameters that shape the pretrained networks
# how a job fine-tunes beyond keeping every network and training all (the grid's method finetune takes them too);
# in a job's spec where set, so that the jobs (and run ids) of the plain recipe stay as they were
RECIPE = (
    "recipe",
    "fresh_critic",
    "critic_warmup",
    "anneal_alpha_to",
    "anneal_steps",
    "heads",
    "heads_final",
    "head_select",
)
RECIPES = ("authors", "steer")


def authors_recipe(skill: Skill, env: gym.Env) -> dict[str, Any]:
    """The SQL authors' fine-tuning, as :func:`finetune_spec`'s options: 32 frozen heads annealed to 1 in the
    hallways, 10 kept in the U-maze (an arena with a goal), the max target, alpha 1000x lower over 200k steps (SQL;
    SAC tunes its own) with Q in reward units, OU noise of sigma 0.3 and a 20k warm-up."""
    maze = getattr(env.unwrapped, "goal", None) is not None
    recipe: dict[str, Any] = {
        "heads": 10 if maze else 32, "heads_final": 10 if maze else 1, "anneal_steps": 200_000, "warmup": 20_000,
        "overrides": {"q_target": "max", "ou_sigma": 0.3, "ou_theta": 0.15},
    }  # fmt: skip
    if skill.description.get("algorithm") == "sql":
        recipe["anneal_alpha_to"] = skill.alpha / 1000
        # In the public code's units the network predicts Q / alpha, so annealing alpha 1000x leaves the pretrained
        # critic's Q 1000x too low, to be relearned; in reward units it keeps Q and the temperature acts on the
        # sampler and the target's scale alone. (Within 80k steps the two did alike: docs/results/umaze/README.md.)
        recipe["overrides"]["q_in_reward_units"] = True
    return recipe


def _describe(space: dict[str, Any]) -> str:
    low, high = np.asarray(space["low"]), np.asarray(space["high"])
    return f"Box(shape {tuple(space['shape'])}, low {low.min():g}..{low.max():g}, high {high.min():g}..{high.max():g})"


def extension(skill_space: dict[str, Any], task_space: dict[str, Any]) -> int:
    """How many inputs the task's observation adds to the skill's, which must be its first coordinates
    with the same bounds; a SkillbankError naming both spaces otherwise."""
    old, new = skill_space["shape"], task_space["shape"]
    n = old[0] if len(old) == 1 else -1
    fits = len(old) == 1 and len(new) == 1 and new[0] >= n
    fits = fits and task_space["low"][:n] == skill_space["low"] and task_space["high"][:n] == skill_space["high"]
    if not fits:
        raise SkillbankError(
            f"the task's observation space {_describe(task_space)} does not extend the skill's "
            f"{_describe(skill_space)}: fine-tuning needs the skill's coordinates first, with the same bounds, "
            "and any new ones after them"
        )
    return new[0] - n


def widen(skill: Skill, observation_space: dict[str, Any]) -> Skill:
    """A copy of ``skill`` whose networks take ``observation_space``'s observations, computing exactly
    the pretrained functions of the old coordinates (the new ones enter with zero weights)."""
    extra = extension(skill.description["observation_space"], observation_space)
    if isinstance(skill.q, CompositeQ):
        raise SkillbankError("a composite cannot be fine-tuned as it is; fine-tune its constituents")
    skill = copy.deepcopy(skill)
    if extra == 0:
        return skill
    n = skill.q.obs_dim
    for network in (skill.q, skill.sampler):
        if not isinstance(network, SoftQ | SVGDSampler | GaussianSampler | DeterministicPolicy):
            raise SkillbankError(f"cannot widen a {type(network).__name__}")
        network.net.widen_input(n, extra)  # the observation comes first in every input; actions or noise after
        network.obs_dim = n + extra
    skill.description["observation_space"] = observation_space
    return skill


def log_linear(start: float, end: float, steps: int):
    """``t -> start * (end / start) ** min(t / steps, 1)``."""
    return lambda t: start * math.exp(math.log(end / start) * min(t / max(steps, 1), 1.0))


def finetune(
    skill: Skill,
    task: str | Task,
    steps: int = 100_000,
    *,
    seed: int = 0,
    warmup: int = WARMUP,
    anneal_alpha_to: float | None = None,
    anneal_steps: int = 0,
    fresh_critic: bool = False,
    critic_warmup: int = 0,
    heads: int = 0,
    heads_final: int | None = None,
    head_select: str | None = None,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    compile: bool = False,
    device: str = "cpu",
    progress_bar: bool = False,
) -> OffPolicyAlgorithm:
    """Continue training ``skill`` (SQL or SAC, or DDPG) on ``task`` for ``steps`` environment steps and
    return the algorithm: its skill records the new task, its buffer the new experience, its counters
    the fine-tuning steps. Register it with ``Parent(ref, "fine-tuned-from")``. Training goes on at the
    skill's temperature: for SAC the one it learned (with autotune it keeps tuning from there), not the
    configuration's starting ``alpha``. ``overrides`` change its other hyperparameters, as ``--set`` does; the
    recipe's options are the module's."""
    algo = build_finetune(finetune_spec(skill, task, steps=steps, seed=seed, warmup=warmup,
                                        anneal_alpha_to=anneal_alpha_to, anneal_steps=anneal_steps,
                                        fresh_critic=fresh_critic, critic_warmup=critic_warmup, heads=heads,
                                        heads_final=heads_final, head_select=head_select, recipe=recipe,
                                        overrides=overrides,
                                        compile=compile, device=device), skill)  # fmt: skip
    return algo.learn(steps, progress_bar=progress_bar)


def _with_recipe(recipe: str, skill: Skill, task: Task, **given: Any) -> dict[str, Any]:
    """The recipe's values, with the options given beside it (those not at their defaults) in their place."""
    if recipe not in RECIPES:
        raise SkillbankError(f"unknown --recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    if skill.description.get("algorithm") not in ("sql", "sac"):
        raise SkillbankError("--recipe authors fine-tunes a maximum-entropy skill (SQL or SAC), not a DDPG one")
    defaults = {"warmup": WARMUP, "anneal_steps": 0, "heads": 0}
    values = authors_recipe(skill, task.make_env())
    values.update({k: v for k, v in given.items() if v is not None and v != defaults.get(k)})
    return values


def _check_schedule(algorithm: str, anneal_alpha_to, critic_warmup: int, heads: int, heads_final, head_select) -> None:
    """Refuse annealing, critic warm-up and heads that the algorithm cannot take or that contradict each other."""
    if anneal_alpha_to is not None and (anneal_alpha_to <= 0 or algorithm != "sql"):
        raise SkillbankError("--anneal-alpha-to takes a positive temperature, for SQL skills")
    if critic_warmup < 0:
        raise SkillbankError(f"--critic-warmup takes a number of updates, 0 or more, got {critic_warmup}")
    if heads < 0 or (heads_final is not None and not 1 <= heads_final <= heads):
        raise SkillbankError(f"--heads {heads} --heads-final {heads_final}: need 1 <= heads-final <= heads")
    if head_select is not None and (not heads or head_select not in HeadsSampler.SELECT):
        raise SkillbankError(f"--head-select {head_select}: choose from {', '.join(HeadsSampler.SELECT)}, with --heads")
    if heads and algorithm == "ddpg":
        raise SkillbankError("--heads freezes a stochastic policy's noise; a DDPG skill has none")


def _finetune_config(skill: Skill, task: Task, env: gym.Env, algorithm: str, warmup: int, overrides) -> Any:
    """The skill's own configuration for fine-tuning: its hyperparameters, the task's warm-up, ``--set`` values
    (never its networks' sizes nor its temperature), checked with the task's symmetry."""
    hyperparameters = dict(skill.description.get("hyperparameters", {}))
    hyperparameters.pop("seed", None)
    hyperparameters.pop("symmetry", None)  # the pretraining task's: walls break it
    hyperparameters["learning_starts"] = warmup
    fixed = sorted(NETWORK_KEYS & set(overrides or {}))
    if fixed:
        raise SkillbankError(f"--set {', '.join(fixed)}: the pretrained networks fix it; fine-tuning keeps them")
    if "alpha" in (overrides or {}):
        raise SkillbankError("--set alpha: fine-tuning goes on at the skill's temperature; change it with "
                             "--anneal-alpha-to (SQL)")  # fmt: skip
    hyperparameters.update(overrides or {})
    config = ALGORITHMS[algorithm].config_class.from_dict(hyperparameters)
    obs_dim, act_dim = (space.shape[0] for space in (env.observation_space, env.action_space))
    check_symmetry(getattr(config, "symmetry", "none"), task.env_id, obs_dim, act_dim)  # before the run directory
    return config


def finetune_spec(
    skill: Skill,
    task: str | Task,
    *,
    steps: int | None = None,
    seed: int = 0,
    warmup: int = WARMUP,
    anneal_alpha_to: float | None = None,
    anneal_steps: int = 0,
    fresh_critic: bool = False,
    critic_warmup: int = 0,
    heads: int = 0,
    heads_final: int | None = None,
    head_select: str | None = None,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    store: str | Path | None = None,
    pretrained_store: str | Path | None = None,
    compile: bool = False,
    device: str = "cpu",
    **run: Any,
) -> JobSpec:
    """The job of fine-tuning ``skill`` (a registered one, for a resumable run) on ``task``, checked now.
    The result is registered in ``store``, which must also hold the pretrained skill (its lineage).
    ``overrides`` change the skill's hyperparameters (``--set``), all but its networks' and its temperature.
    ``recipe="authors"`` fills in :func:`authors_recipe`'s values where the other options are left at their
    defaults."""
    task = task if isinstance(task, Task) else load_task(task)
    if isinstance(skill.q, SteeredQ):
        raise SkillbankError(f"{getattr(skill, 'ref', 'the skill')} is a steered skill (a heading policy over a frozen "
                             f"walker, {skill.description['steering']['walker']}), which cannot be fine-tuned as a "
                             "whole; fine-tune or steer its walker")  # fmt: skip
    if recipe == "steer":
        options = {"anneal-alpha-to": anneal_alpha_to, "anneal-steps": anneal_steps, "fresh-critic": fresh_critic,
                   "critic-warmup": critic_warmup, "heads": heads, "heads-final": heads_final,
                   "head-select": head_select}  # fmt: skip
        used = sorted(k for k, v in options.items() if v not in (None, 0, False))
        if used:
            raise SkillbankError(f"--recipe steer trains a new heading policy and leaves the walker as it is; "
                                 f"--{', --'.join(used)} do not apply")  # fmt: skip
        return _steer_spec(skill, task, steps=steps, seed=seed, warmup=warmup, overrides=overrides, name=name,
                           store=store, pretrained_store=pretrained_store, compile=compile, device=device,
                           **run)  # fmt: skip
    if recipe is not None:
        values = _with_recipe(recipe, skill, task, warmup=warmup, anneal_alpha_to=anneal_alpha_to,
                              anneal_steps=anneal_steps, heads=heads, heads_final=heads_final)  # fmt: skip
        warmup, anneal_alpha_to, anneal_steps = values["warmup"], values.get("anneal_alpha_to"), values["anneal_steps"]
        heads, heads_final = values["heads"], values["heads_final"]
        overrides = {**values["overrides"], **(overrides or {})}
    steps = task.steps if steps is None else steps
    algorithm = skill.description.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise SkillbankError(f"a {algorithm} skill cannot be fine-tuned; fine-tune an SQL, SAC or DDPG skill")
    env = task.make_env()
    extension(skill.description["observation_space"], box_to_json(env.observation_space))
    if skill.description["action_space"] != box_to_json(env.action_space):
        raise SkillbankError(f"the task's action space {env.action_space} is not the skill's; cannot fine-tune")
    _check_schedule(algorithm, anneal_alpha_to, critic_warmup, heads, heads_final, head_select)
    config = _finetune_config(skill, task, env, algorithm, warmup, overrides)
    # only where they differ from the authors' recipe, so that the jobs (and run ids) of that recipe stay as they were
    options = {k: v for k, v in (("recipe", recipe), ("fresh_critic", fresh_critic), ("critic_warmup", critic_warmup),
                                 ("heads", heads), ("heads_final", heads_final if heads else None),
                                 ("head_select", head_select if head_select != "uniform" else None),
                                 ("set", overrides)) if v}  # fmt: skip
    return {
        "kind": "finetune", "pretrained": getattr(skill, "ref", None), "task": str(task.path.resolve()),
        "task_name": task.name, "algo": algorithm, "env_id": task.env_id, "env_kwargs": task.env_kwargs,
        "config": config.to_dict(), "steps": steps,
        "seed": seed, "name": name or f"{task.name}-finetuned", "store": None if store is None else str(store),
        "pretrained_store": str(pretrained_store or store),
        "warmup": warmup, "anneal_alpha_to": anneal_alpha_to, "anneal_steps": anneal_steps, "compile": compile,
        "device": device, **options, **run,
    }  # fmt: skip


def _steer_spec(skill: Skill, task: Task, *, steps: int | None, seed: int, warmup: int, overrides, name, store,
                pretrained_store, compile: bool, device: str, **run: Any) -> JobSpec:  # fmt: skip
    """The job of ``recipe="steer"``: SAC (the task's ``[sac]`` settings, ``warmup`` its learning start) learning a
    heading policy over the frozen ``skill`` (:mod:`skillbank.runs.steer`)."""
    steered_walker(skill)
    check_arena(task.make_env(), task.name)
    sac = ALGORITHMS["sac"].config_class
    config = (task.configs.get("sac") or sac()).replace(learning_starts=warmup, **(overrides or {}))
    return {
        "kind": "finetune", "pretrained": getattr(skill, "ref", None), "task": str(task.path.resolve()),
        "task_name": task.name, "algo": "sac", "env_id": task.env_id, "env_kwargs": task.env_kwargs,
        "config": config.to_dict(), "steps": task.steps if steps is None else steps, "seed": seed,
        "name": name or f"{task.name}-finetuned", "store": None if store is None else str(store),
        "pretrained_store": str(pretrained_store or store), "warmup": warmup, "anneal_alpha_to": None,
        "anneal_steps": 0, "compile": compile, "device": device, "recipe": "steer",
        **({"set": overrides} if overrides else {}), **run,
    }  # fmt: skip


def build_finetune(spec: JobSpec, skill: Skill | None = None) -> OffPolicyAlgorithm:
    """The algorithm of a fine-tuning job: the pretrained skill (loaded from the job's store unless
    given), widened to the task's observation, in the task's environment with a fresh buffer; for
    ``recipe="steer"``, a heading policy over the frozen skill (:func:`skillbank.runs.steer.build_steered`)."""
    if skill is None:
        skill = Registry(spec["pretrained_store"]).load(spec["pretrained"])
    env = make_env(spec["env_id"], spec["env_kwargs"])
    if spec.get("recipe") == "steer":
        return build_steered(spec, skill, env)
    if isinstance(skill.sampler, HeadsSampler):  # a skill fine-tuned with heads trains on as its sampler
        skill = Skill(skill.q, skill.sampler.base, skill.description)
    skill = widen(skill, box_to_json(env.observation_space))
    skill.description["task"] = {"name": spec["task_name"], **env_description(env), "env_id": spec["env_id"],
                                 "env_kwargs": spec["env_kwargs"]}  # fmt: skip
    skill.description.pop("metrics", None)
    skill.description["pretraining"] = skill.description.pop("training", None)
    if "q_in_reward_units" in spec["config"]:  # --set q_in_reward_units: the same Q, in the units asked for
        skill.q.set_reward_units(spec["config"]["q_in_reward_units"])
    if spec.get("fresh_critic"):
        with torch.random.fork_rng():
            torch.manual_seed(spec["seed"])
            skill.q = build_q(skill.q.spec(), skill.q.obs_dim, skill.q.act_dim)
    cls = ALGORITHMS[spec["algo"]]
    algo = cls(env, cls.config_class.from_dict(spec["config"]), seed=spec["seed"], skill=skill,
               compile=spec["compile"], device=spec["device"])  # fmt: skip
    algo.policy_frozen_updates = spec.get("critic_warmup", 0)
    if spec.get("heads"):
        select = spec.get("head_select", "uniform")
        algo.freeze_heads(spec["heads"], spec.get("heads_final"), spec["anneal_steps"], select)
    if spec.get("anneal_alpha_to") is not None:
        algo.alpha_schedule = log_linear(algo.config.alpha, spec["anneal_alpha_to"], spec["anneal_steps"])
    return algo
