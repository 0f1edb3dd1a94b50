"""Videos and TensorBoard curves: real frames rendered headless, files read back, and a clear error without
OpenGL."""

import csv
import itertools

import imageio.v3 as iio
import numpy as np
import pytest

from skillbank import SQL, Registry, SkillbankError, render
from skillbank.cli.main import main
from skillbank.runs.tasks import load_task
from skillbank.viz.video import LockstepRollouts, MujocoFrames, camera_config
from tests.conftest import tiny_skill

TINY = dict(hidden=[16, 16], learning_starts=20, buffer_size=1000, batch_size=16, kernel_particles=4,
            value_particles=4)  # fmt: skip


@pytest.fixture(scope="module")
def walker():
    return SQL("skillbank/AntWalk-v0", seed=1, **TINY).learn(30).skill


@pytest.mark.slow
def test_an_ant_video_has_a_frame_per_drawn_step_and_its_frames_differ_as_it_moves(walker, tmp_path):
    video = render(walker, tmp_path / "walk.gif", every=10, name="walker")
    frames = iio.imread(video.path, index=None)
    assert len(frames) == video.frames >= 2 and frames.shape[1:] == (240, 320, 3) == (video.height, video.width, 3)
    assert 2 <= video.frames <= 21  # the start, then one frame every 10 of at most 200 steps
    changed = [np.abs(a.astype(int) - b).mean() for a, b in itertools.pairwise(frames)]
    assert sum(c > 0.5 for c in changed) >= len(changed) // 2  # the camera follows a body that moves
    mp4 = render(walker, tmp_path / "walk.mp4", every=20)
    assert len(iio.imread(mp4.path, index=None)) == mp4.frames and mp4.path.stat().st_size > 0


def test_multigoal_rollouts_are_drawn_side_by_side(tmp_path):
    skill = tiny_skill()
    video = render(skill, tmp_path / "mg.gif", episodes=3, seed=2)
    frames = iio.imread(video.path, index=None)
    assert frames.shape == (video.frames, 240, 3 * 320, 3) and len(video.returns) == 3
    assert video.frames == 31  # the start and 30 steps: the longest episode sets the length
    assert not np.array_equal(frames[0], frames[-1])


def test_the_top_down_camera_sees_the_walls_and_the_goal():
    task = load_task("ant-umaze")
    env = task.make_env()
    source = MujocoFrames(task.env_id, task.env_kwargs, camera_config(env, "top"))
    seen = source.frame()
    model = source.env.unwrapped.model
    walls = [i for i in range(model.ngeom) if (model.geom(i).name or "").startswith("wall")]
    model.geom_rgba[walls, 3] = 0.0  # the walls made invisible
    without = source.frame()
    assert len(walls) == 8 and (np.abs(seen.astype(int) - without).sum(-1) > 30).mean() > 0.1
    source.env.unwrapped.goal = None  # and the goal's disc left out
    assert (np.abs(without.astype(int) - source.frame()).sum(-1) > 30).mean() > 0.01


def test_without_opengl_render_names_mujoco_gl_and_writes_nothing(walker, tmp_path, monkeypatch):
    from skillbank.viz import video as render_module

    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(render_module, "GL_BACKENDS", ("no-such-backend",))
    with pytest.raises(SkillbankError, match="MUJOCO_GL=egl"):
        render(walker, tmp_path / "walk.gif")
    assert not list(tmp_path.iterdir())


def test_bad_render_options_are_refused_before_anything_runs(walker, tmp_path):
    for kwargs, message in [({"out": tmp_path / "a.avi"}, ".gif or .mp4"), ({"every": 0}, "--every"),
                            ({"camera": "side"}, "--camera"), ({"episodes": 0}, "--episodes")]:  # fmt: skip
        with pytest.raises(SkillbankError, match=message):
            render(walker, **{"out": tmp_path / "a.gif", **kwargs})
    assert not list(tmp_path.iterdir())


def test_render_streams_frames_from_lockstep_episodes(walker):
    task = load_task("ant-walk")
    sources = [MujocoFrames(task.env_id, task.env_kwargs, camera_config(task.make_env(), "track")) for _ in range(2)]
    rollouts = LockstepRollouts(walker, sources, seed=0, name="w")
    first = list(itertools.islice(rollouts.frames(), 3))
    assert [f.shape for f in first] == [(240, 640, 3)] * 3 and rollouts.returns[0] != 0.0


def test_the_render_command_writes_a_gif(walker, tmp_path, capsys):
    registry = Registry(tmp_path / "store")
    registry.register(walker, "walker")
    out = tmp_path / "w.gif"
    assert main(["render", "walker", "--store", str(registry.path), "--out", str(out), "--every", "25"]) == 0
    assert "wrote" in capsys.readouterr().out and len(iio.imread(out, index=None)) >= 2


@pytest.mark.slow
def test_tensorboard_events_hold_the_same_scalars_as_metrics_csv(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, board = tmp_path / "run", tmp_path / "tb"
    args = [
        "train",
        "multigoal",
        "--steps",
        "2000",
        "--store",
        str(tmp_path / "store"),
        "--run-dir",
        str(run_dir),
        "--tensorboard",
        str(board),
        "--no-progress",
        "--set",
        "learning_starts=500",
        "--set",
        "batch_size=16",
    ]
    assert main(args) == 0
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    events = EventAccumulator(str(board / "run"))
    events.Reload()
    for key in ("episode_return", "q_loss", "steps_per_s"):
        written = {int(float(row["step"])): float(row[key]) for row in rows if row[key]}
        read = {e.step: e.value for e in events.Scalars(key)}
        assert written and read.keys() == written.keys()
        # metrics.csv keeps 6 significant digits, the events float32
        assert all(read[step] == pytest.approx(value, rel=1e-5) for step, value in written.items())
