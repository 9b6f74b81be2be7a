"""recbole_dien.hopwise.compat: the plugin's guarantees on hopwise's own classes - plain-data
checkpoints (a hostile one refused wherever hopwise reads one), no setting evaluated, no pickle read
from a folder, the plugin's props instead of hopwise's model YAML, DSIN's exact time."""
import os
import pickle

import pytest
import torch

hopwise = pytest.importorskip("hopwise", reason="hopwise is not installed (pip install 'recbole-dien[hopwise]')")

import recbole_dien.hopwise as plugin  # noqa: E402
from recbole_dien.trainer.checkpoint import CheckpointError  # noqa: E402
from recbole_dien.utils.errors import DatasetError, UnknownModelError  # noqa: E402


class RunsACommand:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "ran"
    yield path
    assert not path.exists(), "a hostile file ran its command"


def hostile_checkpoint(path, marker):
    torch.save({"config": RunsACommand(f"touch {marker}"), "state_dict": {}, "epoch": 0, "cur_step": 0,
                "best_valid_score": 0.0}, path)
    return path


def test_a_hostile_checkpoint_is_refused_wherever_hopwise_reads_one(tiny_config_dict, tmp_path, marker):
    from hopwise.config import Config
    from hopwise.data import create_dataset, data_preparation
    from hopwise.quick_start import load_data_and_model
    from hopwise.utils import get_trainer

    path = hostile_checkpoint(tmp_path / "DIN-hostile.pth", marker)
    config = Config(model=plugin.DIN, dataset="tiny", config_dict=dict(tiny_config_dict))
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, plugin.DIN(config, train_data.dataset))
    with pytest.raises(CheckpointError, match="refused to load .*it asks to construct"):
        trainer.evaluate(test_data, load_best_model=True, model_file=str(path))
    with pytest.raises(CheckpointError, match="refused to load"):
        trainer.resume_checkpoint(str(path))
    for load in (load_data_and_model, plugin.load_data_and_model):
        with pytest.raises(CheckpointError, match="refused to load"):
            load(str(path))


def test_hopwise_writes_plain_data_checkpoints_for_its_own_models_too(tiny_config_dict):
    from hopwise.quick_start import run_hopwise

    from recbole_dien.trainer.checkpoint import load_checkpoint

    settings = {**tiny_config_dict, "train_neg_sample_args": None, "loss_type": "CE",
                "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
                "metrics": ["Hit", "NDCG"], "valid_metric": "NDCG@10"}
    run_hopwise(model="GRU4Rec", dataset="tiny", config_dict=settings)
    (saved,) = os.listdir(tiny_config_dict["checkpoint_dir"])
    checkpoint = load_checkpoint(os.path.join(tiny_config_dict["checkpoint_dir"], saved))
    assert checkpoint["config"]["model_class"] == "hopwise.model.sequential_recommender.gru4rec.GRU4Rec"


def test_no_setting_is_evaluated_and_nested_keys_still_work(tiny_config_dict, marker):
    from hopwise.config import Config

    command = f"__import__('os').system('touch {marker}')"
    config = Config(model=plugin.DIN, dataset="tiny",
                    config_dict={**tiny_config_dict, "learning_rate": command, "train_neg_sample_args.sample_num": "3",
                                 "stopping_step": "5", "reproducibility": "True"})
    assert config["learning_rate"] == command  # the text, never run
    assert config["stopping_step"] == 5 and config["reproducibility"] is True
    assert config["train_neg_sample_args"]["sample_num"] == 3  # hopwise's nested key, typed
    assert config["train_neg_sample_args"]["distribution"] == "uniform"


def test_yaml_that_builds_objects_is_refused(tiny_config_dict, tmp_path, marker):
    from hopwise.config import Config

    from recbole_dien.utils.errors import ConfigError

    settings = tmp_path / "hostile.yaml"
    settings.write_text(f"learning_rate: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="hostile.yaml, line 1 is not valid YAML: .*Python tags are not read"):
        Config(model=plugin.DIN, dataset="tiny", config_file_list=[str(settings)], config_dict=dict(tiny_config_dict))


def test_a_pickle_beside_the_data_is_never_read(tiny_config_dict, marker):
    from hopwise.config import Config
    from hopwise.data import create_dataset

    settings = {**tiny_config_dict, "train_neg_sample_args": None, "loss_type": "CE"}
    os.makedirs(settings["checkpoint_dir"], exist_ok=True)
    with open(os.path.join(settings["checkpoint_dir"], "tiny-SequentialDataset.pth"), "wb") as f:
        pickle.dump(RunsACommand(f"touch {marker}"), f)
    config = Config(model="GRU4Rec", dataset="tiny", config_dict=settings)  # hopwise's own model and dataset
    with pytest.raises(DatasetError, match="refused to read .*tiny-SequentialDataset.pth"):
        create_dataset(config)


def test_plugin_models_read_their_props_never_hopwises_model_yaml(tiny_config_dict):
    from hopwise.config import Config

    ours = Config(model=plugin.DIEN, dataset="tiny", config_dict=dict(tiny_config_dict))
    assert ours["embedding_size"] == 18 and ours["mlp_hidden_size"] == [200, 80]
    own = Config(model="DIEN", dataset="tiny", config_dict=dict(tiny_config_dict))  # hopwise's own DIEN
    assert own["embedding_size"] == 10 and own["mlp_hidden_size"] == [256, 256, 256]
    assert own.model_class.__module__ == "hopwise.model.sequential_recommender.dien"


def test_hopwise_get_model_names_the_plugins_models():
    from hopwise.utils import get_model

    with pytest.raises(UnknownModelError, match="hopwise has no model 'DSIN': it is recbole-dien's"):
        get_model("DSIN")


def test_dsin_keeps_its_time_in_seconds_exact(tiny_config_dict):
    from hopwise.data import create_dataset

    config = plugin.Config("DSIN", "tiny", config_dict={**tiny_config_dict, "normalize_all": True}, cmd_args=[])
    train = create_dataset(config).build()[0]
    times, ratings = train.history_log["timestamp"], train.inter_feat["rating"]
    assert times.dtype == torch.float64 and times.min() > 1_000_000  # neither normalised nor float32
    assert ratings.dtype == torch.float32 and ratings.max() <= 1  # the other float fields normalised as asked
