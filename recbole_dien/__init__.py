"""recbole-dien: DIN, DIEN and DSIN for RecBole.

Importing this package makes RecBole 1.2.1 work on today's stack (see :mod:`recbole_dien.compat`).
"""
from recbole_dien import compat, evaluator

compat.apply()
evaluator.register()

from recbole_dien.config import Config  # noqa: E402
from recbole_dien.data import create_dataset  # noqa: E402
from recbole_dien.model import DIEN, DIN, DSIN  # noqa: E402
from recbole_dien.quick_start import load_data_and_model, run  # noqa: E402
from recbole_dien.utils import get_model  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "DIEN", "DIN", "DSIN", "create_dataset", "get_model", "load_data_and_model", "run"]
