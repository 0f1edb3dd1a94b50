"""Errors that carry a message meant for the user; the command line prints them and exits with status 2."""


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
