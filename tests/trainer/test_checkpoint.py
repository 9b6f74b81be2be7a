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
    # the control: without weights_only, a crafted file does run its command
    marker = tmp_path / "control"
    path = crafted_checkpoint(tmp_path, ConstructOnLoad(os.system, f"touch {marker}"))
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_config_payload_runs_nothing_even_when_unpickled(tmp_path, marker):
    # RecBole's Config evaluated the strings of its config_dict; with recbole_dien imported it does not
    path = crafted_checkpoint(tmp_path, config_payload(RecBoleConfig, marker))
    with pytest.raises(Exception):
        torch.load(path, weights_only=False)  # Config(model=None) fails, after reading the settings


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


# --- files that cannot be written, files that are not checkpoints, runs that share a folder ---------

def test_a_2_gb_sparse_file_is_refused_at_once_without_torchs_advice(tmp_path):
    path = tmp_path / "sparse.pth"
    with open(path, "wb") as f:
        f.truncate(2 << 30)  # 2 GB of zeros, no disk used
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "corrupt or not a torch checkpoint" in message
    assert "weights_only" not in message and "trusted" not in message


def test_torchs_advice_never_passes_on_in_any_message():
    from recbole_dien.trainer.checkpoint import _unpickler_problem

    advice = RuntimeError("Cannot use ``weights_only=True`` with files saved in the legacy .tar format. In PyTorch "
                          "2.6, we changed the default value of the `weights_only` argument in `torch.load` from "
                          "`False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will likely "
                          "succeed, but it can result in arbitrary code execution. Do it only if you got the file from "
                          "a trusted source.")
    assert _unpickler_problem(advice) == "RuntimeError"


def disk_full_after(writes, monkeypatch):
    """``torch.save`` as the checkpoint module calls it: the first ``writes`` calls succeed, every
    later one meets a full disk (it writes to /dev/full, so the error is the OS's own)."""
    import recbole_dien.trainer.checkpoint as checkpoint_module

    real_save, calls = torch.save, []

    def save(state, f, *args, **kwargs):
        calls.append(1)
        if len(calls) <= writes:
            return real_save(state, f, *args, **kwargs)
        with open("/dev/full", "wb") as full:
            real_save(state, full, *args, **kwargs)
            full.flush()

    monkeypatch.setattr(checkpoint_module.torch, "save", save)


def test_a_full_disk_stops_the_run_in_one_line_naming_the_last_good_checkpoint(tiny_config_dict, tmp_path,
                                                                              monkeypatch, capsys):
    import yaml

    from recbole_dien.cli import main

    monkeypatch.setattr("recbole.trainer.trainer.get_local_time", lambda: "Jan-01-2027_00-00-00")
    settings = tmp_path / "run.yaml"
    settings.write_text(yaml.safe_dump({**tiny_config_dict, "epochs": 3, "stopping_step": 5}))
    disk_full_after(2, monkeypatch)  # epoch 0: the best model, then its resume state; epoch 1's write fails
    assert main(["run", "--model=DIN", "--dataset=tiny", f"--config_files={settings}"]) == 2
    error = capsys.readouterr().err.strip()
    path = f"{tiny_config_dict['checkpoint_dir']}/DIN-Jan-01-2027_00-00-00.pth"
    assert error == (f"recbole-dien run: error: could not write checkpoint {path} (No space left on device, errno "
                     f"28); the run stopped. Its last good checkpoint is {path} (after epoch 0): once there is room, "
                     f"go on with --resume={path}")
    assert load_checkpoint(path)["resume"]["epoch"] == 0  # whole, as written after epoch 0
    assert os.listdir(tiny_config_dict["checkpoint_dir"]) == ["DIN-Jan-01-2027_00-00-00.pth"]  # no temporary file


def test_a_full_disk_before_any_checkpoint_leaves_no_file(tiny_config_dict, monkeypatch):
    disk_full_after(0, monkeypatch)
    with pytest.raises(CheckpointError, match=r"\(No space left on device, errno 28\); the run stopped. No "
                                              "checkpoint of this run was written before"):
        run("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    assert os.listdir(tiny_config_dict["checkpoint_dir"]) == []


def test_runs_started_in_the_same_second_never_overwrite_each_other(tiny_config_dict, monkeypatch):
    monkeypatch.setattr("recbole.trainer.trainer.get_local_time", lambda: "Jan-01-2027_00-00-00")
    first = run("DIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])["saved_model_file"]
    with open(first, "rb") as f:
        written = f.read()
    second = run("DIN", "tiny", config_dict={**tiny_config_dict, "seed": 8}, cmd_args=[])["saved_model_file"]
    folder = tiny_config_dict["checkpoint_dir"]
    assert (first, second) == (f"{folder}/DIN-Jan-01-2027_00-00-00.pth", f"{folder}/DIN-Jan-01-2027_00-00-00-2.pth")
    with open(first, "rb") as f:
        assert f.read() == written  # the first run's file, untouched
    assert load_checkpoint(second)["config"]["final_config_dict"]["seed"] == 8


def test_a_name_is_reserved_exclusively(tmp_path):
    from recbole_dien.trainer.checkpoint import reserve_file

    names = [reserve_file(tmp_path / "DIN-now.pth") for _ in range(3)]
    assert names == [str(tmp_path / name) for name in ("DIN-now.pth", "DIN-now-2.pth", "DIN-now-3.pth")]
