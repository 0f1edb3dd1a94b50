"""Roll a skill out in its task's environment and summarise what it did."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import parse_env_id

from skillbank.algos.buffer import ReplayBuffer
from skillbank.envs import make_task_env
from skillbank.errors import SkillbankError
from skillbank.nn.skill import Skill, box_to_json
from skillbank.runs.tasks import load_task
from skillbank.store.registry import Parent, Registry
from skillbank.store.rollouts import Rollout, check_rollouts, load_rollouts, save_rollouts  # noqa: F401 (where users found them)


def make_skill_env(skill: Skill, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """The environment the skill was trained in (optionally with changed keyword arguments)."""
    task = skill.description.get("task", {})
    return make_task_env({**task, "env_kwargs": {**task.get("env_kwargs", {}), **(env_kwargs or {})}})


def task_env(skill: Skill, task: str) -> gym.Env:
    """The environment of ``task`` (a name or a task file), for rolling ``skill`` out zero-shot where it was not
    trained (a walker in an arena, before fine-tuning); the task's observation and action spaces must be the
    skill's."""
    loaded = load_task(task)
    trained_on = skill.description.get("task", {}).get("env_id")
    if trained_on and loaded.env_id != trained_on and parse_env_id(loaded.env_id)[:2] == parse_env_id(trained_on)[:2]:
        raise SkillbankError(
            f"{loaded.name} runs {loaded.env_id} and the skill was trained on {trained_on}, another version of that "
            f"environment; roll it out on its own (drop --task) or train it on {loaded.name}"
        )
    env = loaded.make_env()
    for kind, space in (("observation", env.observation_space), ("action", env.action_space)):
        if box_to_json(space) != skill.description[f"{kind}_space"]:
            raise SkillbankError(
                f"{loaded.name}'s {kind} space {space} is not the skill's, so it cannot be rolled out there as it "
                f"is; fine-tune it to the task instead (skillbank finetune REF --task {loaded.name})"
            )
    return env


def rollouts(skill: Skill, episodes: int, seed: int = 0, env: gym.Env | None = None) -> list[Rollout]:
    """``episodes`` stochastic rollouts of the skill's Boltzmann policy (via its sampler)."""
    if episodes <= 0:
        raise SkillbankError(f"--episodes must be a positive number, got {episodes}")
    env = env or make_skill_env(skill)
    generator = torch.Generator().manual_seed(seed)
    results = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        path, total, goal, done, success = [obs], 0.0, -1, False, False
        positions = [_position(info)]
        while not done:
            obs, reward, terminated, truncated, info = env.step(skill.act(obs, generator))
            path.append(obs)
            positions.append(_position(info))
            total += reward
            goal = int(info.get("goal", -1))
            success = success or bool(info.get("success", False))
            done = terminated or truncated
        planar = None if positions[0] is None else np.asarray(positions)
        distance = info.get("goal_distance")
        results.append(Rollout(np.asarray(path), total, goal, planar, success,
                               None if distance is None else float(distance)))  # fmt: skip
    return results


def _position(info: dict[str, Any]) -> tuple[float, float] | None:
    """The body's planar position, where the task reports it (y is 0 for bodies in a plane, e.g. HalfCheetah)."""
    return (float(info["x_position"]), float(info.get("y_position", 0.0))) if "x_position" in info else None


def locomotion(paths: list[Rollout], dt: float) -> dict[str, Any]:
    """How rollouts moved the body: the mean planar speed of their displacement (m/s: distance from start
    to end over the episode's duration), the mean distance covered, and how many of the 8 octants
    of heading (from the start to the end) the rollouts reached."""
    moves = np.array([p.positions[-1] - p.positions[0] for p in paths])
    durations = np.array([(len(p.positions) - 1) * dt for p in paths])
    distances = np.linalg.norm(moves, axis=1)
    octants = np.floor((np.arctan2(moves[:, 1], moves[:, 0]) % (2 * np.pi)) / (np.pi / 4)).astype(int) % 8
    return {
        "mean_speed": float(np.mean(distances / np.maximum(durations, dt))),
        "mean_distance": float(distances.mean()),
        "octants_covered": int(len(set(octants.tolist()))),
        "octant_counts": np.bincount(octants, minlength=8).tolist(),
    }


def summarise(paths: list[Rollout], env: gym.Env) -> dict[str, Any]:
    """Mean return, and for goal tasks how many rollouts ended at each goal (in the env's goal order); where
    the task reports it, the mean final ``goal_distance`` over rollouts (the pusher's ``final_goal_distance``)."""
    summary: dict[str, Any] = {
        "episodes": len(paths),
        "mean_return": float(np.mean([p.episode_return for p in paths])),
        "std_return": float(np.std([p.episode_return for p in paths])),
    }
    goals = getattr(env.unwrapped, "goals", None)
    if goals is not None:
        counts = np.bincount([p.goal for p in paths if p.goal >= 0], minlength=len(goals))
        summary["goals"] = np.asarray(goals).tolist()
        summary["goal_counts"] = counts.tolist()
        summary["success_rate"] = float(counts.sum() / len(paths))
        summary["goals_reached"] = int((counts > 0).sum())
    if paths and paths[0].positions is not None:
        summary.update(locomotion(paths, float(getattr(env.unwrapped, "dt", 1.0))))
    base = env.unwrapped
    if getattr(base, "goal", None) is not None and hasattr(base, "success_radius"):  # the U-maze
        summary["success_rate"] = float(np.mean([p.success for p in paths]))
    if paths and paths[0].final_goal_distance is not None:
        distances = [p.final_goal_distance for p in paths]
        summary["final_goal_distance"] = float(np.mean(distances))
        summary["std_final_goal_distance"] = float(np.std(distances))
        summary["median_final_goal_distance"] = float(np.median(distances))  # the mean pays for a few misses
    return summary


def evaluate(skill: Skill, episodes: int = 100, seed: int = 0, env: gym.Env | None = None) -> dict[str, Any]:
    """Roll the skill out ``episodes`` times and :func:`summarise` what it did."""
    env = env or make_skill_env(skill)
    return summarise(rollouts(skill, episodes, seed, env), env)


def evaluate_into(skill: Skill, episodes: int, seed: int, rollouts_file: str | Path) -> dict[str, Any]:
    """Roll ``skill`` out ``episodes`` times, record the summary as its ``metrics`` and write the
    rollouts to ``rollouts_file`` (HDF5): what a skill is registered with."""
    env = make_skill_env(skill)
    paths = rollouts(skill, episodes, seed=seed, env=env)
    skill.description["metrics"] = summarise(paths, env)
    save_rollouts(paths, rollouts_file)
    return skill.description["metrics"]


def evaluate_and_register(
    registry: Registry,
    skill: Skill,
    name: str,
    episodes: int,
    seed: int = 0,
    *,
    description: str = "",
    replay: ReplayBuffer | None = None,
    parents: Sequence[Parent | str] = (),
) -> str:
    """:func:`evaluate_into`, then register ``skill`` with its rollouts; returns the new reference."""
    with tempfile.TemporaryDirectory() as tmp:
        evaluate_into(skill, episodes, seed, Path(tmp) / "rollouts.h5")
        return registry.register(
            skill, name, description=description, parents=list(parents), replay=replay,
            rollouts=Path(tmp) / "rollouts.h5",
        )  # fmt: skip


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a one-line report shows."""
    keys = ("mean_return", "success_rate", "goal_counts", "final_goal_distance", "mean_speed", "octants_covered")
    return {k: metrics[k] for k in keys if k in metrics}
