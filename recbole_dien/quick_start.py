"""Train-and-test runs and checkpoint reloading, with plugin-first model and dataset lookup."""
import logging
from logging import getLogger

import torch
from recbole.data import data_preparation
from recbole.utils import get_trainer, init_logger, init_seed, set_color

from recbole_dien.config import Config
from recbole_dien.data import create_dataset
from recbole_dien.errors import RecBoleDienError


def run(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True,
        nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
    """Train on the train split, early-stop on valid, report test. Returns a dict with
    ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``, ``config``.

    ``nproc`` > 1 (or ``world_size`` > 0) runs RecBole's distributed training, which needs CUDA
    (RecBole hard-codes the NCCL backend).
    """
    if nproc == 1 and world_size <= 0:
        return run_single(model, dataset, config_file_list, config_dict, cmd_args, saved)
    if not torch.cuda.is_available():
        raise RecBoleDienError(
            f"--nproc={nproc} needs CUDA GPUs: RecBole's multi-process training uses the NCCL backend. "
            "On a CPU-only machine run with --nproc=1 (torch already uses every core)."
        )
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update({"world_size": world_size if world_size > 0 else nproc, "ip": ip, "port": port,
                        "nproc": nproc, "offset": group_offset})
    mp.spawn(_run_rank, args=(model, dataset, config_file_list, config_dict, cmd_args, saved, queue),
             nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def _run_rank(rank, model, dataset, config_file_list, config_dict, cmd_args, saved, queue):
    result = run_single(model, dataset, config_file_list, dict(config_dict, local_rank=rank), cmd_args, saved)
    if rank == 0:
        result.pop("config")
        queue.put(result)


def run_single(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True):
    config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "config": config,
    }


def load_data_and_model(model_file):
    """Rebuild config, data, and the trained model from a checkpoint written by a run.

    Returns ``(config, model, dataset, train_data, valid_data, test_data)`` like RecBole's function
    of the same name, but resolves the model class recorded in the checkpoint (so this package's
    DIN, not RecBole's) and the plugin's dataset classes.
    """
    checkpoint = torch.load(model_file, map_location="cpu")
    config = checkpoint["config"]
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().info(config)

    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
