"""Does a walker's noise steer it? Each of ``--draws`` noise vectors is held for ``--hold-s`` seconds from
``--starts`` states reached by walking with fresh noise first; the direction it walked is measured in the torso's
heading frame at the start of the hold.

If the noise steered, each draw would walk one way from every start (a mean resultant length, "consistency", near
1) and different draws different ways. The baseline is the same starts walked on with fresh noise at every step
(the walker as trained), the same number of times: a held draw that steers is more consistent than that. First,
``--starts`` whole episodes of the walker as trained say how long it stays up in the maze and why it falls::

    python experiments/walker_steering.py --walker ant-walk-sql@3 --task ant-umaze-canonical \
        --out docs/results/umaze/walker_steering.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from skillbank import Registry
from skillbank.nn.skill import box_to_json
from skillbank.runs.finetune import widen
from skillbank.runs.tasks import load_task

sys.path.insert(0, str(Path(__file__).parent))
from command_line import command_line
from umaze_latent import LatentWalkerEnv  # noqa: E402


def consistency(angles: list[float]) -> float:
    """The mean resultant length of unit vectors at ``angles``: 1 when all point one way, near 0 when spread."""
    return float(abs(np.mean(np.exp(1j * np.asarray(angles))))) if angles else float("nan")


def episode_end(env: LatentWalkerEnv, rng: np.random.Generator, seed: int) -> dict[str, object]:
    """One episode of the walker with fresh noise at every step: its length and how it ended."""
    env.reset(seed=seed)
    steps, ended, truncated, info = 0, False, False, {}
    while not (ended or truncated):
        *_, ended, truncated, info = env.step(rng.standard_normal(env.walker.action_dim))
        steps += 1
    base = env.unwrapped
    cause = "time" if not ended else "flipped" if base.is_flipped else f"torso z {base.data.qpos[2]:.2f}"
    return {"steps": steps, "ended_by": cause, "final_xy": base.data.qpos[:2].round(2).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walker", default="ant-walk-sql@3")
    parser.add_argument("--task", default="ant-umaze-canonical")
    parser.add_argument("--store", type=Path, default=Path("skills_store"))
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--hold-s", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/umaze/walker_steering.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    maze = load_task(args.task).make_env()
    walker = widen(Registry(args.store).load(args.walker), box_to_json(maze.observation_space)).requires_grad_(False)
    env = LatentWalkerEnv(maze, walker, hold=1, bound=10.0)
    steps = round(args.hold_s / maze.unwrapped.dt)
    rng = np.random.default_rng(0)
    episodes = [episode_end(env, rng, seed) for seed in range(args.starts)]
    print(json.dumps(episodes), flush=True)
    rows, pooled, terminated = [], [], 0
    for draw in range(args.draws):
        noise = rng.standard_normal(walker.action_dim)
        angles, speeds, fresh = [], [], []
        for start in range(args.starts):
            env.reset(seed=start)
            alive = True
            for _ in range(steps):  # walk with fresh noise first, so that each hold starts mid-gait
                *_, ended, truncated, _ = env.step(rng.standard_normal(walker.action_dim))
                alive = alive and not (ended or truncated)
            if not alive:
                continue
            base = env.unwrapped
            before, (cos, sin) = base.data.qpos[:2].copy(), env.heading()
            saved = base.data.qpos.copy(), base.data.qvel.copy(), env._obs.copy()
            for held in (True, False):  # the held draw, then from the same state the walker's own fresh noise
                base.set_state(saved[0], saved[1])
                env._obs = saved[2].copy()
                for _ in range(steps):
                    *_, ended, truncated, _ = env.step(noise if held else rng.standard_normal(walker.action_dim))
                    if ended or truncated:
                        terminated, alive = terminated + held, False
                        break
                if not alive:
                    break
                dx, dy = base.data.qpos[:2] - before
                angle = float(np.arctan2(-sin * dx + cos * dy, cos * dx + sin * dy))
                if held:
                    angles.append(angle)
                    speeds.append(float(np.hypot(dx, dy) / args.hold_s))
                else:
                    fresh.append(angle)
        pooled += angles
        mean = float(np.degrees(np.angle(np.mean(np.exp(1j * np.asarray(angles)))))) if angles else None
        rows.append({"draw": draw, "holds": len(angles), "mean_direction_deg": mean, "consistency": consistency(angles),
                     "fresh_noise_consistency": consistency(fresh[: len(angles)]),
                     "mean_speed": float(np.mean(speeds)) if speeds else None})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    kept = [r for r in rows if r["holds"] >= 2]
    within = [r["consistency"] for r in kept]
    result = {"command": command_line(args),
              "walker": args.walker, "task": args.task, "episodes_as_trained": episodes,
              "mean_consistency_within_a_draw": float(np.mean(within)),
              "mean_consistency_with_fresh_noise": float(np.nanmean([r["fresh_noise_consistency"] for r in kept])),
              "consistency_of_all_draws_pooled": consistency(pooled), "holds_ended_by_termination": terminated,
              "draws": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"consistency within a draw {result['mean_consistency_within_a_draw']:.2f}, with fresh noise from the same "
        f"states {result['mean_consistency_with_fresh_noise']:.2f}, all draws pooled "
        f"{result['consistency_of_all_draws_pooled']:.2f}, {terminated} holds ended by termination"
    )


if __name__ == "__main__":
    main()
