"""Hyper-parameter search: RecBole's HyperTuning over the plugin's models, offline, no ray."""
import sys
from pathlib import Path

import pytest

from recbole_dien.quick_start import tuning
from recbole_dien.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_objective_function_has_recboles_signature_and_result(tiny_config_dict):
    result = tuning.objective_function({**tiny_config_dict, "model": "DSIN"}, None)
    assert result["model"] == "DSIN" and result["valid_score_bigger"] is True
    assert 0.0 <= result["test_result"]["auc"] <= 1.0
    assert result["best_valid_score"] == result["best_valid_result"]["auc"]


def test_two_random_trials_write_recboles_file_and_a_table_best_first(tiny_config_dict, tmp_path):
    space = tmp_path / "space.hyper"
    space.write_text("learning_rate choice [0.001,0.01]\nembedding_size choice [4,8]\n")
    output = tmp_path / "din.result"
    settings = {key: value for key, value in tiny_config_dict.items() if key != "dataset"}
    tuner = tuning.tune("DIN", "tiny", str(space), settings=settings, tool="random", max_evals=2,
                        output_file=str(output))
    assert len(tuner.params2result) in (1, 2)  # random search may draw the same point twice
    assert "Valid result" in output.read_text() and "Test result" in output.read_text()
    table = (tmp_path / "din.result.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == len(tuner.params2result)
    scores = [float(row.split("|")[3]) for row in rows]
    assert scores == sorted(scores, reverse=True) and 0.0 <= scores[0] <= 1.0
    assert tuner.best_params["embedding_size"] in (4, 8)


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_every_shipped_space_is_readable_and_names_real_knobs(model):
    from recbole.trainer import HyperTuning

    from recbole_dien.config.knobs import GENERAL_KNOBS, model_knobs

    path = ROOT / "hyper" / f"{model}.hyper"
    space = HyperTuning._build_space_from_file(str(path))
    assert len(space) >= 5
    assert set(space) <= set(model_knobs(model)) | set(GENERAL_KNOBS)


def test_missing_hyperopt_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "hyperopt", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[tune\]"'):
        tuning.require_hyperopt()


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the search space ran its command"


def test_a_choice_line_is_never_evaluated(tmp_path, marker):
    from recbole.trainer import HyperTuning

    space = tmp_path / "bad.hyper"
    space.write_text(f"learning_rate choice [0.1]\nembedding_size choice __import__('os').system('touch {marker}')\n")
    for build in (tuning.build_space_from_file, HyperTuning._build_space_from_file):  # RecBole's own, shimmed
        with pytest.raises(ConfigError) as error:
            build(str(space))
        assert str(error.value).startswith(f"params file {space}, line 2: ") and "never evaluated" in str(error.value)


def test_the_tune_command_writes_under_saved_not_the_working_folder(tiny_config_dict, tmp_path, capsys):
    import yaml

    space = tmp_path / "space.hyper"
    space.write_text("embedding_size choice [4]\n")
    settings = tmp_path / "tiny.yaml"
    settings.write_text(yaml.safe_dump({k: v for k, v in tiny_config_dict.items() if k not in ("dataset",)}))
    assert tuning.main(["--model=DIN", "--dataset=tiny", f"--config_files={settings}", f"--params_file={space}",
                        "--tool=random", "--max_evals=1"]) == 0
    assert (tmp_path / "saved" / "tune" / "DIN-tiny.result").is_file()
    assert (tmp_path / "saved" / "tune" / "DIN-tiny.result.md").is_file()
    assert not list(tmp_path.glob("hyper_result*"))
    assert "wrote saved/tune/DIN-tiny.result and saved/tune/DIN-tiny.result.md" in capsys.readouterr().out
