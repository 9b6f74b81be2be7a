"""Multi-process training on CPUs: RecBole's DDP path with gloo, exact gathered evaluation."""
import glob
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from recbole.trainer import Trainer

from recbole_dien import load_data_and_model, run
from recbole_dien.trainer.distributed import DistributedError
from tests.trainer.test_resume import killing_script


def free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize("model", ["DIN", "DIEN"])
def test_two_cpu_processes_train_and_evaluate_like_one(tiny_config_dict, model):
    settings = {**tiny_config_dict, "epochs": 2, "metrics": ["Hit", "NDCG", "GAUC"], "topk": [5],
                "valid_metric": "NDCG@5",
                "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}}
    result = run(model, "tiny", config_dict=settings, cmd_args=[], nproc=2, port=free_port())
    assert set(result["test_result"]) == {"hit@5", "ndcg@5", "gauc"}
    (checkpoint,) = glob.glob(f"{settings['checkpoint_dir']}/{model}-*.pth")  # one file, written by rank 0
    assert result["saved_model_file"] == checkpoint

    # the same weights evaluated by one process: every test row once, the same metrics
    config, net, _, _, valid_data, test_data = load_data_and_model(checkpoint)
    assert config["single_spec"] is True
    trainer = Trainer(config, net)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two ranks on these 2 cores: the same float sums
    try:
        single = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        single_valid = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert dict(single) == pytest.approx(dict(result["test_result"]), abs=1e-4)  # RecBole rounds to 4 places
    assert dict(single_valid) == pytest.approx(dict(result["best_valid_result"]), abs=1e-4)
    assert not torch.distributed.is_initialized()  # the parent process stays out of the group


def test_labeled_gauc_is_gathered_with_its_users(tiny_config_dict):
    settings = {**tiny_config_dict, "epochs": 1, "metrics": ["AUC", "LabeledGAUC"], "valid_metric": "AUC",
                "train_neg_sample_args": None, "threshold": {"rating": 4},
                "eval_args": {"split": {"RS": [0.5, 0.1, 0.4]}, "order": "TO", "group_by": "user", "mode": "labeled"}}
    result = run("DIN", "tiny", config_dict=settings, cmd_args=[], nproc=2, port=free_port())
    (checkpoint,) = glob.glob(f"{settings['checkpoint_dir']}/DIN-*.pth")
    config, net, _, _, _, test_data = load_data_and_model(checkpoint)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = Trainer(config, net).evaluate(test_data, load_best_model=False, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert 0.0 < single["labeledgauc"] < 1.0  # users with both labels in the test split
    assert dict(single) == pytest.approx(dict(result["test_result"]), abs=1e-4)


def test_fewer_evaluation_rows_than_processes_is_refused(monkeypatch):
    from recbole_dien.trainer import distributed
    from recbole_dien.utils.errors import ConfigError

    class Loader:
        _dataset = [0]  # one evaluation row

    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with pytest.raises(ConfigError, match="1 evaluation rows cannot be shared by 2 processes"):
        distributed.shard_evaluation({"single_spec": False}, Loader())


# --- runs across machines: no shared filesystem, missing and dead peers -------------------------------

SCRIPT = str(Path(__file__).resolve().parents[2] / "run_recbole.py")


@pytest.mark.parametrize("offset,expected", [
    (0, "rank 1 of 2 never joined the run at localhost:{port} within ddp_timeout=3 s: start it with the same --ip"),
    (1, "rank 1 could not reach rank 0 at localhost:{port} within ddp_timeout=3 s"),
])
def test_a_peer_that_never_starts_is_one_line_after_ddp_timeout(tiny_config_dict, offset, expected):
    port = free_port()
    with pytest.raises(DistributedError) as error:
        run("DIN", "tiny", config_dict={**tiny_config_dict, "ddp_timeout": 3}, cmd_args=[], nproc=1, world_size=2,
            port=port, group_offset=offset)
    message = str(error.value)
    assert "\n" not in message and message.startswith(expected.format(port=port)), message


def test_a_resumed_run_waits_for_its_peers_as_long_as_its_checkpoint_says(tiny_config_dict, tmp_path):
    """ddp_timeout from the first run's settings holds when it resumes (the rendezvous comes
    before the checkpoint's config is rebuilt); the command line still wins."""
    settings = {**tiny_config_dict, "epochs": 1, "ddp_timeout": 4, "checkpoint_dir": str(tmp_path / "saved")}
    run("DIN", "tiny", config_dict=settings, cmd_args=[], nproc=2, port=free_port())
    (checkpoint,) = glob.glob(str(tmp_path / "saved" / "DIN-*.pth"))
    port = free_port()
    with pytest.raises(DistributedError, match=r"never joined the run at localhost:\d+ within ddp_timeout=4 s"):
        run(resume=checkpoint, cmd_args=[], nproc=1, world_size=2, port=port)
    with pytest.raises(DistributedError, match=r"within ddp_timeout=2 s"):
        run(resume=checkpoint, cmd_args=["--ddp_timeout=2"], nproc=1, world_size=2, port=free_port())


def machine_config(tmp_path, tiny_config_dict, name):
    """A machine of its own: its working folder and checkpoint folder, nothing shared."""
    folder = tmp_path / name
    folder.mkdir()
    settings = {**tiny_config_dict, "epochs": 2, "checkpoint_dir": "saved"}  # relative: each machine's own
    (folder / "tiny.yaml").write_text(yaml.safe_dump(settings))
    return folder


def test_two_machines_without_a_shared_folder_train_and_only_rank_0_writes(tiny_config_dict, tmp_path):
    port = free_port()
    launches = []
    for offset in (0, 1):
        folder = machine_config(tmp_path, tiny_config_dict, f"machine{offset}")
        launches.append(subprocess.Popen(
            [sys.executable, SCRIPT, "--model=DIN", "--dataset=tiny", "--config_files=tiny.yaml", "--world_size=2",
             "--nproc=1", f"--group_offset={offset}", f"--port={port}"],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [launch.communicate(timeout=600) for launch in launches]
    for launch, (out, err) in zip(launches, outputs):
        assert launch.returncode == 0, err[-3000:]
    tests = [line for out, _ in outputs for line in out.splitlines() if line.startswith("test result")]
    assert len(tests) == 2 and tests[0] == tests[1]  # both machines evaluated the same model
    assert len(list((tmp_path / "machine0" / "saved").glob("DIN-*.pth"))) == 1
    assert not (tmp_path / "machine1" / "saved").exists() or not list((tmp_path / "machine1" / "saved").iterdir())


# rank 1 dies after two batches of epoch 1 (rank 0 goes on until gloo reports the loss); the ranks
# import this file as __mp_main__, so the patched trainer is theirs too
KILL_RANK_1 = killing_script('if __name__ == "__main__":\n    from recbole_dien import cli\n'
                             '    sys.exit(cli.main(["run", *sys.argv[1:]]))', epoch=1, after_batches=2,
                             also_when='self.config["local_rank"] + (self.config["offset"] or 0) == 1')


def printed_results(out):
    return [line for line in out.splitlines() if line.startswith(("best valid", "test result"))]


def test_a_rank_that_dies_is_one_line_and_the_run_resumes_to_the_uninterrupted_result(tiny_config_dict, tmp_path):
    settings = {**tiny_config_dict, "epochs": 3, "stopping_step": 3, "train_batch_size": 32}
    settings.pop("checkpoint_dir")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "kill_rank_1.py").write_text(KILL_RANK_1 + "\n")
    common = ["--model=DIN", "--dataset=tiny", "--config_files=tiny.yaml", "--nproc=2"]

    def launch(*args):
        return subprocess.run([sys.executable, *args, f"--port={free_port()}"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=600)

    whole = launch(SCRIPT, *common, f"--checkpoint_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = launch("kill_rank_1.py", *common, f"--checkpoint_dir={tmp_path / 'killed'}")
    assert killed.returncode == 2
    (checkpoint,) = glob.glob(str(tmp_path / "killed" / "DIN-*.pth"))
    error = killed.stderr.strip().splitlines()[-1]
    assert error == (f"recbole-dien run: error: rank 1 was killed by SIGKILL: the run stopped; rank 0's checkpoint "
                     f"{checkpoint} resumes it with --resume={checkpoint} and the same --nproc / --world_size")
    assert "Traceback" not in killed.stderr

    resumed = launch(SCRIPT, f"--resume={checkpoint}", "--nproc=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert printed_results(resumed.stdout) == printed_results(whole.stdout)



def test_across_machines_a_dead_peer_is_one_line_and_both_resume_from_rank_0s_file(tiny_config_dict, tmp_path):
    port, folders = free_port(), []
    for offset in (0, 1):
        folder = machine_config(tmp_path, tiny_config_dict, f"machine{offset}")
        (folder / "kill_rank_1.py").write_text(KILL_RANK_1 + "\n")
        folders.append(folder)

    def both(script_of, *args):
        launches = [subprocess.Popen([sys.executable, script_of(offset), "--world_size=2", "--nproc=1",
                                      f"--group_offset={offset}", f"--port={port}", *args],
                                     cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for offset, folder in enumerate(folders)]
        return [(launch.wait(timeout=600), *launch.communicate()) for launch in launches]

    common = ["--model=DIN", "--dataset=tiny", "--config_files=tiny.yaml"]
    # machine 1's process (rank 1) is killed in epoch 1; it is that machine's local rank 0
    (status0, _, err0), (status1, _, err1) = both(lambda offset: SCRIPT if offset == 0 else "kill_rank_1.py", *common)
    assert (status0, status1) == (2, 2), err0[-2000:] + err1[-2000:]
    (checkpoint,) = glob.glob(str(folders[0] / "saved" / "DIN-*.pth"))
    line0, line1 = err0.strip().splitlines()[-1], err1.strip().splitlines()[-1]
    assert line0.startswith("run_recbole.py: error: rank 0 lost rank 1 of the process group (") and \
        line0.endswith(f"): the run stopped; rank 0's checkpoint {Path(checkpoint).relative_to(folders[0])} resumes it "
                       f"with --resume={Path(checkpoint).relative_to(folders[0])} and the same --nproc / --world_size")
    assert line1 == ("recbole-dien run: error: rank 1 was killed by SIGKILL: the run stopped; rank 0's checkpoint "
                     "resumes it (--resume on every machine, the same --nproc / --world_size)")

    # machine 1 has no copy of the file: rank 0 sends it
    relative = str(Path(checkpoint).relative_to(folders[0]))
    assert not (folders[1] / relative).exists()
    (status0, out0, err0), (status1, out1, err1) = both(lambda offset: SCRIPT, f"--resume={relative}")
    assert (status0, status1) == (0, 0), err0[-2000:] + err1[-2000:]
    assert printed_results(out0) == printed_results(out1) and len(printed_results(out0)) == 2
    assert "training goes on at epoch 1" in err0 + out0


KILL_RANK_2 = killing_script('if __name__ == "__main__":\n    from recbole_dien import cli\n'
                             '    sys.exit(cli.main(["run", *sys.argv[1:]]))', epoch=1, after_batches=2,
                             also_when='self.config["local_rank"] + (self.config["offset"] or 0) == 2')


def test_with_three_machines_each_survivor_names_the_rank_that_died(tiny_config_dict, tmp_path):
    """gloo's error names no rank: the survivors name the one whose heartbeat stopped."""
    port, launches = free_port(), []
    for offset in range(3):
        folder = machine_config(tmp_path, tiny_config_dict, f"machine{offset}")
        (folder / "kill_rank_2.py").write_text(KILL_RANK_2 + "\n")
        script = "kill_rank_2.py" if offset == 2 else SCRIPT
        launches.append(subprocess.Popen(
            [sys.executable, script, "--model=DIN", "--dataset=tiny", "--config_files=tiny.yaml", "--world_size=3",
             "--nproc=1", f"--group_offset={offset}", f"--port={port}"],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    errors = [launch.communicate(timeout=600)[1] for launch in launches]
    assert [launch.returncode for launch in launches] == [2, 2, 2], "".join(error[-1500:] for error in errors)
    for rank in (0, 1):
        line = errors[rank].strip().splitlines()[-1]
        assert f"error: rank {rank} lost rank 2 of the process group (" in line, line
        assert "Traceback" not in errors[rank]
    assert errors[2].strip().splitlines()[-1].endswith("rank 2 was killed by SIGKILL: the run stopped; rank 0's "
                                                       "checkpoint resumes it (--resume on every machine, the same "
                                                       "--nproc / --world_size)")


def test_rank_0_says_which_ranks_it_waits_for_while_it_waits(monkeypatch):
    from recbole_dien.trainer import distributed

    class Store:  # ranks 1 and 3 of 4 have joined, rank 2 never does
        def check(self, keys):
            return keys[0] in ("recbole_dien/joined/1", "recbole_dien/joined/3")

    monkeypatch.setattr(distributed, "WAIT_REPORT_S", 0.3)
    said = []
    with pytest.raises(DistributedError, match=r"^rank 2 of 4 never joined the run at host:1234 within "
                                               r"ddp_timeout=1 s"):
        distributed._wait_for_ranks(Store(), 4, "host:1234", 1.0, said.append)
    assert said and all(line.startswith("rank 0: waiting for rank 2 at host:1234 (") for line in said)


def test_after_a_loss_rank_0_keeps_the_store_up_until_the_other_survivors_have_reported(monkeypatch):
    from recbole_dien.trainer import distributed

    class Store:  # rank 2 of 4 died; rank 1 reports on the third look, rank 3 at once
        def __init__(self):
            self.looks = []

        def check(self, keys):
            self.looks.append(keys[0])
            return keys[0] == "recbole_dien/left/3" or self.looks.count("recbole_dien/left/1") >= 3

    store = Store()
    monkeypatch.setattr(distributed, "_group_store", {0: store})
    started = time.monotonic()
    distributed._wait_for_survivors({"world_size": 4}, dead=[2], wait_s=30.0)
    assert time.monotonic() - started < 5.0
    assert "recbole_dien/left/2" not in store.looks and store.looks.count("recbole_dien/left/1") == 3

    class Silent:  # rank 1 never reports: rank 0 stops waiting after wait_s
        def check(self, keys):
            return False

    monkeypatch.setattr(distributed, "_group_store", {0: Silent()})
    started = time.monotonic()
    distributed._wait_for_survivors({"world_size": 3}, dead=[2], wait_s=0.5)
    assert 0.5 <= time.monotonic() - started < 5.0
