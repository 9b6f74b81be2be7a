"""Dataset creation: the data files checked first, then plugin-first dataset classes."""
import importlib

from recbole.data import create_dataset as recbole_create_dataset
from recbole.utils import ModelType

import recbole_dien.data.dataset as plugin_datasets
from recbole_dien.data.checks import check_dataset
from recbole_dien.data.lean import LeanSequentialDataset, lean_requested
from recbole_dien.utils.errors import ConfigError
from recbole_dien.utils import is_plugin_model


# RecBole's sequential models that read list columns from dataset.inter_feat: RecBole's path only
NEEDS_RECBOLES_PATH = ("FEARec",)


def _recbole_builds_plain_sequential(config):
    # RecBole's create_dataset takes recbole.data.dataset.<Model>Dataset when it exists
    special = hasattr(importlib.import_module("recbole.data.dataset"), f"{config['model']}Dataset")
    return config["MODEL_TYPE"] == ModelType.SEQUENTIAL and not special


def plugin_dataset_class(config):
    """The dataset class for ``config``'s model, or None to let RecBole choose: the plugin's
    ``<Model>Dataset`` for a plugin model that has one; else :class:`LeanSequentialDataset` where
    the lean path is asked for (``lean_sequential_data``; the default for the plugin's models)."""
    plugin_model = is_plugin_model(config.model_class)
    if plugin_model and hasattr(plugin_datasets, f"{config['model']}Dataset"):
        return getattr(plugin_datasets, f"{config['model']}Dataset")
    if not lean_requested(config, plugin_model) or not (plugin_model or _recbole_builds_plain_sequential(config)):
        return None
    if config["model"] in NEEDS_RECBOLES_PATH:
        raise ConfigError(f"lean_sequential_data: {config['model']} reads its histories from dataset.inter_feat, "
                          "which the lean path does not fill; remove the setting (or set it to False)")
    return LeanSequentialDataset


def create_dataset(config):
    """Like :func:`recbole.data.create_dataset`, but checks the data first and uses the plugin's
    dataset class where it has one (the lean sequential path, :mod:`recbole_dien.data.lean`)."""
    check_dataset(config)
    dataset_class = plugin_dataset_class(config)
    if dataset_class is None:
        return recbole_create_dataset(config)
    if config["dataset_save_path"]:
        raise ConfigError(f"dataset_save_path: recbole-dien builds {config['model']}'s dataset from the atomic files "
                          "and never unpickles a saved one (a pickle can run code); remove the setting")
    dataset = dataset_class(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset
