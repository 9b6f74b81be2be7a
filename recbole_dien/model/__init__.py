from recbole_dien.model.dien import DIEN
from recbole_dien.model.din import DIN

__all__ = ["DIEN", "DIN"]
