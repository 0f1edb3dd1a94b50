"""The command line that reproduces an experiment, for the ``command`` its results record (``python
experiments/NAME.py``, run from the repository's root, imports this module from beside the script)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def command_line(args: argparse.Namespace, positional: tuple[str, ...] = ()) -> str:
    """``python experiments/SCRIPT.py`` with ``args`` written back as options (``positional``: the names given
    without one); a boolean as ``--name`` or ``--no-name``, a list as its items, an option given more than once
    (``action="append"``) once per time, None as nothing."""
    words = ["python", f"experiments/{Path(sys.argv[0]).name}"]
    for key, value in vars(args).items():
        option = f"--{key.replace('_', '-')}"
        if value is None:  # an option not given, without a default
            continue
        if key in positional:
            words += [shlex.quote(str(v)) for v in value] if isinstance(value, list) else [shlex.quote(str(value))]
        elif isinstance(value, bool):
            words.append(f"--{'' if value else 'no-'}{key.replace('_', '-')}")
        elif isinstance(value, list) and value and isinstance(value[0], list):  # an option given more than once
            for items in value:
                words += [option, *(shlex.quote(str(v)) for v in items)]
        elif isinstance(value, list):
            words += [option, *(shlex.quote(str(v)) for v in value)]
        else:
            words += [option, shlex.quote(str(value))]
    return " ".join(words)
