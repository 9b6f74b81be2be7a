"""Dataset creation: the data files checked first, then plugin-first dataset classes; no saved
dataset or dataloader is ever unpickled.

RecBole's ``create_dataset`` and ``data_preparation`` (``load_split_dataloaders``) unpickle
``<checkpoint_dir>/<dataset>-<DatasetClass>.pth``, ``<checkpoint_dir>/<dataset>-for-<Model>-dataloader.pth``,
``dataset_save_path`` and ``dataloaders_save_path`` whenever such a file exists, and unpickling a
file can run any code it names. :class:`RefusingPickle` is the ``pickle`` module as
``recbole.data.utils`` sees it once recbole_dien is imported (:mod:`recbole_dien.compat`): its
``load`` refuses, in one line naming the file, without reading a byte of it. The plugin offers no
saved datasets or dataloaders (a run builds them from the atomic files), so ``save_dataset``,
``save_dataloaders`` and the two paths are refused as settings (:mod:`recbole_dien.config.knobs`).
"""
import recbole_dien.data.dataset as plugin_datasets
from recbole_dien.data.checks import check_dataset
from recbole_dien.data.impressions import ImpressionDataset, ImpressionDIENDataset, ImpressionDSINDataset
from recbole_dien.data.lean import LeanSequentialDataset, lean_requested
from recbole_dien.utils.errors import ConfigError, DatasetError
from recbole_dien.utils.hosts import RECBOLE, host_of
from recbole_dien.utils.utils import is_plugin_model


# RecBole's sequential models that read list columns from dataset.inter_feat: RecBole's path only
NEEDS_RECBOLES_PATH = ("FEARec",)


def refusal(path):
    """The one line refusing to unpickle ``path``."""
    return (f"refused to read {path}: it would be unpickled (RecBole saves datasets and dataloaders as pickles, "
            "and unpickling a file can run any code), and recbole-dien never unpickles saved data. Delete the file, "
            "or point checkpoint_dir elsewhere: the run builds its data from the atomic files")


class RefusingPickle:
    """The ``pickle`` module for ``recbole.data.utils``: dumping as before, every load refused with
    one :class:`DatasetError` line naming the file."""

    def __init__(self, pickle_module):
        self._pickle = pickle_module

    def __getattr__(self, name):
        return getattr(self._pickle, name)

    def load(self, file, *args, **kwargs):
        raise DatasetError(refusal(getattr(file, "name", file)))

    def loads(self, data, *args, **kwargs):
        raise DatasetError(refusal("the data given"))

    def Unpickler(self, file, *args, **kwargs):  # noqa: N802 - pickle's own name
        raise DatasetError(refusal(getattr(file, "name", file)))


def _host_builds_plain_sequential(config, host):
    # the host's create_dataset takes <host>.data.dataset.<Model>Dataset when it exists
    special = hasattr(host.module("data.dataset"), f"{config['model']}Dataset")
    return config["MODEL_TYPE"] == host.ModelType.SEQUENTIAL and not special


def plugin_dataset_class(config):
    """The dataset class for ``config``'s model on the config's host (RecBole or hopwise), or None
    to let the host choose: the plugin's ``<Model>Dataset`` for a plugin model that has one; else
    :class:`LeanSequentialDataset` where the lean path is asked for (``lean_sequential_data``; the
    default for the plugin's models). Impressions with a behaviour log (``behavior_log_suffix``)
    take :mod:`recbole_dien.data.impressions`' classes, which only the plugin's models read."""
    host = host_of(config, RECBOLE)
    plugin_model = is_plugin_model(config.model_class)
    if config["behavior_log_suffix"]:
        return host.dataset(impression_dataset_class(config, plugin_model))
    if plugin_model and hasattr(plugin_datasets, f"{config['model']}Dataset"):
        return host.dataset(getattr(plugin_datasets, f"{config['model']}Dataset"))
    if not lean_requested(config, plugin_model) or not (plugin_model or _host_builds_plain_sequential(config, host)):
        return None
    if config["model"] in NEEDS_RECBOLES_PATH:
        raise ConfigError(f"lean_sequential_data: {config['model']} reads its histories from dataset.inter_feat, "
                          "which the lean path does not fill; remove the setting (or set it to False)")
    return host.dataset(LeanSequentialDataset)


def impression_dataset_class(config, plugin_model):
    """The impressions dataset class of ``config``'s model; one line refusing any other model."""
    if not plugin_model:
        raise ConfigError(
            f"{config['model']} cannot train on dataset '{config['dataset']}': its rows are impressions whose histories "
            f"come from a separate behaviour log ({config['dataset']}.{config['behavior_log_suffix']}), and RecBole's "
            "models read histories from the .inter rows themselves; train DIN, DIEN or DSIN (the plugin's) on it")
    return {"DIEN": ImpressionDIENDataset, "DSIN": ImpressionDSINDataset}.get(config["model"], ImpressionDataset)


def create_dataset(config):
    """Like :func:`recbole.data.create_dataset` (hopwise's for a hopwise config), but checks the data
    first and uses the plugin's dataset class where it has one (the lean sequential path,
    :mod:`recbole_dien.data.lean`)."""
    check_dataset(config)
    dataset_class = plugin_dataset_class(config)
    if dataset_class is None:
        return host_of(config, RECBOLE).module("data").create_dataset(config)
    return dataset_class(config)
