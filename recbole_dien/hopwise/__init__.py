"""recbole-dien in hopwise: DIN, DIEN and DSIN, their datasets, config, runs and checkpoints on
hopwise's classes (``pip install 'recbole-dien[hopwise]'``).

The same models as :mod:`recbole_dien` (one host-neutral class each, built here on hopwise's
``SequentialRecommender`` with hopwise's enums: :mod:`recbole_dien.utils.hosts`), the same
datasets (lean path, DIEN's aligned negatives, DSIN's sessions), settings files (``props/`` first,
never hopwise's model YAML) and safety guarantees (plain-data checkpoints, no setting evaluated, no
pickle read from a folder: :mod:`recbole_dien.hopwise.compat`). Importing this package applies
those shims on hopwise at once (import it before ``from hopwise.quick_start import ...``, which
would keep hopwise's own functions), and never imports RecBole. The classes work in hopwise's own
pipeline too::

    from hopwise.config import Config
    from hopwise.data import create_dataset, data_preparation
    from hopwise.utils import get_trainer
    import recbole_dien.hopwise

    config = Config(model=recbole_dien.hopwise.DIEN, dataset="ml-100k")
    dataset = create_dataset(config)            # the plugin's DIENDataset
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = recbole_dien.hopwise.DIEN(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
"""
import functools

from recbole_dien.utils.hosts import HOPWISE, PLUGIN_MODELS

HOPWISE.activate()  # one line if hopwise is not installed
__all__ = sorted(["Config", "create_dataset", "get_model", "load_data_and_model", "run", *PLUGIN_MODELS])


def get_model(model_name):
    """The model class for ``model_name`` in hopwise: ``DIN``, ``DIEN``, ``DSIN`` are the plugin's,
    ``hopwise.<Name>`` hopwise's own, any other name hopwise's."""
    from recbole_dien.utils.utils import get_model as lookup

    return lookup(model_name, HOPWISE)


def run(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True, resume=None):
    """:func:`recbole_dien.run` in hopwise: train, validate, test; the result dict of RecBole's side."""
    from recbole_dien.quick_start.quick_start import run as run_in

    return run_in(model, dataset, config_file_list, config_dict, cmd_args, saved, resume=resume, host=HOPWISE)


def create_dataset(config):
    """:func:`recbole_dien.create_dataset` for a hopwise config: the data checked, the plugin's datasets."""
    from recbole_dien.data import create_dataset as create

    return create(config)


def load_data_and_model(model_file, model_class=None):
    """:func:`recbole_dien.load_data_and_model` (the host is the checkpoint's)."""
    from recbole_dien.quick_start.quick_start import load_data_and_model as load

    return load(model_file, model_class)


@functools.lru_cache(maxsize=None)
def _config_class():
    from recbole_dien.config import config_class

    return config_class(HOPWISE)


def __getattr__(name):
    # built on first use
    if name in PLUGIN_MODELS:
        return HOPWISE.model(name)
    if name == "Config":
        return _config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
