"""End-to-end runs on the tiny dataset: our runner, RecBole's own pipeline, checkpoint reloads."""
from pathlib import Path

import torch
from recbole.config import Config as RecBoleConfig
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation
from recbole.trainer import Trainer
from recbole.utils import init_seed

import recbole_dien
import pytest

from recbole_dien import DIEN, DIN, DSIN, load_data_and_model, run


def assert_ctr_metrics(result):
    assert set(result) == {"auc", "logloss"}
    assert 0.0 <= result["auc"] <= 1.0
    assert 0.0 < result["logloss"] < 5.0


@pytest.mark.parametrize("model_class", [DIN, DIEN, DSIN])
def test_one_epoch_run_returns_metrics_in_range(tiny_config_dict, model_class):
    result = run(model_class.__name__, "tiny", config_dict=tiny_config_dict, cmd_args=[])
    assert_ctr_metrics(result["best_valid_result"])
    assert_ctr_metrics(result["test_result"])
    assert result["config"].model_class is model_class


@pytest.mark.parametrize("model_class", [DIN, DIEN, DSIN])
def test_recbole_pipeline_runs_the_imported_class_with_its_own_defaults(tiny_config_dict, model_class):
    # A user's own RecBole code: RecBole's Config (props/ never loaded), RecBole's create_dataset
    # (for DIEN: RecBole's DIENDataset), RecBole's Trainer with its default best-model reload
    # (torch.load, weights_only=True).
    config = RecBoleConfig(model=model_class, dataset="tiny", config_dict=tiny_config_dict)
    assert "attention_mlp_sizes" not in config  # the model falls back to its documented defaults
    init_seed(config["seed"], config["reproducibility"])
    dataset = recbole_create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = model_class(config, train_data._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    assert_ctr_metrics(trainer.evaluate(test_data, load_best_model=True, show_progress=False))
    assert torch.load(trainer.saved_model_file)["config"]["model"] == model_class.__name__


def test_recbole_builtin_din_checkpoint_reloads(tiny_config_dict):
    # RecBole's own DIN pickles its embedding layer and dataset into the checkpoint
    result = run("recbole.DIN", "tiny", config_dict={**tiny_config_dict, "embedding_size": 4,
                                                      "mlp_hidden_size": [8]}, cmd_args=[])
    assert result["config"].model_class.__module__ == "recbole.model.sequential_recommender.din"
    assert_ctr_metrics(result["test_result"])


def test_load_data_and_model_restores_the_plugin_model(tiny_config_dict, tmp_path):
    run("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    checkpoint = next((tmp_path / "saved").glob("DIN-*.pth"))
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(str(checkpoint))
    assert isinstance(model, DIN)
    saved = torch.load(checkpoint)["state_dict"]
    assert all(torch.equal(saved[name], value) for name, value in model.state_dict().items())
    assert_ctr_metrics(Trainer(config, model).evaluate(test_data, load_best_model=False, show_progress=False))


def test_import_keeps_autograd_anomaly_detection_off():
    # RecBole's sine.py switches it on at import; recbole_dien imports RecBole's models and undoes it
    assert recbole_dien.compat._applied
    assert not torch.is_anomaly_enabled()


# --- RecBole's own entry points with the plugin's classes -----------------------------------------


def _recbole_quick_start_importable():
    """RecBole's quick_start imports ray 2.6.3, whose import needs setuptools' pkg_resources (gone
    in setuptools 81+): on today's newest stack RecBole's own module cannot be imported at all."""
    import importlib.util

    return importlib.util.find_spec("pkg_resources") is not None


needs_recbole_quick_start = pytest.mark.skipif(
    not _recbole_quick_start_importable(),
    reason="recbole.quick_start imports ray, which needs pkg_resources (setuptools < 81)")


@needs_recbole_quick_start
def test_recboles_run_recbole_trains_the_plugin_class_it_is_given(tiny_config_dict, monkeypatch):
    import sys

    from recbole.quick_start import run_recbole

    monkeypatch.setattr(sys, "argv", ["run_recbole.py"])  # RecBole's Config reads the command line
    result = run_recbole(model=DIN, dataset="tiny", config_dict=tiny_config_dict)
    assert set(result) == {"best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"}
    assert_ctr_metrics(result["test_result"])
    (checkpoint,) = (Path(tiny_config_dict["checkpoint_dir"])).glob("DIN-*.pth")
    # the weights are those of the plugin's DIN (RecBole's own has other parameters): they load into it
    _, model, *_ = load_data_and_model(str(checkpoint))
    saved = torch.load(checkpoint)["state_dict"]
    assert isinstance(model, DIN) and set(saved) == set(model.state_dict())


@needs_recbole_quick_start
def test_recboles_load_data_and_model_reads_a_plugin_checkpoint(tiny_config_dict):
    from recbole.quick_start import load_data_and_model as recbole_load_data_and_model

    result = run("DIEN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    config, model, dataset, train_data, valid_data, test_data = recbole_load_data_and_model(result["saved_model_file"])
    assert isinstance(model, DIEN) and config["seed"] == tiny_config_dict["seed"]
    saved = torch.load(result["saved_model_file"])["state_dict"]
    assert all(torch.equal(saved[name], value) for name, value in model.state_dict().items())
