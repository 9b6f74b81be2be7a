"""Settings: RecBole's ``Config`` with plugin-first model lookup, and the spec every setting is checked against."""
from recbole_dien.config.configurator import Config, parse_overrides

__all__ = ["Config", "parse_overrides"]
