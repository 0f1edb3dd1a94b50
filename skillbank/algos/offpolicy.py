"""The collection loop shared by SQL and SAC: act, store, update, report progress.

Each algorithm supplies its configuration class, its networks (the keyword arguments of
:meth:`Skill.build`) and ``train_step(batch) -> metrics``; everything about environments, seeding,
progress bars, callbacks and saving lives here once.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from skillbank.algos.augmentation import Augmentation
from skillbank.algos.buffer import Batch, ReplayBuffer
from skillbank.algos.config import OffPolicyConfig
from skillbank.envs import make_env
from skillbank.envs.symmetry import check_symmetry
from skillbank.errors import SkillbankError
from skillbank.nn.networks import HeadsSampler
from skillbank.nn.private_ops import FusedAdam
from skillbank.nn.skill import Skill

Callback = Callable[[int, dict[str, float]], "bool | None"]


def linear_count(start: int, end: int, steps: int) -> Callable[[int], int]:
    """``t -> round(start + (end - start) * min(t / steps, 1))``: a count annealed linearly."""
    return lambda t: int(round(start + (end - start) * min(t / max(steps, 1), 1.0)))


def env_description(env: gym.Env) -> dict[str, Any]:
    spec = env.spec
    return {"env_id": spec.id if spec else None, "env_kwargs": dict(spec.kwargs) if spec else {}}


class OffPolicyAlgorithm:
    """Base of :class:`~skillbank.algos.sql.SQL` and :class:`~skillbank.algos.sac.SAC` (not used directly).

    ``Algorithm(env, config, seed=..., skill=..., compile=..., device=..., **hyperparameters)``:
    ``env`` is an environment or a registered id; the hyperparameters are ``config`` (the
    algorithm's :attr:`config_class`, defaults where omitted) with the keyword arguments, which name
    its fields, overriding it. ``skill`` continues training an existing skill; otherwise one is built
    from :meth:`networks`, initialised from ``seed``. ``compile=True`` compiles the gradient
    computations with ``torch.compile`` (faster for long runs); ``device`` places networks, buffer
    and random numbers (``"cuda"`` where one is present).
    """

    algorithm: str = ""
    config_class: type[OffPolicyConfig] = OffPolicyConfig

    def __init__(
        self,
        env: gym.Env | str,
        config: OffPolicyConfig | None = None,
        *,
        seed: int = 0,
        skill: Skill | None = None,
        compile: bool = False,
        device: str | torch.device = "cpu",
        **hyperparameters: Any,
    ) -> None:
        self.env = make_env(env)
        given = config.to_dict() if config is not None else {}
        self.config = self.configure(self.config_class.from_dict({**given, **hyperparameters}))
        if skill is None:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                skill = Skill.build(
                    self.env.observation_space, self.env.action_space, algorithm=self.algorithm,
                    alpha=self.config.alpha, gamma=self.config.gamma, **self.networks(),
                )  # fmt: skip
        self.device = torch.device(device)
        self.skill = skill.to(self.device)
        self.q_target = copy.deepcopy(skill.q).requires_grad_(False)
        self.seed = seed
        self.rng = torch.Generator(self.device).manual_seed(seed)
        self.buffer = ReplayBuffer(self.config.buffer_size, skill.q.obs_dim, skill.q.act_dim, self.device)
        symmetry = getattr(self.config, "symmetry", "none")
        check_symmetry(symmetry, env_description(self.env)["env_id"], skill.q.obs_dim, skill.q.act_dim)
        self.augment = None if symmetry == "none" else Augmentation(symmetry, self.device)
        self.policy_frozen_updates = 0  # the first updates train the critic alone (fine-tuning's critic warm-up)
        self.stop_requested = False  # set (e.g. by a signal handler) to end learn() at the next step
        self.num_timesteps = 0
        self.num_updates = 0
        self.train_time_s = 0.0
        self.history: list[dict[str, float]] = []
        self.replay_refilled_at: list[int] = []  # steps where a run resumed with an empty buffer
        self._episode_returns: deque[float] = deque(maxlen=20)
        self._obs: np.ndarray | None = None
        self._episode_return = 0.0
        self.noise = torch.zeros(self.skill.action_dim, device=self.device)  # the OU process's state
        self.heads: torch.Tensor | None = None  # the frozen policy's noise draws (:meth:`freeze_heads`)
        self.heads_schedule: Callable[[int], int] | None = None
        self.head_select = "uniform"
        self._policy: Skill | None = None
        skill.description.setdefault("task", {}).update(env_description(self.env))
        skill.description["hyperparameters"] = self.config.to_dict()
        self.setup(compile)

    def setup(self, compile: bool) -> None:
        """Build the optimisers (and, with ``compile``, compile the gradient computations)."""
        raise NotImplementedError

    def configure(self, config: OffPolicyConfig) -> OffPolicyConfig:
        """The configuration as used, with what depends on the environment filled in."""
        return config

    def networks(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`Skill.build` that size this algorithm's networks."""
        raise NotImplementedError

    def train_step(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    @property
    def policy_frozen(self) -> bool:
        """Whether this update leaves the policy (and a tuned temperature) as it is."""
        return self.num_updates < self.policy_frozen_updates

    def freeze_heads(
        self, heads: int, heads_final: int | None = None, anneal_steps: int = 0, select: str = "uniform"
    ) -> None:
        """Act from ``heads`` fixed noise draws instead of fresh noise, as the SQL authors fine-tuned ("make it like
        DDPG"): every draw of the policy's noise (the policy's update, a ``q_target`` "max") is one of the first
        :meth:`active_heads` draws, and the action taken is the head ``select`` picks (:class:`HeadsSampler`:
        uniform, or greedy in Q). Their number goes linearly from ``heads`` to ``heads_final`` over
        ``anneal_steps`` environment steps. The draws come from the run's generator and are checkpointed."""
        if select not in HeadsSampler.SELECT:
            raise SkillbankError(f"--head-select {select!r}: choose from {', '.join(HeadsSampler.SELECT)}")
        final = heads if heads_final is None else heads_final
        if not 1 <= final <= heads:
            raise SkillbankError(f"--heads {heads} --heads-final {final}: need 1 <= heads-final <= heads")
        if self.skill.sampler.kind == "deterministic":
            raise SkillbankError("--heads freezes a stochastic policy's noise; a DDPG skill has none")
        self.heads = torch.randn(heads, self.skill.action_dim, generator=self.rng, device=self.device)
        self.heads_schedule = linear_count(heads, final, anneal_steps)
        self.head_select = select

    def active_heads(self) -> int:
        """How many of the frozen heads the policy draws from at the current step."""
        assert self.heads_schedule is not None
        return self.heads_schedule(self.num_timesteps)

    @property
    def policy(self) -> Skill:
        """The skill as it acts now: the trained skill itself, or, with frozen heads, a view of it (the same
        networks) whose sampler acts from the active heads. This is what is evaluated and registered."""
        if self.heads is None:
            return self.skill
        count = self.active_heads()
        sampler = None if self._policy is None else self._policy.sampler
        if sampler is None or sampler.heads.shape[0] != count or sampler.select != self.head_select:
            sampler = HeadsSampler(self.skill.sampler, self.heads[:count], self.head_select)
            self._policy = Skill(self.skill.q, sampler, self.skill.description)
        return self._policy

    def policy_noise(self, batch_size: int, n: int) -> torch.Tensor:
        """``n`` draws of the policy's noise per state, (B, n, d): N(0, I), or the active frozen heads."""
        shape = (batch_size, n, self.skill.action_dim)
        if self.heads is None:
            return torch.randn(shape, generator=self.rng, device=self.device)
        index = torch.randint(self.active_heads(), shape[:2], generator=self.rng, device=self.device)
        return self.heads[index]

    def target_noise(self, batch_size: int, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The noise draws (B, K, d) over which a ``q_target`` "max" maximises, and which of them count (K,): every
        frozen head, masked to the active ones (a fixed shape, so that annealing recompiles nothing), or, with
        no heads, ``n`` fresh draws."""
        if self.heads is None:
            return self.policy_noise(batch_size, n), None
        mask = torch.arange(self.heads.shape[0], device=self.device) < self.active_heads()
        return self.heads.expand(batch_size, *self.heads.shape), mask

    @torch.no_grad()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """The action taken while collecting, in [-1, 1]^d: a sample of the skill's own policy, plus, for a
        configuration with ``ou_sigma`` above 0, Ornstein-Uhlenbeck noise ``x <- x - theta x + sigma N(0, I)``
        (clipped to the box): temporally correlated, so that it pushes the body in one way for a while."""
        action = self.policy.act_normalised(obs, self.rng)
        sigma = self.config.ou_sigma
        if sigma == 0:
            return action
        step = torch.randn(self.noise.shape, generator=self.rng, device=self.device)
        self.noise.add_(-self.config.ou_theta * self.noise + sigma * step)
        return (torch.from_numpy(action).to(self.device) + self.noise).clamp(-1.0, 1.0).cpu().numpy()

    def on_episode_end(self) -> None:
        """Called when an episode ends during collection: the exploration noise starts again from 0."""
        self.noise.zero_()

    # ----- what a checkpoint holds (skillbank.runs.checkpoint) --------------------------------------
    def optimizers(self) -> dict[str, FusedAdam]:
        """The algorithm's optimisers by name."""
        raise NotImplementedError

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything training changes, as named tensors: networks, targets, optimisers, the random
        generator and the current observation."""
        out = {f"skill.{k}": v for k, v in self.skill.state_dict().items()}
        out.update({f"q_target.{k}": v for k, v in self.q_target.state_dict().items()})
        for name, optimizer in self.optimizers().items():
            out.update({f"{name}.{k}": v for k, v in optimizer.state_tensors().items()})
        out["rng"] = self.rng.get_state()
        if self.config.ou_sigma > 0:  # only then is there a noise state to keep
            out["ou_noise"] = self.noise
        if self.heads is not None:
            out["heads"] = self.heads
        if self._obs is not None:
            out["obs"] = torch.from_numpy(np.array(self._obs))
        return out

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.skill.load_state_dict(part("skill."))
        self.q_target.load_state_dict(part("q_target."))
        for name, optimizer in self.optimizers().items():
            optimizer.load_state_tensors({k: v.to(self.device) for k, v in part(f"{name}.").items()})
        self.rng.set_state(tensors["rng"])
        self.noise.copy_(tensors.get("ou_noise", torch.zeros_like(self.noise)))
        if self.heads is not None:
            self.heads.copy_(tensors["heads"])
        self._obs = tensors["obs"].numpy().copy() if "obs" in tensors else None

    def training_state(self) -> dict[str, Any]:
        """The counters and records a checkpoint keeps as JSON."""
        return {
            "num_timesteps": self.num_timesteps,
            "num_updates": self.num_updates,
            "train_time_s": self.train_time_s,
            "history": self.history,
            "episode_returns": list(self._episode_returns),
            "episode_return": self._episode_return,
            "description": self.skill.description,
            "replay_refilled_at": self.replay_refilled_at,
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.num_timesteps, self.num_updates = state["num_timesteps"], state["num_updates"]
        self.train_time_s, self.history = state["train_time_s"], list(state["history"])
        self._episode_returns = deque(state["episode_returns"], maxlen=self._episode_returns.maxlen)
        self._episode_return = state["episode_return"]
        self.skill.description = state["description"]
        self.replay_refilled_at = [int(step) for step in state.get("replay_refilled_at", [])]

    def reset_episode(self) -> None:
        """Start a fresh episode at the next step (a resumed run whose environment state is unknown)."""
        self._obs, self._episode_return = None, 0.0

    def learn(
        self, total_steps: int, progress_bar: bool = False, callback: Callback | None = None, log_interval: int = 1000
    ):
        """Collect ``total_steps`` environment steps, with one gradient update per step once
        ``learning_starts`` transitions are stored. ``callback(step, metrics)`` runs every
        ``log_interval`` steps; returning ``False`` stops training early."""
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0, got {total_steps}")
        config = self.config
        if self._obs is None:
            self._obs, _ = self.env.reset(seed=self.seed + self.num_timesteps)
        metrics: dict[str, float] = {}
        trained_before, started = self.train_time_s, time.perf_counter()
        with tqdm(total=total_steps, disable=not progress_bar, desc=self.algorithm, unit="step") as bar:
            for _ in range(total_steps):
                if self.stop_requested:
                    break
                action = self.explore(self._obs)
                next_obs, reward, terminated, truncated, _ = self.env.step(self.skill.to_env_action(action))
                self.buffer.add(self._obs, action, reward, next_obs, terminated)
                self._episode_return += reward
                self._obs = next_obs
                if terminated or truncated:
                    self.on_episode_end()
                    self._episode_returns.append(self._episode_return)
                    self._episode_return = 0.0
                    self._obs, _ = self.env.reset()
                self.num_timesteps += 1
                if len(self.buffer) >= config.learning_starts:
                    for _ in range(config.gradient_steps):
                        metrics = self.update(self.buffer)
                bar.update(1)
                if self.num_timesteps % log_interval == 0:
                    # current in the checkpoints the callback writes, so that a killed run resumes its clock too
                    self.train_time_s = trained_before + time.perf_counter() - started
                    if self._episode_returns:
                        metrics = {**metrics, "episode_return": float(np.mean(self._episode_returns))}
                    metrics["step"] = self.num_timesteps
                    self.history.append(metrics)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k != "step"})
                    if callback is not None and callback(self.num_timesteps, metrics) is False:
                        break
        self.train_time_s = trained_before + time.perf_counter() - started
        self.skill.description["training"] = {
            "steps": self.num_timesteps,
            "updates": self.num_updates,
            "wall_time_s": round(self.train_time_s, 2),
            "seed": self.seed,
            "final_episode_return": float(np.mean(self._episode_returns)) if self._episode_returns else None,
        }
        if self.replay_refilled_at:  # resumed from a checkpoint without its buffer: not one uninterrupted run
            self.skill.description["training"]["replay_refilled_at"] = self.replay_refilled_at
        return self

    def update(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One gradient update on a batch from ``buffer`` (augmented where the configuration says so)."""
        batch = buffer.sample(self.config.batch_size, self.rng)
        metrics = self.train_step(batch if self.augment is None else self.augment(batch, self.rng))
        self.num_updates += 1
        return metrics

    def learn_offline(self, buffer: ReplayBuffer, updates: int, progress_bar: bool = False):
        """``updates`` gradient updates on the transitions of ``buffer`` (e.g. other skills' experience, relabelled
        with this skill's reward), with no environment steps: ``num_timesteps`` stays where it is."""
        if updates < 0:
            raise ValueError(f"updates must be >= 0, got {updates}")
        if len(buffer) == 0:
            raise SkillbankError("cannot learn offline from an empty buffer")
        for _ in tqdm(range(updates), disable=not progress_bar, desc=f"{self.algorithm} offline", unit="update"):
            self.update(buffer)
        return self

    # ----- the Stable-Baselines3-like surface ---------------------------------------------------
    def sample_actions(self, obs: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` actions per observation, shape (B, n, d), in [-1, 1]."""
        with torch.no_grad():
            return self.skill.sample_actions(torch.as_tensor(obs, dtype=torch.float32), n, self.rng)

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.skill.q_values(torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(actions))

    def soft_value(self, obs: torch.Tensor, n_particles: int = 1024) -> torch.Tensor:
        with torch.no_grad():
            return self.skill.soft_value(torch.as_tensor(obs, dtype=torch.float32), n_particles, self.rng)

    def save(self, directory: str | Path) -> Path:
        """Save the learned skill (networks + JSON description); see :meth:`Skill.save`."""
        return self.skill.save(directory)

    @classmethod
    def load(cls, directory: str | Path, env: gym.Env | str | None = None, **overrides: Any):
        """Rebuild the algorithm around a saved skill, e.g. to continue training it."""
        skill = Skill.load(directory)
        if skill.description["algorithm"] != cls.algorithm:
            raise ValueError(f"{directory} holds a {skill.description['algorithm']} skill, not {cls.algorithm}")
        task = skill.description.get("task", {})
        if env is None:
            env = make_env(task["env_id"], task.get("env_kwargs"))
        hyperparameters = dict(skill.description.get("hyperparameters", {}))
        seed = hyperparameters.pop("seed", None)  # skills written before the configurations recorded it here
        seed = (skill.description.get("training") or {}).get("seed", seed or 0)
        return cls(env, None, skill=skill, seed=overrides.pop("seed", seed), **{**hyperparameters, **overrides})
