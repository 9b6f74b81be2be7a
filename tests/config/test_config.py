import pytest
from recbole.utils import EvaluatorType

import recbole_dien.config.configurator as config_module
from recbole_dien import Config
from recbole_dien.utils.errors import RecBoleDienError


@pytest.fixture
def layered_files(tmp_path, monkeypatch):
    """props/DIN.yaml and dataset_configs/tiny.yaml stand-ins that all set the same key."""
    props = tmp_path / "DIN.yaml"
    props.write_text("probe: props\nprops_only: 1\nembedding_size: 18\n")
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text("probe: dataset\n")
    user_file = tmp_path / "user.yaml"
    user_file.write_text("probe: file\n")
    monkeypatch.setattr(config_module, "props_file", lambda model: props if model == "DIN" else None)
    monkeypatch.setattr(config_module, "dataset_config_file", lambda name: protocol if name == "tiny" else None)
    return str(user_file)


def test_precedence_recbole_props_dataset_files_dict_cmd(layered_files, tiny_config_dict):
    base = dict(tiny_config_dict)

    def probe(files=None, extra=None, cmd=()):
        config = Config("DIN", "tiny", config_file_list=files, config_dict={**base, **(extra or {})},
                        cmd_args=list(cmd))
        return config["probe"]

    assert probe() == "dataset"
    assert probe(files=[layered_files]) == "file"
    assert probe(files=[layered_files], extra={"probe": "dict"}) == "dict"
    assert probe(files=[layered_files], extra={"probe": "dict"}, cmd=["--probe=cmd"]) == "cmd"


def test_props_override_recbole_model_defaults(layered_files, tiny_config_dict):
    config = Config("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    assert config["embedding_size"] == 18  # RecBole's own DIN.yaml says 10
    assert config["props_only"] == 1


def test_recbole_builtin_gets_the_protocol_but_not_the_plugin_props(layered_files, tiny_config_dict):
    config = Config("recbole.DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    assert config["model"] == "DIN" and config.model_class.__module__.startswith("recbole.model")
    assert config["embedding_size"] == 10 and "props_only" not in config
    assert config["probe"] == "dataset"


def test_real_props_and_protocol_files_are_found():
    config = Config("DIN", "ml-100k", cmd_args=[])
    assert config["attention_mlp_sizes"] == [80, 40]
    assert config["metrics"] == ["AUC", "LogLoss"]
    assert config["load_col"]["item"] == ["item_id", "release_year", "class"]
    assert config["data_path"].endswith("dataset_example/ml-100k")


def test_command_line_values_are_typed_like_recbole(tiny_config_dict):
    config = Config("DIN", "tiny", config_dict=tiny_config_dict,
                    cmd_args=["--epochs=3", "--attention_softmax=True", "--mlp_hidden_size=[16,8]"])
    assert config["epochs"] == 3 and config["attention_softmax"] is True
    assert config["mlp_hidden_size"] == [16, 8]


def test_malformed_override_is_rejected(tiny_config_dict):
    with pytest.raises(ValueError, match="--key=value"):
        Config("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=["epochs"])


@pytest.mark.parametrize("model", ["DIN", "recbole.DIEN", "GRU4Rec"])
def test_named_protocols_layer_on_the_dataset_default(model):
    default = Config(model, "ml-100k", cmd_args=[])
    full = Config(model, "ml-100k", config_dict={"protocol": "fullsort"}, cmd_args=[])
    labeled = Config(model, "ml-100k", cmd_args=["--protocol=labeled"])
    for config in (full, labeled):  # same features and history length as the default protocol
        assert config["load_col"] == default["load_col"]
        assert config["MAX_ITEM_LIST_LENGTH"] == default["MAX_ITEM_LIST_LENGTH"] == 50

    assert default["eval_args"]["mode"]["test"] == "uni100" and default["eval_type"] == EvaluatorType.VALUE
    assert full["eval_args"]["mode"]["test"] == "full" and full["eval_type"] == EvaluatorType.RANKING
    assert full["metrics"] == ["Hit", "NDCG", "MRR", "GAUC"] and full["topk"] == [10]
    assert full["valid_metric"] == "NDCG@10"
    assert labeled["eval_args"]["mode"]["test"] == "labeled" and labeled["eval_type"] == EvaluatorType.VALUE
    assert labeled["metrics"] == ["AUC", "LabeledGAUC", "LogLoss"]
    assert labeled["threshold"] == {"rating": 4}
    assert labeled["eval_args"]["split"] == {"RS": [0.8, 0.1, 0.1]}
    assert labeled["train_neg_sample_args"]["distribution"] == "none"  # labels, not sampled negatives


def test_point_wise_models_keep_sampled_negatives_and_cross_entropy_models_drop_them():
    for protocol in ("default", "fullsort"):
        ctr = Config("DIEN", "ml-100k", config_dict={"protocol": protocol}, cmd_args=[])
        assert ctr["train_neg_sample_args"]["distribution"] == "uniform"
        assert ctr["train_neg_sample_args"]["sample_num"] == 1
        next_item = Config("SASRec", "ml-100k", config_dict={"protocol": protocol}, cmd_args=[])
        assert next_item["loss_type"] == "CE"
        assert next_item["train_neg_sample_args"]["distribution"] == "none"
    # asked for explicitly, the combination is RecBole's to refuse
    with pytest.raises(ValueError, match="should be None when the loss_type is CE"):
        Config("SASRec", "ml-100k", cmd_args=[],
               config_dict={"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})
    bpr = Config("GRU4Rec", "ml-100k", config_dict={"loss_type": "BPR"}, cmd_args=[])
    assert bpr["train_neg_sample_args"]["distribution"] == "uniform"


def test_unknown_protocol_names_the_shipped_ones():
    with pytest.raises(RecBoleDienError, match=r"no protocol 'fullrank' for dataset 'ml-100k'.*"
                                               r"shipped for it: default, fullsort, labeled"):
        Config("DIN", "ml-100k", cmd_args=["--protocol=fullrank"])
