"""skillbank: pretrain, store, compose and fine-tune maximum-entropy RL skills."""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

from skillbank.algos.ddpg import DDPG
from skillbank.algos.sac import SAC
from skillbank.algos.sql import SQL
from skillbank.composition.compose import compose
from skillbank.errors import IntegrityError, NotFoundError, SkillbankError, SkillFormatError
from skillbank.nn.skill import Skill
from skillbank.runs.finetune import finetune
from skillbank.store.registry import Parent, Registry
from skillbank.viz.video import render

__version__ = "0.1.0"

# Where each module lived before the package had subpackages, so that ``import skillbank.registry`` and the like
# still work for code written against it. The subpackages, lowest layer first: envs, nn, algos, store,
# composition, runs, viz, workflows, cli; each imports only from the layers below it (``lint-imports`` checks).
_MOVED = {
    "mlp": "nn.mlp", "networks": "nn.networks", "private_ops": "nn.private_ops", "composite": "nn.composite",
    "skill": "nn.skill", "config": "algos.config", "losses": "algos.losses", "buffer": "algos.buffer",
    "offpolicy": "algos.offpolicy", "sql": "algos.sql", "sac": "algos.sac", "ddpg": "algos.ddpg",
    "symmetry": "algos.augmentation", "registry": "store.registry", "archive": "store.archive",
    "evaluate": "runs.evaluate", "bounds": "composition.bounds", "certified": "composition.certified",
    "grid_bounds": "composition.grid_bounds", "sampled_bounds": "composition.sampled_bounds",
    "oracle": "composition.oracle", "tasks": "runs.tasks", "jobs": "runs.jobs", "checkpoint": "runs.checkpoint",
    "backends": "runs.backends", "sweep": "runs.sweep", "experiment": "workflows.experiment", "plot": "viz.plot",
    "video": "viz.video", "demo": "workflows.demo",
}  # fmt: skip


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``skillbank.<old name>`` as the module it became."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        old = fullname.removeprefix(__name__ + ".")
        return importlib.util.spec_from_loader(fullname, self) if old in _MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(f"{__name__}.{_MOVED[spec.name.removeprefix(__name__ + '.')]}")

    def exec_module(self, module: types.ModuleType) -> None:
        pass


sys.meta_path.append(_MovedModules())

__all__ = [
    "DDPG",
    "SAC",
    "SQL",
    "IntegrityError",
    "NotFoundError",
    "Parent",
    "Registry",
    "Skill",
    "SkillFormatError",
    "SkillbankError",
    "__version__",
    "compose",
    "finetune",
    "render",
]
