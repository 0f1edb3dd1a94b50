"""Why does an SQL walker not walk? Four measurements on a run's newest checkpoint (issue 19).

    python experiments/sql_diagnosis.py --run-dir ~/skillbank-runs/walk-sql --out docs/results

1. **Does its Q know how to walk?** Displacement speed of 10 rollouts of the sampler, and of greedy policies that
   take the best of 16 or 64 sampler actions under Q, or the sampler at scaled noise.
2. **Is Q overestimated?** ``Q(s0, a0)`` against the discounted return that followed (plus ``gamma^T V(s_T)``,
   the value beyond the time limit that Q counts and a 200-step rollout does not).
3. **Is the soft value of eq. (10) estimated well?** At the rollouts' states, 16 and 4,096 uniform particles and
   the sampler mixture proposal (``value_proposal = "sampler"``) against 65,536 uniform particles.
4. **Does the sampler follow exp(Q / alpha)?** Plain SVGD on particles (no network) started from the sampler's
   actions: if it keeps their spread, the sampler matches its Q, and a flat Q makes it wide.

Writes ``OUT/ant_walk_sql_diagnosis.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from skillbank.algos.losses import (
    sampler_mixture_proposal,
    soft_value_importance,
    soft_value_uniform,
    squashed_log_density_gradient,
    svgd_direction,
)
from skillbank.runs.evaluate import locomotion, make_skill_env
from skillbank.store.rollouts import Rollout

sys.path.insert(0, str(Path(__file__).parent))
from ant_headings import from_run  # noqa: E402


def rollout(env, policy, seed: int) -> tuple[Rollout, list[np.ndarray], list[float], list[tuple]]:
    obs, info = env.reset(seed=seed)
    states, rewards, steps, positions, done = [], [], [], [(info["x_position"], info["y_position"])], False
    while not done:
        action, extra = policy(obs)
        states.append(obs)
        steps.append(extra)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        positions.append((info["x_position"], info["y_position"]))
        done = terminated or truncated
    states.append(obs)
    return Rollout(np.zeros((1, 1)), float(sum(rewards)), -1, np.asarray(positions)), states, rewards, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    skill, label = from_run(args.run_dir)
    env, g, d, alpha, gamma = (
        make_skill_env(skill),
        torch.Generator().manual_seed(0),
        skill.action_dim,
        skill.alpha,
        skill.gamma,
    )
    q = skill.q
    report: dict = {
        "walker": label,
        "alpha": alpha,
        "command": f"python experiments/sql_diagnosis.py --run-dir {args.run_dir}",
    }

    def policy(n: int, noise_scale: float = 1.0):
        def act(obs):
            o = torch.as_tensor(obs, dtype=torch.float32)[None]
            with torch.no_grad():
                a = skill.sampler(o, noise_scale * torch.randn(1, n, d, generator=g))
                best = q.values(o, a).reshape(-1)
                a = a[0, best.argmax()]
            return skill.to_env_action(a.numpy()), (float(best.max()), a)

        return act

    print("1. sampler against greedy policies", flush=True)
    speeds, states, first = {}, [], []
    for name, act in [("sampler", policy(1)), ("best of 16 sampler actions", policy(16)),
                      ("best of 64 sampler actions", policy(64)), ("sampler, noise x 0.5", policy(1, 0.5)),
                      ("sampler, noise 0", policy(1, 0.0))]:  # fmt: skip
        paths = []
        for episode in range(args.episodes):
            path, visited, rewards, steps = rollout(env, act, episode)
            paths.append(path)
            if name == "sampler":
                states += visited[:-1:8]
                discounted = sum(gamma**t * r for t, r in enumerate(rewards))
                with torch.no_grad():
                    tail = float(skill.soft_value(torch.as_tensor(visited[-1], dtype=torch.float32)[None], 4096, g)[0])
                first.append({"q": steps[0][0], "return": discounted, "tail": gamma ** len(rewards) * tail,
                              "steps": len(rewards)})  # fmt: skip
        speeds[name] = {k: locomotion(paths, env.unwrapped.dt)[k] for k in ("mean_speed", "octants_covered")}
        speeds[name]["mean_return"] = float(np.mean([p.episode_return for p in paths]))  # the task's own measure
        print(f"  {name}: {speeds[name]}", flush=True)
    report["speed"] = speeds

    q0, mc = np.mean([f["q"] for f in first]), np.mean([f["return"] + f["tail"] for f in first])
    report["overestimation"] = {"q_start": q0, "return_plus_tail": mc, "ratio": q0 / mc, "episodes": first}
    print(f"2. Q(s0, a0) {q0:.1f} against the return that followed plus the tail {mc:.1f}", flush=True)

    states = torch.as_tensor(np.array(states[::2]), dtype=torch.float32)
    with torch.no_grad():

        def uniform(m):
            return alpha * soft_value_uniform(
                q(states, torch.rand(len(states), m, d, generator=g) * 2 - 1).min(0).values, d
            )

        def mixture(m):
            centres = skill.sample_actions(states, m // 2, generator=g)
            box = torch.rand(len(states), m - m // 2, d, generator=g) * 2 - 1
            offsets = torch.randn(len(states), m // 2, d, generator=g)
            particles, log_q = sampler_mixture_proposal(centres, box, offsets)
            return alpha * soft_value_importance(q(states, particles).min(0).values, log_q)

        reference = uniform(65_536)
        values = {}
        for name, estimate, m in [("uniform", uniform, 16), ("uniform", uniform, 4096),
                                  ("sampler mixture", mixture, 16), ("sampler mixture", mixture, 256)]:  # fmt: skip
            name = f"{name} {m}"
            gap = estimate(m) - reference
            values[name] = {"mean_gap": float(gap.mean()), "sd_gap": float(gap.std())}
            print(f"3. V by {name} minus V by 65,536 uniform: {values[name]}", flush=True)
        actions = skill.sample_actions(states, 256, generator=g)
        spread = q.values(states, actions)
        values["q_max_minus_mean_over_256_sampler_actions"] = float((spread.max(1).values - spread.mean(1)).mean())
    report["soft_value"] = values

    x = skill.sample_actions(states[:40], 32, generator=g)
    start_spread = float(x.std(1).mean())
    for _ in range(3000):
        x = (x + 1e-4 * svgd_direction(x, x, squashed_log_density_gradient(q, states[:40], x))).clamp(-0.999, 0.999)
    gradient = squashed_log_density_gradient(q, states[:40], skill.sample_actions(states[:40], 32, generator=g))
    report["svgd"] = {"sampler_spread_per_dim": start_spread, "after_3000_svgd_steps": float(x.std(1).mean()),
                      "grad_log_p_norm": float(gradient.norm(dim=-1).mean()),
                      "grad_q_norm_reward_units": float(alpha * gradient.norm(dim=-1).mean())}  # fmt: skip
    print(f"4. {report['svgd']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ant_walk_sql_diagnosis.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out / 'ant_walk_sql_diagnosis.json'}")


if __name__ == "__main__":
    main()
