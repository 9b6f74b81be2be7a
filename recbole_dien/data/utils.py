"""Dataset creation: the data files checked first, then plugin-first dataset classes."""
from recbole.data import create_dataset as recbole_create_dataset

from recbole_dien.data import dataset as plugin_datasets
from recbole_dien.data.checks import check_dataset
from recbole_dien.utils import is_plugin_model


def plugin_dataset_class(config):
    """The plugin's ``<Model>Dataset`` for a plugin model, or None to let RecBole choose."""
    if not is_plugin_model(config.model_class):
        return None
    return getattr(plugin_datasets, f"{config['model']}Dataset", None)


def create_dataset(config):
    """Like :func:`recbole.data.create_dataset`, but checks the data first and uses the plugin's
    dataset class where it has one."""
    check_dataset(config)
    dataset_class = plugin_dataset_class(config)
    if dataset_class is None:
        return recbole_create_dataset(config)
    dataset = dataset_class(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset
