"""Multi-process training on CPUs: RecBole's DDP path with gloo, exact gathered evaluation."""
import glob
import socket

import pytest
import torch
from recbole.trainer import Trainer

from recbole_dien import load_data_and_model, run


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
