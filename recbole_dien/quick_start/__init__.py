"""Whole runs, as RecBole's ``quick_start``: train and test (:func:`run`), reload a checkpoint
(:func:`load_data_and_model`), and hyper-parameter search (:mod:`.tuning`)."""
from recbole_dien.quick_start.quick_start import load_data_and_model, run, run_single

__all__ = ["load_data_and_model", "run", "run_single"]
