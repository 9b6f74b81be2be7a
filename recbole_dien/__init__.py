"""recbole-dien: DIN, DIEN and DSIN for RecBole (and for hopwise: :mod:`recbole_dien.hopwise`).

Importing this package makes RecBole 1.2.1 work on today's stack (see :mod:`recbole_dien.compat`)
whenever RecBole is used: its shims are applied as soon as RecBole is imported, by the plugin or
by anyone. The names below are RecBole's side, loaded on first use, so that importing
:mod:`recbole_dien.hopwise` never imports RecBole.
"""
import importlib

from recbole_dien import compat

compat.activate_when_recbole_is_imported()

__version__ = "0.1.0"
# public name -> the module that defines it (RecBole's side)
_PUBLIC = {
    "Config": "recbole_dien.config",
    "create_dataset": "recbole_dien.data",
    "DIN": "recbole_dien.model",
    "DIEN": "recbole_dien.model",
    "DSIN": "recbole_dien.model",
    "load_data_and_model": "recbole_dien.quick_start",
    "run": "recbole_dien.quick_start",
    "get_model": "recbole_dien.utils",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        from recbole_dien.utils.hosts import RECBOLE

        RECBOLE.activate()
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
