"""The knobs of ``props/<Model>.yaml`` - their type, range and allowed values - and the one
place where every setting is checked before a run trains.

Each knob's declaration is its line in the YAML file, written for people and read by this module::

    embedding_size: 18            # (int >= 1) Width of every field's embedding; ...
    pooling_mode: mean            # (str: mean | sum | max) Pooling of token_seq side features ...
    gru_hidden_size: ~            # (int >= 1 or ~) GRU width; ~ = the behaviour embedding width ...
    aux_mlp_sizes: [100, 50]      # (list of int >= 1) Hidden sizes of the auxiliary net ...
    dropout_prob: 0.0             # (float >= 0 and < 1) Dropout after each hidden layer ...

The part in parentheses is the knob's spec: ``int``, ``float`` (an int is accepted), ``bool`` or
``str``; then comparisons joined by ``and`` (``>= 0``, ``> 0``, ``< 1``, ``<= 5``) or, for a str,
``: a | b | c`` (the allowed values); ``list of <spec>`` is a non-empty list of such values;
``or ~`` also allows null. A top-level key without a spec is one of RecBole's protocol settings
(DSIN states its protocol in its YAML) and is left to RecBole.

:data:`GENERAL_KNOBS` declares RecBole's general settings (and the plugin's data settings) the same way; :func:`validate` checks a
config against both, and the cross-setting rules no single spec can state.
"""
import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from recbole_dien.config import parsing, time_split
from recbole_dien.utils.errors import ConfigError
from recbole_dien.utils.resources import props_file

_LINE = re.compile(r"^(?P<key>\w+):[^#]*#\s*\((?P<spec>[^)]*)\)\s*(?P<doc>.*)$")
_COMPARISON = re.compile(r"^(>=|<=|>|<)\s*(-?[0-9.eE+-]+)$")
_OPERATORS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
              "<": lambda a, b: a < b}

# RecBole's general settings every run uses, and the plugin's data settings, declared like the
# props/ knobs
GENERAL_KNOBS = {
    # what a missing float feature value does: stop the run (naming it) or take the column mean
    "missing_float_values": "str: error | mean",
    # what a row with the wrong number of fields does: stop the run (naming its line) or leave it
    # out (counted and logged, with the first lines)
    "malformed_rows": "str: error | skip",
    # whether a setting neither RecBole nor the plugin knows stops the run (else: one warning line)
    "strict_settings": "bool",
    # seconds a multi-process run waits for its peers (joining, and each collective step)
    "ddp_timeout": "float > 0",
    # the sequential data path (recbole_dien.data.lean): ~ = lean for the plugin's models,
    # RecBole's SequentialDataset for RecBole's; True = lean also for RecBole's plain sequential
    # models; False = RecBole's for every model
    "lean_sequential_data": "bool or ~",
    # impressions whose histories come from a separate behaviour log: the suffix of its atomic
    # file <dataset>.<suffix> (recbole_dien.data.impressions); ~ = histories from the .inter rows
    "behavior_log_suffix": "str or ~",
    # whether the process keeps the memory it frees (glibc's mmap and trim thresholds raised,
    # recbole_dien.trainer.allocator); missing = True
    "keep_freed_memory": "bool",
    "epochs": "int >= 1",
    "train_batch_size": "int >= 1",
    "eval_batch_size": "int >= 1",
    "learning_rate": "float > 0",
    "weight_decay": "float >= 0",
    "stopping_step": "int >= 0",
    "eval_step": "int >= 0",
    "seed": "int",
    "worker": "int >= 0",
    "MAX_ITEM_LIST_LENGTH": "int >= 1",
    "reproducibility": "bool",
    "show_progress": "bool",
}


@dataclass(frozen=True)
class Spec:
    """A parsed knob spec (see the module docstring)."""

    text: str
    kind: str                       # int | float | bool | str
    comparisons: tuple = ()         # ((operator, bound), ...)
    choices: tuple = ()             # allowed str values
    is_list: bool = False
    nullable: bool = False

    @classmethod
    def parse(cls, text):
        rest, nullable = text.strip(), False
        if rest.endswith(" or ~"):
            rest, nullable = rest[:-len(" or ~")].strip(), True
        is_list = rest.startswith("list of ")
        if is_list:
            rest = rest[len("list of "):].strip()
        kind, _, constraint = rest.partition(" ")
        if kind.endswith(":"):  # "str: a | b"
            kind, constraint = kind[:-1], ": " + constraint
        if kind not in ("int", "float", "bool", "str"):
            raise ValueError(f"knob spec '{text}': unknown type '{kind}'")
        comparisons, choices = [], ()
        constraint = constraint.strip()
        if constraint.startswith(":"):
            choices = tuple(choice.strip() for choice in constraint[1:].split("|"))
        elif constraint:
            for part in constraint.split(" and "):
                match = _COMPARISON.match(part.strip())
                if not match:
                    raise ValueError(f"knob spec '{text}': cannot read '{part}'")
                comparisons.append((match.group(1), float(match.group(2))))
        return cls(text.strip(), kind, tuple(comparisons), choices, is_list, nullable)

    def _scalar_ok(self, value):
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind == "float" else int):
            return False
        return all(_OPERATORS[op](value, bound) for op, bound in self.comparisons)

    def accepts(self, value):
        if value is None:
            return self.nullable
        if self.is_list:
            return isinstance(value, (list, tuple)) and len(value) > 0 and all(self._scalar_ok(v) for v in value)
        return self._scalar_ok(value)

    def describe(self):
        """The spec in words: 'an int >= 1', 'one of mean, sum, max', 'a non-empty list of ints >= 1'."""
        noun = {"int": "int", "float": "number", "bool": "bool (True or False)", "str": "string"}[self.kind]
        bounds = " and ".join(f"{op} {bound:g}" for op, bound in self.comparisons)
        if self.is_list:
            text = f"a non-empty list of {noun}s" + (f" {bounds}" if bounds else "")
            if self.choices:
                text += ", each one of " + ", ".join(self.choices)
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        else:
            text = ("an " if noun == "int" else "a ") + noun + (f" {bounds}" if bounds else "")
        return text + (" or ~ (null)" if self.nullable else "")


@lru_cache(maxsize=None)
def model_knobs(model_name):
    """{knob: (Spec, description)} declared in ``props/<model_name>.yaml`` (empty without one)."""
    path = props_file(model_name)
    if path is None:
        return {}
    knobs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = _LINE.match(line)
            if match:
                knobs[match["key"]] = (Spec.parse(match["spec"]), match["doc"].strip())
    return knobs


@lru_cache(maxsize=None)
def general_knobs():
    return {key: (Spec.parse(spec), "") for key, spec in GENERAL_KNOBS.items()}


def check_value(key, value, spec, source):
    if not spec.accepts(value):
        example = ""
        if spec.is_list and not isinstance(value, (list, tuple)):
            example = f" (write a list: --{key}=[{value}])"
        raise ConfigError(f"invalid setting {key}={value!r}: it must be {spec.describe()}{example}; see {source}")


def validate(config, model_name=None, values=None):
    """Check every declared knob the run will use, then the rules that span settings; raise
    :class:`ConfigError` (one line naming the setting, what it must be, and where it is
    documented) at the first violation.

    ``values``: the model's knobs as the model will read them (defaults filled in); by default
    the config's own values.
    """
    knobs = model_knobs(model_name) if model_name else {}
    for key, (spec, _) in knobs.items():
        value = values[key] if values is not None and key in values else config[key]
        if values is not None or key in config:
            check_value(key, value, spec, f"props/{model_name}.yaml")
    for key, (spec, _) in general_knobs().items():
        if key in config and key not in knobs:
            check_value(key, config[key], spec, "docs/configuration.md")
    _check_device(config)
    _check_no_saved_data(config)
    _check_evaluated_settings(config)
    _check_time_split(config)


def check_known_keys(config):
    """Warn, one line each, about the settings given to ``config`` (files, ``config_dict``, command
    line) that neither RecBole nor recbole-dien knows, naming the closest known key; with
    ``strict_settings: True`` the first one stops the run instead."""
    model_keys = set(model_knobs(config.model)) if getattr(config, "model", None) else set()
    problems = parsing.unknown_key_problems(config.external_config_dict, also_known=set(GENERAL_KNOBS) | model_keys,
                                            host=getattr(config, "host", None))
    if problems and config["strict_settings"] is True:
        raise ConfigError(f"{problems[0]} (strict_settings: True stops on unknown settings)")
    for problem in problems:
        logging.getLogger("recbole_dien").warning(f"{problem}; set strict_settings: True to stop on it")


def validate_run(config):
    """:func:`validate` for a complete run config: the model's own knobs too when it is this package's."""
    from recbole_dien.utils.utils import is_plugin_model

    validate(config, config.model if is_plugin_model(config.model_class) else None)


# RecBole's settings that save datasets / dataloaders as pickles, or read them back
SAVED_DATA_SETTINGS = ("save_dataset", "save_dataloaders", "dataset_save_path", "dataloaders_save_path")


def _check_no_saved_data(config):
    for key in SAVED_DATA_SETTINGS:
        if key in config and config[key]:
            raise ConfigError(f"{key}={config[key]!r}: RecBole saves datasets and dataloaders as pickles, and "
                              "unpickling a file can run code, so recbole-dien neither writes nor reads them (a run "
                              "builds its data from the atomic files); remove the setting")


def _check_evaluated_settings(config):
    """RecBole's KD_DAGFM builds its teacher with ``eval(config['teacher'])``: only the name of one of
    RecBole's context-aware models may reach it."""
    model_class = getattr(config, "model_class", None)
    teacher = config["teacher"] if "teacher" in config else None
    if getattr(model_class, "__name__", None) != "KD_DAGFM" or teacher is None:
        return
    from recbole_dien.utils.hosts import RECBOLE, host_of

    context_aware = host_of(model_class, RECBOLE).module("model.context_aware_recommender")

    if not (isinstance(teacher, str) and teacher.isidentifier() and isinstance(getattr(context_aware, teacher, None),
                                                                                type)):
        raise ConfigError(f"invalid setting teacher={teacher!r}: it must name one of RecBole's context-aware models "
                          "(e.g. DCNV2); RecBole evaluates it as Python code")


def _check_time_split(config):
    """``time_split`` (:mod:`recbole_dien.config.time_split`): valid boundaries, on an impressions
    dataset; kept with its boundaries as text (plain data for checkpoints)."""
    setting = config["time_split"] if "time_split" in config else None
    if setting is None:
        return
    time_split.boundaries(setting)
    if not (config["behavior_log_suffix"] if "behavior_log_suffix" in config else None):
        raise ConfigError("time_split cuts impressions by time and needs their behaviour log (behavior_log_suffix); "
                          "for a log of interactions use eval_args' split (e.g. {'RS': [0.8, 0.1, 0.1]}, order: TO)")
    config["time_split"] = time_split.canonical(setting)


def _check_device(config):
    import torch

    wanted = config.external_config_dict.get("device") if hasattr(config, "external_config_dict") else None
    if wanted is not None and str(wanted).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={wanted!r} asks for a CUDA GPU, but torch sees none "
                          "(torch.cuda.is_available() is False): leave device out to run on the CPU")


def model_hyperparameters(config, model_name):
    """Every knob of ``props/<model_name>.yaml``, taking the config's value where it has one.

    A plugin model reads its knobs through this, so it also runs under a plain RecBole ``Config``
    (which never loads ``props/``): knobs the config lacks fall back to the documented defaults.
    Every value is checked against its declaration (:func:`validate`).
    """
    # the loader a Config reads YAML with, so values parse exactly as they do there (1e-3 a float)
    defaults = parsing.load_yaml_file(props_file(model_name))
    values = {key: (config[key] if key in config else value) for key, value in defaults.items()}
    validate(config, model_name, values)
    return values
