"""Why does SQL's walker keep fewer headings as it speeds up: its critic, or its sampler?

The walk is symmetric under the Ant's quarter turn (``skillbank.envs.symmetry``), and the start state is fixed by it, so
the soft-optimal ``exp(Q / alpha)`` at the start weighs an action and its three turns alike. Two measurements per
walker tell a critic that breaks the symmetry from a sampler that fails to follow an invariant one:

- ``critic``: at the start state (a reset averaged over the four turns, to remove Ant-v5's reset noise), for the
  sampler's own actions ``a``, ``Q(s0, g^k a) - Q(s0, a)`` for the three turns ``g^k``, in units of alpha. ``exp``
  of it is how much less (below 0) the Boltzmann policy of the learned critic weighs the turned actions: at -10
  the critic itself has chosen a heading, whatever the sampler does.
  (``turned_above_own_share``: how often the turn scores higher.)
- ``samplers``: speed and heading octants of rollouts from the start with the amortized SVGD sampler, and with
  sampling-importance-resampling of ``exp(Q / alpha)`` (``ResamplingSampler``: proposals from the sampler plus a
  uniform share). If resampling keeps the speed and covers more octants, the amortized sampler is the bottleneck.
  ``--hotter 10`` also resamples ``exp(Q / (10 alpha))``: does the same critic hold other headings' gaits a little
  below its favourite, so that a higher temperature would keep them at speed?

    python experiments/heading_diagnosis.py --refs ant-walk-sql@1 --run-dir ~/skillbank-runs/walk-sql-warm \\
        --episodes 20 --out docs/results/ant_walk_heading_diagnosis.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ant_headings import from_run  # noqa: E402

from skillbank.envs.symmetry import ant_quarter_turn  # noqa: E402
from skillbank.nn.composite import ResamplingSampler  # noqa: E402
from skillbank.runs.evaluate import locomotion, make_skill_env, rollouts  # noqa: E402
from skillbank.store.registry import Registry  # noqa: E402


@torch.no_grad()
def critic_asymmetry(skill, actions: int = 1000, seed: int = 0) -> dict[str, float]:
    env = make_skill_env(skill)
    obs, _ = env.reset(seed=seed)
    turn_obs, turn_act = (torch.as_tensor(m, dtype=torch.float32) for m in ant_quarter_turn())
    # The start pose is fixed by the turn; Ant-v5's reset noise is not, so average a reset over the four turns.
    s = torch.as_tensor(obs, dtype=torch.float32)[None]
    s0 = sum(s @ torch.linalg.matrix_power(turn_obs, k).T for k in range(4)) / 4
    assert torch.allclose(s0 @ turn_obs.T, s0, atol=1e-6)
    a = skill.sample_actions(s0, actions, torch.Generator().manual_seed(seed))[0]  # (N, 8)
    q = skill.q_values(s0.expand(actions, -1), a)
    gaps = []
    for k in (1, 2, 3):
        turned = a @ torch.linalg.matrix_power(turn_act, k).T
        gaps.append(((skill.q_values(s0.expand(actions, -1), turned) - q) / skill.alpha).flatten())
    gaps = torch.stack(gaps)  # (3, N)
    return {
        "alpha": skill.alpha,
        "q_at_sampler_actions_mean": float(q.mean()),
        "q_at_sampler_actions_sd": float(q.std()),
        "turned_minus_own_over_alpha_mean": [float(g.mean()) for g in gaps],
        "turned_minus_own_over_alpha_median": [float(g.median()) for g in gaps],
        "turned_above_own_share": [float((g > 0).float().mean()) for g in gaps],
    }


def headings(skill, episodes: int) -> dict[str, float]:
    env = make_skill_env(skill)
    return locomotion(rollouts(skill, episodes, seed=0, env=env), env.unwrapped.dt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="skills_store")
    parser.add_argument("--refs", nargs="*", default=[], help="stored walkers")
    parser.add_argument("--run-dir", type=Path, nargs="*", default=[], help="runs whose newest checkpoint to use")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--proposals", type=int, default=64, help="the resampler's proposals from the sampler")
    parser.add_argument("--hotter", type=float, nargs="*", default=[], help="also resample at these multiples of alpha")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    walkers = [(Registry(args.store, create=False).load(ref), ref) for ref in args.refs]
    walkers += [from_run(run) for run in args.run_dir]
    results = {}
    for skill, label in walkers:
        resampled = copy.deepcopy(skill)
        resampled.sampler = ResamplingSampler([skill.sampler], proposals=args.proposals)
        samplers = {"amortized": headings(skill, args.episodes), "resampling": headings(resampled, args.episodes)}
        for factor in args.hotter:
            hot = copy.deepcopy(resampled)
            hot.alpha = skill.alpha * factor
            samplers[f"resampling at {factor:g} alpha"] = headings(hot, args.episodes)
        results[label] = {"critic": critic_asymmetry(skill), "samplers": samplers}
        print(label, json.dumps(results[label]), flush=True)
    command = "python experiments/heading_diagnosis.py " + " ".join(
        [f"--store {args.store}"] + (["--refs", *args.refs] if args.refs else [])
        + (["--run-dir", *map(str, args.run_dir)] if args.run_dir else [])
        + [f"--episodes {args.episodes}", f"--proposals {args.proposals}"]
        + (["--hotter", *map(str, args.hotter)] if args.hotter else []) + [f"--out {args.out}"]
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"episodes": args.episodes, "walkers": results, "command": command}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
