"""``skillbank demo``: compose the shipped east and north skills zero-shot, evaluate, bound, plot;
then show the shipped Ant skills.

Reads (or, if absent, trains with a short budget) ``corner-east`` and ``corner-north`` in the
store, composes them by averaging their Q-functions, and sets the composite beside the skill
trained directly on the combined task and beside the exact optimum from the grid solver. Then,
without training (hours of it), the headings of the walking skill ``ant-walk-sql`` beside those of
SAC's ``ant-walk-sac`` (the same budget), and the fine-tuned ``ant-umaze-finetuned``'s rollouts over the
maze, for those of them the store holds, with a GIF of the walker and of the maze skill.
Writes figures and ``summary.json`` into ``out``; nothing is written into the store.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from skillbank.composition.bounds import certify, composite_report
from skillbank.composition.compose import compose, sampler_total_variation
from skillbank.composition.oracle import OraclePolicy
from skillbank.errors import NotFoundError, SkillbankError
from skillbank.nn.skill import Skill
from skillbank.runs.evaluate import locomotion, make_skill_env, rollouts, summarise
from skillbank.runs.tasks import load_task
from skillbank.store.registry import Registry
from skillbank.viz.plot import plot_arena, plot_bound_maps, plot_headings, plot_multigoal
from skillbank.viz.video import render

EPISODES = 100
FALLBACK_STEPS = 30_000  # when a constituent is missing from the store: about 3 minutes each
WALKERS, MAZE_SKILL = ("ant-walk-sql", "ant-walk-sac"), "ant-umaze-finetuned"
WALK_EPISODES, MAZE_EPISODES = 50, 10
PUSHERS, PUSHER_TASK, PUSHER_EPISODES = ("pusher-x-y-sum", "pusher-xy"), "pusher-xy", 10


def _skill(registry: Registry, name: str, progress: bool) -> Skill:
    try:
        return registry.load(name)
    except NotFoundError:
        print(f"{name} is not in {registry.path}; training it for {FALLBACK_STEPS} steps", file=sys.stderr)
        algo = load_task(name).build()
        algo.learn(FALLBACK_STEPS, progress_bar=progress)
        ref = registry.register(algo.skill, name, replay=algo.buffer, description="trained by skillbank demo")
        return registry.load(ref)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(registry: Registry, out: str | Path = "demo", progress: bool = True) -> dict[str, Any]:
    """Run the demo and return its summary (also written to ``out/summary.json``), with a readable
    version under ``"text"``."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    east, north = _skill(registry, "corner-east", progress), _skill(registry, "corner-north", progress)
    composite = compose([east, north], "mean")
    env = make_skill_env(composite)
    goal = int(np.argmin(np.linalg.norm(env.unwrapped.goals - np.array([5.0, 5.0]), axis=1)))

    _say("evaluating the composite, the directly trained skill and the optimum ...")
    paths = rollouts(composite, EPISODES, seed=0, env=env)
    results: dict[str, Any] = {"composite": summarise(paths, env)}
    try:
        direct = registry.load("corner-east-north")
        results["direct"] = summarise(rollouts(direct, EPISODES, seed=0, env=env), env)
        results["direct"]["ref"] = direct.ref
    except NotFoundError:
        results["direct"] = None

    _say("bounding the composite against the exact optimum (grid solver) ...")
    # Without stored replay the summary covers the whole plane instead of the data's states.
    replay = registry.replay_union([east.ref, north.ref])
    report = composite_report(composite, [east, north], replay)
    _say("certifying the composite from the skills and their data alone ...")
    certified = certify(composite, [east, north], replay)
    oracle = OraclePolicy(report.grid, report.oracle.q_star, composite.alpha)
    results["optimum"] = summarise(rollouts(oracle, EPISODES, seed=0, env=env), env)

    _say("measuring the composite sampler against exp(Q / alpha) ...")
    states = np.array([[0.0, 0.0], [2.5, 2.5], [-2.5, 0.0]])
    sampler = {"resample": sampler_total_variation(composite, states, samples=2000)}
    refined = compose([east, north], "mean", langevin_steps=5)
    sampler["resample+langevin5"] = sampler_total_variation(refined, states, samples=2000)

    _say("writing figures ...")
    plot_bound_maps(report, out / "east_north_bounds.png", "mean of corner-east and corner-north", paths[:50])
    plot_multigoal(composite, out / "east_north_composite.png", episodes=50)

    summary = _corner_summary(results, report, certified, sampler, goal, [east.ref, north.ref])
    ant, ant_text = _ant_skills(registry, out)
    summary["ant"] = ant
    summary["pusher"], pusher_text = _pusher_skills(registry)
    ant_text += pusher_text
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    summary["text"] = _text(summary, ant_text, out)
    return summary


def _corner_summary(results, report, certified, sampler, goal: int, constituents: list[str]) -> dict[str, Any]:
    """The composition part of the demo's summary: success and return of the composite, the directly trained skill
    and the optimum, the bounds and their verdicts, the sampler's distance to exp(Q / alpha)."""
    learned, exact = report.summary["learned"], report.summary["oracle"]
    success = lambda r: None if r is None else r["goal_counts"][goal] / r["episodes"]  # noqa: E731
    summary = {
        "composite_success_rate": success(results["composite"]),
        "direct_success_rate": success(results["direct"]),
        "optimum_success_rate": success(results["optimum"]),
        "composite_mean_return": results["composite"]["mean_return"],
        "direct_mean_return": None if results["direct"] is None else results["direct"]["mean_return"],
        "optimum_mean_return": results["optimum"]["mean_return"],
        "bound_max": learned["C_star_paper_max"],
        "true_error_max": learned["true_error_max"],
        "bound_violation_fraction": learned["paper_bound_violation_fraction"],
        "oracle_bound_violation_fraction": exact["paper_bound_violation_fraction"],
        "oracle_tightness_C_pi": exact["C_pi_tightness"],
        "oracle_tightness_C_star": exact["C_star_paper_tightness"],
        "verdict": certified["verdict"]["verdict"],
        "verdict_if_exact": report.summary["verdict"]["verdict"],
        "certified": certified,
        "sampler_total_variation": sampler,
        "bounds": report.summary,
        "rollouts": results,
        "constituents": constituents,
    }
    return summary


def _text(summary: dict[str, Any], ant_text: str, out: Path) -> str:
    """The demo's summary as a few lines to read."""
    certified, sampler, ant = summary["certified"], summary["sampler_total_variation"], summary["ant"]
    return (
        f"east + north composite (mean of Q), {EPISODES} rollouts each, ending at (5, 5):\n"
        f"  composite {summary['composite_success_rate']:.2f}   "
        f"directly trained {summary['direct_success_rate'] if summary['direct_success_rate'] is not None else 'n/a'}"
        f"   optimum {summary['optimum_success_rate']:.2f}\n"
        f"  the composition bound 0 <= Q_Σ - Q*_C <= C* assumes exact skills: it holds at "
        f"{100 * (1 - summary['oracle_bound_violation_fraction']):.1f}% of grid points for oracle skills, "
        f"{100 * (1 - summary['bound_violation_fraction']):.1f}% for these learned ones\n"
        f"  certified from the learned skills and their data: optimum V*_C(start) in "
        f"[{certified['optimum_start'][0]:.4g}, {certified['optimum_start'][1]:.4g}], the composite's value in "
        f"[{certified['policy_value_start'][0]:.4g}, {certified['policy_value_start'][1]:.4g}]\n"
        f"  verdict: {summary['verdict']} ({certified['verdict']['advice']})\n"
        f"  sampler TV {sampler['resample']['total_variation']:.3f} "
        f"(exact-sample floor {sampler['resample']['floor']:.3f})\n"
        f"{ant_text}"
        f"  wrote {out}/summary.json, east_north_bounds.png, east_north_composite.png"
        f"{''.join(', ' + Path(f).name for f in dict.fromkeys(_files(ant)))} in "
        f"{summary['seconds']} s"
    )


def _pusher_skills(registry: Registry) -> tuple[dict[str, Any], str]:
    """The pusher's composite (the sum of the two line skills, no new experience) beside the skill trained on the
    corner, where the store has them: the puck's final distance to the corner over a few rollouts each."""
    found: dict[str, Any] = {}
    lines = ""
    for name in PUSHERS:
        try:
            skill = registry.load(name)
        except NotFoundError:
            found[name] = None
            lines += f"  {name} is not in the store: no such pusher skill to show\n"
            continue
        _say(f"rolling out {skill.ref} on {PUSHER_TASK} ...")
        env = make_skill_env(skill)  # the pusher it was trained on (v0 or v1), at the corner
        found[name] = {"ref": skill.ref, **summarise(rollouts(skill, PUSHER_EPISODES, seed=0, env=env), env)}
        lines += (f"  {skill.ref}: the puck ends {found[name]['final_goal_distance']:.3f} m from the corner (-1, -1) "
                  f"on average over {PUSHER_EPISODES} rollouts\n")  # fmt: skip
    return found, lines


def _files(ant: dict[str, Any]) -> list[str]:
    """The figures and videos the Ant part of the demo wrote."""
    return [v[key] for v in ant.values() if v for key in ("figure", "video") if v.get(key)]


def _video(skill: Skill, out: Path, every: int) -> tuple[str | None, str]:
    """One rollout of ``skill`` as a GIF (its path, or None where this machine cannot render) and a line of text."""
    _say(f"rendering {skill.ref} to {out} ...")
    try:
        video = render(skill, out, every=every)
    except SkillbankError as error:
        return None, f"  no video of {skill.ref}: {error}\n"
    return str(video.path), f"  {skill.ref}: wrote {out.name} ({video.frames} frames, return {video.returns[0]:.0f})\n"


def _ant_skills(registry: Registry, out: Path) -> tuple[dict[str, Any], str]:
    """The shipped walkers' headings and the fine-tuned maze skill's rollouts, where the store has them
    (trained for hours, so never trained here): their summaries (None when absent) and lines of text."""
    found: dict[str, Any] = {}
    lines, paths_by_walker = "", {}
    for name in WALKERS:
        try:
            walker = registry.load(name)
        except NotFoundError:
            found[name] = None
            lines += f"  {name} is not in the store: no such Ant walker to show\n"
            continue
        _say(f"rolling out {walker.ref} on empty ground ...")
        env = make_skill_env(walker)
        paths_by_walker[walker.ref] = paths = rollouts(walker, WALK_EPISODES, seed=0, env=env)
        found[name] = walk = {"ref": walker.ref, "rollouts": WALK_EPISODES, **locomotion(paths, env.unwrapped.dt)}
        lines += (f"  {walker.ref}: {WALK_EPISODES} rollouts walk {walk['mean_speed']:.2f} m/s on average, "
                  f"in {walk['octants_covered']} of 8 heading octants\n")  # fmt: skip
    if paths_by_walker:  # one figure, the walkers one above the other
        figure = str(plot_headings(paths_by_walker, out / "ant_walk_headings.png", env.unwrapped.dt))
        for name in WALKERS:
            if found[name]:
                found[name]["figure"] = figure
    if found[WALKERS[0]]:
        found[WALKERS[0]]["video"], text = _video(registry.load(WALKERS[0]), out / "ant_walk_sql.gif", every=1)
        lines += text
    try:
        maze = registry.load(MAZE_SKILL)
    except NotFoundError:
        found[MAZE_SKILL] = None
        return found, lines + f"  {MAZE_SKILL} is not in the store: no fine-tuned maze skill to show\n"
    _say(f"rolling out {maze.ref} in the U-maze ...")
    env = make_skill_env(maze)
    paths = rollouts(maze, MAZE_EPISODES, seed=0, env=env)
    result = {"ref": maze.ref, **summarise(paths, env)}
    result["figure"] = str(plot_arena(maze, out / "ant_umaze_finetuned.png", paths=paths))
    result["video"], text = _video(maze, out / "ant_umaze_finetuned.gif", every=2)
    lines += text
    found[MAZE_SKILL] = result
    return found, lines + (f"  {maze.ref}: {MAZE_EPISODES} rollouts in the U-maze, "
                           f"{100 * result['success_rate']:.0f}% reach the goal\n")  # fmt: skip
