"""Errors a user can act on; the CLI prints them as one line instead of a traceback."""


class RecBoleDienError(Exception):
    """Base class of the errors the CLI reports without a traceback."""


class UnknownModelError(RecBoleDienError, ValueError):
    pass


class DatasetError(RecBoleDienError, ValueError):
    pass


class ConfigError(RecBoleDienError, ValueError):
    """A setting with a wrong type, range or value, or settings that contradict each other."""
