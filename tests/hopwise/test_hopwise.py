"""recbole_dien.hopwise: the plugin's models trained in hopwise, through hopwise's own pipeline and
the plugin's run; the same batches, weights and scores as under RecBole; the run command's --host."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

hopwise = pytest.importorskip("hopwise", reason="hopwise is not installed (pip install 'recbole-dien[hopwise]')")

import recbole_dien.hopwise as plugin  # noqa: E402
from tests.hopwise import batches  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("DIN", "DIEN", "DSIN")


def test_importing_and_using_the_hopwise_side_never_imports_recbole():
    probe = ("import sys, recbole_dien.hopwise as h\n"
             "classes = [h.DIN, h.DIEN, h.DSIN, h.Config, h.get_model('hopwise.DIEN')]\n"
             "import hopwise.quick_start\n"
             "assert 'recbole' not in sys.modules, sorted(m for m in sys.modules if m.startswith('recbole.'))\n"
             "print(classes[0].input_type.__class__.__module__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hopwise.utils.enum_type"


@pytest.mark.parametrize("model", MODELS)
def test_the_models_train_in_hopwises_own_pipeline(model, tiny_config_dict):
    from hopwise.config import Config
    from hopwise.data import create_dataset, data_preparation
    from hopwise.utils import get_trainer, init_seed

    from recbole_dien.trainer.checkpoint import FORMAT, load_checkpoint

    model_class = getattr(plugin, model)
    config = Config(model=model_class, dataset="tiny", config_dict=dict(tiny_config_dict))
    assert config["embedding_size"] == 18, "hopwise's properties/model YAML instead of the plugin's props"
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    assert isinstance(dataset, hopwise.data.dataset.SequentialDataset) and type(dataset).__module__.startswith(
        "recbole_dien.data.")
    train_data, valid_data, test_data = data_preparation(config, dataset)
    network = model_class(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, network)
    best_score, _ = trainer.fit(train_data, valid_data, saved=True)
    result = trainer.evaluate(test_data, load_best_model=True)
    assert 0 <= best_score <= 1 and 0 <= result["auc"] <= 1
    checkpoint = load_checkpoint(trainer.saved_model_file)  # weights only: plain data
    assert checkpoint["format"] == FORMAT and checkpoint["config"]["host"] == "hopwise"


@pytest.mark.parametrize("model", MODELS)
def test_run_trains_and_load_data_and_model_rebuilds_it(model, tiny_config_dict):
    result = plugin.run(model, "tiny", config_dict=tiny_config_dict, cmd_args=[])
    assert type(result["config"]).__mro__[2] is hopwise.config.Config
    assert 0 <= result["test_result"]["auc"] <= 1
    config, network, dataset, train_data, _, test_data = plugin.load_data_and_model(result["saved_model_file"])
    assert type(network) is getattr(plugin, model) and config["dataset"] == "tiny"
    from recbole_dien.trainer.checkpoint import load_checkpoint

    best = load_checkpoint(result["saved_model_file"])["state_dict"]
    assert all(torch.equal(best[name], value) for name, value in network.state_dict().items())


def _recbole_python():
    """A Python that has RecBole and the plugin: $RECBOLE_DIEN_RECBOLE_PYTHON, else the checkout's
    own virtualenvs (CI's first one, a developer's .venv)."""
    candidates = [os.environ.get("RECBOLE_DIEN_RECBOLE_PYTHON"), ROOT / ".ci-venv" / "bin" / "python",
                  ROOT / ".venv" / "bin" / "python"]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file() and subprocess.run([str(candidate), "-c", "import recbole, recbole_dien"],
                                                        capture_output=True, timeout=120).returncode == 0:
            return str(candidate)
    return None


@pytest.mark.parametrize("model", MODELS)
def test_the_same_batches_weights_and_scores_as_under_recbole(model, tiny_data_path, tmp_path):
    recbole_python = _recbole_python()
    if recbole_python is None:
        pytest.skip("no Python with RecBole found (set RECBOLE_DIEN_RECBOLE_PYTHON)")
    out = tmp_path / f"recbole-{model}.pt"
    done = subprocess.run([recbole_python, "-m", "tests.hopwise.batches", "recbole", model, tiny_data_path, str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    under_recbole = torch.load(out, weights_only=True)
    under_hopwise = batches.batches("hopwise", model, tiny_data_path, str(tmp_path / "saved"))
    for split in ("train", "valid", "test"):
        assert len(under_hopwise[split]) == len(under_recbole[split])
        for ours, theirs in zip(under_hopwise[split], under_recbole[split]):
            assert sorted(ours) == sorted(theirs)
            assert all(torch.equal(ours[field], theirs[field]) for field in ours), split
    assert under_hopwise["parameters"].keys() == under_recbole["parameters"].keys()
    assert all(torch.equal(value, under_recbole["parameters"][name]) for name, value in
               under_hopwise["parameters"].items())
    assert torch.equal(under_hopwise["scores"], under_recbole["scores"])


def test_the_run_command_trains_in_hopwise(tiny_config_dict, tmp_path, capsys):
    from recbole_dien import cli

    settings = tmp_path / "tiny.yaml"
    settings.write_text(yaml.safe_dump(tiny_config_dict))
    assert cli.main(["run", "--host=hopwise", "--model=DIEN", "--dataset=tiny", f"--config_files={settings}"]) == 0
    assert "test result: {'auc': " in capsys.readouterr().out


def test_hopwise_own_models_keep_their_prefixed_names():
    from hopwise.model.sequential_recommender.dien import DIEN

    assert plugin.get_model("hopwise.DIEN") is DIEN
    assert plugin.get_model("DIEN") is plugin.DIEN and issubclass(plugin.DIEN, hopwise.model.abstract_recommender
                                                                  .SequentialRecommender)


def test_without_recbole_the_recbole_side_says_so_in_one_line(tmp_path):
    """In a virtualenv with hopwise alone, RecBole's side of the command names the missing extra."""
    if subprocess.run([sys.executable, "-c", "import recbole"], capture_output=True).returncode == 0:
        pytest.skip("RecBole is installed here")
    done = subprocess.run([sys.executable, str(ROOT / "run_recbole.py"), "--model=DIN"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "run_recbole.py: error: RecBole is not installed: pip install recbole==1.2.1\n"


def test_a_resumed_run_ends_as_the_uninterrupted_one(tiny_config_dict):
    first = plugin.run("DIEN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    resumed = plugin.run(resume=first["saved_model_file"], cmd_args=["--epochs=2"])
    whole = plugin.run("DIEN", "tiny", config_dict={**tiny_config_dict, "epochs": 2}, cmd_args=[])
    assert type(resumed["config"]).__mro__[2] is hopwise.config.Config  # the checkpoint's host
    assert dict(resumed["test_result"]) == dict(whole["test_result"])
