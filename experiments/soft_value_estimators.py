"""How well do the estimators of SQL's soft value (eq. 10) do on the shipped walkers? (issue 33)

    python experiments/soft_value_estimators.py ant-walk-sql@1 ant-walk-sql@2 ant-walk-sql@3 --out docs/results

At the states of 10 rollouts of each walker's own sampler (every 8th), in reward units, each estimator with 16
and 256 particles against 65,536 uniform particles and 4,096 from the sampler: ``uniform`` (the paper's), ``sampler``
(half uniform, half around the sampler's actions) and ``sampler-density`` (the sampler's own actions, weighted by
their log-density through the Jacobian of noise -> action). What matters for the Q target is how much an
estimator's error varies across states (the gaps' ``sd``) against how much Q varies across the sampler's own
actions at a state (``q_sd_over_sampler_actions``): the signal that the sampler climbs. Writes
``OUT/soft_value_estimators.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from skillbank import Registry
from skillbank.algos.losses import sampler_mixture_proposal, soft_value_importance, soft_value_uniform
from skillbank.runs.evaluate import make_skill_env

PARTICLES = 16
REFERENCE = 65_536  # uniform particles of the reference value
DENSITY_REFERENCE = 4_096  # sampler particles of the other reference: each needs its own 8 x 8 Jacobian


def visited_states(skill, episodes: int, every: int = 8) -> torch.Tensor:
    env, g, states = make_skill_env(skill), torch.Generator().manual_seed(0), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        done, t = False, 0
        while not done:
            if t % every == 0:
                states.append(obs)
            obs, _, terminated, truncated, _ = env.step(skill.act(obs, g))
            done, t = terminated or truncated, t + 1
    return torch.as_tensor(np.array(states), dtype=torch.float32)


@torch.no_grad()
def measure(skill, states: torch.Tensor, seed: int = 0) -> dict:
    g, d, alpha, q = torch.Generator().manual_seed(seed), skill.action_dim, skill.alpha, skill.q

    def chunked(estimate, m):  # a few states at a time: 65,536 particles of 256 states would need 17 GB
        return torch.cat([estimate(part, m) for part in states.split(max(1, 2**19 // m))])

    def scaled(obs, actions):
        return q(obs, actions).min(0).values

    def uniform(obs, m):
        return soft_value_uniform(scaled(obs, torch.rand(len(obs), m, d, generator=g) * 2 - 1), d)

    def mixture(obs, m):
        n = len(obs)
        centres = skill.sampler(obs, torch.randn(n, m // 2, d, generator=g))
        particles, log_q = sampler_mixture_proposal(
            centres, torch.rand(n, m - m // 2, d, generator=g) * 2 - 1, torch.randn(n, m // 2, d, generator=g)
        )
        return soft_value_importance(scaled(obs, particles), log_q)

    def density(obs, m):
        particles, log_q = skill.sampler.sample_with_log_density(obs, torch.randn(len(obs), m, d, generator=g))
        return soft_value_importance(scaled(obs, particles), log_q)

    references = {f"uniform_{REFERENCE}": alpha * chunked(uniform, REFERENCE),
                  f"sampler-density_{DENSITY_REFERENCE}": alpha * chunked(density, DENSITY_REFERENCE)}  # fmt: skip
    gap = references[f"sampler-density_{DENSITY_REFERENCE}"] - references[f"uniform_{REFERENCE}"]
    out = {"references": {"sampler-density minus uniform": {"mean": float(gap.mean()), "sd": float(gap.std())}}}
    for name, estimate in (("uniform", uniform), ("sampler", mixture), ("sampler-density", density)):
        for m in (PARTICLES, 256):
            value = alpha * chunked(estimate, m)
            out[f"{name} {m}"] = {
                f"gap_to_{ref}": {"mean": float((value - v).mean()), "sd": float((value - v).std())}
                for ref, v in references.items()
            }
    spread = skill.q_values(states, skill.sampler(states, torch.randn(len(states), 256, d, generator=g)))
    out["q_sd_over_sampler_actions"] = float(spread.std(1).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("refs", nargs="+", help="SQL skills, e.g. ant-walk-sql@2")
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    command = f"python experiments/soft_value_estimators.py {' '.join(args.refs)} --episodes {args.episodes}"
    registry, report = Registry(args.store), {"command": command, "skills": {}}
    for ref in args.refs:
        skill = registry.load(ref)
        states = visited_states(skill, args.episodes)
        report["skills"][ref] = {"states": len(states), "alpha": skill.alpha, **measure(skill, states)}
        print(ref, json.dumps(report["skills"][ref], indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soft_value_estimators.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
