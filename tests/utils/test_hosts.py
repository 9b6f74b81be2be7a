"""recbole_dien.utils.hosts: the plugin's classes built once per host, on the host's bases and enums;
the host of any object; one line for a host that is missing or unknown."""
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_dien.trainer.checkpoint import class_path
from recbole_dien.utils.errors import RecBoleDienError
from recbole_dien.utils.hosts import RECBOLE, Host, HostNotInstalled, get_host, host_of

ROOT = Path(__file__).resolve().parents[2]


def test_the_models_are_built_once_on_recboles_classes_with_recboles_enums():
    from recbole.model.abstract_recommender import SequentialRecommender
    from recbole.utils import InputType

    from recbole_dien import DIN
    from recbole_dien.model import din

    assert RECBOLE.model("DIN") is DIN and issubclass(DIN, (din.DIN, SequentialRecommender))
    assert DIN.input_type is InputType.POINTWISE and DIN.host is RECBOLE
    assert class_path(DIN) == "recbole_dien.model.din.DIN"  # what checkpoints name (with their host)
    assert host_of(DIN) is RECBOLE


def test_built_classes_and_their_instances_pickle(tiny_pipeline):
    from recbole_dien import DIEN

    config, _, _, _ = tiny_pipeline("DIEN")
    assert pickle.loads(pickle.dumps(DIEN)) is DIEN  # found as recbole_dien.model.dien.DIEN.recbole
    assert type(pickle.loads(pickle.dumps(config))) is type(config)


def test_the_host_neutral_model_says_which_class_to_build(tiny_pipeline):
    from recbole_dien.model import din

    config, train_data, _, _ = tiny_pipeline("DIN")
    with pytest.raises(TypeError, match=r"host-neutral model: build recbole_dien.DIN \(RecBole\) or "
                                        r"recbole_dien.hopwise.DIN \(hopwise\)"):
        din.DIN(config, train_data._dataset)


def test_the_host_of_configs_datasets_and_trainers(tiny_pipeline):
    from recbole.trainer import Trainer

    config, train_data, _, _ = tiny_pipeline("DIEN")
    assert host_of(config) is host_of(train_data._dataset) is host_of(Trainer) is RECBOLE
    with pytest.raises(RecBoleDienError, match="built on neither RecBole's nor hopwise's classes"):
        host_of(object())


def test_a_missing_or_unknown_host_is_one_line():
    missing = Host("no_such_framework_installed", "NoSuch", "pip install nosuch", "recbole_dien.compat:activate")
    with pytest.raises(HostNotInstalled, match=r"^NoSuch is not installed: pip install nosuch$"):
        missing.module("utils")
    with pytest.raises(RecBoleDienError, match="unknown host 'lightfm': the plugin runs in recbole or hopwise"):
        get_host("lightfm")


def test_using_the_recbole_side_never_imports_hopwise():
    probe = ("import sys, recbole_dien\n"
             "from recbole_dien import DIN, DIEN, DSIN, Config, create_dataset, run, load_data_and_model\n"
             "import recbole_dien.quick_start.quick_start, recbole_dien.serving.recommend\n"
             "assert not [m for m in sys.modules if m.split('.')[0] == 'hopwise'], 'hopwise imported'\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr


def test_importing_recbole_after_the_plugin_applies_the_shims():
    probe = ("import recbole_dien, sys\n"
             "assert 'recbole' not in sys.modules\n"
             "import recbole.data.dataset.dataset as dataset_module\n"
             "from recbole.utils import get_model\n"
             "print(type(dataset_module.pd).__name__, getattr(get_model, 'names_plugin_models', False))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["_PandasWithCParser", "True"]
