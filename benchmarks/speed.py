"""Training speed against Stable-Baselines3 and against the machine's own matrix-multiply peak.

    pip install -e ".[bench]"          # Stable-Baselines3, for this benchmark only
    python benchmarks/speed.py [--quick] [--json] [--threads 2] [--rounds 3]

Measured in one run, the contenders alternating round by round so that machine drift hits all alike
(the median of the rounds is reported):
- gradient updates per second on fixed random batches of Ant-v5's shapes (105-D observations,
  8-D actions): our SAC and SB3's SAC at identical sizes (256x256, batch 256, twin critics, one
  update per step), and our SQL at the public code's MuJoCo sizes (128x128, batch 128, K 16, M 16)
  and at 256x256; ours compiled (``compile=True``, the headline ratios) and eager (the default);
- end-to-end environment steps per second of training on Ant-v5 (one update per step, after the
  buffer holds ``learning_starts`` transitions), ours and SB3's;
- the machine's matrix-multiply peak (1024x1024 float32), and each update's floating-point work as
  counted by a dispatch mode (every forward and backward matrix product), so that each rate
  is also a fraction of that peak;
- a profile of one SQL update (where the time goes) and the memory of a 1M-transition Ant buffer.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from skillbank import SAC, SQL
from skillbank.algos import losses
from skillbank.algos.buffer import ReplayBuffer
from skillbank.nn.private_ops import polyak_update

ENV_ID = "Ant-v5"
SAC_SIZES = dict(hidden=[256, 256], batch_size=256)
SQL_SIZES = dict(hidden=[128, 128], batch_size=128, kernel_particles=16, value_particles=16, alpha=1 / 300)
SQL_256_SIZES = dict(SQL_SIZES, hidden=[256, 256])
# Our contenders: (class, sizes, compile). The headline ratios use the compiled ones.
OURS = {
    "sac": (SAC, SAC_SIZES, True),
    "sac_eager": (SAC, SAC_SIZES, False),
    "sql_128": (SQL, SQL_SIZES, True),
    "sql_128_eager": (SQL, SQL_SIZES, False),
    "sql_256": (SQL, SQL_256_SIZES, True),
}
# Autograd on skillbank.algos.losses, compiled: (class, sizes), measured against the hand-written compiled path.
AUTOGRAD = {"sac_autograd": (SAC, SAC_SIZES), "sql_128_autograd": (SQL, SQL_SIZES)}


def matmul_peak(seconds: float) -> float:
    """GFLOP/s of a 1024x1024 float32 matrix product, the best of a few repetitions."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9)
    return best


def fill_random(add: Callable, obs_dim: int, act_dim: int, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        add(rng.standard_normal(obs_dim), rng.uniform(-1, 1, act_dim), float(rng.standard_normal()), i % 50 == 0)


# ----- contenders: each gives (one update on a random batch, count its FLOPs) -------------------
def ours(cls, env: gym.Env, sizes: dict, compile: bool):
    algo = cls(env, buffer_size=4096, compile=compile, **sizes)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    fill_random(lambda o, a, r, t: algo.buffer.add(o, a, r, o, t), obs_dim, act_dim, 4096)

    def update() -> None:
        algo.train_step(algo.buffer.sample(sizes["batch_size"], algo.rng))
        algo.num_updates += 1

    update()  # compiles, where compiled
    return algo, update


def autograd(cls, env: gym.Env, sizes: dict):
    """The same networks trained by autograd on :mod:`skillbank.algos.losses`, each loss compiled with
    ``torch.compile`` and stepped by ``torch.optim.Adam(fused=True)``: the path the hand-written
    backward has to beat to be kept."""
    algo = cls(env, buffer_size=4096, **sizes)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    fill_random(lambda o, a, r, t: algo.buffer.add(o, a, r, o, t), obs_dim, act_dim, 4096)
    hp, skill, rng = algo.config, algo.skill, algo.rng
    q, pi, q_target = skill.q, skill.sampler, algo.q_target
    q_params, pi_params = list(q.parameters()), list(pi.parameters())
    q_opt = torch.optim.Adam(q_params, lr=hp.q_lr, fused=True)
    batch_size = sizes["batch_size"]
    if cls is SQL:
        pi_opt = torch.optim.Adam(pi_params, lr=hp.sampler_lr, fused=True)

        @torch.compile
        def sql_losses(batch, uniform, noise):
            q_loss = losses.sql_q_loss(q, q_target, batch, uniform, hp.alpha, hp.gamma)[0]
            return q_loss + losses.sql_sampler_loss(q, pi, batch[0], noise, hp.kernel_fixed)

        def update() -> None:
            batch = algo.buffer.sample(batch_size, rng)
            uniform = torch.rand(batch_size, hp.value_particles, act_dim, generator=rng) * 2 - 1
            noise = torch.randn(batch_size, hp.kernel_particles, act_dim, generator=rng)
            q_opt.zero_grad(set_to_none=True)
            pi_opt.zero_grad(set_to_none=True)
            sql_losses(batch, uniform, noise).backward()
            q_opt.step()
            pi_opt.step()
            algo.num_updates += 1
            if algo.num_updates % hp.target_update_interval == 0:
                polyak_update(list(q_target.parameters()), q_params, 1.0)

    else:
        log_alpha = torch.zeros((), requires_grad=True)
        pi_opt = torch.optim.Adam(pi_params, lr=hp.policy_lr, fused=True)
        alpha_opt = torch.optim.Adam([log_alpha], lr=hp.alpha_lr, fused=True)

        @torch.compile
        def critic_loss(batch, next_noise):
            return losses.sac_q_loss(q, q_target, pi, batch, next_noise, log_alpha.detach().exp(), hp.gamma)[0]

        @torch.compile
        def actor_losses(obs, noise):
            policy_loss, log_pi = losses.sac_policy_loss(q, pi, obs, noise, log_alpha.detach().exp())
            return policy_loss + losses.sac_alpha_loss(log_alpha, log_pi, hp.target_entropy)

        def update() -> None:
            batch = algo.buffer.sample(batch_size, rng)
            shape = (batch_size, 1, act_dim)
            next_noise, noise = torch.randn(shape, generator=rng), torch.randn(shape, generator=rng)
            q_opt.zero_grad(set_to_none=True)
            critic_loss(batch, next_noise).backward()
            q_opt.step()
            pi_opt.zero_grad(set_to_none=True)
            alpha_opt.zero_grad(set_to_none=True)
            q.requires_grad_(False)  # J_pi flows through the critics into the policy only
            actor_losses(batch[0], noise).backward()
            q.requires_grad_(True)
            pi_opt.step()
            alpha_opt.step()
            polyak_update(list(q_target.parameters()), q_params, hp.tau)

    update()  # compiles
    return algo, update


def sb3(env: gym.Env):
    from stable_baselines3 import SAC as SB3SAC
    from stable_baselines3.common.logger import configure

    model = SB3SAC("MlpPolicy", env, buffer_size=4096, learning_starts=0, device="cpu", seed=0)
    model.set_logger(configure(None, []))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]

    def add(o, a, r, t):
        o = np.asarray(o, np.float32)[None]
        model.replay_buffer.add(o, o, np.asarray(a)[None], np.array([r]), np.array([t]), [{}])

    fill_random(add, obs_dim, act_dim, 4096)
    return model, lambda: model.train(gradient_steps=1, batch_size=SAC_SIZES["batch_size"])


def rate(update: Callable[[], None], seconds: float) -> float:
    """Updates per second over about ``seconds`` (after a short warm-up)."""
    for _ in range(5):
        update()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        update()
        count += 1
    return count / elapsed


class MatmulFlops(TorchDispatchMode):
    """Counts the floating-point work of every matrix product (forward and backward) run under it.

    ``torch.utils.flop_counter`` does the same but refuses ``autograd.grad`` on a leaf, which the
    SVGD step uses; a dispatch mode sits below autograd and sees every product either way.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm", "bmm", "baddbmm"):
            a, b = args[-2:] if name in ("mm", "bmm") else args[1:3]
            self.total += 2 * a.shape[:-1].numel() * a.shape[-1] * b.shape[-1]
        return func(*args, **(kwargs or {}))


def flops(update: Callable[[], None]) -> int:
    with MatmulFlops() as counter:
        update()
    return counter.total


def env_steps_per_second(make: Callable[[], Callable[[int], None]], steps: int) -> float:
    """Steps per second of ``learn(steps)`` once the buffer holds enough transitions to update."""
    learn = make()
    start = time.perf_counter()
    learn(steps)
    return steps / (time.perf_counter() - start)


def ours_learner(cls, sizes: dict, compile: bool, warmup: int) -> Callable[[], Callable[[int], None]]:
    def make():
        algo = cls(ENV_ID, buffer_size=100_000, learning_starts=warmup, compile=compile, **sizes)
        algo.learn(warmup + 2)  # and compile, where compiled
        return lambda steps: algo.learn(steps)

    return make


def sb3_learner(warmup: int) -> Callable[[], Callable[[int], None]]:
    def make():
        from stable_baselines3 import SAC as SB3SAC

        model = SB3SAC("MlpPolicy", ENV_ID, buffer_size=100_000, learning_starts=warmup, device="cpu", seed=0)
        model.learn(warmup)
        return lambda steps: model.learn(steps, reset_num_timesteps=False)

    return make


def profile_update(update: Callable[[], None], updates: int = 30, top: int = 8) -> list[dict]:
    """The operators (and compiled graphs) that take most of one update's time, as shares of the total."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            update()
    events = [e for e in prof.key_averages() if e.key.startswith(("aten::", "## Call CompiledFxGraph"))]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": "compiled graph" if "CompiledFxGraph" in e.key else e.key,
            "share": round(e.self_cpu_time_total / total, 3),
            "calls_per_update": e.count // updates,
        }
        for e in events[:top]
    ]


def buffer_memory(transitions: int) -> dict[str, float]:
    """Bytes of a filled 1M-transition Ant buffer, and the peak resident memory of a process that
    fills one and trains from it (measured in a child process, so this one's memory does not count)."""
    env = gym.make(ENV_ID)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    child = f"""
import resource, torch, numpy as np, gymnasium as gym
from skillbank import SAC
torch.set_num_threads(1)
algo = SAC("{ENV_ID}", buffer_size={transitions}, learning_starts=256)
b = algo.buffer
for field in ("observations", "actions", "rewards", "next_observations", "terminals"):
    getattr(b, field).uniform_(-1, 1)  # touch every page, as a full buffer does
b.size = b.position = {transitions} - 300
algo.learn(300)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    peak_kib = int(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
    buffer = ReplayBuffer(1, obs_dim, act_dim)
    per_transition = buffer.transitions.element_size() * buffer.transitions[0].numel()
    return {
        "transitions": transitions,
        "buffer_gb": per_transition * transitions / 1e9,
        "training_peak_rss_gb": peak_kib * 1024 / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="under a minute: 1 round, short timings, no SQL 256, no eager env steps"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every contender (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3; --quick: 1)")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    seconds = 1.5 if args.quick else 5.0
    env_steps = 150 if args.quick else 1500
    torch.set_num_threads(args.threads)
    env = gym.make(ENV_ID)

    contenders: dict[str, Callable[[], None]] = {"sb3_sac": sb3(env)[1]}
    work = {"sb3_sac": flops(contenders["sb3_sac"])}
    # --quick leaves out what only the full run reports (each compiled contender costs seconds of compiling).
    for name, (cls, sizes, compile) in OURS.items():
        if args.quick and name == "sql_256":
            continue
        contenders[name] = ours(cls, env, sizes, compile)[1]
        # A compiled update does the same matrix products as the eager one, where they can be counted.
        work[name] = flops(ours(cls, env, sizes, False)[1] if compile else contenders[name])
    for name, (cls, sizes) in AUTOGRAD.items():
        contenders[name] = autograd(cls, env, sizes)[1]
        work[name] = work[name.replace("_autograd", "")]  # the same products, by another route
    learners = {"sb3_sac": sb3_learner(256)}
    learned = ("sac", "sql_128") if args.quick else ("sac", "sac_eager", "sql_128", "sql_128_eager")
    learners.update({name: ours_learner(*OURS[name], 256) for name in learned})

    peaks, updates, steps = [], {k: [] for k in contenders}, {k: [] for k in learners}
    for _ in range(rounds):
        peaks.append(matmul_peak(0.5 if args.quick else 2.0))
        for name, update in contenders.items():
            updates[name].append(rate(update, seconds))
        for name, make in learners.items():
            steps[name].append(env_steps_per_second(make, env_steps))
    peak = statistics.median(peaks)
    per_s = {k: statistics.median(v) for k, v in updates.items()}
    env_per_s = {k: statistics.median(v) for k, v in steps.items()}
    profiles = {k: profile_update(contenders[k], updates=10 if args.quick else 30) for k in ("sac", "sql_128")}
    memory = buffer_memory(1_000_000)

    def vs_sb3(rates: dict[str, float], name: str) -> float | None:
        return round(rates[name] / rates["sb3_sac"], 2) if name in rates else None

    result = {
        "threads": args.threads,
        "rounds": rounds,
        "matmul_peak_gflops": round(peak, 1),
        "updates_per_s": {k: round(v, 1) for k, v in per_s.items()},
        "gflop_per_update": {k: round(v / 1e9, 3) for k, v in work.items()},
        "fraction_of_peak": {k: round(per_s[k] * work[k] / 1e9 / peak, 3) for k in per_s},
        "env_steps_per_s": {k: round(v, 1) for k, v in env_per_s.items()},
        "sac_vs_sb3_updates": vs_sb3(per_s, "sac"),
        "sac_vs_sb3_env_steps": vs_sb3(env_per_s, "sac"),
        "sql_updates_per_s": round(per_s["sql_128"], 1),
        "sql_vs_sb3_env_steps": vs_sb3(env_per_s, "sql_128"),
        # Autograd on losses.py (compiled, fused Adam) over the compiled hand path: under 0.9, the hand path stays.
        "autograd_vs_hand": {
            "sac": round(per_s["sac_autograd"] / per_s["sac"], 3),
            "sql": round(per_s["sql_128_autograd"] / per_s["sql_128"], 3),
        },
        "eager": {
            "sac_vs_sb3_updates": vs_sb3(per_s, "sac_eager"),
            "sac_vs_sb3_env_steps": vs_sb3(env_per_s, "sac_eager"),
            "sql_updates_per_s": round(per_s["sql_128_eager"], 1),
            "sql_vs_sb3_env_steps": vs_sb3(env_per_s, "sql_128_eager"),
        },
        "update_profiles": profiles,
        "memory": {k: round(v, 3) if isinstance(v, float) else v for k, v in memory.items()},
        "peak_rss_gb_this_run": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.threads} thread(s), {rounds} round(s); matrix-multiply peak {peak:.1f} GFLOP/s\n")
    print(f"{'update':18} {'updates/s':>10} {'GFLOP/update':>13} {'of peak':>8}")
    for k in per_s:
        print(f"{k:18} {per_s[k]:10.1f} {work[k] / 1e9:13.3f} {result['fraction_of_peak'][k]:8.1%}")
    print(f"\n{'training on ' + ENV_ID:18} {'env steps/s':>12}")
    for k, v in env_per_s.items():
        print(f"{k:18} {v:12.1f}")
    for label, ratios in (("compiled", result), ("eager", result["eager"])):
        if None in ratios.values():
            continue
        print(
            f"\n{label}: sac / sb3 {ratios['sac_vs_sb3_updates']}x updates, "
            f"{ratios['sac_vs_sb3_env_steps']}x env steps; sql_128 {ratios['sql_updates_per_s']} updates/s, "
            f"{ratios['sql_vs_sb3_env_steps']}x sb3's env steps"
        )
    for name, profile in profiles.items():
        print(f"\nwhere one {name} update's time goes (self time):")
        for row in profile:
            print(f"  {row['op']:40} {row['share']:6.1%}  {row['calls_per_update']} calls")
    m = result["memory"]
    print(f"\n1M-transition Ant buffer: {m['buffer_gb']:.3f} GB", end="; ")
    print(f"peak resident memory of a training run with it: {m['training_peak_rss_gb']:.3f} GB")


if __name__ == "__main__":
    main()
