"""Metrics RecBole's evaluator lacks (LabeledGAUC), registered with it on import of :mod:`recbole_dien`."""
from recbole_dien.evaluator.metrics import LabeledGAUC, register

__all__ = ["LabeledGAUC", "register"]
