"""Dataset creation: plugin-first dataset classes and an early, readable check of the data files."""
import os

from recbole.data import create_dataset as recbole_create_dataset
from recbole.utils import ModelType

from recbole_dien.data import dataset as plugin_datasets
from recbole_dien.errors import DatasetError
from recbole_dien.utils import is_plugin_model


def _inter_header(config):
    path = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    if not os.path.isfile(path):
        raise DatasetError(
            f"dataset '{config['dataset']}' not found: there is no file {path} "
            f"(set data_path to the folder that holds the '{config['dataset']}' folder)"
        )
    with open(path, encoding=config["encoding"] or "utf-8") as f:
        header = f.readline().rstrip("\r\n").split(config["field_separator"])
    return path, [column.split(":")[0] for column in header]


def _loaded_columns(config, columns):
    load_col = config["load_col"]
    if load_col is None or load_col.get("inter") == "*":
        return set(columns)
    return set(load_col.get("inter", ())) & set(columns)


def check_dataset(config):
    """Fail early, in one sentence, when the ``.inter`` file lacks a field the model needs."""
    if config["benchmark_filename"] is not None:
        return
    path, columns = _inter_header(config)
    loaded = _loaded_columns(config, columns)
    required = ["USER_ID_FIELD", "ITEM_ID_FIELD"]
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        required.append("TIME_FIELD")  # RecBole orders each user's behaviours by time
    for key in required:
        field = config[key]
        if field is None or field not in columns:
            raise DatasetError(
                f"dataset '{config['dataset']}' has no column '{field}' ({key}) in {path}; "
                f"{config['model']} needs it. Add that column, or set {key} to the name of the "
                f"column that holds it (columns: {', '.join(columns)})"
            )
        if field not in loaded:
            raise DatasetError(
                f"column '{field}' ({key}) of {path} is not loaded; add it to load_col['inter']"
            )


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
