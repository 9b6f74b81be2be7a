"""Helpers: plugin-first model lookup (:mod:`.utils`), the hosts the plugin runs in and its classes
built on each (:mod:`.hosts`), the errors a user can act on and their one-line report
(:mod:`.errors`), and where the packaged YAML files live (:mod:`.resources`)."""
from recbole_dien.utils.utils import PLUGIN_MODELS, RECBOLE_PREFIX, get_model, is_plugin_model

__all__ = ["PLUGIN_MODELS", "RECBOLE_PREFIX", "get_model", "is_plugin_model"]
