"""Composition experiment on the corner-goal layout: operators, samplers, bounds, ground truth.

    python experiments/composition.py --store skills_store --out docs/results

Needs corner-east, corner-north, corner-west (with replay) and corner-east-north in the store.
Writes composition.json, oracle_convergence.csv and the bound maps into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from skillbank.composition.compose import compose, sampler_total_variation
from skillbank.composition.grid_bounds import bound_report
from skillbank.composition.oracle import GridModel, OraclePolicy
from skillbank.runs.evaluate import make_skill_env, rollouts, summarise
from skillbank.runs.tasks import load_task
from skillbank.store.registry import Registry
from skillbank.viz.plot import plot_bound_maps, plot_multigoal

EPISODES = 100


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def oracle_convergence(out: Path) -> list[dict]:
    env = load_task("corner-east-north").make_env().unwrapped
    rows, coarse = [], np.array([[x, y] for x in range(-7, 8) for y in range(-7, 8)], float)
    reference = None
    for spacing, points in ((0.1, 21), (1.0, 3), (0.5, 5), (0.25, 9), (0.2, 11)):
        started = time.perf_counter()
        grid = GridModel(env, spacing, points)
        solution = grid.solve(grid.reward(), 10.0, 0.99)
        values = grid.interpolate(solution.v, coarse)
        reference = values if reference is None else reference
        rows.append({
            "spacing": spacing, "action_points": points, "states": grid.n**2, "iterations": solution.iterations,
            "V_start": float(grid.interpolate(solution.v, np.zeros((1, 2)))[0]),
            "max_abs_diff_to_finest": float((values - reference).abs().max()),
            "seconds": round(time.perf_counter() - started, 1),
        })  # fmt: skip
        log(f"oracle {rows[-1]}")
    rows = rows[1:] + rows[:1]
    with open(out / "oracle_convergence.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def success_at(summary: dict, goal: int) -> float:
    return summary["goal_counts"][goal] / summary["episodes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="skills_store")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--sampler-steps", type=int, default=10_000)
    parser.add_argument("--correction-steps", type=int, default=10_000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    registry = Registry(args.store)
    skills = {name: registry.load(f"corner-{name}") for name in ("east", "north", "west", "east-north")}
    results: dict = {"constituents": {k: s.ref for k, s in skills.items()}}
    results["oracle_convergence"] = oracle_convergence(args.out)

    for pair in (("east", "north"), ("east", "west")):
        a, b = skills[pair[0]], skills[pair[1]]
        label = "+".join(pair)
        replay = registry.replay_union([a.ref, b.ref])
        region = replay.observations.numpy()
        row: dict = {}
        mean = compose([a, b], "mean")
        env = make_skill_env(mean)
        log(f"{label}: bounds")
        report = bound_report(
            [a.q, b.q], env.unwrapped, mean.alpha, mean.gamma,
            constituent_envs=[make_skill_env(s).unwrapped for s in (a, b)], region=region,
        )  # fmt: skip
        row["bounds"] = report.summary
        paths = rollouts(mean, EPISODES, seed=0, env=env)
        plot_bound_maps(report, args.out / f"bounds_{pair[0]}_{pair[1]}_learned.png", label, paths[:50])
        plot_bound_maps(report, args.out / f"bounds_{pair[0]}_{pair[1]}_oracle.png", label, paths[:50], oracle=True)
        oracle = OraclePolicy(report.grid, report.oracle.q_star, mean.alpha)
        row["optimum"] = summarise(rollouts(oracle, EPISODES, seed=0, env=env), env)
        if label == "east+north":
            row["direct"] = summarise(rollouts(skills["east-north"], EPISODES, seed=0, env=env), env)
        for op in ("mean", "sum", "or", "gpi"):
            composite = mean if op == "mean" else compose([a, b], op)
            summary = summarise(
                paths if op == "mean" else rollouts(composite, EPISODES, seed=0), make_skill_env(composite)
            )
            row[op] = summary
            log(f"{label} {op}: goal counts {summary['goal_counts']}, return {summary['mean_return']:.1f}")
        if label == "east+north":
            plot_multigoal(mean, args.out / "composite_east_north.png", episodes=50)
            log("dc: training the correction")
            dc = compose([a, b], "dc", replay=replay, correction_steps=args.correction_steps, progress_bar=False)
            dc_report = bound_report([a.q, b.q], env.unwrapped, mean.alpha, mean.gamma, composite=dc.q, region=region)
            keys = ("composite_error_mean", "sum_error_mean", "composite_error_mean_in_data", "sum_error_mean_in_data")
            row["dc"] = {
                key: dc_report.summary[key]
                for key in keys
            }  # fmt: skip
            row["dc"]["rollouts"] = summarise(rollouts(dc, EPISODES, seed=0, env=env), env)
            row["dc"]["training"] = dc.description["composition"]["correction"]
            log(f"dc: {row['dc']}")
            log("samplers")
            states = np.array([[0.0, 0.0], [2.5, 2.5], [-2.5, 0.0], [4.0, -1.0]])
            started = time.perf_counter()
            svgd = compose([a, b], "mean", sampler="svgd", replay=replay, sampler_steps=args.sampler_steps)
            svgd_seconds = time.perf_counter() - started
            row["samplers"] = {
                "resample": sampler_total_variation(mean, states),
                "resample+langevin5": sampler_total_variation(compose([a, b], "mean", langevin_steps=5), states),
                f"svgd_{args.sampler_steps}_steps": {**sampler_total_variation(svgd, states), "train_s": svgd_seconds},
                "constituent_east_svgd": sampler_total_variation(a, states),
            }
            row["svgd_rollouts"] = summarise(rollouts(svgd, EPISODES, seed=0, env=env), env)
            log(f"samplers: {row['samplers']}")
        results[label] = row
        (args.out / "composition.json").write_text(json.dumps(results, indent=2, default=str))
    log("done")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
