"""Resumable training: a run killed with SIGKILL mid-epoch, resumed from its checkpoint, ends exactly
where the uninterrupted run ends (CPU, same seed); the checkpoint survives the kill."""
import glob
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from recbole_dien.trainer.checkpoint import load_checkpoint
from recbole_dien.trainer.resume import random_states, set_random_states

SCRIPT = str(Path(__file__).resolve().parents[2] / "run_recbole.py")
EPOCHS, KILLED_IN_EPOCH, KILLED_AFTER_BATCHES = 4, 2, 2  # epochs count from 0 in RecBole's logs

def killing_script(main_call, epoch=KILLED_IN_EPOCH, after_batches=KILLED_AFTER_BATCHES, also_when="True"):
    """A Python script that runs ``main_call`` (a line of code) with RecBole's trainer killing its
    process with SIGKILL after a few batches of one epoch: a crash at a known point (a timer could
    land between epochs or in a write). ``also_when``: a further condition on the trainer ``self``
    (e.g. which rank dies)."""
    return textwrap.dedent(f"""
        import os, signal, sys
        from recbole.trainer import Trainer
        import recbole_dien

        train_epoch = Trainer._train_epoch

        def killed_mid_epoch(self, train_data, epoch_idx, *args, **kwargs):
            if epoch_idx != {epoch} or not ({also_when}):
                return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

            class Dying:
                def __init__(self, loader):
                    self.loader = loader
                def __len__(self):
                    return len(self.loader)
                def __getattr__(self, name):
                    return getattr(self.loader, name)
                def __iter__(self):
                    for done, batch in enumerate(self.loader):
                        if done == {after_batches}:
                            os.kill(os.getpid(), signal.SIGKILL)
                        yield batch

            return train_epoch(self, Dying(train_data), epoch_idx, *args, **kwargs)

        Trainer._train_epoch = killed_mid_epoch
    """) + main_call + "\n"


KILLING_RUN = killing_script("from recbole_dien import cli\nsys.exit(cli.main(['run', *sys.argv[1:]]))")


def run_process(args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def printed_results(done):
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith(("best valid", "test result")))
    return lines["best valid"], lines["test result"]


@pytest.mark.parametrize("model", ["DIEN", "DSIN"])
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tiny_config_dict, tmp_path, model):
    settings = {**tiny_config_dict, "epochs": EPOCHS, "stopping_step": EPOCHS, "train_batch_size": 32}
    settings.pop("checkpoint_dir")
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    common = [f"--model={model}", "--dataset=tiny", f"--config_files={config_file}"]

    whole = run_process([SCRIPT, *common, f"--checkpoint_dir={tmp_path / 'whole'}"], tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]

    (tmp_path / "killing_run.py").write_text(KILLING_RUN)
    killed = run_process(["killing_run.py", *common, f"--checkpoint_dir={tmp_path / 'killed'}"], tmp_path)
    assert killed.returncode == -signal.SIGKILL
    (checkpoint,) = glob.glob(str(tmp_path / "killed" / f"{model}-*.pth"))  # no temporary file left beside it
    assert load_checkpoint(checkpoint)["resume"]["epoch"] == KILLED_IN_EPOCH - 1

    resumed = run_process([SCRIPT, f"--resume={checkpoint}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"training goes on at epoch {KILLED_IN_EPOCH}" in resumed.stderr + resumed.stdout
    assert printed_results(resumed) == printed_results(whole)  # every digit of valid and test metrics

    (whole_checkpoint,) = glob.glob(str(tmp_path / "whole" / f"{model}-*.pth"))
    expected, got = load_checkpoint(whole_checkpoint), load_checkpoint(checkpoint)
    assert got["epoch"] == expected["epoch"] and got["resume"]["epoch"] == EPOCHS - 1
    for name, weights in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][name], weights), name


def test_resume_refuses_settings_other_than_the_schedule(tiny_config_dict, tmp_path):
    from recbole_dien import run
    from recbole_dien.utils.errors import ConfigError

    result = run("DIN", "tiny", config_dict={**tiny_config_dict, "epochs": 1}, cmd_args=[])
    with pytest.raises(ConfigError, match="only epochs, stopping_step, show_progress may change"):
        run(resume=result["saved_model_file"], cmd_args=["--learning_rate=0.5"])
    extended = run(resume=result["saved_model_file"], cmd_args=["--epochs=2"])
    assert load_checkpoint(result["saved_model_file"])["resume"]["epoch"] == 1
    assert extended["config"]["learning_rate"] == result["config"]["learning_rate"]


def test_random_states_round_trip_through_a_weights_only_file(tiny_pipeline, tmp_path):
    config, train_data, valid_data, test_data = tiny_pipeline("DIEN")
    loaders = [train_data, valid_data, test_data]
    torch.save(random_states(loaders), tmp_path / "states.pth")
    first = [torch.rand(3), [len(batch) for batch in (b[0] if isinstance(b, tuple) else b for b in train_data)]]
    set_random_states(torch.load(tmp_path / "states.pth", weights_only=True), loaders)
    again = [torch.rand(3), [len(batch) for batch in (b[0] if isinstance(b, tuple) else b for b in train_data)]]
    assert torch.equal(first[0], again[0]) and first[1] == again[1]


def test_a_run_that_had_stopped_early_resumes_without_training_more(tiny_config_dict):
    from recbole_dien import run

    settings = {**tiny_config_dict, "epochs": 12, "stopping_step": 0, "learning_rate": 0.05}
    whole = run("DIN", "tiny", config_dict=settings, cmd_args=[])
    state = load_checkpoint(whole["saved_model_file"])["resume"]
    assert state["epoch"] < 11 and state["cur_step"] > 0  # stopped early
    # e.g. killed during its test pass: resuming gives the same result and trains no further epoch
    again = run(resume=whole["saved_model_file"])
    assert load_checkpoint(whole["saved_model_file"])["resume"]["epoch"] == state["epoch"]
    assert dict(again["test_result"]) == dict(whole["test_result"])
    assert dict(again["best_valid_result"]) == dict(whole["best_valid_result"])
