from recbole_dien.model.din import DIN

__all__ = ["DIN"]
