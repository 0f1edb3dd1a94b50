"""What ``import skillbank`` gives, and the module paths from before the subpackages, which still import."""

import importlib

import skillbank


def test_the_package_gives_the_algorithms_the_registry_and_the_workflows():
    for name in ("SQL", "SAC", "DDPG", "Registry", "Parent", "Skill", "compose", "finetune", "render"):
        assert callable(getattr(skillbank, name)), name


def test_every_old_module_path_imports_as_the_module_it_became():
    for old, new in skillbank._MOVED.items():
        assert importlib.import_module(f"skillbank.{old}") is importlib.import_module(f"skillbank.{new}"), old
    from skillbank.registry import Registry

    from skillbank.runs import Run, snapshot  # the module skillbank.runs was, now skillbank.runs.run

    assert Registry is skillbank.Registry and Run.__module__ == "skillbank.runs.run" and callable(snapshot)
    assert callable(skillbank.compose) and callable(skillbank.finetune)  # functions, not the old modules
