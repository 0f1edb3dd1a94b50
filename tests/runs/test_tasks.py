"""Task files are checked, section by section and key by key, before anything is trained."""

import pytest

from skillbank.algos.offpolicy import OffPolicyAlgorithm
from skillbank.algos.sql import SQL, SQLConfig
from skillbank.cli.main import main
from skillbank.errors import ConfigError
from skillbank.runs.tasks import load_task

ENV = "[env]\nid = 'skillbank/MultiGoal-v0'\n"
BAD_TASKS = [
    ("[env\nid=", "is not valid TOML"),
    ("[env]\nid = 'NoSuchEnv-v9'\n", "[env] environment 'NoSuchEnv-v9' is not registered"),
    ("[env]\nid = 'skillbank/multigoal-v0'\n", "(did you mean 'skillbank/MultiGoal-v0'?)"),
    ("[env]\n", "[env] needs an id"),
    (ENV + "idd = 1\n", "[env] unknown key 'idd' (did you mean 'id'?)"),
    (ENV + "[train]\nalgorithm = 'ppo'\n", "[train] unknown algorithm 'ppo'; choose one of sql, sac"),
    (ENV + "[trian]\n", "unknown section 'trian' (did you mean 'train'?)"),
    (
        ENV + "[train]\nstpes = 300\n",
        "[train] unknown key 'stpes' (did you mean 'steps'?); valid: algorithm, seed, steps",
    ),
    (ENV + "[train]\nsteps = '300'\n", "[train] steps must be a whole number, got '300'"),
    (ENV + "[train]\nsteps = 1.5\n", "[train] steps must be a whole number, got 1.5"),
    (ENV + "[eval]\nepisodes = 0\n", "[eval] episodes must be at least 1, got 0"),
    (ENV + "kwargs = { goal_weigths = [1, 0, 0, 0] }\n", "[env] kwargs: unknown keyword argument of skillbank/"),
    (ENV + "kwargs = { goal_weights = [1, 0] }\n", "[env] kwargs: skillbank/MultiGoal-v0 refuses them: goal_weights"),
    (ENV + "[sql]\nlerning_rate = 1\n", "[sql] unknown key 'lerning_rate'"),
    (ENV + "[sql]\nhidden = '100'\n", "[sql] hidden must be a list of whole numbers, got '100'"),
    (ENV + "[sql]\nhidden = [100, true]\n", "[sql] hidden must be a whole number, got True"),
    (ENV + "[sql]\nalpha = -1\n", "[sql] alpha must be positive, got -1.0"),
    (ENV + "[sql]\nkernel_particles = 1\n", "[sql] kernel_particles 1 with kernel_update_ratio"),
    (ENV + "[sac]\ntau = 2\n", "[sac] tau must be in (0, 1], got 2.0"),
    (ENV + "[sac]\nautotune = 1\n", "[sac] autotune must be true or false, got 1"),
    (ENV + "sql = 3\n", "[env] unknown key 'sql'"),
    ("sql = 3\n" + ENV, "sql must be a [sql] section (a table), got 3"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TASKS, ids=[m for _, m in BAD_TASKS])
def test_a_bad_task_file_is_refused_naming_file_section_and_key(text, message, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_task(str(bad))
    assert message in str(error.value) and str(bad) in str(error.value)


@pytest.mark.parametrize(("text", "message"), BAD_TASKS[5:12], ids=[m for _, m in BAD_TASKS[5:12]])
def test_train_refuses_a_bad_task_before_any_training_step(text, message, tmp_path, monkeypatch, capsys):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the task")

    monkeypatch.setattr(OffPolicyAlgorithm, "learn", no_training)
    monkeypatch.setattr(OffPolicyAlgorithm, "train_step", no_training)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["train", str(bad), "--store", str(tmp_path / "store"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store" / "objects").iterdir())


def test_every_shipped_task_loads():
    for name in ("multigoal", "corner-east", "corner-north", "corner-west", "corner-east-north", "corner-east-west"):
        task = load_task(name)
        assert task.configs["sql"].alpha == 10.0 and task.steps == 100_000 and task.episodes == 100


def test_configuration_fields_are_the_keyword_arguments_and_what_skill_json_records():
    algo = SQL("skillbank/MultiGoal-v0", hidden=[16], batch_size=8, learning_starts=5)
    assert algo.config == SQLConfig(hidden=(16,), batch_size=8, learning_starts=5)
    assert algo.skill.description["hyperparameters"] == algo.config.to_dict()
    assert algo.skill.description["hyperparameters"]["hidden"] == [16]
    with pytest.raises(ConfigError, match=r"unknown key 'batchsize' \(did you mean 'batch_size'\?\)"):
        SQL("skillbank/MultiGoal-v0", batchsize=8)
    with pytest.raises(ConfigError, match="alpha must be positive"):
        SQLConfig(alpha=0)
    with pytest.raises(ValueError):  # a ConfigError is also a ValueError for Python callers
        SQLConfig(hidden="100")
