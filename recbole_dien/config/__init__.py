"""Settings: the host's ``Config`` with plugin-first model lookup, and the spec every setting is checked against."""
from recbole_dien.config.configurator import config_class, parse_overrides

__all__ = ["Config", "config_class", "parse_overrides"]


def __getattr__(name):
    # RecBole's Config is built on first use: importing this package never imports RecBole
    if name == "Config":
        from recbole_dien.utils.hosts import RECBOLE

        return config_class(RECBOLE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
