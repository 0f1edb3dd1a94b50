"""The typed records of a training job: what a run directory's ``run.json`` holds (:class:`JobSpec`) and what a
finished job returns (:class:`JobResult`). They stay JSON objects on disk, so that runs written by any version
resume; these types say which keys there are and what each means."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class JobSpec(TypedDict, total=False):
    """A training job (``skillbank train``, ``finetune``, a sweep's or an experiment's run), as ``run.json`` keeps it.
    Its digest over everything but the locations (``task``, ``store``, ``pretrained_store``, ``tensorboard``) is the
    run's id."""

    kind: Literal["train", "finetune"]
    task: str  # the task file, resolved (a location)
    task_name: str
    algo: str  # "sql", "sac" or "ddpg"
    env_id: str  # the environment, fixed when the job was made: later edits of the task file do not reach it
    env_kwargs: dict[str, Any]
    config: dict[str, Any]  # the algorithm's configuration, every field
    steps: int  # the budget in environment steps
    seed: int
    name: str  # the name it registers under
    store: str  # the store it registers in (a location)
    keep_replay: bool
    compile: bool
    device: str
    checkpoint_every: int
    eval_every: int | None
    eval_episodes: int
    tensorboard: str  # where its metrics go as events (a location)
    run_id: str  # the id it was registered under, kept once written
    # fine-tuning (``kind == "finetune"``): the pretrained skill and how it is fine-tuned
    pretrained: str | None
    pretrained_store: str  # (a location)
    warmup: int
    anneal_alpha_to: float | None
    anneal_steps: int
    recipe: str
    fresh_critic: bool
    critic_warmup: int
    heads: int
    heads_final: int
    head_select: str
    set: dict[str, Any]  # the --set values, as given
    # grids
    sweep: str  # the sweep's id
    point: dict[str, Any]  # the sweep's combination of values
    method: str  # the experiment's method
    continues: str  # the id of the shorter run a raised budget continues


class JobResult(TypedDict, total=False):
    """What a job returns when it stops: ``status`` "finished" (with the evaluation ``metrics`` and, for the driver
    that registers it, the skill's ``files``) or "interrupted" (at ``steps``); ``ref`` once registered."""

    status: Literal["finished", "interrupted"]
    run_id: str
    run_dir: str
    steps: int
    wall_time_s: float
    metrics: dict[str, Any]
    files: dict[str, bytes]
    ref: str
