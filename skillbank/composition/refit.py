"""Refit constituents on each other's experience before composing them, with no environment steps.

A constituent's Q-function is trained only where its own behaviour took it; the composite acts elsewhere (summing a
skill that pushes a puck to a vertical line with one that pushes it to a horizontal line sends the puck to where they
cross, a corner neither skill visited). :func:`refit` gives each SQL constituent more of its own SQL updates on the
union of every constituent's replay buffer, each transition relabelled with that constituent's reward, which the
task computes from the stored transition (:func:`relabeller`). It is the replay-sharing of off-policy multi-task RL
(Andrychowicz et al. 2017 relabel goals; here the tasks are given): the experience is reused, none is collected.

>>> parts = refit([east, north], registry.replay_union([east.ref, north.ref]), updates=30_000)   # doctest: +SKIP
>>> both = compose(parts, "sum")   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from skillbank.algos.buffer import ReplayBuffer
from skillbank.algos.sql import SQL, SQLConfig
from skillbank.envs import make_task_env
from skillbank.errors import SkillbankError
from skillbank.nn.skill import Skill

Relabel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def relabeller(task: dict[str, Any]) -> Relabel | None:
    """``relabel(obs, actions, next_obs) -> rewards``: ``task``'s reward of stored transitions, where its environment
    can compute it from them (``transition_reward``: MultiGoal, the pusher), else None."""
    if not task.get("env_id"):
        return None
    env = make_task_env(task).unwrapped
    if not hasattr(env, "transition_reward"):
        return None

    def relabel(obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        reward = env.transition_reward(obs.double().numpy(), actions.double().numpy(), next_obs.double().numpy())
        return torch.as_tensor(reward)

    return relabel


def relabelled(replay: ReplayBuffer, task: dict[str, Any]) -> ReplayBuffer:
    """A copy of ``replay`` whose rewards are ``task``'s. The terminal flags are kept: the tasks must end episodes
    alike (MultiGoal's composable tasks share their goals, the pusher's episodes only time out)."""
    relabel = relabeller(task)
    if relabel is None:
        raise SkillbankError(
            f"the task {task.get('name') or task.get('env_id')!r} cannot compute its reward from stored transitions "
            "(its environment has no transition_reward), so other skills' experience cannot be relabelled for it"
        )
    copied, n = ReplayBuffer.concatenate([replay]), len(replay)
    copied.rewards[:n] = relabel(replay.observations[:n], replay.actions[:n], replay.next_observations[:n]).to(
        copied.rewards.dtype
    )
    return copied


def refit(
    skills: Sequence[Skill], replay: ReplayBuffer | None, updates: int, seed: int = 0, progress_bar: bool = False
) -> list[Skill]:
    """Copies of the SQL ``skills``, each after ``updates`` more of its own SQL updates (its recorded
    hyperparameters) on ``replay``, the union of their replay buffers, relabelled with its own task's reward; no
    environment steps. Each copy records what it was refitted on in its description's ``refit``."""
    if updates < 1:
        raise SkillbankError(f"refit needs at least 1 update, got {updates}")
    if replay is None or len(replay) == 0:
        raise SkillbankError(
            "refitting trains on the constituents' replay buffers, but none were given; train them with --keep-replay"
        )
    for skill in skills:
        algorithm = skill.description.get("algorithm")
        if algorithm != "sql":
            raise SkillbankError(
                f"{getattr(skill, 'ref', None) or 'a skill'} is a {algorithm} skill; refitting continues SQL "
                "training, so it takes SQL skills (compose without refit instead)"
            )
    refitted = []
    for skill in skills:
        task = skill.description["task"]
        buffer = relabelled(replay, task)
        config = SQLConfig.from_dict(skill.description["hyperparameters"])
        started = time.perf_counter()
        algo = SQL(make_task_env(task), config, seed=seed, skill=copy.deepcopy(skill))
        algo.learn_offline(buffer, updates, progress_bar=progress_bar)
        algo.skill.description["refit"] = {
            "updates": updates,
            "transitions": len(buffer),
            "relabelled_from": [getattr(s, "ref", None) for s in skills],
            "env_steps": 0,
            "seed": seed,
            "wall_time_s": round(time.perf_counter() - started, 1),
        }
        refitted.append(algo.skill)
    return refitted
