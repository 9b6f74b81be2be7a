"""The host's ``Config`` (RecBole's or hopwise's) with the plugin's model lookup and YAML defaults."""
import os

import recbole_dien.config.knobs as knobs
from recbole_dien.config import parsing
from recbole_dien.trainer import distributed
from recbole_dien.utils.errors import ConfigError, RecBoleDienError
from recbole_dien.utils.resources import available_protocols, dataset_config_file, props_file
from recbole_dien.utils.utils import get_model, is_plugin_model


def parse_overrides(args):
    """``--key=value`` arguments as ``{key: value}`` (strings, as RecBole reads its command line;
    :meth:`Config._convert_config_dict` types them without evaluating anything); one
    :class:`ConfigError` line for anything else."""
    overrides = {}
    for arg in args or []:
        key, sep, value = arg[2:].partition("=")
        if not arg.startswith("--") or not sep or not key:
            raise ConfigError(f"unrecognised argument '{arg}': settings are written --key=value")
        overrides[key] = value
    return overrides


class Config:
    """RecBole's ``Config``, resolving model names plugin-first and adding the plugin's YAML files.

    Host-neutral: ``recbole_dien.Config`` is this class built on RecBole's ``Config``,
    ``recbole_dien.hopwise.Config`` on hopwise's (:meth:`recbole_dien.utils.hosts.Host.config_class`),
    which reads the same files in the same order; ``host`` is that host.

    Precedence, lowest first: RecBole's own defaults (``overall.yaml``, its model and quick-start
    YAML) < ``props/<Model>.yaml`` (plugin models only) < ``dataset_configs/<dataset>.yaml`` (when
    present, for every model, so all models share one protocol) < with ``protocol: <name>``,
    ``dataset_configs/<dataset>-<name>.yaml`` < ``config_file_list`` < ``config_dict`` < command line.

    A model trained with RecBole's full cross-entropy (``loss_type: CE``: GRU4Rec, SASRec, NARM,
    STAMP, ...) gets no sampled training negatives unless the user asks for them, because RecBole
    refuses the two together; so every model runs under every protocol, each with its own
    training objective and all with the same split and evaluation.

    Every setting a run uses is checked once the config is complete (:mod:`recbole_dien.config.knobs`):
    a wrong type, range or value stops here with one :class:`ConfigError` line. No string is
    evaluated: command-line values and strings of ``config_dict`` are typed as literals, YAML files
    are read with a safe loader that bounds alias expansion (:mod:`recbole_dien.config.parsing`). A key
    that neither RecBole nor the plugin knows is one warning line naming the closest known key
    (an error with ``strict_settings: True``).

    Args:
        model: a model name (``DIN`` is this package's, ``recbole.DIN`` RecBole's) or a model class.
        cmd_args: ``--key=value`` overrides; by default RecBole reads them from ``sys.argv``.
    """

    host = None  # set on the class built for a host

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = cmd_args
        super().__init__(model, dataset, config_file_list, config_dict)
        knobs.check_known_keys(self)
        knobs.validate_run(self)

    # no string is evaluated, no YAML tag builds an object (RecBole's own Config gets the same
    # through recbole_dien.compat)
    _convert_config_dict = parsing.convert_config_dict
    _build_yaml_loader = parsing.build_yaml_loader

    @classmethod
    def from_final_config_dict(cls, final_config_dict, model_class, parameters=None):
        """The config a run ended with, from its final settings (as a checkpoint stores them):
        nothing is read from files or the command line, and no string is evaluated."""
        config = cls.__new__(cls)
        config._cmd_args = []
        config.compatibility_settings()
        config._init_parameters_category()
        config.parameters.update(parameters or {})
        config.yaml_loader = config._build_yaml_loader()
        config.file_config_dict, config.variable_config_dict, config.cmd_config_dict = {}, {}, {}
        config.external_config_dict, config.internal_config_dict = {}, {}
        config.model, config.model_class = final_config_dict["model"], model_class
        config.dataset = final_config_dict["dataset"]
        config.final_config_dict = dict(final_config_dict)
        # a loaded config never saves or reads saved data (see recbole_dien.data.utils)
        config.final_config_dict.update({key: None if key.endswith("_path") else False
                                         for key in knobs.SAVED_DATA_SETTINGS})
        knobs.validate_run(config)
        return config

    def _init_device(self):
        """RecBole's, except that a rank of a multi-process run on a machine without CUDA joins a
        gloo process group on the CPU (RecBole hard-codes NCCL; see :mod:`recbole_dien.trainer.distributed`)."""
        import torch

        if "local_rank" in self.final_config_dict and not torch.cuda.is_available():
            distributed.init_process_group(self.final_config_dict)
        else:
            super()._init_device()

    def _load_config_files(self, file_list):
        settings = {}
        for path in file_list or []:
            if not os.path.isfile(path):
                raise ConfigError(f"config file {path} does not exist (--config_files takes space-separated paths)")
            settings.update(parsing.load_yaml_file(path))
        return settings

    def _update_internal_config_dict(self, file):
        config_dict = parsing.load_yaml_file(file)
        self.internal_config_dict.update(config_dict)
        return config_dict

    def _load_cmd_line(self):
        if self._cmd_args is None:
            return super()._load_cmd_line()
        return self._convert_config_dict(parse_overrides(self._cmd_args))

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
        if model is not None:
            model = get_model(model, self.host)
        return super()._get_model_and_dataset(model, dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        model_file = props_file(model) if is_plugin_model(model_class) else None
        if model_file is not None:
            self._update_internal_config_dict(model_file)
        protocol = self.external_config_dict.get("protocol")
        files = [dataset_config_file(dataset)]
        if protocol not in (None, "default"):
            files.append(dataset_config_file(dataset, protocol))
            if files[-1] is None:
                shipped = ", ".join(available_protocols(dataset)) or "none"
                raise RecBoleDienError(
                    f"no protocol '{protocol}' for dataset '{dataset}' (no dataset_configs/{dataset}-{protocol}.yaml); "
                    f"shipped for it: {shipped}"
                )
        for protocol_file in filter(None, files):
            keys = self._update_internal_config_dict(protocol_file) or {}
            # Like RecBole's own dataset YAML: these keys decide whether a saved dataset is reusable.
            known = self.parameters["Dataset"]
            self.parameters["Dataset"] = known + [k for k in keys if k not in known]

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        if final.get("loss_type") == "CE" and "train_neg_sample_args" not in self.external_config_dict:
            final["train_neg_sample_args"] = None
        return final


def config_class(host):
    """:class:`Config` built on ``host``'s own ``Config`` (RecBole's or hopwise's)."""
    return host.build(Config, host.module("config").Config)
