"""Settings read without running anything: values typed as text, YAML files, and the keys a run knows.

RecBole 1.2.1 types every string of the command line and of a ``config_dict`` with ``eval``
(``Config._convert_config_dict``), so ``--learning_rate=__import__('os').system(...)`` runs the
command; and it reads YAML with ``yaml.FullLoader``, which builds ``!!python/name:`` objects and
expands aliases without bound (a "billion laughs" file hangs the first ``str(config)``). Here:

* :func:`parse_value` types a string as a Python literal (``ast.literal_eval``: numbers, strings,
  lists, tuples, dicts, ``True`` / ``False`` / ``None``), ``true`` / ``false`` in any case as booleans,
  and ``ModelType.X``-style names of RecBole's enums as those enums - what RecBole's ``eval`` gave
  for every value a setting can take; anything else (an expression, a call) stays the string the
  user typed, which the setting's check then names;
* :class:`SettingsLoader` is YAML's safe loader with RecBole's float resolver (``1e-3`` is a float),
  and refuses a document whose aliases expand to more than :data:`MAX_EXPANDED_NODES` values;
* :func:`known_keys` is every key RecBole or recbole-dien declares (their YAML files, RecBole's
  ``Config.parameters``, the plugin's knob specs) or reads (``config["key"]`` in their code), and
  :func:`unknown_key_problems` names each other key with its closest known one.

:mod:`recbole_dien.compat` installs :func:`convert_config_dict` and :class:`SettingsLoader` on
RecBole's own ``Config`` too, so that no string is evaluated once recbole_dien is imported.
"""
import ast
import difflib
import re
from functools import lru_cache
from pathlib import Path

import yaml

from recbole_dien.utils.errors import ConfigError

# a YAML document's values counted with every alias expanded; settings files hold hundreds
MAX_EXPANDED_NODES = 100_000
# the types RecBole keeps from its eval; a literal of any other type (set, bytes, complex) stays text
_KEPT_TYPES = (str, int, float, list, tuple, dict, bool)
_ENUM_NAME = re.compile(r"^(ModelType|InputType|EvaluatorType|FeatureType|FeatureSource)\.([A-Z_]+)$")
# RecBole's float resolver: 1e-3 and 1E5 (no dot) are floats, as in YAML 1.2
_FLOAT = re.compile(r"""^(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


# --------------------------------------------------------------------------- values typed as text

def _enum_value(text, host=None):
    match = _ENUM_NAME.match(text)
    if not match:
        return None
    from recbole_dien.utils.hosts import RECBOLE

    enums = (host or RECBOLE).enums  # hopwise's enums are its own: a hopwise config gets those
    enum_class = getattr(enums, match.group(1), None)
    return getattr(enum_class, match.group(2), None) if enum_class is not None else None


def parse_value(text, host=None):
    """A setting written as text (command line, a string in ``config_dict``) typed as RecBole types
    it, without evaluating anything: see the module docstring. Non-strings are returned as they are.
    Enum names are the enums of ``host`` (RecBole unless given)."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
        enum_value = _enum_value(stripped, host)
        return text if enum_value is None else enum_value
    if value is not None and not isinstance(value, _KEPT_TYPES):
        return text
    return value


def convert_config_dict(self, config_dict):
    """``Config._convert_config_dict`` without ``eval``: every string value typed by :func:`parse_value`
    (with the enums of the config's host)."""
    from recbole_dien.utils.hosts import RECBOLE, host_of

    host = host_of(self, RECBOLE)
    for key, value in config_dict.items():
        config_dict[key] = parse_value(value, host)
    return config_dict


# --------------------------------------------------------------------------- YAML

def expanded_size(node, limit=MAX_EXPANDED_NODES):
    """The number of values of a composed YAML node with every alias expanded, counted up to just
    past ``limit`` (each distinct node is measured once, so a bomb costs no more than its text)."""
    sizes = {}

    def size(item):
        key = id(item)
        if key not in sizes:
            sizes[key] = limit + 1  # a node that contains itself counts as too large
            total = 1
            if isinstance(item, yaml.SequenceNode):
                children = item.value
            elif isinstance(item, yaml.MappingNode):
                children = [part for pair in item.value for part in pair]
            else:
                children = ()
            for child in children:
                total += size(child)
                if total > limit:
                    break
            sizes[key] = min(total, limit + 1)
        return sizes[key]

    return size(node)


class SettingsLoader(yaml.SafeLoader):
    """YAML's safe loader (plain values only: no ``!!python/`` tags) with RecBole's float resolver,
    refusing documents whose aliases expand to more than :data:`MAX_EXPANDED_NODES` values."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_EXPANDED_NODES:
            raise ConfigError(f"{self.name}: its aliases expand to more than {MAX_EXPANDED_NODES:,} values (a YAML "
                              "'billion laughs'); refused. Write the settings out without nested aliases")
        return self.construct_document(node)


SettingsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def build_yaml_loader(self=None):
    """``Config._build_yaml_loader``: :class:`SettingsLoader` (RecBole's adds its resolver to the
    global ``yaml.FullLoader`` again on every ``Config``)."""
    return SettingsLoader


def yaml_error_line(path, error):
    """One line for a YAML file that does not parse or asks for a Python object."""
    where = getattr(error, "problem_mark", None)
    line = f", line {where.line + 1}" if where else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if "could not determine a constructor for the tag" in problem:
        problem += " (settings files hold plain YAML values; Python tags are not read)"
    return f"config file {path}{line} is not valid YAML: {problem}"


def load_yaml_file(path):
    """The settings of a YAML file (``{}`` for an empty one), read with :class:`SettingsLoader`;
    one :class:`ConfigError` line for a file that cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            settings = yaml.load(f, Loader=SettingsLoader)
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}: "
                          f"{error.object[error.start:error.start + 1]!r})") from None
    except yaml.YAMLError as error:
        raise ConfigError(yaml_error_line(path, error)) from None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"config file {path} holds a {type(settings).__name__}, not settings (key: value lines)")
    return settings


# --------------------------------------------------------------------------- known keys

_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_]\w*)\s*:", re.M)
_CODE_KEY = re.compile(r"""config\s*\[\s*["'](\w+)["']\s*\]""")
# keys the plugin's run() and RecBole's DDP path set themselves
_RUN_KEYS = ("model", "dataset", "world_size", "ip", "port", "nproc", "offset", "local_rank", "single_spec",
             "config_files", "protocol")


def _keys_in(paths, pattern):
    keys = set()
    for path in paths:
        try:
            keys.update(pattern.findall(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return keys


@lru_cache(maxsize=None)
def known_keys(host=None):
    """Every setting the host (RecBole unless given; hopwise's own when it is the host) or
    recbole-dien declares or reads (see the module docstring)."""
    from recbole_dien.utils.hosts import RECBOLE
    from recbole_dien.utils.resources import resource_dir

    host = host or RECBOLE
    arguments = host.module("utils.argument_list")
    recbole_root = Path(host.module("config").__file__).parents[1]
    plugin_root = Path(__file__).resolve().parents[1]
    keys = set(_RUN_KEYS)
    keys |= set(arguments.general_arguments + arguments.training_arguments + arguments.evaluation_arguments
                + arguments.dataset_arguments)
    yaml_files = list((recbole_root / "properties").rglob("*.yaml"))
    for folder in ("props", "dataset_configs"):
        yaml_files += list(resource_dir(folder).glob("*.yaml"))
    keys |= _keys_in(yaml_files, _TOP_LEVEL_KEY)
    keys |= _keys_in(list(recbole_root.rglob("*.py")) + list(plugin_root.rglob("*.py")), _CODE_KEY)
    return frozenset(keys)


def unknown_key_problems(keys, also_known=(), host=None):
    """One line per key no part of the host (RecBole unless given) or recbole-dien knows (nor
    ``also_known``), with the closest known key."""
    from recbole_dien.utils.hosts import RECBOLE

    host = host or RECBOLE
    known = known_keys(host) | set(also_known)
    problems = []
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(f"unknown setting '{key}'{hint}: neither {host.title} nor recbole-dien reads it")
    return problems
