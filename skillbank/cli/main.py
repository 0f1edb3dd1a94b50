"""The ``skillbank`` command line. Every user error prints one clear line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from skillbank.errors import SkillbankError


def _recipe_options(p: argparse.ArgumentParser) -> None:
    """How a pretrained skill is fine-tuned, beyond keeping every network and training all: ``finetune`` and the
    experiment's method ``finetune`` take the same options."""
    p.add_argument("--fresh-critic", action="store_true",
                   help="keep the pretrained policy but start the Q-function afresh, for a task whose returns differ "
                        "from the pretraining task's")  # fmt: skip
    p.add_argument("--critic-warmup", type=_positive, default=0, metavar="UPDATES",
                   help="train only the Q-function for the first UPDATES updates, the policy (and SAC's temperature) "
                        "held fixed (default 0)")  # fmt: skip
    p.add_argument("--anneal-alpha-to", type=float, metavar="ALPHA",
                   help="anneal SQL's temperature log-linearly from the skill's alpha to ALPHA (the authors: 1000x "
                        "lower; default: no annealing)")  # fmt: skip
    p.add_argument("--anneal-steps", type=_positive, default=0,
                   help="steps over which to anneal alpha and the heads")  # fmt: skip
    p.add_argument("--heads", type=_positive, default=0, metavar="K",
                   help="freeze the policy to K fixed noise draws, as the SQL authors fine-tuned (default 0: fresh "
                        "noise)")  # fmt: skip
    p.add_argument(
        "--heads-final",
        type=_at_least_one,
        metavar="K",
        help="anneal the heads linearly to this many over --anneal-steps (default: keep --heads)",
    )
    p.add_argument("--head-select", choices=["uniform", "greedy"],
                   help="which head acts (with --heads): uniform, one at random per step (the authors'), or greedy, "
                        "the one with the highest Q, the policy a --q-target max values (default uniform)")  # fmt: skip
    p.add_argument("--q-target", choices=["soft", "max"],
                   help="the Q target: soft (the skill's algorithm, the default) or max, the greatest target Q over "
                        "the heads (the authors' fine-tuning)")  # fmt: skip
    p.add_argument("--recipe", choices=["authors", "steer"],
                   help="authors: the SQL authors' fine-tuning in one word (heads 32 -> 1 in a hallway, 10 in a maze; "
                        "--q-target max; alpha 1000x lower over 200k steps; OU sigma 0.3; --warmup 20000); options "
                        "given beside it win. steer: keep an Ant walker frozen and learn with SAC only which way to "
                        "send it (an Ant arena in the world frame, e.g. ant-umaze)")  # fmt: skip
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change one hyperparameter of the skill's configuration (a TOML value), e.g. "
                        "symmetry=ant-c4 or tau=0.005; not the networks' sizes, nor alpha "
                        "(--anneal-alpha-to)")  # fmt: skip


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    from skillbank.runs.finetune import RECIPE

    overrides = _overrides(args)
    if args.q_target is not None:
        overrides = {**(overrides or {}), "q_target": args.q_target}
    return {**{key: getattr(args, key) for key in RECIPE}, "overrides": overrides}


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _at_least_one(value: str) -> int:
    number = _positive(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _size(value: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        number = int(float(value[:-1]) * units[value[-1].upper()]) if value[-1:].upper() in units else int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in bytes (e.g. 500M or 2G), got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value!r}")
    return number


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _registry(args: argparse.Namespace, create: bool = True):
    """The store of ``--store``; the reading commands pass ``create=False``: a path with no store is an error."""
    from skillbank.store.registry import Registry

    return Registry(args.store, create=create)


# ----- commands ---------------------------------------------------------------------------------
def _execute(run, args: argparse.Namespace) -> int:
    """Train a run's job (resuming it), then report: the registered skill, or how to resume."""
    from skillbank.runs.jobs import execute, resume_command

    spec = run.spec
    print(f"{spec['kind']}: {spec['algo']} on {spec['task_name']} for {spec['steps']} steps, seed {spec['seed']}, "
          f"in {run.path}", file=sys.stderr)  # fmt: skip
    try:
        outcome = execute(run, progress_bar=not args.no_progress, threads=args.threads)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; the last checkpoint is in {run.path}; resume with: {resume_command(run)}", file=sys.stderr
        )
        return 130
    if outcome["status"] == "interrupted":
        print(f"\nstopped at step {outcome['steps']} with a checkpoint in {run.path}; resume with: "
              f"{resume_command(run)}", file=sys.stderr)  # fmt: skip
        return 130
    from skillbank.runs.evaluate import headline

    print(f"registered {outcome['ref']} in {spec['store']} ({outcome.get('wall_time_s', 0):.0f} s of training); "
          f"{json.dumps(headline(outcome.get('metrics', {})))}")  # fmt: skip
    return 0


def _resumed(args: argparse.Namespace):
    """The run of ``--resume RUN_DIR`` (at ``--store`` where given), its budget raised to ``--steps`` where given."""
    from skillbank.runs.jobs import extend, relocate
    from skillbank.runs.run import Run

    run = relocate(Run(args.resume), args.store)
    return extend(run, args.steps) if args.steps is not None and args.steps != run.spec["steps"] else run


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--set KEY=VALUE`` options: one value per key (sweep takes grids)."""
    from skillbank.runs.sweep import parse_sets

    overrides = {}
    for key, values in parse_sets(args.set or []).items():
        if len(values) > 1:
            raise SkillbankError(f"--set {key} is given {len(values)} times; {args.command} takes one value "
                                 "(sweep takes grids)")  # fmt: skip
        overrides[key] = values[0]
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    from skillbank.runs.jobs import new_run_dir, train_spec
    from skillbank.runs.run import Run
    from skillbank.store.registry import validate_name

    if args.resume:
        return _execute(_resumed(args), args)
    if args.task is None:
        raise SkillbankError("give a TASK to train, or --resume RUN_DIR to continue a run")
    spec = train_spec(
        args.task, algo=args.algo, steps=args.steps, seed=args.seed, name=args.name, store=_registry(args).path,
        keep_replay=args.keep_replay, compile=args.compile, device=args.device,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, overrides=_overrides(args),
        tensorboard=args.tensorboard,
    )  # fmt: skip
    validate_name(spec["name"])  # before hours of training, not after
    return _execute(Run(args.run_dir or new_run_dir(spec), spec), args)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from skillbank.runs.run import snapshot

    copied = snapshot(args.run_dir, args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {args.run_dir} at step {copied.step}, {size / 1e6:.1f} MB without its replay buffer; on any "
          f"machine, copy it to a run directory DIR and go on with: skillbank "
          f"{json.loads((args.out / 'run.json').read_text())['kind']} --resume DIR --store STORE (where its store "
          "is there)")  # fmt: skip
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from skillbank.runs.evaluate import headline
    from skillbank.runs.jobs import register_checkpoint
    from skillbank.runs.run import Run
    from skillbank.store.registry import Registry

    run = Run(args.run_dir)
    registry = Registry(args.store or run.spec["store"], create=False)
    ref = register_checkpoint(run, registry, name=args.name, tags=args.tag or [], episodes=args.episodes)
    info = registry.info(ref)
    print(f"registered {ref} from {run.path} at step {info['metadata']['training']['steps']}; "
          f"{json.dumps(headline(info['metadata'].get('metrics', {})))}")  # fmt: skip
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from skillbank.runs.finetune import finetune_spec
    from skillbank.runs.jobs import EVAL_EPISODES, new_run_dir
    from skillbank.runs.run import Run
    from skillbank.store.registry import validate_name

    if args.resume:
        return _execute(_resumed(args), args)
    if args.ref is None or args.task is None:
        raise SkillbankError("give a skill REF and --task TASK to fine-tune, or --resume RUN_DIR to continue a run")
    registry = _registry(args)
    spec = finetune_spec(
        registry.load(args.ref), args.task, steps=args.steps, seed=args.seed, warmup=args.warmup, **_recipe(args),
        name=args.name, store=registry.path.resolve(), compile=args.compile,
        device=args.device, keep_replay=args.keep_replay,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, eval_episodes=EVAL_EPISODES,
        **({"tensorboard": str(args.tensorboard.resolve())} if args.tensorboard else {}),
    )  # fmt: skip
    validate_name(spec["name"])
    return _execute(Run(args.run_dir or new_run_dir(spec), spec), args)


def cmd_experiment(args: argparse.Namespace) -> int:
    from skillbank.workflows.experiment import grid, run_grid, summarise

    out = args.out
    jobs = grid(args.pretrained, _registry(args), args.tasks, args.methods, args.seeds, args.steps, out,
                eval_every=args.eval_every, eval_episodes=args.eval_episodes, compile=args.compile,
                recipe=_recipe(args), tensorboard=args.tensorboard)  # fmt: skip
    try:
        outcomes = run_grid(jobs, args.workers, args.backend, args.address, say=_say)
    except KeyboardInterrupt:
        print(
            "\ninterrupted; every run keeps its last checkpoint: run the same command again to resume", file=sys.stderr
        )
        return 130
    summary = summarise(jobs, out)
    if args.json:
        _print_json(summary)
    else:
        for task, entry in summary["tasks"].items():
            print(f"{task}: threshold {entry['threshold']:g}, {entry['seeds']} seeds, {entry['budget_steps']} steps")
            for method, m in entry["methods"].items():
                reached = "never" if m["steps_to_threshold"] is None else f"{m['steps_to_threshold']:.0f} steps"
                success = "" if m["final_success_rate"] is None else f", success {m['final_success_rate']:.2f}"
                print(f"  {method:14} threshold reached: {reached:>14}; final return {m['final_return']:.1f}{success}")
        print(f"wrote {out / 'summary.json'} and the figures finetune_<task>.png")
    unfinished = [o for o in outcomes if o["status"] != "finished"]
    return 130 if unfinished else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from skillbank.runs.sweep import parse_seeds, parse_sets, sweep

    summary = sweep(
        args.task, algo=args.algo, seeds=parse_seeds(args.seeds), grid=parse_sets(args.set or []), steps=args.steps,
        workers=args.workers, backend=args.backend, address=args.address, runs_dir=args.runs_dir,
        store=_registry(args).path, checkpoint_every=args.checkpoint_every, tensorboard=args.tensorboard, say=_say,
    )  # fmt: skip
    if args.json:
        _print_json(summary)
        return 0
    present = [k for k in ("mean_return", "success_rate", "mean_speed") if any(k in p for p in summary["points"])]
    table = [["set", "seeds", *present]]
    for point in summary["points"]:
        cells = [f"{point[k]['mean']:.4g} ± {point[k]['std']:.2g}" if k in point else "-" for k in present]
        table.append([json.dumps(point["set"]) if point["set"] else "(task's)", str(len(point["runs"])), *cells])
    print(f"sweep {summary['sweep']}: {summary['algo']} on {summary['task']}, mean ± sd over seeds; "
          f"skills tagged {summary['tag']}")  # fmt: skip
    print(_table(table))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from skillbank.runs.evaluate import evaluate, task_env

    registry = _registry(args, create=False)
    skill = registry.load(args.ref)
    env = task_env(skill, args.task) if args.task else None
    summary = {"ref": skill.ref, **evaluate(skill, args.episodes, seed=args.seed, env=env)}
    summary.update({"task": args.task} if args.task else {})
    if args.json:
        _print_json(summary)
    else:
        where = f" on {args.task}" if args.task else ""
        print(f"{skill.ref}: mean return {summary['mean_return']:.1f} over {args.episodes} episodes{where}")
        if "goal_counts" in summary:
            for goal, count in zip(summary["goals"], summary["goal_counts"]):
                print(f"  goal ({goal[0]:g}, {goal[1]:g}): {count} rollouts")
            print(f"  success rate {summary['success_rate']:.2f}, goals reached {summary['goals_reached']}")
        if "mean_speed" in summary:
            print(f"  mean planar speed {summary['mean_speed']:.3f} m/s (start to end), distance "
                  f"{summary['mean_distance']:.2f} m, headings in {summary['octants_covered']} of 8 octants "
                  f"{summary['octant_counts']}")  # fmt: skip
        if "success_rate" in summary and "goal_counts" not in summary:
            print(f"  success rate {summary['success_rate']:.2f}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from skillbank.composition.bounds import composite_report
    from skillbank.runs.evaluate import make_skill_env, rollouts, task_env
    from skillbank.viz.plot import plot_arena, plot_bound_maps, plot_multigoal, plot_pushers

    skill = _registry(args, create=False).load(args.ref)
    where = f"-on-{Path(args.task).stem}" if args.task else ""
    out = args.out or Path(skill.ref.replace("@", "-v") + where + ".png")
    env = task_env(skill, args.task) if args.task else make_skill_env(skill)
    arena = "x_position" in env.reset(seed=0)[1]  # a task that reports where the body is
    if args.task and not arena and not hasattr(env.unwrapped, "fingertip"):
        raise SkillbankError(f"--task draws rollouts over an Ant arena or the pusher's table, and {args.task} is not")
    try:
        if hasattr(env.unwrapped, "fingertip"):  # the pusher: the puck's paths over the table
            paths = rollouts(skill, args.episodes, seed=args.seed, env=env)
            plot_pushers({skill.ref: (env, paths)}, out, f"{len(paths)} rollouts of {skill.ref}")
        elif arena:
            plot_arena(skill, out, episodes=args.episodes, seed=args.seed, task=args.task)
        else:
            plot_multigoal(skill, out, episodes=args.episodes, seed=args.seed)
    except ValueError as error:
        raise SkillbankError(f"cannot plot {skill.ref}: {error}") from error
    print(f"wrote {out}")
    report = composite_report(skill, spacing=args.spacing) if skill.description["algorithm"] == "composite" else None
    if report is not None:
        paths = rollouts(skill, args.episodes, seed=args.seed)
        print(f"wrote {plot_bound_maps(report, out.with_name(out.stem + '-bounds.png'), skill.ref, paths)}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from skillbank.viz.video import render

    skill = _registry(args, create=False).load(args.ref)
    out = args.out or Path(skill.ref.replace("@", "-v") + ".gif")
    video = render(skill, out, task=args.task, episodes=args.episodes, seed=args.seed, camera=args.camera,
                   fps=args.fps, every=args.every)  # fmt: skip
    returns = ", ".join(f"{r:.1f}" for r in video.returns)
    print(f"wrote {video.path}: {video.frames} frames of {video.width}x{video.height}, "
          f"{video.ms_per_frame:.0f} ms a frame; returns {returns}")  # fmt: skip
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from skillbank.runs.jobs import method_labels
    from skillbank.runs.run import Run
    from skillbank.viz.plot import plot_curves

    runs = [Run(path) for path in args.run_dirs]
    methods: dict[str, list] = {}
    for run, label in zip(runs, method_labels([run.spec for run in runs])):
        methods.setdefault(label, []).append(run.metrics())
    if not any(rows for runs in methods.values() for rows in runs):
        raise SkillbankError("the run directories hold no metrics yet")
    print(f"wrote {plot_curves(methods, args.out, args.metric, title=args.title or '', threshold=args.threshold)}")
    return 0


def _table(rows: list[list[str]], right: Sequence[int] = ()) -> str:
    """Rows of cells in columns as wide as their widest cell (``right``: right-aligned columns)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args, create=False)
    rows = registry.list()
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no skills in {registry.path}; `skillbank train multigoal` makes one")
        return 0
    table = [["name", "latest", "versions", "task", "algo", "aliases"]]
    for r in rows:
        cells = [r["name"], r["latest"], r["versions"], r["task"], r["algorithm"], ", ".join(r["aliases"])]
        table.append([str(c) for c in cells])
    print(_table(table, right=(1, 2)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    info = _registry(args, create=False).info(args.ref)
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
    composition = meta.get("composition") or {}
    if composition:
        refits = [f"{ref} refit by {r['updates']} updates on {r['transitions']} transitions"
                  for ref, r in (composition.get("refit") or {}).items()]  # fmt: skip
        print(f"  composed: {composition.get('op')} with the {composition.get('sampler')} sampler, "
              f"{composition.get('env_steps', 0)} environment steps{''.join('; ' + r for r in refits)}")  # fmt: skip
    metrics = meta.get("metrics") or {}
    if metrics:
        shown = {k: metrics[k] for k in ("mean_return", "success_rate", "goal_counts") if k in metrics}
        print(f"  metrics: {json.dumps(shown)}")
    bounds = meta.get("bounds")
    if bounds:
        est = bounds.get("learned") or bounds.get("sampled")
        if est is not None:
            true = f"true {est['true_error_start']:.4g}" if "true_error_start" in est else "sampled estimate"
            print(f"  composition bounds at the start, if the constituents were exact: {est['L1_start']:.4g} <= "
                  f"Q_Σ - Q*_C <= {est['C_pi_start']:.4g} ({true})")  # fmt: skip
        elif "composition_bounds" in bounds:
            print(f"  composition bounds: {bounds['composition_bounds']}")
        if "certified" in bounds:
            print("  " + _certified_line(bounds["certified"]))
        print(f"  {_verdict_line(bounds)}")
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
    graph = _registry(args, create=False).lineage(args.ref)
    for node, data in graph.nodes(data=True):
        parents = [f"{data_['relation']} {parent}" for parent, _, data_ in graph.in_edges(node, data=True)]
        print(f"{node}  [{data['origin']}, {data['task']}, {data['algorithm']}]  {'; '.join(parents)}")
    if args.out:
        from skillbank.viz.plot import plot_lineage

        print(f"wrote {plot_lineage(graph, args.out)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    report = _registry(args, create=False).verify()
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
    refs = _registry(args, create=False).export(args.ref, args.file)
    print(f"exported {', '.join(refs)} to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    mapping = _registry(args).import_(args.file, max_size=args.max_size)
    for source, target in mapping.items():
        print(f"{source} -> {target}")
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    from skillbank.runs.evaluate import headline
    from skillbank.workflows.skills import compose_and_register

    ref, skill = compose_and_register(
        _registry(args), args.refs, args.name, args.op, args.weights, episodes=args.episodes, seed=args.seed,
        tolerance=args.tolerance, spacing=args.spacing, progress_bar=not args.no_progress,
        rescale_alpha=args.rescale_alpha, sampler=args.sampler, sampler_steps=args.sampler_steps,
        correction_steps=args.correction_steps, langevin_steps=args.langevin_steps, refit_updates=args.refit,
    )  # fmt: skip
    print(f"registered {ref}: {json.dumps(headline(skill.description['metrics']))}")
    print(_certified_line(skill.description["bounds"]["certified"]))
    print(_verdict_line(skill.description["bounds"]))
    return 0


def cmd_turn(args: argparse.Namespace) -> int:
    from skillbank.runs.evaluate import headline
    from skillbank.workflows.skills import turn_and_register

    ref, skill = turn_and_register(_registry(args), args.ref, args.name, args.by, args.symmetry,
                                   episodes=args.episodes, seed=args.seed)  # fmt: skip
    print(f"registered {ref}: {json.dumps(headline(skill.description['metrics']))}")
    return 0


def _verdict_line(summary: dict[str, Any]) -> str:
    v = summary["verdict"]
    return f"verdict: {v['verdict']}: {v['advice']}"


def _certified_line(c: dict[str, Any]) -> str:
    (low, high), (p_low, p_high) = c["optimum_start"], c["policy_value_start"]
    return (
        f"certified at the start (from the skills and their data): optimum V*_C in [{low:.4g}, {high:.4g}] "
        f"(lower end: {c['optimum_lower_from']}'s value), the composite policy's value in [{p_low:.4g}, {p_high:.4g}]; "
        f"Bellman residuals {c['residual_min']:.3g} to {c['residual_max']:.3g} over {c['residuals']} transitions"
    )


def _print_sampled(summary: dict[str, Any], composite: str) -> None:
    est = summary["sampled"]
    print(
        f"composite {composite}: L1 and C_pi at the start from {est['rollouts']['episodes']} rollouts (± standard "
        f"error), the rest fitted on {est['estimator']['transitions']} replay transitions (± sd of "
        f"{est['estimator']['fits']} bootstrap fits)"
    )
    print(f"  {'':8} {'L1':>16} {'C_pi':>16} {'C*':>16} {'C* paper':>16} {'D*':>16}")
    for stat in ("start", "mean"):
        cells = []
        for m in ("L1", "C_pi", "C_star", "C_star_paper", "D_star"):
            sd = est[f"{m}_{stat}_std"]
            cells.append(f"{est[f'{m}_{stat}']:.4g}" + ("" if sd is None else f" ± {sd:.2g}"))
        print(f"  {stat:8} " + " ".join(f"{c:>16}" for c in cells))


def _print_grid(summary: dict[str, Any], composite: str) -> None:
    print(f"composite {composite} on a {summary['grid']['states']}-state grid")
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


def cmd_bound(args: argparse.Namespace) -> int:
    from skillbank.composition.bounds import bound_mean

    registry = _registry(args, create=False)
    skills = [registry.load(ref) for ref in args.refs]
    summary = bound_mean(
        skills, args.weights, registry.replay_union([s.ref for s in skills]), sampled=args.sampled,
        tolerance=args.tolerance, spacing=args.spacing, action_points=args.action_points, steps=args.steps,
        fits=args.fits, progress=not args.json,
    )  # fmt: skip
    if args.json:
        _print_json(summary)
        return 0
    composite = " + ".join(f"{w:g}*{s.ref}" for w, s in zip(summary["weights"], skills))
    (_print_sampled if summary["method"] == "sampled" else _print_grid)(summary, composite)
    print(f"if the constituents were exact, {summary['verdict_if_exact']['verdict']}: the bounds above assume "
          "soft-optimal constituents")  # fmt: skip
    print(_certified_line(summary["certified"]))
    print(_verdict_line(summary))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from skillbank.workflows.demo import run_demo

    summary = run_demo(_registry(args), args.out, progress=not args.no_progress)
    text = summary.pop("text")
    if args.json:
        _print_json(summary)
    else:
        print(text)
    return 0


# ----- parser -----------------------------------------------------------------------------------
Add = Callable[[str, str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]


def _tensorboard_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tensorboard", type=Path, metavar="DIR",
                   help="also write the metrics (returns, losses, alpha, evaluations) as TensorBoard events under "
                        "DIR/RUN_NAME; metrics.csv stays the record (needs: pip install 'skillbank[tensorboard]')",
                   )  # fmt: skip


def _run_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that trains: run directories, checkpoints, threads, device."""
    from skillbank.runs.jobs import CHECKPOINT_EVERY
    from skillbank.runs.run import RUNS_ENV

    p.add_argument("--run-dir", type=Path, metavar="DIR",
                   help=f"run directory for checkpoints and metrics.csv (default: a new one under ${RUNS_ENV} or "
                        "~/skillbank-runs)")  # fmt: skip
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest good checkpoint (its other options are its own, "
        "but --steps raises its budget: a finished run goes on and registers a new version; and --store points a "
        "run copied from another machine at its store here)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_at_least_one,
        default=CHECKPOINT_EVERY,
        metavar="N",
        help=f"write a checkpoint every N environment steps (default {CHECKPOINT_EVERY}; the last two are kept)",
    )
    p.add_argument(
        "--eval-every",
        type=_at_least_one,
        metavar="N",
        help="evaluate every N steps into metrics.csv (eval_return, eval_success_rate, eval_speed, eval_octants)",
    )
    p.add_argument("--threads", type=_positive, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="torch device of networks and buffer, e.g. cuda (default cpu)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the gradient computations with torch.compile: faster updates for long runs, after "
        "about 20 s of compiling; needs a C++ compiler (see benchmarks/speed.py)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _tensorboard_option(p)


def _backend_options(p: argparse.ArgumentParser) -> None:
    from skillbank.runs.backends import BACKENDS

    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local: a process pool on this machine (default); ray: one Ray task per run, each with a "
                        "CPU of its own (pip install 'skillbank[ray]')")  # fmt: skip
    p.add_argument("--address", help="the Ray cluster to join (default: start a local Ray instance)")


def _training_commands(add: Add) -> None:
    from skillbank.runs.tasks import ALGORITHMS

    p = add("train", "train a skill on a task file in a resumable run directory, and register it", cmd_train)
    p.add_argument("task", nargs="?", help="a task name in tasks/ (e.g. multigoal) or a path to a .toml task file")
    p.add_argument("--algo", choices=list(ALGORITHMS), help="algorithm (default: the task's)")
    p.add_argument(
        "--steps",
        type=_positive,
        help="environment steps (default: the task's budget); with --resume, raise the run's budget to STEPS",
    )
    p.add_argument("--seed", type=_positive, help="random seed (default: the task's)")
    p.add_argument("--name", help="register under this name (default: TASK-ALGO)")
    p.add_argument("--keep-replay", action="store_true", help="store the replay buffer with the skill (HDF5)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change one hyperparameter of the task's configuration (a TOML value), e.g. alpha=0.03",
    )
    _run_options(p)

    from skillbank.runs.finetune import WARMUP

    p = add("finetune", "fine-tune a registered skill to another task (its observation may extend the skill's) "
            "and register it with fine-tuned-from lineage", cmd_finetune)  # fmt: skip
    p.add_argument("ref", nargs="?", help="the skill to fine-tune (e.g. ant-walk-sql)")
    p.add_argument("--task", help="the new task: a name in tasks/ or a .toml path")
    p.add_argument(
        "--steps",
        type=_positive,
        help="environment steps of fine-tuning (default: the task's budget); with --resume, raise the "
        "run's budget to STEPS",
    )
    p.add_argument("--seed", type=_positive, default=0, help="random seed (default 0)")
    p.add_argument("--name", help="register under this name (default: TASK-finetuned)")
    p.add_argument("--warmup", type=_positive, default=WARMUP,
                   help=f"transitions the pretrained policy collects into a fresh buffer before the first update "
                        f"(default {WARMUP})")  # fmt: skip
    _recipe_options(p)
    p.add_argument("--keep-replay", action="store_true", help="store the replay buffer with the skill (HDF5)")
    _run_options(p)

    p = add("snapshot", "copy a run, without its replay buffer, to a folder small enough to commit (about 1 MB), so "
            "that it outlives its machine: --resume on a copy goes on from its newest checkpoint once the buffer "
            "is refilled (no longer bit for bit)", cmd_snapshot)  # fmt: skip
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run (it may be training)")
    p.add_argument("out", type=Path, metavar="OUT", help="the folder to write (an older snapshot there is replaced)")

    p = add("register", "register a run's newest good checkpoint now, as a milestone version, while the run trains "
            "on: evaluated, with the run's lineage, in the run's store (or --store)", cmd_register)  # fmt: skip
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run (it may be training)")
    p.add_argument("--name", help="register under this name (default: the run's)")
    p.add_argument("--tag", action="append", help="a tag for the version (repeatable)")
    p.add_argument("--episodes", type=_positive, help="evaluation rollouts (default: the task's [eval] episodes)")


def _grid_commands(add: Add) -> None:
    from skillbank.runs.tasks import ALGORITHMS

    p = add("sweep", "train one run per seed and per combination of --set values, register each (tagged with "
            "the sweep's id), and summarise the metrics over seeds", cmd_sweep)  # fmt: skip
    p.add_argument("task", help="a task name in tasks/ or a .toml path")
    p.add_argument("--algo", choices=list(ALGORITHMS), help="algorithm (default: the task's)")
    p.add_argument("--seeds", default="0-2", help="seeds, as ranges and lists: 0-4, 0,2,5 (default 0-2)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a hyperparameter value (TOML), e.g. alpha=0.1 or hidden=[64,64]; repeat a key for a grid "
                        "over its values")  # fmt: skip
    p.add_argument("--steps", type=_at_least_one, help="environment steps of every run (default: the task's)")
    p.add_argument("--workers", type=_at_least_one, default=1, help="parallel runs, one torch thread each (default 1)")
    p.add_argument("--runs-dir", type=Path,
                   help="where the runs' directories go; every worker must reach it (default: $SKILLBANK_RUNS or "
                        "~/skillbank-runs)")  # fmt: skip
    p.add_argument("--checkpoint-every", type=_at_least_one, default=10_000, metavar="N",
                   help="checkpoint every N steps, where a retried run resumes (default 10000)")  # fmt: skip
    _tensorboard_option(p)
    _backend_options(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    from skillbank.workflows.experiment import EVAL_EPISODES, EVAL_EVERY, METHODS

    p = add("experiment", "fine-tuned against from scratch: a grid of tasks x methods x seeds on a process pool, "
            "resumable; writes OUT/summary.json and a learning-curve figure per task", cmd_experiment)  # fmt: skip
    p.add_argument("kind", choices=["finetune"], help="the experiment (finetune: the SQL paper's section 6.3)")
    p.add_argument("--pretrained", required=True, help="the skill to fine-tune (method finetune), e.g. ant-walk-sql")
    p.add_argument("--tasks", nargs="+", required=True, help="tasks with an [experiment] threshold, e.g. ant-umaze")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods (default: all)")
    p.add_argument("--seeds", type=_at_least_one, default=3, help="seeds per task and method (default 3)")
    p.add_argument("--steps", type=_at_least_one, required=True, help="environment steps of every run")
    p.add_argument("--workers", type=_at_least_one, default=1, help="parallel runs, one torch thread each (default 1)")
    p.add_argument("--out", type=Path, required=True, help="folder for runs/, store/, summary.json and figures")
    p.add_argument("--eval-every", type=_at_least_one, default=EVAL_EVERY,
                   help=f"evaluate every N steps (default {EVAL_EVERY})")  # fmt: skip
    p.add_argument("--eval-episodes", type=_at_least_one, default=EVAL_EPISODES,
                   help=f"rollouts per evaluation (default {EVAL_EPISODES})")  # fmt: skip
    p.add_argument("--compile", action="store_true",
                   help="compile every run's gradient computations (torch.compile): faster for long runs")  # fmt: skip
    _recipe_options(p)
    _tensorboard_option(p)
    _backend_options(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add(
        "curves",
        "draw learning curves of run directories: the mean and spread over seeds per method (runs that differ in more "
        "than the seed, such as a setting, are different methods)",
        cmd_curves,
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (with metrics.csv)")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument(
        "--metric",
        default="episode_return",
        help="column of metrics.csv to draw (default episode_return; eval_return where evaluated)",
    )
    p.add_argument("--title", help="figure title")
    p.add_argument("--threshold", type=float, help="draw a dashed line at this value (e.g. a task's threshold)")


def _rollout_commands(add: Add) -> None:
    from skillbank.composition.grid_bounds import SPACING

    p = add("eval", "roll a skill out and count where its rollouts end", cmd_eval)
    p.add_argument("ref", help="skill reference")
    p.add_argument("--task", help="roll it out zero-shot on this task (a name or a task file) instead of its own; "
                   "it must have the skill's observation and action spaces, e.g. a walker in an arena")  # fmt: skip
    p.add_argument("--episodes", type=_positive, default=100, help="number of rollouts (default 100)")
    p.add_argument("--seed", type=_positive, default=0, help="seed of the rollouts (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON object")

    p = add("plot", "plot rollouts and Q contours with sampled actions (SQL paper, Fig. 3); for composites "
            "also maps of the true error beside its bounds (NAME-vN-bounds.png); on an Ant task, the rollouts "
            "from above over the arena's walls", cmd_plot)  # fmt: skip
    p.add_argument("ref", help="skill reference")
    p.add_argument("--out", type=Path, help="PNG file to write (default: NAME-vN.png, NAME-vN-on-TASK.png)")
    p.add_argument("--task", help="draw its rollouts zero-shot over this Ant arena instead of its own task")
    p.add_argument("--episodes", type=_positive, default=50, help="rollouts to draw (default 50)")
    p.add_argument("--seed", type=_positive, default=0, help="seed of the rollouts and samples (default 0)")
    p.add_argument("--spacing", type=float, default=SPACING, help=f"grid spacing of a composite's bound maps "
                   f"(default {SPACING})")  # fmt: skip


def _render_command(add: Add) -> None:
    from skillbank.viz.video import CAMERAS

    p = add("render", "a video of a skill's rollouts (MuJoCo rendered offscreen, headless; 2-D tasks drawn): "
            "episodes side by side, captioned with the step and the return so far", cmd_render)  # fmt: skip
    p.add_argument("ref", help="skill reference (a composite too)")
    p.add_argument("--task", help="roll it out in this task instead of its own (the same spaces)")
    p.add_argument("--episodes", type=_at_least_one, default=1, help="episodes, tiled side by side (default 1)")
    p.add_argument("--seed", type=_positive, default=0, help="seed of the first episode (default 0)")
    p.add_argument("--out", type=Path, help="the .gif or .mp4 file to write (default NAME-vN.gif)")
    p.add_argument("--camera", choices=CAMERAS,
                   help="top: from above, over the walls and the goal (the default in an arena); track: following "
                        "the torso (the default on open ground)")  # fmt: skip
    p.add_argument("--fps", type=float, help="frames per second (default: real time)")
    p.add_argument(
        "--every",
        type=_at_least_one,
        default=1,
        help="one frame every N steps: a shorter file that still plays in real time (default 1)",
    )


def _composition_commands(add: Add) -> None:
    from skillbank.composition.compose import CORRECTION_STEPS, SAMPLER_STEPS, SAMPLERS
    from skillbank.composition.grid_bounds import ACTION_POINTS, SPACING
    from skillbank.composition.sampled_bounds import FIT_STEPS, FITS
    from skillbank.nn.composite import OPERATORS

    p = add("compose", "compose registered skills into a new one and register it with its lineage", cmd_compose)
    p.add_argument("refs", nargs="+", metavar="REF", help="skill references (two or more)")
    p.add_argument("--op", choices=OPERATORS, default="mean",
                   help="sum or mean of Q (the paper's composition), soft OR, max-ent GPI, or divergence "
                        "correction (mean minus a learned correction); default mean")  # fmt: skip
    p.add_argument("--weights", type=float, nargs="+", help="one weight per skill (default: equal)")
    p.add_argument("--name", required=True, help="register the composite under this name")
    p.add_argument("--sampler", choices=SAMPLERS, default=SAMPLERS[0],
                   help="resample: training-free importance resampling from the constituents' samplers; "
                        "svgd: train a fresh SVGD sampler on their replay buffers (default resample)")  # fmt: skip
    p.add_argument("--sampler-steps", type=_positive, default=SAMPLER_STEPS,
                   help=f"svgd sampler training steps (default {SAMPLER_STEPS})")  # fmt: skip
    p.add_argument("--langevin-steps", type=_positive, default=0, help="Langevin refinement steps (resample)")
    p.add_argument("--correction-steps", type=_positive, default=CORRECTION_STEPS,
                   help=f"dc correction training steps (default {CORRECTION_STEPS})")  # fmt: skip
    p.add_argument("--rescale-alpha", action="store_true", help="compose skills of different alpha by rescaling Q")
    p.add_argument("--refit", type=_positive, default=0, metavar="UPDATES",
                   help="first give each SQL constituent UPDATES more SQL updates on the union of all the "
                        "constituents' replay buffers, relabelled with its own reward: no environment steps; it "
                        "learns the states the others reach, where the composite goes (needs --keep-replay; "
                        "default 0, none)")  # fmt: skip
    p.add_argument("--episodes", type=_positive, default=100, help="evaluation rollouts (default 100)")
    p.add_argument("--tolerance", type=float, help="verdict tolerance in reward units (default 5%% of |V|)")
    p.add_argument("--spacing", type=float, default=SPACING,
                   help=f"state grid spacing of the bound (2-D tasks; default {SPACING})")  # fmt: skip
    p.add_argument("--seed", type=_positive, default=0, help="seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    from skillbank.envs.symmetry import GROUPS

    p = add("turn", "register a skill turned by a symmetry of its task (a walker turned by a quarter turn walks each "
            "gait 90° further round): exact, no training; with turned-from lineage", cmd_turn)  # fmt: skip
    p.add_argument("ref", metavar="REF", help="the skill to turn (e.g. ant-walk-sql)")
    p.add_argument("--by", type=int, required=True, help="how many times to apply the generator (ant-c4: 90° each)")
    p.add_argument("--symmetry", choices=list(GROUPS), default="ant-c4", help="the group (default ant-c4)")
    p.add_argument("--name", required=True, help="register the turned skill under this name")
    p.add_argument("--episodes", type=_positive, default=10, help="evaluation rollouts (default 10)")
    p.add_argument("--seed", type=_positive, default=0, help="seed (default 0)")

    p = add("bound", "bound the error of the mean of skills against the combined task's optimum", cmd_bound)
    p.add_argument("refs", nargs="+", metavar="REF", help="skill references (two or more)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per skill (default: equal)")
    p.add_argument("--spacing", type=float, default=SPACING, help=f"state grid spacing (default {SPACING})")
    p.add_argument("--action-points", type=_positive, default=ACTION_POINTS,
                   help=f"action grid points per axis (default {ACTION_POINTS})")  # fmt: skip
    p.add_argument("--tolerance", type=float, help="verdict tolerance in reward units (default 5%% of |V|)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--sampled", action="store_true",
                   help="estimate the bounds from the constituents' replay buffers by fitted TD, with their spread "
                        "(the default, and the only way, for tasks other than 2-D MultiGoal)")  # fmt: skip
    p.add_argument("--steps", type=_positive, default=FIT_STEPS, help=f"TD steps per sampled fit (default {FIT_STEPS})")
    p.add_argument(
        "--fits", type=_positive, default=FITS, help=f"bootstrap fits of the sampled estimate (default {FITS})"
    )


def _store_commands(add: Add) -> None:
    from skillbank.store.archive import MAX_IMPORT_BYTES

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
    p.add_argument("--max-size", type=_size, default=MAX_IMPORT_BYTES, metavar="BYTES",
                   help=f"refuse an archive larger than this, in all or in one member (default "
                        f"{MAX_IMPORT_BYTES >> 30} GiB; suffixes K, M, G)")  # fmt: skip


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

    _training_commands(add)
    _grid_commands(add)
    _rollout_commands(add)
    _composition_commands(add)
    _render_command(add)
    _store_commands(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SkillbankError as error:
        print(f"skillbank {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left early (skillbank list | head): no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
