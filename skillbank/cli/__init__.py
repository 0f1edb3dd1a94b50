"""The command line: it parses, calls the library and prints (``main``), and the demo."""

from skillbank.cli.main import main

__all__ = ["main"]
