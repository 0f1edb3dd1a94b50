"""The ``skillbank`` command line. Every user error prints one clear line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skillbank.errors import SkillbankError


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _registry(args: argparse.Namespace):
    from skillbank.registry import Registry

    return Registry(args.store)


# ----- commands ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from skillbank.evaluate import make_skill_env, rollouts, save_rollouts, summarise
    from skillbank.tasks import load_task

    task = load_task(args.task)
    if args.threads:
        torch.set_num_threads(args.threads)
    algo = task.build(args.algo, args.seed, compile=args.compile)
    steps = task.steps if args.steps is None else args.steps
    name = args.name or f"{task.name}-{algo.algorithm}"
    registry = _registry(args)
    from skillbank.registry import validate_name

    validate_name(name)  # fail before hours of training, not after
    print(
        f"training {algo.algorithm} on {task.name} ({task.env_id}) for {steps} steps, seed {algo.seed}", file=sys.stderr
    )
    try:
        algo.learn(steps, progress_bar=not args.no_progress)
    except KeyboardInterrupt:
        rescue = Path(f"interrupted-{name}")
        algo.save(rescue)
        print(
            f"\ninterrupted after {algo.num_timesteps} steps; the skill so far is saved in {rescue}/", file=sys.stderr
        )
        return 130
    env = make_skill_env(algo.skill)
    paths = rollouts(algo.skill, task.episodes, seed=algo.seed + 10_000, env=env)
    summary = algo.skill.description["metrics"] = summarise(paths, env)
    with tempfile.TemporaryDirectory() as tmp:
        ref = registry.register(
            algo.skill,
            name,
            description=task.description,
            replay=algo.buffer if args.keep_replay else None,
            rollouts=save_rollouts(paths, Path(tmp) / "rollouts.h5"),
        )
    shown = {k: summary[k] for k in ("mean_return", "success_rate", "goal_counts") if k in summary}
    print(f"registered {ref} in {registry.path} ({algo.train_time_s:.0f} s of training); {json.dumps(shown)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from skillbank.evaluate import evaluate

    registry = _registry(args)
    skill = registry.load(args.ref)
    summary = {"ref": skill.ref, **evaluate(skill, args.episodes, seed=args.seed)}
    if args.json:
        _print_json(summary)
    else:
        print(f"{skill.ref}: mean return {summary['mean_return']:.1f} over {args.episodes} episodes")
        if "goal_counts" in summary:
            for goal, count in zip(summary["goals"], summary["goal_counts"]):
                print(f"  goal ({goal[0]:g}, {goal[1]:g}): {count} rollouts")
            print(f"  success rate {summary['success_rate']:.2f}, goals reached {summary['goals_reached']}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from skillbank.plot import plot_multigoal

    skill = _registry(args).load(args.ref)
    out = args.out or Path(skill.ref.replace("@", "-v") + ".png")
    try:
        plot_multigoal(skill, out, episodes=args.episodes, seed=args.seed)
    except ValueError as error:
        raise SkillbankError(f"cannot plot {skill.ref}: {error}") from error
    print(f"wrote {out}")
    if skill.description.get("algorithm") == "composite":
        from skillbank.evaluate import rollouts
        from skillbank.plot import plot_bound_maps

        report = composite_bounds(skill, [], spacing=args.spacing)
        if report is not None:
            paths = rollouts(skill, args.episodes, seed=args.seed)
            maps = plot_bound_maps(report, out.with_name(out.stem + "-bounds.png"), skill.ref, paths)
            print(f"wrote {maps}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    rows = registry.list()
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no skills in {registry.path}; `skillbank train multigoal` makes one")
        return 0
    header = f"{'name':24} {'latest':>6} {'versions':>8}  {'task':18} {'algo':5} aliases"
    print(header)
    for r in rows:
        print(
            f"{r['name']:24} {r['latest']:>6} {r['versions']:>8}  {str(r['task']):18} {str(r['algorithm']):5} "
            f"{', '.join(r['aliases'])}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    info = _registry(args).info(args.ref)
    if args.json:
        _print_json(info)
        return 0
    meta = info["metadata"]
    print(f"{info['ref']}  ({', '.join(info['aliases']) or 'no aliases'})  created {info['created']}")
    print(f"  task {info['task']}  algorithm {info['algorithm']}  alpha {meta['alpha']:.4g}  gamma {meta['gamma']}")
    if info["description"]:
        print(f"  {info['description']}")
    net = meta.get("networks", {})
    print(f"  networks: q {net.get('q')}  sampler {net.get('sampler')}")
    training = meta.get("training") or {}
    if training:
        print(
            f"  trained {training.get('steps')} steps in {training.get('wall_time_s')} s, seed {training.get('seed')}"
        )
    metrics = meta.get("metrics") or {}
    if metrics:
        shown = {k: metrics[k] for k in ("mean_return", "success_rate", "goal_counts") if k in metrics}
        print(f"  metrics: {json.dumps(shown)}")
    bounds = meta.get("bounds")
    if bounds:
        est, v = bounds.get("learned") or bounds["sampled"], bounds["verdict"]
        true = f"true {est['true_error_start']:.4g}" if "true_error_start" in est else "sampled estimate"
        print(
            f"  error bar at the start: {est['L1_start']:.4g} <= Q_Σ - Q*_C <= {est['C_pi_start']:.4g} "
            f"({true}); verdict {v['verdict']}: {v['advice']}"
        )
    print(f"  tags: {', '.join(info['tags']) or '-'}")
    for parent in info["parents"]:
        print(f"  {parent['relation']} {parent['ref']} {json.dumps(parent['info']) if parent['info'] else ''}")
    for filename, entry in info["files"].items():
        print(f"  {filename:22} {entry['size']:>10} bytes  sha256 {entry['sha256'][:16]}")
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    print(_registry(args).alias(args.ref, args.alias))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    print(f"tagged {_registry(args).tag(args.ref, args.tag)} with {args.tag}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    graph = _registry(args).lineage(args.ref)
    for node, data in graph.nodes(data=True):
        parents = [f"{data_['relation']} {parent}" for parent, _, data_ in graph.in_edges(node, data=True)]
        print(f"{node}  [{data['origin']}, {data['task']}, {data['algorithm']}]  {'; '.join(parents)}")
    if args.out:
        from skillbank.plot import plot_lineage

        print(f"wrote {plot_lineage(graph, args.out)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    report = _registry(args).verify()
    if args.json:
        _print_json(report)
    else:
        print(f"{report['store']}: {report['versions']} versions, {report['files_checked']} files checked")
        for problem in report["problems"]:
            print(f"  PROBLEM {problem}")
        if report["unreferenced_files"]:
            print(f"  {len(report['unreferenced_files'])} unreferenced files (left by interrupted writes; harmless)")
        print("ok" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


def cmd_export(args: argparse.Namespace) -> int:
    refs = _registry(args).export(args.ref, args.file)
    print(f"exported {', '.join(refs)} to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    mapping = _registry(args).import_(args.file)
    for source, target in mapping.items():
        print(f"{source} -> {target}")
    return 0


def _constituent_envs(skills) -> list:
    from skillbank.evaluate import make_skill_env

    return [make_skill_env(skill).unwrapped for skill in skills]


def _replay_union(registry, refs: list[str]):
    from skillbank.compose import union_replay

    return union_replay([registry.replay_buffer(ref) for ref in refs])


def composite_bounds(skill, parts: list, registry=None, tolerance: float | None = None, spacing: float = 0.2):
    """The bound report of a composite on a 2-D MultiGoal task, or None where it does not apply."""
    from skillbank.bounds import bound_report
    from skillbank.evaluate import make_skill_env

    composition = skill.description.get("composition", {})
    if skill.action_dim != 2 or composition.get("op") not in ("sum", "mean", "dc"):
        return None
    region = None
    if registry is not None and all(composition.get("constituents") or [None]):
        replay = _replay_or_none(registry, composition["constituents"])
        region = None if replay is None else replay.observations.numpy()
    base = skill.q.parts
    weights = composition["weights"]
    return bound_report(
        base, make_skill_env(skill).unwrapped, skill.alpha, skill.gamma, weights,
        constituent_envs=_constituent_envs(parts) if parts else None,
        composite=skill.q, region=region, spacing=spacing, tolerance=tolerance,
    )  # fmt: skip


def _replay_or_none(registry, refs: list[str]):
    try:
        return _replay_union(registry, refs)
    except SkillbankError:
        return None


def sampled_bounds(
    skills: list,
    weights: list[float],
    replay,
    tolerance: float | None = None,
    steps: int = 3000,
    fits: int = 3,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Bounds of the weighted mean of ``skills`` estimated from the composite's rollouts on the
    combined task and from their replay union ``replay`` (any task)."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    from skillbank.bounds import sample_bounds, sample_verdict
    from skillbank.compose import combined_task

    if replay is None:
        raise SkillbankError("sampled bounds need the constituents' replay buffers; train them with --keep-replay")
    task = combined_task(skills, "mean", weights)

    def make_env(horizon: int):
        return gym.make(task["env_id"], max_episode_steps=horizon, **task.get("env_kwargs", {}))

    n = len(replay)
    transitions = (replay.observations[:n], replay.actions[:n], replay.next_observations[:n], replay.terminals[:n])
    with tqdm(total=fits * steps, disable=not progress, desc="sampled bounds", unit="step") as bar:
        sampled = sample_bounds(
            [s.q for s in skills], weights, skills[0].alpha, skills[0].gamma, transitions, make_env,
            skills[0].to_env_action, fits=fits, steps=steps, seed=seed, progress=bar.update,
        )  # fmt: skip
    return {"sampled": sampled, "verdict": sample_verdict(sampled, tolerance)}


def cmd_compose(args: argparse.Namespace) -> int:
    from skillbank.compose import compose
    from skillbank.evaluate import make_skill_env, rollouts, save_rollouts, summarise
    from skillbank.registry import Parent, validate_name

    registry = _registry(args)
    validate_name(args.name)
    skills = [registry.load(ref) for ref in args.refs]
    needs_replay = args.sampler == "svgd" or args.op == "dc"
    replay = _replay_union(registry, [s.ref for s in skills]) if needs_replay else None
    skill = compose(
        skills, args.op, args.weights, rescale_alpha=args.rescale_alpha, sampler=args.sampler, replay=replay,
        sampler_steps=args.sampler_steps, correction_steps=args.correction_steps,
        langevin_steps=args.langevin_steps, seed=args.seed, progress_bar=not args.no_progress,
    )  # fmt: skip
    env = make_skill_env(skill)
    paths = rollouts(skill, args.episodes, seed=args.seed, env=env)
    skill.description["metrics"] = summarise(paths, env)
    report = composite_bounds(skill, skills, registry, args.tolerance, args.spacing)
    if report is not None:
        skill.description["bounds"] = report.summary
    elif args.op in ("sum", "mean"):  # no grid: estimate from the replay buffers, where they exist
        if replay is None:
            replay = _replay_or_none(registry, [s.ref for s in skills])
        if replay is not None:
            skill.description["bounds"] = sampled_bounds(
                skills, skill.description["composition"]["weights"], replay, args.tolerance,
                progress=not args.no_progress, seed=args.seed,
            )  # fmt: skip
    parents = [Parent(s.ref, "constituent", {"weight": w}) for s, w in zip(skills, skill.q.weights)]
    with tempfile.TemporaryDirectory() as tmp:
        ref = registry.register(
            skill, args.name, description=f"{args.op} of {', '.join(s.ref for s in skills)}", parents=parents,
            rollouts=save_rollouts(paths, Path(tmp) / "rollouts.h5"),
        )  # fmt: skip
    metrics = skill.description["metrics"]
    shown = {k: metrics[k] for k in ("mean_return", "success_rate", "goal_counts") if k in metrics}
    print(f"registered {ref}: {json.dumps(shown)}")
    if "bounds" in skill.description:
        print(_verdict_line(skill.description["bounds"]))
    return 0


def _verdict_line(summary: dict[str, Any]) -> str:
    v = summary["verdict"]
    return f"bound verdict: {v['verdict']}: {v['advice']}"


def cmd_bound(args: argparse.Namespace) -> int:
    from skillbank.bounds import bound_report
    from skillbank.compose import check_compatible

    registry = _registry(args)
    skills = [registry.load(ref) for ref in args.refs]
    if len(skills) < 2:
        raise SkillbankError("give at least two skills to bound their composition")
    check_compatible(skills, rescale_alpha=False)
    from skillbank.compose import combined_task, operator_weights

    weights = operator_weights("mean", args.weights, len(skills))
    task = combined_task(skills, "mean", weights)
    replay = _replay_or_none(registry, [s.ref for s in skills])
    if args.sampled or skills[0].action_dim != 2 or task["env_id"] != "skillbank/MultiGoal-v0":
        summary = {"constituents": [s.ref for s in skills]}
        summary.update(sampled_bounds(skills, weights, replay, args.tolerance, args.steps, args.fits, not args.json))
        if args.json:
            _print_json(summary)
            return 0
        est = summary["sampled"]
        print(
            f"composite {' + '.join(f'{w:g}*{s.ref}' for w, s in zip(weights, skills))}: L1 and C_pi at the start "
            f"from {est['rollouts']['episodes']} rollouts (± standard error), the rest fitted on "
            f"{est['estimator']['transitions']} replay transitions (± sd of {est['estimator']['fits']} bootstrap fits)"
        )
        print(f"  {'':8} {'L1':>16} {'C_pi':>16} {'C*':>16} {'C* paper':>16} {'D*':>16}")
        for stat in ("start", "mean"):
            cells = []
            for m in ("L1", "C_pi", "C_star", "C_star_paper", "D_star"):
                sd = est[f"{m}_{stat}_std"]
                cells.append(f"{est[f'{m}_{stat}']:.4g}" + ("" if sd is None else f" ± {sd:.2g}"))
            print(f"  {stat:8} " + " ".join(f"{c:>16}" for c in cells))
        print(_verdict_line(summary))
        return 0
    import gymnasium as gym

    combined = gym.make(task["env_id"], **task["env_kwargs"]).unwrapped
    region = None if replay is None else replay.observations.numpy()
    report = bound_report(
        [s.q for s in skills], combined, skills[0].alpha, skills[0].gamma, weights,
        constituent_envs=_constituent_envs(skills), region=region,
        spacing=args.spacing, action_points=args.action_points, tolerance=args.tolerance,
    )  # fmt: skip
    summary = {"constituents": [s.ref for s in skills], **report.summary}
    if args.json:
        _print_json(summary)
        return 0
    print(f"composite {' + '.join(f'{w:g}*{s.ref}' for w, s in zip(weights, skills))} on a {report.grid.n}^2 grid")
    header = f"  {'':24} {'true error':>11} {'L1':>9} {'C_pi':>9} {'C*':>10} {'C* paper':>10} {'D*':>10}"
    for label, key in (("learned constituents", "learned"), ("oracle constituents", "oracle")):
        if key not in summary:
            continue
        s = summary[key]
        print(f"{label}: mean over the grid (max), start state")
        print(header)
        for stat in ("mean", "max", "start"):
            row = [s[f"{m}_{stat}"] for m in ("true_error", "L1", "C_pi", "C_star", "C_star_paper", "D_star")]
            print(f"  {stat:24} " + " ".join(f"{v:>10.4g}" for v in row))
        holds = 1 - s["paper_bound_violation_fraction"]
        sandwich = 100 * (1 - s["sandwich_violation_fraction"])
        print(f"  Q_Σ >= Q*_C >= Q_Σ - C* holds at {100 * holds:.1f}% of grid points; L1 <= Q_Σ - Q*_C <= C_pi at "
              f"{sandwich:.1f}%; tightness mean(error) / mean(C_pi) {s['C_pi_tightness']:.3g}, "
              f"/ mean(C*) {s['C_star_paper_tightness']:.3g}")  # fmt: skip
    print(_verdict_line(summary))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from skillbank.demo import run_demo

    summary = run_demo(_registry(args), args.out, progress=not args.no_progress)
    text = summary.pop("text")
    if args.json:
        _print_json(summary)
    else:
        print(text)
    return 0


# ----- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store", metavar="PATH", help="skill store directory (default: $SKILLBANK_STORE or ./skills_store)"
    )
    parser = argparse.ArgumentParser(
        prog="skillbank",
        description="Pretrain, store, evaluate and plot maximum-entropy RL skills.",
        epilog="Skill references: NAME (latest version), NAME@N (version N) or NAME@ALIAS.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[store])
        p.set_defaults(func=func)
        return p

    p = add("train", "train a skill on a task file and register it", cmd_train)
    p.add_argument("task", help="a task name in tasks/ (e.g. multigoal) or a path to a .toml task file")
    p.add_argument("--algo", choices=["sql", "sac"], help="algorithm (default: the task's)")
    p.add_argument("--steps", type=_positive, help="environment steps (default: the task's budget)")
    p.add_argument("--seed", type=_positive, help="random seed (default: the task's)")
    p.add_argument("--name", help="register under this name (default: TASK-ALGO)")
    p.add_argument("--keep-replay", action="store_true", help="store the replay buffer with the skill (HDF5)")
    p.add_argument("--threads", type=_positive, default=0, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the gradient computations with torch.compile: faster updates for long runs, after "
        "about 20 s of compiling; needs a C++ compiler (see benchmarks/speed.py)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("eval", "roll a skill out and count where its rollouts end", cmd_eval)
    p.add_argument("ref", help="skill reference")
    p.add_argument("--episodes", type=_positive, default=100, help="number of rollouts (default 100)")
    p.add_argument("--seed", type=_positive, default=0, help="seed of the rollouts (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON object")

    p = add("plot", "plot rollouts and Q contours with sampled actions (SQL paper, Fig. 3); for composites "
            "also maps of the true error beside its bounds (NAME-vN-bounds.png)", cmd_plot)  # fmt: skip
    p.add_argument("ref", help="skill reference")
    p.add_argument("--out", type=Path, help="PNG file to write (default: NAME-vN.png)")
    p.add_argument("--episodes", type=_positive, default=50, help="rollouts to draw (default 50)")
    p.add_argument("--seed", type=_positive, default=0, help="seed of the rollouts and samples (default 0)")
    p.add_argument("--spacing", type=float, default=0.2, help="grid spacing of a composite's bound maps")

    p = add("compose", "compose registered skills into a new one and register it with its lineage", cmd_compose)
    p.add_argument("refs", nargs="+", metavar="REF", help="skill references (two or more)")
    p.add_argument("--op", choices=["sum", "mean", "or", "gpi", "dc"], default="mean",
                   help="sum or mean of Q (the paper's composition), soft OR, max-ent GPI, or divergence "
                        "correction (mean minus a learned correction); default mean")  # fmt: skip
    p.add_argument("--weights", type=float, nargs="+", help="one weight per skill (default: equal)")
    p.add_argument("--name", required=True, help="register the composite under this name")
    p.add_argument("--sampler", choices=["resample", "svgd"], default="resample",
                   help="resample: training-free importance resampling from the constituents' samplers; "
                        "svgd: train a fresh SVGD sampler on their replay buffers (default resample)")  # fmt: skip
    p.add_argument("--sampler-steps", type=_positive, default=10_000, help="svgd sampler training steps")
    p.add_argument("--langevin-steps", type=_positive, default=0, help="Langevin refinement steps (resample)")
    p.add_argument("--correction-steps", type=_positive, default=10_000, help="dc correction training steps")
    p.add_argument("--rescale-alpha", action="store_true", help="compose skills of different alpha by rescaling Q")
    p.add_argument("--episodes", type=_positive, default=100, help="evaluation rollouts (default 100)")
    p.add_argument("--tolerance", type=float, help="verdict tolerance in reward units (default 5%% of |V|)")
    p.add_argument("--spacing", type=float, default=0.2, help="state grid spacing of the bound (2-D tasks)")
    p.add_argument("--seed", type=_positive, default=0, help="seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("bound", "bound the error of the mean of skills against the combined task's optimum", cmd_bound)
    p.add_argument("refs", nargs="+", metavar="REF", help="skill references (two or more)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per skill (default: equal)")
    p.add_argument("--spacing", type=float, default=0.2, help="state grid spacing (default 0.2)")
    p.add_argument("--action-points", type=int, default=11, help="action grid points per axis (default 11)")
    p.add_argument("--tolerance", type=float, help="verdict tolerance in reward units (default 5%% of |V|)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--sampled", action="store_true",
                   help="estimate the bounds from the constituents' replay buffers by fitted TD, with their spread "
                        "(the default, and the only way, for tasks other than 2-D MultiGoal)")  # fmt: skip
    p.add_argument("--steps", type=_positive, default=3000, help="TD steps per sampled fit (default 3000)")
    p.add_argument("--fits", type=_positive, default=3, help="bootstrap fits of the sampled estimate (default 3)")

    p = add("demo", "compose the shipped east and north skills, evaluate, bound and plot them", cmd_demo)
    p.add_argument("--out", type=Path, default=Path("demo"), help="folder for figures and summary (default demo/)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("list", "list the skills in the store", cmd_list)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("show", "show one version: metadata, files, lineage", cmd_show)
    p.add_argument("ref", help="skill reference")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("alias", "point NAME@ALIAS at a version (e.g. best, paper)", cmd_alias)
    p.add_argument("ref", help="skill reference")
    p.add_argument("alias", help="alias name")

    p = add("tag", "add a searchable tag to a version", cmd_tag)
    p.add_argument("ref", help="skill reference")
    p.add_argument("tag", help="tag")

    p = add("lineage", "print (and draw) where a version came from and what came from it", cmd_lineage)
    p.add_argument("ref", help="skill reference")
    p.add_argument("--out", type=Path, help="also draw the graph to this PNG")

    p = add("verify", "check the index and every file's sha256 (exit status 1 on a problem)", cmd_verify)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("export", "write a version and its ancestors to one .tar.gz archive", cmd_export)
    p.add_argument("ref", help="skill reference")
    p.add_argument("file", type=Path, help="archive to write")

    p = add("import", "import an archive written by export", cmd_import)
    p.add_argument("file", type=Path, help="archive to read")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SkillbankError as error:
        print(f"skillbank {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
