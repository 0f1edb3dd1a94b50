"""Long runs: tasks, jobs and their run directories (``run``), checkpoints, backends, sweeps, fine-tuning,
experiments and evaluation."""

import importlib
import pkgutil
from typing import Any

_SUBMODULES = {info.name for info in pkgutil.iter_modules(__path__)}


def __getattr__(name: str) -> Any:
    # ``skillbank.runs`` was the module that is now ``skillbank.runs.run``: its names still resolve here
    if name not in _SUBMODULES and not name.startswith("__"):
        run = importlib.import_module(f"{__name__}.run")
        if hasattr(run, name):
            return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
