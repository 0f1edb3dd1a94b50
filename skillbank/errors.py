"""Errors that carry a message meant for the user; the command line prints them and exits with status 2."""

import errno
import shutil
from pathlib import Path


class SkillbankError(Exception):
    """Base class: bad input or a refused operation, with a message naming the problem and the fix."""


class SkillFormatError(SkillbankError):
    """A skill file is missing, malformed, or of a kind skillbank refuses to load (e.g. a pickle)."""


class IntegrityError(SkillbankError):
    """A stored file does not match its recorded checksum."""


class NotFoundError(SkillbankError):
    """An unknown skill, version, alias or task."""


class ConfigError(SkillbankError, ValueError):
    """A hyperparameter, option or task-file entry with an unknown name, a wrong type or a value out of range."""


def write_error(error: OSError, path: Path, needed: int) -> SkillbankError:
    """A failed write as one line naming the path and, for a full disk, the space needed and free."""
    if error.errno == errno.ENOSPC:
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path(".")).free
        return SkillbankError(
            f"no space left on the device writing {path}: it needs {needed:,} bytes and {free:,} are free; free some "
            "space and try again (nothing was registered)"
        )
    if error.errno == errno.EROFS:
        return SkillbankError(f"{path} is on a read-only filesystem; use a store of your own (--store PATH)")
    return SkillbankError(f"could not write {path}: {error.strerror or error}")
