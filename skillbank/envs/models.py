"""MuJoCo models written from text: Gymnasium's MuJoCo environments take a file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def model_file(xml: str, name: str) -> str:
    """The path of a file holding ``xml``, written once per distinct model (named by its digest) and reused."""
    path = (
        Path(tempfile.gettempdir()) / "skillbank-models" / f"{name}-{hashlib.sha256(xml.encode()).hexdigest()[:16]}.xml"
    )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(xml)
        temporary.replace(path)  # atomic: parallel workers never read a half-written model
    return str(path)
