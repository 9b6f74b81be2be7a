"""Every shim RecBole 1.2.1 needs on today's stack, in one place.

Importing :mod:`recbole_dien` applies them; nothing in site-packages is edited.

* **Checkpoints (torch >= 2.6).** ``torch.load`` defaults to ``weights_only=True``, and RecBole's
  ``Trainer`` reloads its best model with a plain ``torch.load``. RecBole writes its checkpoints
  with ``pickle_protocol=4`` (opcodes torch's weights-only unpickler cannot read) and pickles its
  ``Config`` into them - whose construction calls ``eval`` on strings, so allowing it would let a
  crafted file run code. ``Trainer._save_checkpoint`` is replaced by one that writes plain data
  only (:mod:`recbole_dien.trainer.checkpoint`): RecBole's keys, the configuration as plain data, and the
  state to resume from (:mod:`recbole_dien.trainer.resume`). torch's allow-list is left as it is.
* **DSIN's timestamps.** RecBole's ``Dataset._normalize`` (``normalize_all: True`` in RecBole's own
  ml-100k.yaml) would min-max normalise the time field DSIN cuts sessions with; for a model that
  declares ``time_in_seconds`` the time field is left out of the normalisation, the other float
  fields are normalised as configured.
* **Multi-process training on CPUs.** RecBole's DDP path hard-codes NCCL and CUDA; without CUDA,
  :mod:`recbole_dien.trainer.distributed` runs it with gloo (``AbstractTrainer.__init__``: a device-less
  DDP), and evaluation gathers every rank's scores before computing the metrics
  (``Collector.get_data_struct``; ``Trainer._map_reduce`` then keeps them as they are).
* **Freed memory.** A trainer, once built, makes the process keep the memory it frees
  (``AbstractTrainer.__init__``; :mod:`recbole_dien.trainer.allocator`, ``keep_freed_memory``), so that
  training steps stop page-faulting their large intermediates in at every batch.
* **Anomaly detection.** ``recbole/model/sequential_recommender/sine.py`` calls
  ``torch.autograd.set_detect_anomaly(True)`` at import, and the package imports it for any
  sequential model (RecBole's own DIN and DIEN included): every backward pass then runs with NaN
  checks on each op, about twice as slow. The model packages are imported once here and anomaly
  detection switched off again.
* **Reading the atomic files.** ``Dataset._load_feat`` reads them with pandas' Python parser,
  which builds a Python list per row: at 20M interactions most of the build's time and its peak
  memory. RecBole's module sees a ``pandas`` whose ``read_csv`` uses the C parser instead where the
  separator is one character (the C parser's limit), with Python's own float conversion
  (``float_precision='round_trip'``) so that every value is parsed as before; tests/test_compat.py
  compares the datasets read both ways.
* **Deprecation noise.** pandas 2.2 warns on every ``Dataset`` build about RecBole's chained
  in-place ``fillna`` and ``Series.agg(len)``, torch about RecBole's ``torch.cuda.amp.GradScaler``;
  the calls still behave as RecBole means under the pinned pandas < 2.3, so those warnings are silenced.

numpy 2 (``np.float_``) and setuptools 81 (no ``pkg_resources`` for ray) are handled by the pins in
``setup.py``, not here.
"""
import importlib
import warnings

import torch

_applied = False


def _import_recbole_models():
    """Import RecBole's model packages (the sequential one runs sine.py) and undo sine.py's anomaly detection."""
    from recbole_dien.utils.utils import NEEDS_OPTIONAL_LIBRARIES, RECBOLE_MODEL_PACKAGES

    for package in RECBOLE_MODEL_PACKAGES:
        if package not in NEEDS_OPTIONAL_LIBRARIES:
            importlib.import_module(f"recbole.model.{package}")
    # off even if sine.py ran before this import; enable it after importing recbole_dien to debug
    torch.autograd.set_detect_anomaly(False)


def _normalize_keeping_time_in_seconds(normalize):
    """``Dataset._normalize`` that leaves the time field as it is when the run's model declares
    ``time_in_seconds`` (DSIN cuts sessions at gaps of ``session_gap`` seconds; RecBole's min-max
    normalisation, which its own ml-100k.yaml switches on with ``normalize_all: True``, would put
    every gap far below that). Every other float field is normalised as configured."""
    def wrapper(self):
        config, time_field = self.config, self.config["TIME_FIELD"]
        model_class = getattr(config, "model_class", None)
        if not getattr(model_class, "time_in_seconds", False) or time_field not in self.field2type:
            return normalize(self)
        listed = config["normalize_field"]
        if not (config["normalize_all"] or time_field in (listed or [])):
            return normalize(self)
        fields = [f for f in (listed or self.float_like_fields) if f != time_field]
        saved = config["normalize_all"], listed
        config["normalize_all"], config["normalize_field"] = False, fields
        try:
            normalize(self)
        finally:
            config["normalize_all"], config["normalize_field"] = saved
        self.logger.info(f"{model_class.__name__} keeps '{time_field}' in its own units (session_gap is in them); "
                         "the other float fields are normalised as configured")

    wrapper.keeps_time_in_seconds = True
    wrapper.__wrapped__ = normalize
    return wrapper


class _PandasWithCParser:
    """The ``pandas`` module as RecBole's dataset module sees it: ``read_csv`` takes the C parser
    where RecBole asks for the Python one and the separator is a single character."""

    def __init__(self, pandas):
        self._pandas = pandas

    def __getattr__(self, name):
        return getattr(self._pandas, name)

    def read_csv(self, *args, **kwargs):
        separator = kwargs.get("delimiter", kwargs.get("sep"))
        if kwargs.get("engine") == "python" and isinstance(separator, str) and len(separator) == 1:
            kwargs.update(engine="c", float_precision="round_trip")
        return self._pandas.read_csv(*args, **kwargs)


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
    from recbole.data.dataset import Dataset
    from recbole.evaluator.collector import Collector
    from recbole.trainer import Trainer
    from recbole.trainer.trainer import AbstractTrainer

    from recbole_dien.trainer import allocator, distributed
    from recbole_dien.trainer.resume import save_checkpoint

    import recbole.data.dataset.dataset as dataset_module

    Trainer._save_checkpoint = save_checkpoint
    if not isinstance(dataset_module.pd, _PandasWithCParser):
        dataset_module.pd = _PandasWithCParser(dataset_module.pd)
    Dataset._normalize = _normalize_keeping_time_in_seconds(Dataset._normalize)
    AbstractTrainer.__init__ = allocator.trainer_init(distributed.trainer_init(AbstractTrainer.__init__))
    Trainer._map_reduce = distributed.keep_metrics
    Trainer.evaluate = distributed.evaluate_with_rank0_buffers(Trainer.evaluate)
    Collector.get_data_struct = distributed.gather_data_struct(Collector.get_data_struct)
    _import_recbole_models()
    _silence_known_warnings()
    _applied = True
