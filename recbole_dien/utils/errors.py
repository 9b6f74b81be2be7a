"""Errors a user can act on; the CLI prints them as one line instead of a traceback."""
import sys


class RecBoleDienError(Exception):
    """Base class of the errors the CLI reports without a traceback."""


class UnknownModelError(RecBoleDienError, ValueError):
    pass


class DatasetError(RecBoleDienError, ValueError):
    pass


class ConfigError(RecBoleDienError, ValueError):
    """A setting with a wrong type, range or value, or settings that contradict each other."""


def require_extra(module, purpose, extra):
    """Raise a one-line :class:`RecBoleDienError` naming the package extra to install when the
    optional ``module`` (e.g. matplotlib) is missing."""
    try:
        __import__(module)
    except ImportError:
        raise RecBoleDienError(f"{purpose} needs {module}: pip install 'recbole-dien[{extra}]'") from None


def report(parser, error):
    """A command line's report of ``error``: one line, ``<prog>: error: ...`` on stderr as argparse
    writes its own, and argparse's exit status 2."""
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return 2
