"""Certified intervals for the shipped learned corner skills, checked against the exact grid optimum.

    python experiments/certified.py --store skills_store --out docs/results

1. Each skill's own error ``Q*_k - Q_k`` from its Bellman residuals (replay and own rollouts), against
   the grid's ``Q*_k``.
2. The certified interval of east+north and east+west (mean composites): coverage of ``Q*_C`` at the
   replay union's transitions, mean width against the mean true error, the verdict; maps as PNG.
3. Divergence correction: with oracle constituents (exact ``Q*_k`` as networks), dc's learned correction
   against the exact ``Q_Sigma - Q*_C``; with the learned constituents, what the certificate says of it.
Writes certified.json and certified_<pair>.png into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from skillbank.composition.bounds import certify, coverage_on_grid
from skillbank.composition.certified import own_error, q_interval, soft_values
from skillbank.composition.compose import compose
from skillbank.composition.grid_bounds import q_on_grid, region_of
from skillbank.composition.oracle import GridModel
from skillbank.envs import make_task_env
from skillbank.store.registry import Registry
from skillbank.viz.plot import plt, save_figure

SPACING, ACTIONS = 0.2, 11


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class OracleQ(torch.nn.Module):
    """The exact ``Q*(s, a) = r(s, a) + gamma (1 - done) V*(s')`` of a MultiGoal task, as a Q-network:
    the dynamics and reward are the task's own, ``V*`` the grid solver's, interpolated bilinearly."""

    def __init__(self, env, grid: GridModel, v_star: torch.Tensor, gamma: float) -> None:
        super().__init__()
        self.env, self.grid, self.v_star, self.gamma = env, grid, v_star, gamma
        self.obs_dim, self.act_dim = 2, 2

    @torch.no_grad()
    def values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        s = np.broadcast_to(obs.double().numpy()[:, None, :], actions.shape).reshape(-1, 2)
        a = actions.double().numpy().reshape(-1, 2)
        nxt = self.env.transition(s, a)
        reward, goal = self.env.reward(nxt, a)
        later = self.grid.interpolate(self.v_star, nxt).numpy() * (goal < 0)
        return torch.as_tensor(reward + self.gamma * later, dtype=torch.float32).reshape(actions.shape[:-1])


def own_errors(registry: Registry, names: list[str]) -> dict:
    out = {}
    for name in names:
        skill = registry.load(name)
        task = skill.description["task"]
        replay = registry.replay_buffer(skill.ref)
        n = len(replay)
        transitions = (replay.observations[:n], replay.actions[:n], replay.rewards[:n], replay.next_observations[:n],
                       replay.terminals[:n])  # fmt: skip
        started = time.perf_counter()
        mine = own_error(skill, transitions, lambda h, t=task: make_task_env(t, max_episode_steps=h))
        env = make_task_env(task).unwrapped
        grid = GridModel(env, SPACING, ACTIONS)
        v_star = grid.solve(grid.reward(env), skill.alpha, skill.gamma).v
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(1))[:20_000]
        obs, actions, rewards, nxt, done = (t[keep] for t in transitions)
        later = soft_values([skill.q], [1.0], skill.alpha, nxt, 512, torch.Generator().manual_seed(2))["value"]
        low, high = q_interval(rewards, done, later, skill.gamma, mine["lo"], mine["hi"])
        truth = rewards.double() + skill.gamma * (1 - done.double()) * grid.interpolate(v_star, nxt.double().numpy())
        q = skill.q.values(obs.float(), actions.float().unsqueeze(1))[:, 0].double().detach()
        v0 = float(grid.interpolate(v_star, np.zeros((1, 2)))[0])
        mine.update(
            seconds=round(time.perf_counter() - started, 1),
            exact_error_start=v0 - mine["value_start"],
            coverage_on_own_data=float(((truth >= low) & (truth <= high)).double().mean()),
            mean_width_on_own_data=float((high - low).mean()),
            mean_true_error_on_own_data=float((truth - q).abs().mean()),
        )
        log(f"{name}: residuals {mine['residual_min']:.3g}..{mine['residual_max']:.3g}, own error at the start in "
            f"[{mine['error_start_at_least']:.3g}, {mine['error_start_at_most']:.3g}] (exact "
            f"{mine['exact_error_start']:.3g}), coverage {mine['coverage_on_own_data']:.3f}")  # fmt: skip
        out[name] = mine
    return out


def plot_coverage(coverage: dict, title: str, out: Path) -> Path:
    from matplotlib.colors import LogNorm, SymLogNorm

    xy = coverage["positions"]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4))
    error = coverage["true_error"]
    top = float(np.abs(error).max()) or 1.0
    shown = axes[0].scatter(*xy.T, c=error, s=3, cmap="RdBu_r", norm=SymLogNorm(1.0, vmin=-top, vmax=top))
    fig.colorbar(shown, ax=axes[0], label="Q*_C − Q_Σ (reward units, symmetric log)")
    axes[0].set_title("true error at the data's (s, a)")
    covered = coverage["covered"]
    axes[1].scatter(*xy[covered].T, s=3, color="tab:green", label=f"covered ({covered.mean():.1%})")
    axes[1].scatter(*xy[~covered].T, s=6, color="tab:red", label="not covered")
    axes[1].legend(loc="lower left", fontsize=7)
    axes[1].set_title("does the interval hold Q*_C?")
    width = coverage["low_gap"] + coverage["high_gap"]
    shown = axes[2].scatter(*xy.T, c=np.maximum(width, 1e-3), s=3, cmap="viridis", norm=LogNorm())
    fig.colorbar(shown, ax=axes[2], label="width of the interval (reward units, log)")
    axes[2].set_title(f"width: mean {width.mean():.3g} against mean |error| {np.abs(error).mean():.3g}")
    for ax in axes:
        ax.set(xlabel="x", ylabel="y", aspect="equal", xlim=(-7, 7), ylim=(-7, 7))
    fig.suptitle(title)
    return save_figure(fig, out)


def certificates(registry: Registry, out: Path) -> dict:
    results = {}
    for other in ("corner-north", "corner-west"):
        pair = f"east_{other.split('-')[1]}"
        skills = [registry.load(ref) for ref in ("corner-east", other)]
        replay = registry.replay_union([s.ref for s in skills])
        composite = compose(skills, "mean")
        started = time.perf_counter()
        interval = certify(composite, skills, replay)
        seconds = time.perf_counter() - started
        coverage = coverage_on_grid(composite, replay, interval)
        env = make_task_env(composite.description["task"]).unwrapped
        grid = GridModel(env, SPACING, ACTIONS)
        v_star = float(grid.solve(grid.reward(env), composite.alpha, composite.gamma).v[grid.state_index((0, 0))])
        plot_coverage(coverage, f"certified interval of the mean of corner-east and {other}, at the replay "
                      f"union's transitions", out / f"certified_{pair}.png")  # fmt: skip
        results[pair] = {
            "seconds": round(seconds, 1),
            "exact_optimum_start": v_star,
            "certified": interval,
            **{k: v for k, v in coverage.items() if not isinstance(v, np.ndarray)},
        }
        log(f"{pair}: V*_C(0) = {v_star:.4g} in {interval['optimum_start']}, verdict {interval['verdict']['verdict']}; "
            f"coverage {coverage['coverage']:.3f}, width {coverage['mean_width']:.4g} vs error "
            f"{coverage['mean_true_error']:.4g}")  # fmt: skip
    return results


def divergence_correction(registry: Registry) -> dict:
    skills = [registry.load(ref) for ref in ("corner-east", "corner-north")]
    replay = registry.replay_union([s.ref for s in skills])
    combined = compose(skills, "mean").description["task"]
    env_c = make_task_env(combined).unwrapped
    grid = GridModel(env_c, SPACING, ACTIONS)
    alpha, gamma = skills[0].alpha, skills[0].gamma
    q_star = grid.solve(grid.reward(env_c), alpha, gamma).q
    region = region_of(grid, replay.observations[: len(replay)].numpy())
    oracles = []
    for skill in skills:
        env = make_task_env(skill.description["task"]).unwrapped
        exact = copy.deepcopy(skill)
        exact.q = OracleQ(env, grid, grid.solve(grid.reward(env), alpha, gamma).v, gamma)
        oracles.append(exact)
    out = {}
    for label, constituents in (("oracle", oracles), ("learned", skills)):
        started = time.perf_counter()
        mean = compose(constituents, "mean")
        dc = compose(constituents, "dc", replay=replay, seed=0)
        q_mean, q_dc = q_on_grid(mean.q, grid), q_on_grid(dc.q, grid)
        gap = q_mean - q_star  # the exact Q_Sigma - Q*_C of these constituents
        learned_correction = q_mean - q_dc  # what dc subtracts
        row = {
            "seconds": round(time.perf_counter() - started, 1),
            "mean_error_grid": float(gap.abs().mean()),
            "dc_error_grid": float((q_dc - q_star).abs().mean()),
            "mean_error_in_data": float(gap.abs()[region].mean()),
            "dc_error_in_data": float((q_dc - q_star).abs()[region].mean()),
            "exact_gap_in_data_mean": float(gap[region].mean()),
            "learned_correction_in_data_mean": float(learned_correction[region].mean()),
            "correction_error_in_data": float((learned_correction - gap).abs()[region].mean()),
        }
        if label == "learned":
            row["certified_dc"] = certify(dc, constituents, replay)
            row["certified_mean"] = certify(mean, constituents, replay)
        log(f"dc with {label} constituents: {row}"[:400])
        out[label] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="skills_store")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    registry = Registry(args.store, create=False)
    started = time.perf_counter()
    results = {
        "command": "python experiments/certified.py --store skills_store --out docs/results",
        "own_errors": own_errors(registry, ["corner-east", "corner-north", "corner-west"]),
        "composites": certificates(registry, args.out),
        "divergence_correction": divergence_correction(registry),
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "certified.json").write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {args.out / 'certified.json'} in {results['seconds']} s")


if __name__ == "__main__":
    main()
