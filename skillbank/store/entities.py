"""What a store holds, as typed records and names: a version's reference and lineage edges, and the names of the
files a store and an export are made of."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from skillbank.errors import SkillbankError

STORE_ENV = "SKILLBANK_STORE"
INDEX_FILE = "index.sqlite"
EXPORT_MANIFEST = "skillbank-export.json"
DATA_FILES = {"replay": "replay.h5", "rollouts": "rollouts.h5"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")

# Which version each training run became (idempotent registration); created on first use in older stores.


def validate_name(name: str, what: str = "name") -> str:
    """Names, aliases and tags: letters, digits, '.', '_', '-'; no path separators, no '..'."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise SkillbankError(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, without '/' or '..'"
        )
    return name


@dataclass(frozen=True)
class Parent:
    """A lineage edge: this version was ``relation`` ``ref`` (e.g. fine-tuned-from, composed-of)."""

    ref: str
    relation: str = "derived-from"
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ref:
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"
