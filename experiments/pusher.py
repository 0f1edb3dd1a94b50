"""Composition on a robot (issue 36): two pusher skills summed into a third, with no new experience.

    python experiments/pusher.py --store skills_store --steps 500000 --workers 2 --out docs/results/pusher

Each training seed gets its own store, runs and ``--out`` (``--seed 1 --store STORE1 --out OUT/seed1``);
``experiments/pusher_seeds.py`` pools the seeds' summaries into the ratio the issue asks for, with its spread.

1. Trains what the store lacks, each in a resumable run directory under ``--runs-dir`` (run the same command again
   after a crash): SQL skills ``pusher-x`` (the puck to the line x = -1) and ``pusher-y`` (to y = -1) with their
   replay kept, and ``pusher-xy`` trained directly on the corner (-1, -1) with the same budget.
2. Composes ``pusher-x-y-sum``: the sum of the two Q-functions, and a fresh SVGD sampler trained on the union of
   their replay buffers with no environment steps (the composition paper's ``pusher_combine.py``). With ``--refit
   UPDATES`` (``skillbank compose --refit``), each line skill first takes that many more SQL updates on the union of
   both buffers, relabelled with its own reward: still no environment steps.
3. Evaluates each skill with 100 rollouts on the combined task, and each constituent on its own line and the other's;
   the composite also with the training-free resampling sampler in place of its SVGD sampler (the sum's own
   Boltzmann policy, as near as sampling gets).
4. Writes ``OUT/summary.json`` keyed by skill name (``final_goal_distance`` on the combined task, its median and
   the share of rollouts within 0.25 m, each rollout's distance, ``env_steps`` beyond the constituents,
   ``wall_time_s``), ``OUT/pushers.png`` (the puck's paths, the skills side by side) and a GIF of each skill.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from command_line import command_line

from skillbank import Registry, SkillbankError, compose, render
from skillbank.composition.refit import refit
from skillbank.runs.evaluate import rollouts, summarise
from skillbank.runs.jobs import train_spec
from skillbank.runs.tasks import load_task
from skillbank.viz.plot import plot_pushers
from skillbank.workflows.experiment import run_grid
from skillbank.workflows.skills import compose_and_register

LINES, CORNER, COMPOSITE = ("pusher-x", "pusher-y"), "pusher-xy", "pusher-x-y-sum"


def train_missing(registry: Registry, steps: int, seed: int, workers: int, runs_dir: Path) -> None:
    """Train (or resume) every pusher skill the store does not hold yet, from training seed ``seed``."""
    jobs = []
    for name in (*LINES, CORNER):
        if not registry.find(name=name):
            spec = train_spec(name, steps=steps, seed=seed, name=name, store=registry.path, keep_replay=name in LINES,
                              compile=True, checkpoint_every=10_000, eval_every=10_000)  # fmt: skip
            spec["method"] = "sql"
            jobs.append((runs_dir / name, spec))
    if jobs:
        run_grid(jobs, workers)


def refit_updates(records: dict) -> int:
    """The refit updates of a composite's constituents, from its ``composition.refit`` (0: none)."""
    return max((entry["updates"] for entry in records.values()), default=0)


def composed(registry: Registry, episodes: int, parts: list) -> tuple[str, float]:
    """The registered composite of ``parts`` (the line skills' newest versions, refitted or not; composed now if
    there is none) and its seconds of composing."""
    wanted = refit_updates({p.ref: p.description["refit"] for p in parts if "refit" in p.description})
    composition = registry.find(name=COMPOSITE) and registry.load(COMPOSITE).description["composition"]
    if (not composition or composition["constituents"] != [p.ref for p in parts]
            or refit_updates(composition.get("refit", {})) != wanted):  # fmt: skip
        print("composing: the sampler of the sum on the union of the two buffers, then its bounds ...", flush=True)
        compose_and_register(registry, parts, COMPOSITE, "sum", episodes=episodes, sampler="svgd", progress_bar=True)
    ref = str(registry.resolve(COMPOSITE))
    return ref, registry.load(ref).description["composition"].get("wall_time_s", float("nan"))


def on_corner(paths: list, env) -> dict:
    """The figures of rollouts on the corner task: mean and median final distance, the share within 0.25 m and
    each rollout's distance."""
    measured = summarise(paths, env)
    return {
        "final_goal_distance": measured["final_goal_distance"],
        "median_final_goal_distance": measured["median_final_goal_distance"],
        "share_within_0.25_m": sum(p.final_goal_distance <= 0.25 for p in paths) / len(paths),
        "final_goal_distances": [round(p.final_goal_distance, 5) for p in paths],
    }


def video(skill, name: str, gif: Path) -> str | None:
    """Two episodes of ``skill`` on its own task (the composite on the corner) as ``gif``; None without OpenGL,
    where the numbers stand without it."""
    try:
        return str(render(skill, gif, task=name if name != COMPOSITE else CORNER, episodes=2, every=3).path)
    except SkillbankError as error:
        print(f"no video of {name}: {error}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--steps", type=int, default=load_task(CORNER).steps, help="training steps of each skill")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the skills the store lacks")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path.home() / "skillbank-runs" / "pusher")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument(
        "--refit",
        type=int,
        default=0,
        metavar="UPDATES",
        help="refit each line skill on both buffers before composing (skillbank compose --refit)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results/pusher"))
    parser.add_argument(
        "--videos",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="render a GIF of each skill (--no-videos: keep those OUT already holds)",
    )
    args = parser.parse_args()
    registry = Registry(args.store)
    train_missing(registry, args.steps, args.seed, args.workers, args.runs_dir)
    parts = [registry.load(line) for line in LINES]
    if args.refit:  # once, for the registered composite (SVGD sampler) and the resampling one alike
        parts = refit(parts, registry.replay_union(LINES), args.refit, progress_bar=True)
    composite_ref, compose_seconds = composed(registry, args.episodes, parts)
    envs = {name: load_task(name).make_env() for name in (*LINES, CORNER)}
    summary, panels = {"command": command_line(args)}, {}
    for name in (*LINES, CORNER, COMPOSITE):
        skill = registry.load(composite_ref if name == COMPOSITE else name)
        paths = rollouts(skill, args.episodes, seed=0, env=envs[CORNER])
        training = skill.description.get("training") or {}
        entry = {
            "ref": skill.ref,
            **on_corner(paths, envs[CORNER]),
            "env_steps": 0 if name == COMPOSITE else training.get("steps"),
            **({"refit_updates": args.refit} if name == COMPOSITE else {}),
            "wall_time_s": round(compose_seconds, 1) if name == COMPOSITE else training.get("wall_time_s"),
        }
        if name == COMPOSITE:  # the sum's own Boltzmann policy, as near as sampling gets without training a sampler
            resampled = compose(parts, "sum", sampler="resample")
            entry["with_resampling_sampler"] = on_corner(rollouts(resampled, args.episodes, seed=0, env=envs[CORNER]),
                                                         envs[CORNER])  # fmt: skip
        if name in LINES:
            entry["on_tasks"] = {task: summarise(rollouts(skill, args.episodes, seed=0, env=envs[task]), envs[task])[
                "final_goal_distance"] for task in LINES}  # fmt: skip
            panels[f"{skill.ref} on {name}"] = (envs[name], rollouts(skill, 20, seed=0, env=envs[name]))
        else:
            panels[f"{skill.ref} on {CORNER}"] = (envs[CORNER], paths[:20])
        summary[name] = entry
        gif = args.out / f"{name}.gif"
        entry["video"] = video(skill, name, gif) if args.videos else str(gif) if gif.exists() else None
        brief = {
            k: v for k, v in entry.items() if k not in ("video", "final_goal_distances", "with_resampling_sampler")
        }
        print(name, json.dumps(brief), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_pushers(panels, args.out / "pushers.png", "the puck's paths: each line skill, the corner skill, their sum")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
