"""Settings: every knob of props/*.yaml and RecBole's general settings checked before a run trains,
one line on the command line (exit 2) for each wrong value."""
import pytest

from recbole_dien.quick_start.quick_start import main as run_command
from recbole_dien.config.knobs import Spec, model_knobs, validate
from recbole_dien.utils.resources import props_file


def one_line_error(capsys, argv):
    """Run the run command in this process; the one error line it printed (exit status 2)."""
    status = run_command(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error: " in lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv,fragments", [
    (["--model=DIEN", "--alpha=-1"], ["alpha=-1", "a number >= 0", "props/DIEN.yaml"]),
    (["--model=DSIN", "--session_gap=-5"], ["session_gap=-5", "a number > 0"]),
    (["--model=DSIN", "--session_gap=abc"], ["session_gap='abc'", "a number > 0"]),
    (["--model=DIN", "--MAX_ITEM_LIST_LENGTH=0"], ["MAX_ITEM_LIST_LENGTH=0", "an int >= 1"]),
    (["--model=DIEN", "--MAX_ITEM_LIST_LENGTH=0"], ["MAX_ITEM_LIST_LENGTH=0", "an int >= 1"]),
    (["--model=DSIN", "--MAX_ITEM_LIST_LENGTH=0"], ["MAX_ITEM_LIST_LENGTH=0", "an int >= 1"]),
    (["--nproc=0"], ["--nproc=0", "at least 1"]),
    (["--nproc=-3"], ["--nproc=-3", "at least 1"]),
    (["--nproc=2", "--world_size=1"], ["--world_size=1 is smaller than --nproc=2"]),
    (["--embedding_size=abc"], ["embedding_size='abc'", "an int >= 1"]),
    (["--mlp_hidden_size=200"], ["mlp_hidden_size=200", "--mlp_hidden_size=[200]"]),
    (["--epochs=abc"], ["epochs='abc'", "an int >= 1"]),
    (["--epochs=0"], ["epochs=0", "an int >= 1"]),
    (["--gru_type=LSTM"], ["gru_type='LSTM'", "one of GRU, AIGRU, AGRU, AUGRU"]),
    (["--model=DIN", "--attention_activation=gelu"], ["attention_activation='gelu'", "one of"]),
    (["--model=DIN", "--dropout_prob=1"], ["dropout_prob=1", "< 1"]),
    (["--model=DIN", "--learning_rate=0"], ["learning_rate=0", "a number > 0"]),
    (["--model=DIN", "--attention_softmax=yes"], ["attention_softmax='yes'", "bool"]),
    (["--config_files=/nope.yaml"], ["config file /nope.yaml does not exist"]),
])
def test_a_wrong_setting_stops_the_run_in_one_line(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, argv)
    for fragment in fragments:
        assert fragment in line


def test_cuda_without_a_gpu_is_refused(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "device='cuda' asks for a CUDA GPU" in one_line_error(capsys, ["--model=DIN", "--device=cuda"])


def test_num_heads_that_do_not_divide_the_width_suggest_one_that_does(tiny_data_path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, ["--model=DSIN", "--dataset=tiny", f"--data_path={tiny_data_path}", "--num_heads=7",
                                   "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}"])
    assert "num_heads=7" in line and "must divide" in line and "num_heads=6" in line  # 3 fields x 18 = 54


def test_a_batch_too_small_for_batch_norm_is_refused(tiny_config_dict):
    from recbole_dien import run
    from recbole_dien.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="train_batch_size >= 16"):
        run("DIEN", "tiny", config_dict={**tiny_config_dict, "train_batch_size": 1}, cmd_args=[])
    # without BatchNorm and Dice a batch of one is legal
    result = run("DIN", "tiny", config_dict={**tiny_config_dict, "train_batch_size": 1, "mlp_batch_norm": False,
                                              "mlp_activation": "prelu"}, cmd_args=[])
    assert 0.0 <= result["test_result"]["auc"] <= 1.0


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_every_knob_of_the_props_file_is_declared_and_its_default_valid(model):
    knobs = model_knobs(model)
    with open(props_file(model), encoding="utf-8") as f:
        documented = [line.split(":")[0] for line in f if line[:1].isalpha() and "# (" in line]
    assert sorted(knobs) == sorted(documented) and len(knobs) >= 10
    import yaml

    defaults = yaml.safe_load(open(props_file(model), encoding="utf-8"))
    validate(defaults, model_name=model)  # the shipped defaults pass their own specs


@pytest.mark.parametrize("text,good,bad", [
    ("int >= 1", [1, 7], [0, -1, 1.5, True, "3", None]),
    ("float > 0 and < 1", [0.5, 1e-9], [0, 1, "0.5", None]),
    ("str: a | b", ["a", "b"], ["c", 1, None]),
    ("list of int >= 1", [[1], [3, 2]], [[], [0], 3, [1.5]]),
    ("int >= 1 or ~", [None, 2], [0]),
    ("bool", [True, False], [1, "True"]),
])
def test_spec_accepts_exactly_its_values(text, good, bad):
    spec = Spec.parse(text)
    assert all(spec.accepts(value) for value in good)
    assert not any(spec.accepts(value) for value in bad)


def test_every_general_setting_is_documented():
    from pathlib import Path

    from recbole_dien.config.knobs import GENERAL_KNOBS

    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert [key for key in GENERAL_KNOBS if f"`{key}`" not in docs] == []
