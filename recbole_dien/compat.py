"""Every shim RecBole 1.2.1 needs on today's stack, in one place.

Importing :mod:`recbole_dien` applies them; nothing in site-packages is edited.

* **Checkpoints (torch >= 2.6).** ``torch.load`` defaults to ``weights_only=True``, and RecBole's
  ``Trainer`` reloads its best model with a plain ``torch.load``. Two things stand in the way:
  RecBole saves with ``pickle_protocol=4``, whose opcodes (FRAME, MEMOIZE, ...) torch's weights-only
  unpickler cannot read at all, so ``Trainer._save_checkpoint`` is replaced by one that writes
  the same dictionary with torch's default protocol; and a RecBole checkpoint pickles the
  ``Config`` (with its enums, its YAML loader class and the model class), and for some built-in
  models (DIN, DIEN, FDSA, GRU4RecF, SASRecF) layers that hold the whole dataset. Instead of
  turning ``weights_only`` off, the classes RecBole itself pickles are added to torch's allow-list.
* **Anomaly detection.** ``recbole/model/sequential_recommender/sine.py`` calls
  ``torch.autograd.set_detect_anomaly(True)`` at import, and the package imports it for any
  sequential model (RecBole's own DIN and DIEN included): every backward pass then runs with NaN
  checks on each op, about twice as slow. The model packages are imported once here and anomaly
  detection switched off again.
* **Deprecation noise.** pandas 2.2 warns on every ``Dataset`` build about RecBole's chained
  in-place ``fillna`` and ``Series.agg(len)``, torch about RecBole's ``torch.cuda.amp.GradScaler``;
  the calls still behave as RecBole means under the pinned pandas < 2.3, so those warnings are silenced.

numpy 2 (``np.float_``) and setuptools 81 (no ``pkg_resources`` for ray) are handled by the pins in
``setup.py``, not here.
"""
import importlib
import inspect
import logging
import warnings

import numpy as np
import torch
import yaml

_applied = False

# Modules whose classes end up inside RecBole checkpoints.
_RECBOLE_PICKLED_MODULES = (
    "recbole.config.configurator",
    "recbole.utils.enum_type",
    "recbole.data.interaction",
    "recbole.data.dataset.dataset",
    "recbole.data.dataset.sequential_dataset",
    "recbole.data.dataset.customized_dataset",
    "recbole.data.dataset.kg_dataset",
    "recbole.data.dataset.kg_seq_dataset",
    "recbole.sampler.sampler",
    "recbole.model.layers",
)
# A checkpoint names the model class in its Config, so every RecBole model class is allowed.
_RECBOLE_MODEL_PACKAGES = (
    "recbole.model.general_recommender",
    "recbole.model.sequential_recommender",
    "recbole.model.context_aware_recommender",
    "recbole.model.knowledge_aware_recommender",
)


def _classes_defined_in(module_name):
    module = importlib.import_module(module_name)
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__.startswith("recbole")
    ]


def _import_recbole_models():
    """Import RecBole's model packages, undo sine.py's anomaly detection, and return every model
    class they define."""
    from recbole.model.abstract_recommender import AbstractRecommender

    modules = [importlib.import_module(package) for package in _RECBOLE_MODEL_PACKAGES]
    # off even if sine.py ran before this import; enable it after importing recbole_dien to debug
    torch.autograd.set_detect_anomaly(False)
    classes = []
    for module in modules:
        classes += [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, AbstractRecommender)
        ]
    return classes


def _numpy_pickle_globals():
    core = np.core.multiarray
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return [core._reconstruct, core.scalar, np.ndarray, np.dtype] + dtypes


def allow_in_checkpoints(*objects):
    """Let ``torch.load(weights_only=True)`` rebuild these classes (no-op before torch 2.4)."""
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(list(objects))


def _allow_recbole_checkpoints():
    torch_modules = [
        torch.nn.Module, torch.nn.ModuleDict, torch.nn.ModuleList, torch.nn.ParameterDict,
        torch.nn.ParameterList, torch.nn.Embedding, torch.nn.Linear, torch.nn.Sequential,
    ]
    recbole_classes = [c for m in _RECBOLE_PICKLED_MODULES for c in _classes_defined_in(m)]
    allow_in_checkpoints(
        yaml.loader.FullLoader,
        logging.getLogger,  # RecBole datasets pickle their logger as getLogger()
        *_numpy_pickle_globals(),
        *torch_modules,
        *recbole_classes,
        *_import_recbole_models(),
    )


def _save_checkpoint(self, epoch, verbose=True, **kwargs):
    """``Trainer._save_checkpoint`` with torch's default pickle protocol (readable by
    ``torch.load(weights_only=True)``); the saved dictionary is RecBole's."""
    from recbole.utils import set_color

    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    allow_in_checkpoints(type(self.model), self.config.model_class)  # e.g. a user's own model class
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    torch.save(
        {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        },
        saved_model_file,
    )
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def _silence_known_warnings():
    for message in (
        "A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
        "using <built-in function len> in Series.agg cannot aggregate",
        r"`torch.cuda.amp.GradScaler\(args...\)` is deprecated",
    ):
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


def apply():
    """Apply every shim once."""
    global _applied
    if _applied:
        return
    from recbole.trainer import Trainer

    Trainer._save_checkpoint = _save_checkpoint
    _allow_recbole_checkpoints()
    _silence_known_warnings()
    _applied = True
