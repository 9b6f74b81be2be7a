"""Every shim RecBole 1.2.1 needs on today's stack, in one place.

The first use of RecBole through the plugin applies them (:func:`activate`, from
:mod:`recbole_dien.utils.hosts`), and so does importing RecBole itself once :mod:`recbole_dien` is
imported (:func:`activate_when_recbole_is_imported`); nothing in site-packages is edited.
hopwise's shims are :mod:`recbole_dien.hopwise.compat`.

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
  fields are normalised as configured. ``Dataset._dataframe_to_interaction`` stores float fields as
  float32, whose resolution at today's unix times (~1.7e9 s) is 128 s, enough to put a gap of
  1,801 s on the wrong side of a 30-minute ``session_gap``; for such a model the time field is kept
  in float64 (exact for integer seconds up to 2^53), on the lean and RecBole's data paths alike.
  A dataset class that declares ``time_in_seconds`` (impressions with a behaviour log, whose
  histories are the behaviours strictly before each impression's second) gets the same for every model.
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
* **Data loaders' index lists.** ``AbstractDataLoader.__init__`` hands torch's ``DataLoader``
  ``list(range(sample_size))`` as its dataset, and torch's ``RandomSampler`` turns each epoch's
  permutation into one Python list: about 40 bytes per training row each (3.7 GB apiece for a
  100M-row log, which took a build and its first batch past 16 GB). RecBole's module sees a
  ``list`` that leaves a ``range`` as it is (a range is a sequence of the same ints), and a
  loader's ``RandomSampler`` is replaced by one that draws the same permutation from the same
  generator, held as int32, and hands it out in slices (the same batches, in the same order, and
  the generator left in the same state).
* **numpy 2.** ``Config.compatibility_settings`` (recbole/config/configurator.py, lines 625-635)
  restores the aliases numpy 1.24 removed (``np.float``, ``np.int``, ...) from ``np.float_``,
  ``np.complex_`` and ``np.unicode_``, which numpy 2 removed as well, so every ``Config`` failed. It
  sets the same aliases from the names numpy 1 and 2 both have (the same objects: ``np.float64``,
  ``np.complex128``, ``np.str_``); RecBole's later uses (``np.float`` in its dataset and metrics) then work.
* **pandas 2.3 and 3 (copy-on-write).** RecBole fills missing values with chained in-place calls,
  ``df[field].fillna(..., inplace=True)``, which change nothing once copy-on-write is on (pandas 3;
  a warning in 2.2-2.3): the empty cells of sequence fields (``Dataset._load_feat``, dataset.py line
  501: then ``str.split`` fails on the NaN) are filled in the ``read_csv`` RecBole's module sees, and
  the token and float fields of ``Dataset._fill_nan`` (lines 648, 650) are filled by assignment
  before RecBole's own pass. ``feat[field].agg(len)``, which RecBole means as per-row lengths
  (lines 712, 792, 809 in ``_normalize`` / ``_discretization``, 1217 in ``_remap``), is the length of
  the whole column in pandas 3; inside those methods it is the per-row lengths again.
* **setuptools 81+.** No ``pkg_resources``: only ray 2.6.3 needs it, which only
  ``recbole.quick_start`` (RecBole's own ``run_recbole`` and ray tuning) imports; no path of the
  plugin imports either, so any setuptools works.
* **Nothing read runs code** (issue 27). RecBole's ``Config`` evaluates strings of the command line
  and ``config_dict`` with ``eval`` and reads YAML with ``FullLoader``: it gets the plugin's literal
  parsing and bounded safe loader (:mod:`recbole_dien.config.parsing`). ``recbole.data.utils``
  unpickles saved datasets and dataloaders whenever such files exist: it sees a ``pickle`` that
  refuses (:mod:`recbole_dien.data.utils`); ``HyperTuning`` reads a search space's ``choice`` values
  as literals instead of with ``eval`` (:mod:`recbole_dien.quick_start.tuning`). RecBole's
  ``get_model`` names the plugin's models instead of failing on lightgbm; ``recbole.quick_start``
  (shimmed when first imported, since it imports ray) trains the class ``run_recbole`` is given and
  loads the plugin's checkpoints. ``Dataset._load_feat`` skips the rows ``malformed_rows: skip``
  left out (:mod:`recbole_dien.data.checks`).
* **Deprecation noise.** pandas 2.2 warns on every ``Dataset`` build about RecBole's chained
  in-place ``fillna`` and ``Series.agg(len)`` (both handled above), torch about RecBole's
  ``torch.cuda.amp.GradScaler``; those warnings are silenced.
"""
import functools
import importlib
import importlib.abc
import sys
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


def _keeps_time_in_seconds(dataset):
    """Whether the run's model or the dataset's class declares ``time_in_seconds``."""
    model_class = getattr(dataset.config, "model_class", None)
    return getattr(model_class, "time_in_seconds", False) or getattr(dataset, "time_in_seconds", False)


def _normalize_keeping_time_in_seconds(normalize):
    """``Dataset._normalize`` that leaves the time field as it is when the run's model declares
    ``time_in_seconds`` (DSIN cuts sessions at gaps of ``session_gap`` seconds; RecBole's min-max
    normalisation, which its own ml-100k.yaml switches on with ``normalize_all: True``, would put
    every gap far below that). Every other float field is normalised as configured."""
    def wrapper(self):
        config, time_field = self.config, self.config["TIME_FIELD"]
        if not _keeps_time_in_seconds(self) or time_field not in self.field2type:
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
        model_class = getattr(config, "model_class", None)
        keeper = model_class if getattr(model_class, "time_in_seconds", False) else type(self)
        self.logger.info(f"{keeper.__name__} keeps '{time_field}' in its own units (session gaps and history "
                         "boundaries are in them); the other float fields are normalised as configured")

    wrapper.keeps_time_in_seconds = True
    wrapper.__wrapped__ = normalize
    return wrapper


def _exact_time_in_seconds(dataframe_to_interaction):
    """``Dataset._dataframe_to_interaction`` that keeps the time field in float64, as pandas read
    it, when the run's model declares ``time_in_seconds`` (RecBole's float32 rounds unix times to
    128 s); every other field, and every other model's time field, is converted as before. Works
    on hopwise's ``Dataset`` too (its own enums and ``Interaction``)."""
    import numpy as np

    from recbole_dien.utils.hosts import host_of

    def wrapper(self, data):
        interaction = dataframe_to_interaction(self, data)
        time_field = self.config["TIME_FIELD"]
        host = host_of(self)
        if (_keeps_time_in_seconds(self) and time_field in data
                and self.field2type.get(time_field) == host.FeatureType.FLOAT
                and time_field not in (self.config["numerical_features"] or [])):
            exact = torch.from_numpy(np.array(data[time_field].to_numpy(), dtype=np.float64))
            interaction.update(host.Interaction({time_field: exact}))
        return interaction

    wrapper.keeps_exact_time = True
    wrapper.__wrapped__ = dataframe_to_interaction
    return wrapper


class _PandasWithCParser:
    """The ``pandas`` module as RecBole's dataset module sees it: ``read_csv`` takes the C parser
    where RecBole asks for the Python one and the separator is a single character, and gives the
    sequence columns' empty cells as empty strings (:func:`_fill_empty_sequence_cells`)."""

    def __init__(self, pandas):
        self._pandas = pandas

    def __getattr__(self, name):
        return getattr(self._pandas, name)

    def read_csv(self, *args, **kwargs):
        separator = kwargs.get("delimiter", kwargs.get("sep"))
        if kwargs.get("engine") == "python" and isinstance(separator, str) and len(separator) == 1:
            kwargs.update(engine="c", float_precision="round_trip")
        frame = self._pandas.read_csv(*args, **kwargs)
        return _fill_empty_sequence_cells(frame) if hasattr(frame, "columns") else frame  # not a chunk reader


def _compatibility_settings_for_numpy_1_and_2(self):
    """``Config.compatibility_settings``: RecBole's numpy aliases, from names numpy 1 and 2 both have."""
    import numpy as np

    for alias, value in (("bool", np.bool_), ("int", np.int_), ("float", np.float64), ("complex", np.complex128),
                         ("object", np.object_), ("str", np.str_), ("long", np.int_), ("unicode", np.str_)):
        setattr(np, alias, value)


# RecBole's atomic-file headers name each column "<field>:<type>"
_SEQUENCE_COLUMN_SUFFIXES = (":token_seq", ":float_seq")


def _fill_empty_sequence_cells(frame):
    """What ``df[field].fillna(value="", inplace=True)`` in ``Dataset._load_feat`` means: empty cells of
    the sequence columns become empty strings (under copy-on-write that chained call fills nothing)."""
    for column in frame.columns:
        if str(column).endswith(_SEQUENCE_COLUMN_SUFFIXES) and frame[column].isna().any():
            frame[column] = frame[column].fillna("")
    return frame


def _fill_nan_by_assignment(fill_nan):
    """``Dataset._fill_nan`` whose token (0, i.e. [PAD]) and float (the column's mean) imputation is
    made by assignment first: RecBole's chained in-place ``fillna`` then finds nothing left to fill
    (under copy-on-write it would fill nothing at all); its own pass still handles the sequence fields."""
    from recbole.utils import FeatureType

    def wrapper(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype not in (FeatureType.TOKEN, FeatureType.FLOAT) or not feat[field].isna().any():
                    continue
                feat[field] = feat[field].fillna(0 if ftype == FeatureType.TOKEN else feat[field].mean())
        return fill_nan(self)

    wrapper.__wrapped__ = fill_nan
    return wrapper


def _agg_len_per_row(method):
    """``method`` during which ``Series.agg(len)`` gives each row's length, as RecBole means it (and
    pandas < 3 gave, with a FutureWarning); pandas 3 gives the length of the whole column. Every other
    ``agg`` is pandas' own."""
    import pandas as pd

    def wrapper(*args, **kwargs):
        original = pd.Series.agg

        def agg(series, func=None, *agg_args, **agg_kwargs):
            if func is len:
                return series.map(len)
            return original(series, func, *agg_args, **agg_kwargs)

        pd.Series.agg = agg
        try:
            return method(*args, **kwargs)
        finally:
            pd.Series.agg = original

    wrapper.__wrapped__ = method
    return wrapper


def _silence_known_warnings():
    # pandas 3 warns (ChainedAssignmentError) on every RecBole chained in-place call, filled above
    warnings.filterwarnings("ignore", message="A value is being set on a copy of a DataFrame or Series through "
                            "chained assignment using an inplace method")
    for message in (
        "A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
        "using <built-in function len> in Series.agg cannot aggregate",
        r"`torch.cuda.amp.GradScaler\(args...\)` is deprecated",
    ):
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


# --------------------------------------------------------------------------- safety (issue 27)

def _settings_parsed_without_eval(config_class):
    """RecBole's own ``Config`` types command-line and ``config_dict`` strings without ``eval`` and
    reads YAML with the bounded safe loader (:mod:`recbole_dien.config.parsing`)."""
    from recbole_dien.config import parsing

    config_class._convert_config_dict = parsing.convert_config_dict
    config_class._build_yaml_loader = parsing.build_yaml_loader


def _saved_data_never_unpickled():
    """``recbole.data.utils`` (``create_dataset``, ``load_split_dataloaders``) sees a ``pickle``
    whose ``load`` refuses in one line (:class:`recbole_dien.data.utils.RefusingPickle`)."""
    import recbole.data.utils as data_utils

    from recbole_dien.data.utils import RefusingPickle

    if not isinstance(data_utils.pickle, RefusingPickle):
        data_utils.pickle = RefusingPickle(data_utils.pickle)


def _recbole_get_model_naming_plugin_models(*modules):
    """RecBole's ``get_model``, wherever it is bound, names the plugin's models in one line."""
    import recbole.utils.utils as recbole_utils

    from recbole_dien.utils.utils import recbole_get_model_naming_plugin_models

    lookup = recbole_utils.get_model
    if not getattr(lookup, "names_plugin_models", False):
        lookup = recbole_get_model_naming_plugin_models(lookup)
    for module in (recbole_utils,) + modules:
        module.get_model = lookup


def _recbole_quick_start_with_plugin_classes(module):
    """``recbole.quick_start``: ``run_recbole(model=<class>)`` trains that class (RecBole looks the
    name up again, and finds its own DIN); ``load_data_and_model`` reads the plugin's plain-data
    checkpoints (RecBole's expects a pickled ``Config``)."""
    from recbole_dien.quick_start.quick_start import load_data_and_model, recbole_run_recbole_training_classes

    module.run_recbole = recbole_run_recbole_training_classes(module.run_recbole)
    module.load_data_and_model = load_data_and_model
    _recbole_get_model_naming_plugin_models(module)


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs ``then(module)`` right after the module ``name`` is first imported, so that a shim of a
    module that is slow to import (``recbole.quick_start`` imports ray) costs nothing until it is used."""

    def __init__(self, name, then):
        self.name, self.then, self._loader = name, then, None

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    self._loader, spec.loader = spec.loader, self
                    return spec
        return None

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.then(module)


def _when_imported(name, then):
    if name in sys.modules:
        then(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, then))


def _load_feat_leaving_out_malformed_rows(load_feat):
    """``Dataset._load_feat`` that skips the rows the data check left out (``malformed_rows: skip``,
    :func:`recbole_dien.data.checks.lines_to_leave_out`); RecBole's or hopwise's, whose module it
    reads pandas through."""
    dataset_module = importlib.import_module(load_feat.__module__)

    from recbole_dien.data.checks import PandasLeavingOutLines, lines_to_leave_out

    def wrapper(self, filepath, source):
        lines = lines_to_leave_out(filepath)
        if not lines:
            return load_feat(self, filepath, source)
        pandas = dataset_module.pd
        dataset_module.pd = PandasLeavingOutLines(pandas, lines)
        try:
            return load_feat(self, filepath, source)
        finally:
            dataset_module.pd = pandas

    wrapper.__wrapped__ = load_feat
    return wrapper


def _search_spaces_read_without_eval():
    """``HyperTuning._build_space_from_file`` reads ``choice`` values as literals, not with ``eval``."""
    from recbole.trainer.hyper_tuning import HyperTuning

    from recbole_dien.quick_start.tuning import build_space_from_file

    HyperTuning._build_space_from_file = staticmethod(build_space_from_file)


class _NumpyWithGeneratorRandomState:
    """The ``numpy`` module as RecBole's ``hyper_tuning`` sees it: ``np.random.RandomState(seed)``
    gives a ``Generator``. ``exhaustive_search`` (``rng = np.random.RandomState(seed)``) hands its
    rng to hyperopt, whose samplers since 0.2.7 (the oldest the tune extra admits) call
    ``rng.integers``, which a ``RandomState`` lacks: every ``--tool=exhaustive`` run failed on its
    first trial."""

    def __init__(self, numpy):
        self._numpy = numpy
        self.random = _RandomWithGenerator(numpy.random)

    def __getattr__(self, name):
        return getattr(self._numpy, name)


class _RandomWithGenerator:
    def __init__(self, random):
        self._random = random
        self.RandomState = random.default_rng

    def __getattr__(self, name):
        return getattr(self._random, name)


def _exhaustive_search_on_hyperopt_generators():
    import recbole.trainer.hyper_tuning as hyper_tuning

    if not isinstance(hyper_tuning.np, _NumpyWithGeneratorRandomState):
        hyper_tuning.np = _NumpyWithGeneratorRandomState(hyper_tuning.np)


class _RandomOrderInSlices(torch.utils.data.RandomSampler):
    """torch's ``RandomSampler`` without replacement, the same draws from the same generator, its
    permutation handed out a slice at a time instead of as one Python list of every index."""

    SLICE = 65536

    def __iter__(self):
        if self.replacement:
            yield from super().__iter__()
            return
        n = len(self.data_source)
        generator = self.generator
        if generator is None:  # as torch's own __iter__ seeds one
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        # int32 where n allows: the same permutation (torch draws the same numbers for either dtype), half the bytes
        dtype = torch.int32 if n < 2 ** 31 else torch.int64
        for _ in range(self.num_samples // n):
            for part in torch.randperm(n, generator=generator, dtype=dtype).split(self.SLICE):
                yield from part.tolist()
        for part in torch.randperm(n, generator=generator, dtype=dtype)[:self.num_samples % n].split(self.SLICE):
            yield from part.tolist()


def _list_keeping_ranges(iterable=()):
    """``list`` as recbole/data/dataloader/abstract_dataloader.py sees it: a range stays a range."""
    return iterable if isinstance(iterable, range) else list(iterable)


def _loader_sampling_in_slices(init):
    """``AbstractDataLoader.__init__``, then its torch ``RandomSampler`` (if any) drawn in slices."""
    from torch.utils.data import BatchSampler, RandomSampler

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self.sampler) is RandomSampler:
            sampler = _RandomOrderInSlices(self.sampler.data_source, replacement=self.sampler.replacement,
                                           num_samples=self.sampler._num_samples, generator=self.sampler.generator)
            # DataLoader refuses these attributes once built; they are replaced by equivalents
            object.__setattr__(self, "sampler", sampler)
            if isinstance(self.batch_sampler, BatchSampler):
                object.__setattr__(self, "batch_sampler", BatchSampler(sampler, self.batch_sampler.batch_size,
                                                                       self.batch_sampler.drop_last))

    wrapper.__wrapped__ = init
    return wrapper


def _safety_shims(config_class, dataset_class):
    import recbole.config.configurator as configurator

    _settings_parsed_without_eval(config_class)
    _search_spaces_read_without_eval()
    _exhaustive_search_on_hyperopt_generators()
    _saved_data_never_unpickled()
    _recbole_get_model_naming_plugin_models(configurator, sys.modules["recbole.utils"])
    _when_imported("recbole.quick_start.quick_start", _recbole_quick_start_with_plugin_classes)
    dataset_class._load_feat = _load_feat_leaving_out_malformed_rows(dataset_class._load_feat)


def activate():
    """What the first use of RecBole through the plugin does: every shim, and the plugin's metrics
    registered with RecBole's evaluator."""
    from recbole_dien import evaluator

    apply()
    evaluator.register()


def activate_when_recbole_is_imported():
    """Activate RecBole's shims as soon as anything imports RecBole (at once if it already is): so
    ``import recbole_dien`` keeps making RecBole work, without importing RecBole for a hopwise run."""
    from recbole_dien.utils.hosts import RECBOLE

    _when_imported("recbole", lambda module: RECBOLE.activate())


def apply():
    """Apply every shim once."""
    global _applied
    if _applied:
        return
    from recbole.config import Config as RecBoleConfig
    from recbole.data.dataset import Dataset
    from recbole.evaluator.collector import Collector
    from recbole.trainer import Trainer
    from recbole.trainer.trainer import AbstractTrainer

    from recbole_dien.trainer import allocator, distributed
    from recbole_dien.trainer.resume import save_checkpoint

    import recbole.data.dataloader.abstract_dataloader as dataloader_module
    import recbole.data.dataset.dataset as dataset_module

    Trainer._save_checkpoint = save_checkpoint
    if not isinstance(dataset_module.pd, _PandasWithCParser):
        dataset_module.pd = _PandasWithCParser(dataset_module.pd)
    _compatibility_settings_for_numpy_1_and_2.__wrapped__ = RecBoleConfig.compatibility_settings
    RecBoleConfig.compatibility_settings = _compatibility_settings_for_numpy_1_and_2
    Dataset._fill_nan = _fill_nan_by_assignment(Dataset._fill_nan)
    for name in ("_normalize", "_discretization", "_remap"):
        setattr(Dataset, name, _agg_len_per_row(getattr(Dataset, name)))
    Dataset._normalize = _normalize_keeping_time_in_seconds(Dataset._normalize)
    Dataset._dataframe_to_interaction = _exact_time_in_seconds(Dataset._dataframe_to_interaction)
    AbstractTrainer.__init__ = allocator.trainer_init(distributed.trainer_init(AbstractTrainer.__init__))
    Trainer._map_reduce = distributed.keep_metrics
    Trainer.evaluate = distributed.evaluate_with_rank0_buffers(Trainer.evaluate)
    Collector.get_data_struct = distributed.gather_data_struct(Collector.get_data_struct)
    dataloader_module.list = _list_keeping_ranges
    loader = dataloader_module.AbstractDataLoader
    loader.__init__ = _loader_sampling_in_slices(loader.__init__)
    _safety_shims(RecBoleConfig, Dataset)
    _import_recbole_models()
    _silence_known_warnings()
    _applied = True
