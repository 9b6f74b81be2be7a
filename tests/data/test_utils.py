"""No saved dataset or dataloader is ever unpickled: planted pickles at every path RecBole reads
them from, through every entry point, never run; the refusal is one line naming the file."""
import os
import pickle
from pathlib import Path

import pytest
from recbole.config import Config as RecBoleConfig
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation

from recbole_dien import Config, create_dataset, run
from recbole_dien.utils.errors import ConfigError, DatasetError, RecBoleDienError


class ConstructOnLoad:
    """Pickles as a call of ``factory(*args)``: what a planted file asks the unpickler to do."""

    def __init__(self, factory, *args):
        self.factory, self.args = factory, args

    def __reduce__(self):
        return self.factory, self.args


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a planted pickle ran its command"


def plant(path, marker):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(ConstructOnLoad(os.system, f"touch {marker}"), f)
    return str(path)


def refused(call, path):
    """``call()`` stops with one line naming ``path``."""
    with pytest.raises(RecBoleDienError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and path in message, message
    return message


def test_the_planted_payload_is_live(tmp_path):
    # the control: unpickling the planted file does run its command
    path = plant(tmp_path / "payload.pth", tmp_path / "control")
    with open(path, "rb") as f:
        pickle.load(f)
    assert (tmp_path / "control").exists()


# RecBole models build their dataset on RecBole's path (create_dataset's <dataset>-<Class>.pth)
@pytest.mark.parametrize("model,dataset_class", [("recbole.DIN", "SequentialDataset"), ("BPR", "Dataset")])
def test_a_saved_dataset_in_checkpoint_dir_is_refused(tiny_config_dict, marker, model, dataset_class):
    path = plant(f"{tiny_config_dict['checkpoint_dir']}/tiny-{dataset_class}.pth", marker)
    settings = dict(tiny_config_dict, **({"train_neg_sample_args": None} if model == "BPR" else {}))
    if model == "BPR":
        settings.update(metrics=["Recall"], valid_metric="Recall@10", eval_args={**settings["eval_args"],
                                                                                   "mode": "full"})
    config = Config(model, "tiny", config_dict=settings, cmd_args=[])
    message = refused(lambda: create_dataset(config), path)
    assert "never unpickles" in message


def test_recboles_own_create_dataset_refuses_it_once_the_plugin_is_imported(tiny_config_dict, marker):
    path = plant(f"{tiny_config_dict['checkpoint_dir']}/tiny-SequentialDataset.pth", marker)
    config = RecBoleConfig("DIN", "tiny", config_dict=tiny_config_dict)
    refused(lambda: recbole_create_dataset(config), path)


@pytest.mark.parametrize("config_class", [Config, RecBoleConfig], ids=["plugin", "recbole"])
def test_saved_dataloaders_in_checkpoint_dir_are_refused_by_data_preparation(tiny_config_dict, marker,
                                                                             config_class):
    path = plant(f"{tiny_config_dict['checkpoint_dir']}/tiny-for-DIN-dataloader.pth", marker)
    kwargs = {"cmd_args": []} if config_class is Config else {}
    config = config_class("DIN", "tiny", config_dict=tiny_config_dict, **kwargs)
    dataset = create_dataset(config)
    refused(lambda: data_preparation(config, dataset), path)


@pytest.mark.parametrize("key,name", [("dataset_save_path", "tiny-SequentialDataset.pth"),
                                      ("dataloaders_save_path", "tiny-for-DIN-dataloader.pth")])
def test_configured_save_paths_are_refused_as_settings_and_as_files(tiny_config_dict, tmp_path, marker, key, name):
    path = plant(tmp_path / "elsewhere" / name, marker)
    settings = {**tiny_config_dict, key: path}
    with pytest.raises(ConfigError, match=f"{key}=.*neither writes nor reads them"):
        Config("recbole.DIN", "tiny", config_dict=settings, cmd_args=[])
    # RecBole's own Config takes the setting; its create_dataset / data_preparation refuse the file
    config = RecBoleConfig("DIN", "tiny", config_dict=settings)
    if key == "dataset_save_path":
        refused(lambda: recbole_create_dataset(config), path)
    else:
        dataset = recbole_create_dataset(config)
        refused(lambda: data_preparation(config, dataset), path)


@pytest.mark.parametrize("key", ["save_dataset", "save_dataloaders"])
def test_saving_datasets_or_dataloaders_is_refused(tiny_config_dict, key):
    with pytest.raises(ConfigError, match=f"{key}=True: RecBole saves .* as pickles"):
        Config("DIN", "tiny", config_dict={**tiny_config_dict, key: True}, cmd_args=[])


def test_run_refuses_a_planted_dataloader(tiny_config_dict, marker):
    path = plant(f"{tiny_config_dict['checkpoint_dir']}/tiny-for-DIEN-dataloader.pth", marker)
    refused(lambda: run("DIEN", "tiny", config_dict=tiny_config_dict, cmd_args=[]), path)


def test_the_run_command_refuses_it_in_one_line(tiny_config_dict, tmp_path, marker, capsys):
    import yaml

    from recbole_dien.cli import main

    plant(tmp_path / "saved" / "tiny-for-DIN-dataloader.pth", marker)  # the command's checkpoint_dir: ./saved
    settings = tmp_path / "tiny.yaml"
    settings.write_text(yaml.safe_dump({k: v for k, v in tiny_config_dict.items() if k != "checkpoint_dir"}))
    assert main(["run", "--model=DIN", "--dataset=tiny", f"--config_files={settings}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("recbole-dien run: error: refused to read saved/tiny-for-DIN-dataloader.pth"), error
    assert "\n" not in error


def test_tuning_refuses_it(tiny_config_dict, marker):
    from recbole_dien.quick_start.tuning import objective_function

    path = plant(f"{tiny_config_dict['checkpoint_dir']}/tiny-for-DSIN-dataloader.pth", marker)
    refused(lambda: objective_function({**tiny_config_dict, "model": "DSIN"}, None), path)


def test_the_benchmark_refuses_it_in_its_work_folder(tiny_config_dict, tmp_path, marker):
    from recbole_dien.benchmark.measure import measure

    work = tmp_path / "work"
    path = plant(work / "tiny-for-DIN-dataloader.pth", marker)
    runner_sets = ("checkpoint_dir", "seed", "epochs")
    settings = {key: value for key, value in tiny_config_dict.items() if key not in runner_sets}
    refused(lambda: measure("DIN", "tiny", overrides=settings, work_dir=str(work)), path)


@pytest.mark.parametrize("command", ["recommend", "export"])
def test_recommend_and_export_never_read_pickles_beside_the_checkpoint(tiny_config_dict, marker, command, capsys):
    from recbole_dien.cli import main

    result = run("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    folder = Path(tiny_config_dict["checkpoint_dir"])
    for name in ("tiny-for-DIN-dataloader.pth", "tiny-DINDataset.pth", "tiny-LeanSequentialDataset.pth"):
        plant(folder / name, marker)
    arguments = ["--users", "1", "--topk", "3"] if command == "recommend" else ["--output", str(folder / "din.pt2")]
    assert main([command, result["saved_model_file"], *arguments]) == 0, capsys.readouterr().err


def test_the_refusal_reads_no_byte_of_the_file(tmp_path, monkeypatch):
    import recbole.data.utils as data_utils

    path = tmp_path / "tiny-Dataset.pth"
    path.write_bytes(b"not even a pickle")
    with open(path, "rb") as f:
        with pytest.raises(DatasetError, match=f"refused to read {path}"):
            data_utils.pickle.load(f)
        assert f.tell() == 0
