"""Where the plugin's YAML files live, in a source checkout and in an installed package."""
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # recbole_dien/


def _resource_dir(name):
    # An installed package carries the folder inside itself; a source checkout (or an editable
    # install) keeps it beside the package.
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"recbole_dien cannot find its '{name}' folder (looked in {_PACKAGE_DIR} and its parent); "
        "reinstall the package with `pip install .`"
    )


def props_file(model_name):
    """``props/<Model>.yaml`` for a plugin model, or None if the model has none."""
    path = _resource_dir("props") / f"{model_name}.yaml"
    return path if path.is_file() else None


def hyper_file(model_name):
    """``hyper/<Model>.hyper``, the model's search space for run_hyper.py, or None."""
    path = _resource_dir("hyper") / f"{model_name}.hyper"
    return path if path.is_file() else None


def dataset_config_file(dataset_name, protocol=None):
    """A dataset's protocol file, or None if there is none.

    ``dataset_configs/<dataset>.yaml`` is the dataset's default protocol; a named protocol is
    ``dataset_configs/<dataset>-<protocol>.yaml``, layered on top of the default one.
    """
    stem = dataset_name if protocol in (None, "default") else f"{dataset_name}-{protocol}"
    path = _resource_dir("dataset_configs") / f"{stem}.yaml"
    return path if path.is_file() else None


def available_protocols(dataset_name):
    """Names of the protocols shipped for a dataset (``default`` first when it has one)."""
    folder = _resource_dir("dataset_configs")
    named = sorted(p.stem[len(dataset_name) + 1:] for p in folder.glob(f"{dataset_name}-*.yaml"))
    return (["default"] if dataset_config_file(dataset_name) else []) + named



def resource_dir(name):
    """The folder ``props``, ``dataset_configs`` or ``hyper``, in a checkout or installed."""
    return _resource_dir(name)
