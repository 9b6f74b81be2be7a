"""Every shim hopwise needs to host the plugin's models safely, installed on hopwise's classes in one place.

hopwise (0.9) runs on numpy 2 and pandas 3 by itself, so none of RecBole's stack shims
(:mod:`recbole_dien.compat`) is needed; what is, is the plugin's guarantees and its models'
lookup, on hopwise's own classes. :func:`apply` runs on the first use of hopwise through the
plugin (:mod:`recbole_dien.utils.hosts`); nothing in site-packages is edited, and RecBole is
never imported.

* **Checkpoints hold plain data.** ``Trainer._save_checkpoint`` pickles hopwise's ``Config`` with
  ``pickle_protocol=4``, and ``Trainer.evaluate`` / ``resume_checkpoint`` and
  ``quick_start.load_data_and_model`` read checkpoints with ``torch.load(weights_only=False)``: a
  crafted file runs code when a best model is reloaded. Checkpoints are written as the plugin's
  plain data (:mod:`recbole_dien.trainer.resume`) and every one of those reads goes through
  :func:`recbole_dien.trainer.checkpoint.load_checkpoint` (weights only, one line on refusal).
* **No setting is evaluated.** hopwise's ``Config._convert_config_dict`` calls ``eval`` on command-line
  and ``config_dict`` strings and its YAML loader is ``yaml.FullLoader``: strings are typed as literals
  (hopwise's nested ``a.b`` keys kept) and YAML read with the plugin's bounded safe loader
  (:mod:`recbole_dien.config.parsing`).
* **No pickle is read from a folder.** ``hopwise.data.utils`` unpickles saved datasets and
  dataloaders whenever such files exist: it sees a ``pickle`` that refuses
  (:class:`recbole_dien.data.utils.RefusingPickle`).
* **The plugin's props, never hopwise's model YAML.** hopwise's ``Config`` reads
  ``properties/model/<Model>.yaml`` by name, so ``Config(model=recbole_dien.hopwise.DIN)`` trained
  with hopwise's DIN defaults (embedding 10, MLP [256, 256, 256]): for a plugin model it reads
  ``props/<Model>.yaml`` in that file's place.
* **The plugin's datasets and models by class.** hopwise's ``create_dataset`` takes
  ``hopwise.data.dataset.<Model>Dataset`` by name (hopwise's DIENDataset, whose negatives are
  misaligned): for a plugin model it builds the plugin's dataset (lean path, aligned negatives,
  DSIN's sessions). ``run_hopwise(model=<class>)`` trains that class (hopwise looks the name up
  again); ``get_model('DSIN')`` names the plugin's models instead of failing on lightgbm.
* **DSIN's time in seconds, exact.** As on RecBole (:mod:`recbole_dien.compat`): the time field
  is left out of min-max normalisation and kept in float64 for a model that declares
  ``time_in_seconds``; rows left out by ``malformed_rows: skip`` are skipped when hopwise reads them.
* **Anomaly detection** (hopwise's ``sine.py`` switches it on at import, doubling every backward
  pass) is switched off again, and ``keep_freed_memory`` applies to hopwise's trainers too.
"""
import os
import sys

import torch

_applied = False
# hopwise 0.9's trainers whose own evaluate reloads the best model with torch.load(weights_only=False)
TRAINERS_RELOADING_BEST_MODELS = ("Trainer", "KGTrainer", "TPRecTrainer")


def convert_config_dict(self, config_dict):
    """hopwise's ``Config._convert_config_dict`` without ``eval``: strings typed as literals with
    hopwise's enums (:func:`recbole_dien.config.parsing.parse_value`), dicts converted inside, and
    hopwise's nested keys (``eval_args.mode=full``) expanded as hopwise expands them."""
    from hopwise.utils import deep_dict_update

    from recbole_dien.config.parsing import parse_value
    from recbole_dien.utils.hosts import HOPWISE

    separator = getattr(self, "NESTED_KEY_SEPARATOR", ".")
    for key in list(config_dict):
        value = config_dict[key]
        if isinstance(value, dict):
            if separator in key:
                raise SyntaxError(f"If '{separator}' is used in the key, the value should be str, but got [{value}] "
                                  f"of type [{type(value)}] instead.")
            config_dict[key] = convert_config_dict(self, value)
            continue
        value = parse_value(value, HOPWISE)
        if isinstance(config_dict[key], str) and separator in key:
            nested = value
            for part in reversed(key.split(separator)):
                nested = {part: nested}
            del config_dict[key]
            deep_dict_update(config_dict, nested)
        else:
            config_dict[key] = value
    return config_dict


def _props_instead_of_hopwise_model_yaml(load_internal_config_dict, model_yaml_folder):
    """``Config._load_internal_config_dict`` that, for a plugin model, reads ``props/<Model>.yaml``
    where hopwise reads ``<model_yaml_folder>/<Model>.yaml`` (its ``properties/model``)."""
    from recbole_dien.utils.resources import props_file
    from recbole_dien.utils.utils import is_plugin_model

    def wrapper(self, model, model_class, dataset):
        if not is_plugin_model(model_class) or props_file(model) is None:
            return load_internal_config_dict(self, model, model_class, dataset)
        hopwise_file = os.path.realpath(os.path.join(model_yaml_folder, f"{model}.yaml"))
        update = self._update_internal_config_dict

        def update_with_props(file):
            return update(props_file(model) if os.path.realpath(file) == hopwise_file else file)

        self._update_internal_config_dict = update_with_props
        try:
            loaded = load_internal_config_dict(self, model, model_class, dataset)
        finally:
            del self._update_internal_config_dict
        if not os.path.isfile(hopwise_file):  # a model hopwise has no YAML of (DSIN): its props in that place
            update(props_file(model))
        return loaded

    wrapper.__wrapped__ = load_internal_config_dict
    return wrapper


def load_config_files(self, file_list):
    """hopwise's ``Config._load_config_files`` with each file read by the plugin's bounded safe loader
    (one line naming the file for a Python tag, an alias bomb, bad YAML or a missing file), merged as
    hopwise merges them (nested dicts key by key)."""
    from hopwise.utils import deep_dict_update

    from recbole_dien.config import parsing
    from recbole_dien.utils.errors import ConfigError

    settings = {}
    for path in file_list or []:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist (config_file_list takes paths of YAML files)")
        deep_dict_update(settings, parsing.load_yaml_file(path))
    return settings


def _best_model_read_as_plain_data(evaluate):
    """``Trainer.evaluate`` whose best-model reload reads the checkpoint weights-only (hopwise's
    ``torch.load(weights_only=False)`` would run what a crafted file asks for)."""
    from recbole_dien.trainer.checkpoint import load_checkpoint

    def wrapper(self, eval_data, load_best_model=True, model_file=None, show_progress=False, *args, **kwargs):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter") or None)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return evaluate(self, eval_data, False, model_file, show_progress, *args, **kwargs)

    wrapper.__wrapped__ = evaluate
    return wrapper


def resume_checkpoint(self, resume_file):
    """``Trainer.resume_checkpoint`` reading the checkpoint weights-only (hopwise's unpickles it)."""
    from recbole_dien.trainer.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(resume_file, map_location=self.device)
    self.saved_model_file = str(resume_file)
    self.start_epoch, self.cur_step = checkpoint["epoch"] + 1, checkpoint["cur_step"]
    self.best_valid_score = checkpoint["best_valid_score"]
    self.model.load_state_dict(checkpoint["state_dict"])
    self.model.load_other_parameter(checkpoint.get("other_parameter") or None)


def _plugin_datasets_for_plugin_models(create_dataset):
    """hopwise's ``create_dataset`` building the plugin's dataset for a plugin model."""
    from recbole_dien.utils.utils import is_plugin_model

    def wrapper(config):
        if not is_plugin_model(getattr(config, "model_class", None) or object):
            return create_dataset(config)
        from recbole_dien.data import create_dataset as plugin_create_dataset

        return plugin_create_dataset(config)

    wrapper.__wrapped__ = create_dataset
    return wrapper


def load_data_and_model(model_file, load_only_data=False, updating_config=None):
    """hopwise's ``quick_start.load_data_and_model`` for the plugin's plain-data checkpoints
    (:func:`recbole_dien.quick_start.load_data_and_model`); hopwise's unpickles the file."""
    from recbole_dien.quick_start.quick_start import load_data_and_model as load
    from recbole_dien.utils.errors import ConfigError

    if updating_config is not None:
        raise ConfigError("load_data_and_model(updating_config=...): a checkpoint's config is rebuilt from its "
                          "plain data as it was; change settings with a new run")
    return load(model_file)


def _quick_start_with_plugin_classes(module):
    """``hopwise.quick_start``: ``run_hopwise(model=<class>)`` trains that class, and
    ``load_data_and_model`` reads plain-data checkpoints."""
    from recbole_dien.quick_start.quick_start import recbole_run_recbole_training_classes
    from recbole_dien.utils.hosts import HOPWISE

    if not hasattr(module.run_hopwise, "__wrapped__"):
        module.run_hopwise = recbole_run_recbole_training_classes(module.run_hopwise, HOPWISE)
    module.load_data_and_model = load_data_and_model
    quick_start = sys.modules.get("hopwise.quick_start")
    if quick_start is not None:
        quick_start.run_hopwise, quick_start.load_data_and_model = module.run_hopwise, load_data_and_model
    _rebind(module, "get_model", _get_model)
    _rebind(module, "create_dataset", _create_dataset)


def _rebind(module, name, value):
    if value is not None and hasattr(module, name):
        setattr(module, name, value)


_get_model = _create_dataset = None


def apply():
    """Apply every shim once (:meth:`recbole_dien.utils.hosts.Host.activate` calls it)."""
    global _applied, _get_model, _create_dataset
    if _applied:
        return
    import hopwise.config.configurator as configurator
    import hopwise.data
    import hopwise.data.utils as data_utils
    import hopwise.model.sequential_recommender  # noqa: F401 - runs sine.py, whose anomaly detection is undone below
    import hopwise.trainer.trainer as trainers
    import hopwise.utils
    import hopwise.utils.utils as hopwise_utils
    from hopwise.data.dataset import Dataset

    from recbole_dien import compat as recbole_compat
    from recbole_dien.config import parsing
    from recbole_dien.data.utils import RefusingPickle
    from recbole_dien.trainer import allocator
    from recbole_dien.trainer.resume import save_checkpoint
    from recbole_dien.utils.hosts import HOPWISE
    from recbole_dien.utils.utils import recbole_get_model_naming_plugin_models

    config_class = configurator.Config
    config_class._convert_config_dict = convert_config_dict
    config_class._build_yaml_loader = parsing.build_yaml_loader
    config_class._load_config_files = load_config_files
    config_class._load_internal_config_dict = _props_instead_of_hopwise_model_yaml(
        config_class._load_internal_config_dict,
        os.path.join(os.path.dirname(configurator.__file__), "..", "properties", "model"))

    trainers.Trainer._save_checkpoint = save_checkpoint
    trainers.Trainer.resume_checkpoint = resume_checkpoint
    for name in TRAINERS_RELOADING_BEST_MODELS:
        trainer_class = getattr(trainers, name, None)
        if trainer_class is not None and "evaluate" in vars(trainer_class):
            trainer_class.evaluate = _best_model_read_as_plain_data(trainer_class.evaluate)
    trainers.AbstractTrainer.__init__ = allocator.trainer_init(trainers.AbstractTrainer.__init__)

    if not isinstance(data_utils.pickle, RefusingPickle):
        data_utils.pickle = RefusingPickle(data_utils.pickle)
    _create_dataset = _plugin_datasets_for_plugin_models(data_utils.create_dataset)
    for module in (data_utils, hopwise.data):
        module.create_dataset = _create_dataset

    _get_model = recbole_get_model_naming_plugin_models(hopwise_utils.get_model, HOPWISE)
    for module in (hopwise_utils, hopwise.utils, configurator):
        module.get_model = _get_model

    Dataset._normalize = recbole_compat._normalize_keeping_time_in_seconds(Dataset._normalize)
    Dataset._dataframe_to_interaction = recbole_compat._exact_time_in_seconds(Dataset._dataframe_to_interaction)
    Dataset._load_feat = recbole_compat._load_feat_leaving_out_malformed_rows(Dataset._load_feat)
    recbole_compat._when_imported("hopwise.quick_start.quick_start", _quick_start_with_plugin_classes)
    torch.autograd.set_detect_anomaly(False)  # enable it after the first use of hopwise to debug
    _applied = True

