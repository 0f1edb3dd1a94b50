"""Videos of a skill's rollouts: MuJoCo rendered offscreen (headless), 2-D tasks drawn, written as GIF or MP4.

>>> render(registry.load("ant-walk-sql"), "walk.gif", episodes=2)   # doctest: +SKIP

Several episodes play side by side, in lockstep, each tile captioned with the skill's name, the step and the
return so far; an episode that ends holds its last frame. Frames stream to the file through ffmpeg
(``imageio-ffmpeg``, which ships its own ffmpeg binary, so that a user needs no system package and a long
rollout is never held in memory).

Cameras: ``"top"`` looks straight down, over a whole arena that fits in view (the U-maze, with its walls and its
goal's disc) or following the torso (a long hallway); ``"track"`` follows the torso from behind and above. The
default is ``"top"`` in an arena, ``"track"`` on open ground.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco import MujocoEnv
from PIL import Image, ImageDraw

from skillbank.envs import make_task_env
from skillbank.errors import SkillbankError
from skillbank.nn.skill import Skill
from skillbank.runs.evaluate import task_env
from skillbank.runs.tasks import load_task

FORMATS = (".gif", ".mp4")
CAMERAS = ("track", "top")
TILE = (320, 240)  # width, height of one episode's picture
GL_BACKENDS = ("egl", "osmesa")  # headless OpenGL, in the order tried
_PROBE = "import mujoco, sys; context = mujoco.GLContext(8, 8); context.make_current(); context.free()"


@dataclass(frozen=True)
class Video:
    """What :func:`render` wrote: the file, its frames and size, each episode's return, and the time it took."""

    path: Path
    frames: int
    width: int
    height: int
    returns: list[float]
    seconds: float

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / max(self.frames, 1)


def gl_backend() -> str:
    """The OpenGL backend MuJoCo renders with, set in ``MUJOCO_GL``: the one given there, else the first of
    :data:`GL_BACKENDS` that opens a context (each probed in a child process: a failed one cannot be undone in
    this one); a SkillbankError naming ``MUJOCO_GL`` and what to install where none does."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend in GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60)
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
    raise SkillbankError(
        "MuJoCo found no headless OpenGL: install EGL (Debian: libegl1) or OSMesa (libosmesa6) and set "
        "MUJOCO_GL=egl or MUJOCO_GL=osmesa; nothing was written"
    )


def _check_out(out: Path, fps: float | None, episodes: int) -> None:
    if out.suffix.lower() not in FORMATS:
        raise SkillbankError(f"--out {out}: write a {' or '.join(FORMATS)} file")
    if fps is not None and not fps > 0:
        raise SkillbankError(f"--fps must be positive, got {fps}")
    if not 1 <= episodes <= 16:
        raise SkillbankError(f"--episodes must be between 1 and 16 for a video, got {episodes}")


def camera_config(env: gym.Env, camera: str) -> tuple[dict, bool]:
    """Gymnasium's ``default_camera_config`` for ``camera`` in ``env`` (its walls decide the top view), and whether
    the camera follows the torso."""
    if hasattr(env.unwrapped, "fingertip"):  # the pusher's table, from above whatever the camera
        return {"distance": 4.5, "elevation": -90.0, "azimuth": 90.0, "lookat": np.array([0.0, -0.2, 0.0])}, False
    if camera == "track":
        return {"distance": 5.0, "elevation": -30.0, "azimuth": 90.0}, True
    walls = np.asarray(getattr(env.unwrapped, "walls", ()) or [(-3.0, 3.0, -3.0, 3.0)])
    low, high = walls[:, [0, 2]].min(0), walls[:, [1, 3]].max(0)
    extent = float(max(high - low))
    if extent > 15:  # a long hallway: follow the torso from above
        return {"distance": 12.0, "elevation": -90.0, "azimuth": 90.0}, True
    centre = np.array([*(low + high) / 2, 0.0])
    return {"lookat": centre, "distance": 1.25 * extent + 1, "elevation": -90.0, "azimuth": 90.0}, False


class MujocoFrames:
    """Offscreen frames of a MuJoCo environment, with what its ``render_markers()`` adds (an arena's goal, the
    pusher's lines). From above, the floor is plain, so that the walls stand out (and a GIF stays small)."""

    def __init__(self, env_id: str, env_kwargs: dict, camera: tuple[dict, bool]) -> None:
        config, self.follow = camera
        self.env = make_task_env({"env_id": env_id, "env_kwargs": env_kwargs}, render_mode="rgb_array",
                                 width=TILE[0], height=TILE[1], default_camera_config=config)  # fmt: skip
        self.env.reset()
        self.viewer = self.env.unwrapped.mujoco_renderer._get_viewer("rgb_array")
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self.viewer.scn.flags[flag] = 0  # 4x faster in software OpenGL (81 against 18 ms a frame, measured)
        model = self.env.unwrapped.model
        floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        if config.get("elevation") == -90.0 and floor >= 0:
            model.geom_matid[floor], model.geom_rgba[floor] = -1, (0.93, 0.93, 0.9, 1.0)

    def frame(self) -> np.ndarray:
        base = self.env.unwrapped
        if self.follow:
            self.viewer.cam.lookat[:2] = base.data.body(1).xpos[:2]
        for marker in base.render_markers() if hasattr(base, "render_markers") else ():
            self.viewer.add_marker(**marker)  # a marker lasts one frame: added before every render
        return np.ascontiguousarray(self.env.render())


class PlaneFrames:
    """A 2-D task drawn from above, as ``skillbank plot`` draws it: its goals and the path so far."""

    def __init__(self, env_id: str, env_kwargs: dict) -> None:
        self.env = make_task_env({"env_id": env_id, "env_kwargs": env_kwargs})
        self.path: list[np.ndarray] = []

    def frame(self) -> np.ndarray:
        base = self.env.unwrapped
        bound, size = float(base.bound), TILE[1]
        image = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(image)

        def pixel(p):
            return ((p[0] + bound) / (2 * bound) * (size - 1), (bound - p[1]) / (2 * bound) * (size - 1))

        scale = (size - 1) / (2 * bound)
        for goal in base.goals:
            x, y = pixel(goal)
            r = base.goal_radius * scale
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(240, 170, 170))
        position = np.asarray(base._position, dtype=float)
        self.path.append(position)
        if len(self.path) > 1:
            draw.line([pixel(p) for p in self.path], fill=(31, 119, 180), width=2)
        x, y = pixel(position)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(20, 20, 160))
        canvas = Image.new("RGB", TILE, "white")
        canvas.paste(image, ((TILE[0] - size) // 2, 0))
        return np.asarray(canvas)


def _frames_for(skill: Skill, task: str | None, camera: str | None):
    """A frame source for one episode of ``skill`` in its own task, or in ``task``."""
    if task is not None:
        task_env(skill, task)  # refuses a task whose spaces are not the skill's
        loaded = load_task(task)
        env_id, env_kwargs = loaded.env_id, loaded.env_kwargs
    else:
        description = skill.description.get("task", {})
        env_id, env_kwargs = description.get("env_id"), description.get("env_kwargs", {})
        if not env_id:
            raise SkillbankError("this skill records no environment; pass --task TASK")
    probe = make_task_env({"env_id": env_id, "env_kwargs": env_kwargs})
    if isinstance(probe.unwrapped, MujocoEnv):
        gl_backend()
        config = camera_config(probe, camera or ("top" if getattr(probe.unwrapped, "walls", ()) else "track"))
        return lambda: MujocoFrames(env_id, env_kwargs, config)
    if hasattr(probe.unwrapped, "goals") and hasattr(probe.unwrapped, "bound"):
        return lambda: PlaneFrames(env_id, env_kwargs)
    raise SkillbankError(f"cannot draw {env_id}: render knows MuJoCo tasks and 2-D tasks with goals")


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    image = Image.fromarray(tile)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, TILE[0], 14], fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return np.asarray(image)


def _tiled(tiles: list[np.ndarray]) -> np.ndarray:
    columns = min(len(tiles), 4)
    rows = math.ceil(len(tiles) / columns)
    blank = np.zeros_like(tiles[0])
    tiles = tiles + [blank] * (rows * columns - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * columns : (r + 1) * columns], 1) for r in range(rows)], 0)


class LockstepRollouts:
    """Episodes of one skill stepped together, one per frame source; :meth:`frames` yields the tiled, captioned
    video frames and :attr:`returns` holds each episode's return so far."""

    def __init__(self, skill: Skill, sources: list, seed: int, name: str, every: int = 1) -> None:
        self.skill, self.sources, self.seed, self.name, self.every = skill, sources, seed, name, every
        self.returns = [0.0] * len(sources)

    def frames(self) -> Iterator[np.ndarray]:
        generator = torch.Generator().manual_seed(self.seed)
        observations = [source.env.reset(seed=self.seed + i)[0] for i, source in enumerate(self.sources)]
        done, step = [False] * len(self.sources), 0
        last = [source.frame() for source in self.sources]
        while True:
            captions = [f"{self.name}  step {step}  return {r:.1f}" for r in self.returns]
            yield _tiled([_caption(tile, text) for tile, text in zip(last, captions)])
            if all(done):
                return
            for _ in range(self.every):
                step += 1
                for i, source in enumerate(self.sources):
                    if not done[i]:
                        action = self.skill.act(observations[i], generator)
                        observations[i], reward, terminated, truncated, _ = source.env.step(action)
                        self.returns[i] += float(reward)
                        done[i] = terminated or truncated
            last = [source.frame() for source in self.sources]


def render(
    skill: Skill,
    out: str | Path,
    *,
    task: str | None = None,
    episodes: int = 1,
    seed: int = 0,
    camera: str | None = None,
    fps: float | None = None,
    every: int = 1,
    name: str | None = None,
) -> Video:
    """Roll ``skill`` out ``episodes`` times (in its own task, or ``task``) and write the video to ``out`` (.gif or
    .mp4), one frame every ``every`` steps, at ``fps`` frames per second (default: the environment's real time)."""
    import imageio_ffmpeg

    out = Path(out)
    _check_out(out, fps, episodes)
    if every < 1:
        raise SkillbankError(f"--every must be at least 1, got {every}")
    if camera is not None and camera not in CAMERAS:
        raise SkillbankError(f"--camera {camera}: choose from {', '.join(CAMERAS)}")
    make = _frames_for(skill, task, camera)
    sources = [make() for _ in range(episodes)]
    dt = getattr(sources[0].env.unwrapped, "dt", 0.1)
    fps = fps or max(1, round(1 / (dt * every)))
    name = name or getattr(skill, "ref", None) or skill.description.get("algorithm", "skill")
    rollouts, started, frames = LockstepRollouts(skill, sources, seed, name, every), time.perf_counter(), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial{out.suffix}")  # a crash leaves no half-written video at OUT
    writer = None
    try:
        for frame in rollouts.frames():
            if writer is None:
                height, width = frame.shape[:2]
                options = {"codec": "gif", "pix_fmt_out": "rgb8"} if out.suffix.lower() == ".gif" else {}
                writer = imageio_ffmpeg.write_frames(str(partial), (width, height), fps=fps, macro_block_size=1,
                                                     **options)  # fmt: skip
                writer.send(None)
            writer.send(frame)
            frames += 1
    finally:
        if writer is not None:
            writer.close()
        for source in sources:
            source.env.close()
    partial.replace(out)
    return Video(out, frames, width, height, rollouts.returns, time.perf_counter() - started)
