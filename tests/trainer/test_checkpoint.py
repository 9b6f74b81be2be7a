"""Checkpoints: plain data only, so that no file can run code when loaded; one line for every bad file."""
import glob
import os
import pickle

import pytest
import torch
from recbole.config import Config as RecBoleConfig

import recbole_dien
from recbole_dien import load_data_and_model, run
from recbole_dien.serving import attention_plot
from recbole_dien.trainer.checkpoint import FORMAT, CheckpointError, load_checkpoint


class ConstructOnLoad:
    """Pickles as a call of ``factory(*args)``: what a crafted checkpoint asks the unpickler to do."""

    def __init__(self, factory, *args):
        self.factory, self.args = factory, args

    def __reduce__(self):
        return self.factory, self.args


def config_payload(config_class, marker):
    """A RecBole-style ``Config`` whose construction runs ``touch marker`` (Config evaluates strings)."""
    command = f"__import__('os').system('touch {marker}')"
    return ConstructOnLoad(config_class, None, None, None, {"x": command})


def crafted_checkpoint(tmp_path, payload, name="crafted.pth"):
    path = tmp_path / name
    torch.save({"format": FORMAT, "config": payload, "state_dict": {}}, path)
    return str(path)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "loading the crafted checkpoint ran its command"


def test_the_payload_is_live_when_an_unpickler_constructs_it(tmp_path):
    # the control: without weights_only, the crafted file does run its command
    marker = tmp_path / "control"
    path = crafted_checkpoint(tmp_path, config_payload(RecBoleConfig, marker))
    try:
        torch.load(path, weights_only=False)
    except Exception:
        pass  # Config(model=None) fails after it has evaluated the settings
    assert marker.exists()


@pytest.mark.parametrize("config_class", [RecBoleConfig, recbole_dien.Config], ids=["recbole", "plugin"])
def test_load_data_and_model_refuses_a_config_payload(tmp_path, marker, config_class):
    path = crafted_checkpoint(tmp_path, config_payload(config_class, marker))
    with pytest.raises(CheckpointError) as error:
        load_data_and_model(path)
    message = str(error.value)
    assert "\n" not in message and path in message
    assert f"{config_class.__module__}.{config_class.__name__}" in message
    assert "weights_only=False" not in message


def test_attention_plot_refuses_a_config_payload_in_one_line(tmp_path, marker, capsys):
    path = crafted_checkpoint(tmp_path, config_payload(RecBoleConfig, marker))
    assert attention_plot.main([path, "--user", "1", "--output", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused to load" in err and path in err
    assert not (tmp_path / "a.png").exists()


def test_plain_torch_load_after_import_refuses_the_payload(tmp_path, marker):
    path = crafted_checkpoint(tmp_path, config_payload(RecBoleConfig, marker))
    allowed = [obj for obj in torch.serialization.get_safe_globals()
               if (getattr(obj, "__module__", "") or "").startswith(("recbole", "yaml", "logging"))]
    assert allowed == []  # importing recbole_dien widens nothing
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_a_class_path_outside_recbole_is_refused(tmp_path, marker):
    path = tmp_path / "other.pth"
    config = {"model": "x", "model_class": "os.system", "dataset": "tiny",
              "final_config_dict": {"model": "x", "dataset": "tiny"}}
    torch.save({"format": FORMAT, "config": config, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="neither recbole-dien's nor RecBole's"):
        load_data_and_model(str(path))


@pytest.fixture
def din_checkpoint(tiny_config_dict):
    run("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    (path,) = glob.glob(f"{tiny_config_dict['checkpoint_dir']}/DIN-*.pth")
    return path


def test_settings_in_a_checkpoint_are_never_evaluated(din_checkpoint, marker):
    checkpoint = torch.load(din_checkpoint, weights_only=True)
    command = f"__import__('os').system('touch {marker}')"
    checkpoint["config"]["final_config_dict"]["x"] = command
    checkpoint["config"]["final_config_dict"]["embedding_size"] = 4  # noticed by the model, as data
    torch.save(checkpoint, din_checkpoint)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_data_and_model(din_checkpoint)
    checkpoint["config"]["final_config_dict"]["embedding_size"] = 18
    torch.save(checkpoint, din_checkpoint)
    config, model, *_ = load_data_and_model(din_checkpoint)
    assert config["x"] == command  # a string, kept as one


def test_kd_dagfm_teacher_that_recbole_would_evaluate_is_refused(din_checkpoint, marker):
    checkpoint = torch.load(din_checkpoint, weights_only=True)
    checkpoint["config"]["model_class"] = "recbole.model.context_aware_recommender.kd_dagfm.KD_DAGFM"
    checkpoint["config"]["final_config_dict"]["teacher"] = f"__import__('os').system('touch {marker}')"
    torch.save(checkpoint, din_checkpoint)
    with pytest.raises(CheckpointError, match="teacher"):
        load_data_and_model(din_checkpoint)


def test_a_checkpoint_is_plain_data_with_the_config_and_the_resume_state(din_checkpoint):
    checkpoint = load_checkpoint(din_checkpoint)
    assert checkpoint["config"]["model_class"] == "recbole_dien.model.din.DIN"
    assert checkpoint["resume"]["epoch"] == 0 and checkpoint["epoch"] == 0
    assert not glob.glob(din_checkpoint + ".tmp-*")


def corrupt(kind, good, tmp_path):
    path = tmp_path / f"{kind}.pth"
    data = open(good, "rb").read()
    if kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("user_id:token\titem_id:token\n1\t2\n")
    elif kind == "not ours":
        torch.save({"weights": torch.zeros(2)}, path)
    return str(path)


@pytest.mark.parametrize("kind,reason", [
    ("missing", "does not exist"), ("empty", "is empty"), ("folder", "is a folder"),
    ("truncated", "truncated, corrupt"), ("random", "corrupt"), ("text", "corrupt"),
    ("not ours", "not a recbole-dien checkpoint"),
])
def test_a_bad_checkpoint_is_one_line_naming_the_file(din_checkpoint, tmp_path, kind, reason):
    path = str(tmp_path / "missing.pth") if kind == "missing" else corrupt(kind, din_checkpoint, tmp_path)
    with pytest.raises(CheckpointError) as error:
        load_data_and_model(path)
    message = str(error.value)
    assert "\n" not in message and path in message and reason in message
    assert "weights_only" not in message


def test_pickles_beside_the_checkpoint_are_never_read(din_checkpoint, marker):
    # RecBole's data_preparation / create_dataset unpickle <checkpoint_dir>/<dataset>-*.pth when
    # such files exist; the checkpoint names checkpoint_dir, so loading must not look there
    import os

    checkpoint = torch.load(din_checkpoint, weights_only=True)
    folder = os.path.dirname(din_checkpoint)
    checkpoint["config"]["final_config_dict"]["checkpoint_dir"] = folder
    torch.save(checkpoint, din_checkpoint)
    payload = ConstructOnLoad(os.system, f"touch {marker}")
    for name in ("tiny-for-DIN-dataloader.pth", "tiny-DINDataset.pth", "tiny-SequentialDataset.pth"):
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(payload, f)
    config, model, *_ = load_data_and_model(din_checkpoint)
    assert config["checkpoint_dir"] != folder and not config["save_dataset"] and not config["save_dataloaders"]
