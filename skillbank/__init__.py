"""skillbank: pretrain, store, compose and fine-tune maximum-entropy RL skills."""

from skillbank.compose import compose
from skillbank.ddpg import DDPG
from skillbank.errors import IntegrityError, NotFoundError, SkillbankError, SkillFormatError
from skillbank.finetune import finetune
from skillbank.registry import Parent, Registry
from skillbank.sac import SAC
from skillbank.skill import Skill
from skillbank.sql import SQL
from skillbank.video import render

__version__ = "0.1.0"

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
