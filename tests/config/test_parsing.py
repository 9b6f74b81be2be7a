"""Settings are read without running anything: command-line values, config_dict strings and YAML
files, for the plugin's models and RecBole's; unknown keys are named with the closest known one."""
import sys
import time

import pytest
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_dien import Config
from recbole_dien.config.parsing import parse_value
from recbole_dien.utils.errors import ConfigError

MODELS = ["DIN", "recbole.DIN", "GRU4Rec"]


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a setting ran its command"


def payload(marker):
    return f"__import__('os').system('touch {marker}')"


def settings_for(model, tiny_config_dict):
    if model == "GRU4Rec":  # cross-entropy over all items: a ranking protocol
        return {**tiny_config_dict, "metrics": ["Recall"], "valid_metric": "Recall@10", "train_neg_sample_args": None,
                "eval_args": {**tiny_config_dict["eval_args"], "mode": "full"}}
    return tiny_config_dict


def test_the_payload_is_live_under_eval(tmp_path):
    # the control: what RecBole 1.2.1's _convert_config_dict did with the string
    eval(payload(tmp_path / "control"))
    assert (tmp_path / "control").exists()


@pytest.mark.parametrize("text,value", [
    ("3", 3), ("-2", -2), ("1e-3", 0.001), ("0.5", 0.5), ("[64, 32]", [64, 32]), ("(1, 2)", (1, 2)),
    ("{'inter': ['user_id']}", {"inter": ["user_id"]}), ("True", True), ("false", False), ("TRUE", True),
    ("None", None), ("'quoted'", "quoted"), ("ml-100k", "ml-100k"), ("uni100", "uni100"), ("2**10", "2**10"),
    ("{1, 2}", "{1, 2}"), ("ModelType.SEQUENTIAL", ModelType.SEQUENTIAL), ("[" * 10000, "[" * 10000),
])
def test_values_are_typed_as_literals_and_nothing_else(text, value):
    assert parse_value(text) == value


@pytest.mark.parametrize("model", MODELS)
def test_a_command_line_payload_runs_nothing_and_the_error_names_it(tiny_config_dict, marker, model):
    typed = payload(marker)
    with pytest.raises(ConfigError) as error:
        Config(model, "tiny", config_dict=settings_for(model, tiny_config_dict), cmd_args=[f"--learning_rate={typed}"])
    assert f"invalid setting learning_rate={typed!r}" in str(error.value)


@pytest.mark.parametrize("model", MODELS)
def test_a_config_dict_payload_runs_nothing(tiny_config_dict, marker, model):
    settings = {**settings_for(model, tiny_config_dict), "x": payload(marker), "learning_rate": payload(marker)}
    with pytest.raises(ConfigError, match="invalid setting learning_rate=\"__import__"):
        Config(model, "tiny", config_dict=settings, cmd_args=[])
    del settings["learning_rate"]
    assert Config(model, "tiny", config_dict=settings, cmd_args=[])["x"] == payload(marker)  # kept as typed


def test_recboles_own_config_evaluates_nothing_once_the_plugin_is_imported(tiny_config_dict, marker, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", f"--y={payload(marker)}"])  # RecBole reads its command line
    config = RecBoleConfig("DIN", "tiny", config_dict={**tiny_config_dict, "x": payload(marker)})
    assert config["x"] == config["y"] == payload(marker)


@pytest.mark.parametrize("document,problem", [
    (lambda marker: f"x: !!python/object/apply:os.system ['touch {marker}']\n", "Python tags are not read"),
    (lambda marker: "x: !!python/name:os.system\n", "Python tags are not read"),
])
def test_python_tags_in_a_config_file_are_refused_in_one_line(tiny_config_dict, tmp_path, marker, document, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(document(marker))
    with pytest.raises(ConfigError) as error:
        Config("DIN", "tiny", config_file_list=[str(path)], config_dict=tiny_config_dict, cmd_args=[])
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "line 1" in message and problem in message
    with pytest.raises(Exception):  # RecBole's own Config reads YAML with the same loader
        RecBoleConfig("DIN", "tiny", config_file_list=[str(path)], config_dict=tiny_config_dict)


def billion_laughs(levels=9):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("config_class", [Config, RecBoleConfig], ids=["plugin", "recbole"])
def test_an_alias_bomb_is_refused_in_one_line(tiny_config_dict, tmp_path, config_class):
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    kwargs = {"cmd_args": []} if config_class is Config else {}
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        config_class("DIN", "tiny", config_file_list=[str(path)], config_dict=tiny_config_dict, **kwargs)
    assert time.perf_counter() - started < 30  # refused, not expanded (a timeout, not a speed claim)
    message = str(error.value)
    assert "\n" not in message and "aliases expand to more than" in message
    if config_class is Config:
        assert str(path) in message


def test_a_few_aliases_are_fine(tiny_config_dict, tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("sizes: &sizes [16, 8]\nmlp_hidden_size: *sizes\nattention_mlp_sizes: *sizes\n")
    config = Config("DIN", "tiny", config_file_list=[str(path)], config_dict=tiny_config_dict, cmd_args=[])
    assert config["mlp_hidden_size"] == config["attention_mlp_sizes"] == [16, 8]


def test_the_run_command_names_the_typed_value_and_runs_nothing(tmp_path, marker, capsys, monkeypatch):
    from recbole_dien.cli import main

    monkeypatch.chdir(tmp_path)
    typed = payload(marker)
    assert main(["run", "--model=DIN", f"--learning_rate={typed}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"recbole-dien run: error: invalid setting learning_rate={typed!r}: it must be a number > 0; " \
                    "see props/DIN.yaml"


def test_the_run_command_refuses_a_config_file_payload(tmp_path, marker, capsys, monkeypatch):
    from recbole_dien.cli import main

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(f"learning_rate: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["run", "--model=DIN", f"--config_files={path}"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"config file {path}, line 1 is not valid YAML" in error


# --- unknown keys -------------------------------------------------------------------------------

def test_a_misspelled_key_is_one_warning_with_the_closest_key(tiny_config_dict, caplog):
    Config("DIN", "tiny", config_dict={**tiny_config_dict, "embeding_size": 64}, cmd_args=["--lerning_rate=0.1"])
    warnings = [record.getMessage() for record in caplog.records if "unknown setting" in record.getMessage()]
    assert sorted(warnings) == [
        "unknown setting 'embeding_size' (did you mean 'embedding_size'?): neither RecBole nor recbole-dien reads "
        "it; set strict_settings: True to stop on it",
        "unknown setting 'lerning_rate' (did you mean 'learning_rate'?): neither RecBole nor recbole-dien reads "
        "it; set strict_settings: True to stop on it",
    ]


def test_strict_settings_stops_on_an_unknown_key(tiny_config_dict):
    with pytest.raises(ConfigError, match=r"unknown setting 'embeding_size' \(did you mean 'embedding_size'\?\).*"
                                          "strict_settings: True stops"):
        Config("DIN", "tiny", config_dict={**tiny_config_dict, "embeding_size": 64, "strict_settings": True},
               cmd_args=[])


@pytest.mark.parametrize("model", MODELS + ["DIEN", "DSIN"])
def test_every_key_of_a_real_run_is_known(tiny_config_dict, caplog, model):
    # the settings the tests, the README and the shipped protocols use warn about nothing
    settings = {**settings_for(model, tiny_config_dict), "strict_settings": True, "protocol": "default",
                "missing_float_values": "error", "malformed_rows": "error", "encoding": "utf-8"}
    Config(model, "tiny", config_dict=settings, cmd_args=["--epochs=1", "--nproc=1"])
    assert not [record for record in caplog.records if "unknown setting" in record.getMessage()]
