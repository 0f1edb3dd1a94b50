"""The command line that reproduces an experiment, for the ``command`` its results record (``python
experiments/NAME.py``, run from the repository's root, imports this module from beside the script)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def command_line(args: argparse.Namespace, positional: tuple[str, ...] = ()) -> str:
    """``python experiments/SCRIPT.py`` with ``args`` written back as options (``positional``: the names given
    without one); a boolean as ``--name`` or ``--no-name``, a list as its items."""
    words = ["python", f"experiments/{Path(sys.argv[0]).name}"]
    for key, value in vars(args).items():
        items = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if key in positional:
            words += items
        elif isinstance(value, bool):
            words.append(f"--{'' if value else 'no-'}{key.replace('_', '-')}")
        else:
            words += [f"--{key.replace('_', '-')}", *items]
    return " ".join(words)
