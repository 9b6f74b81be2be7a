from recbole_dien.model.dien import DIEN
from recbole_dien.model.din import DIN
from recbole_dien.model.dsin import DSIN

__all__ = ["DIEN", "DIN", "DSIN"]
