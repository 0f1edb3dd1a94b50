"""Refitting constituents on each other's relabelled experience: each task's own reward, copies trained with no
environment steps, what is recorded, what is refused."""

import pytest
import torch

from skillbank.algos.buffer import ReplayBuffer
from skillbank.composition.compose import compose
from skillbank.composition.refit import refit, relabelled
from skillbank.errors import SkillbankError
from skillbank.runs.tasks import load_task
from tests.conftest import tiny_skill


@pytest.fixture(scope="module")
def corners():
    """Two MultiGoal skills, each with the 150 transitions it collected on its own corner task."""
    algos = [load_task(name).build(seed=i).learn(150) for i, name in enumerate(("corner-east", "corner-north"))]
    return [a.skill for a in algos], [a.buffer for a in algos]


def test_relabelling_gives_back_the_stored_rewards_of_a_skills_own_task(corners):
    (east, north), (east_replay, _) = corners
    n = len(east_replay)
    own = relabelled(east_replay, east.description["task"])
    torch.testing.assert_close(own.rewards[:n], east_replay.rewards[:n])
    other = relabelled(east_replay, north.description["task"])
    assert not torch.allclose(other.rewards[:n], east_replay.rewards[:n])  # the north corner rewards elsewhere
    assert torch.equal(other.observations[:n], east_replay.observations[:n]) and len(other) == n


def test_refit_trains_copies_on_the_union_with_no_environment_steps(corners):
    skills, replays = corners
    union = ReplayBuffer.concatenate(replays)
    before = [[p.clone() for p in s.q.parameters()] for s in skills]
    parts = refit(skills, union, updates=5, seed=3)
    for skill, part, old in zip(skills, parts, before):
        assert part is not skill and all(torch.equal(a, b) for a, b in zip(old, skill.q.parameters()))
        assert any(not torch.equal(a, b) for a, b in zip(old, part.q.parameters()))
        record = dict(part.description["refit"])
        assert record.pop("wall_time_s") >= 0 and record == {
            "updates": 5, "transitions": 300, "relabelled_from": [None, None], "env_steps": 0, "seed": 3
        }  # fmt: skip
        assert part.description["training"] == skill.description["training"]  # no environment steps taken
    composition = compose(parts, "sum").description["composition"]
    assert composition["env_steps"] == 0 and set(composition["refit"]) == {"constituent 0", "constituent 1"}
    assert "refit" not in compose(skills, "sum").description["composition"]


def test_refit_refuses_what_it_cannot_train(corners):
    skills, replays = corners
    union = ReplayBuffer.concatenate(replays)
    with pytest.raises(SkillbankError, match="--keep-replay"):
        refit(skills, None, updates=5)
    with pytest.raises(SkillbankError, match="at least 1 update"):
        refit(skills, union, updates=0)
    with pytest.raises(SkillbankError, match="sac skill"):
        refit([skills[0], tiny_skill(algorithm="sac")], union, updates=5)
    with pytest.raises(SkillbankError, match="transition_reward"):
        relabelled(union, {"name": "walk", "env_id": "Pendulum-v1"})
