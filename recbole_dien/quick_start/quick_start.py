"""Train-and-test runs, resumed runs and checkpoint reloading, with plugin-first model and dataset
lookup; the ``run`` command (``run_recbole.py``)."""
import argparse
import logging
import os
from logging import getLogger

import torch
from recbole.data import data_preparation
from recbole.utils import get_trainer, init_logger, init_seed, set_color

from recbole_dien.config import Config, knobs, parse_overrides
from recbole_dien.data import create_dataset
from recbole_dien.trainer import distributed
from recbole_dien.trainer.checkpoint import config_from_checkpoint, load_checkpoint
from recbole_dien.trainer.resume import EpochCheckpoints, resume_trainer
from recbole_dien.utils.errors import ConfigError, RecBoleDienError, report

# settings a resumed run may change; everything else is the checkpoint's
RESUMABLE_SETTINGS = ("epochs", "stopping_step", "show_progress")


def check_processes(nproc, world_size):
    """One line for process counts that cannot work."""
    if nproc < 1:
        raise ConfigError(f"--nproc={nproc}: the number of processes on this machine must be at least 1")
    if 0 < world_size < nproc:
        raise ConfigError(f"--world_size={world_size} is smaller than --nproc={nproc}: the world size counts the "
                          "processes of every machine, this one's included")


def run(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True,
        nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0, resume=None):
    """Train on the train split, early-stop on valid, report test. Returns a dict with
    ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``, ``config``.

    ``resume``: a checkpoint written by an earlier run; training continues after its last
    completed epoch, exactly as the uninterrupted run would have (see :mod:`recbole_dien.trainer.resume`),
    with the checkpoint's settings (``config_dict`` / ``cmd_args`` may change only
    ``RESUMABLE_SETTINGS``). ``nproc`` > 1 (or ``world_size`` > 0) runs RecBole's distributed
    training: NCCL on CUDA GPUs, gloo on CPUs (:mod:`recbole_dien.trainer.distributed`); each rank trains
    on its shard of the training rows, and evaluation covers every row once.
    """
    check_processes(nproc, world_size)
    if nproc == 1 and world_size <= 0:
        return run_single(model, dataset, config_file_list, config_dict, cmd_args, saved, resume)
    if resume is not None:
        raise ConfigError("--resume continues a single-process run; leave out --nproc / --world_size")
    # settings and data files are checked here, so that a mistake is one line, not a rank's traceback
    from recbole_dien.data import check_dataset

    check_dataset(Config(model, dataset, config_file_list, config_dict, cmd_args))
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update({"world_size": world_size if world_size > 0 else nproc, "ip": ip, "port": port,
                        "nproc": nproc, "offset": group_offset})
    mp.spawn(_run_rank, args=(model, dataset, config_file_list, config_dict, cmd_args, saved, queue),
             nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def _run_rank(rank, model, dataset, config_file_list, config_dict, cmd_args, saved, queue):
    try:
        result = run_single(model, dataset, config_file_list, dict(config_dict, local_rank=rank), cmd_args, saved)
        if rank == 0:
            result.pop("config")
            queue.put(result)
        if torch.distributed.is_initialized():
            torch.distributed.barrier()  # leave the group together
    finally:
        # a process that exits with its group alive can abort in gloo's teardown (SIGABRT)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def resumed_config(checkpoint, config_dict=None, cmd_args=None):
    """The checkpoint's config with the changes a resumed run may make (command line wins). The
    run goes on writing the checkpoint it resumes (its other files go to a temporary folder)."""
    if not checkpoint["config"]["final_config_dict"].get("single_spec", True):
        raise ConfigError("--resume continues single-process runs; this checkpoint comes from a multi-process run")
    config = without_saved_pickles(config_from_checkpoint(checkpoint))
    changes = Config._convert_config_dict(config, {**(config_dict or {}), **parse_overrides(cmd_args)})
    refused = sorted(set(changes) - set(RESUMABLE_SETTINGS))
    if refused:
        raise ConfigError(f"a resumed run keeps the settings of its checkpoint; only {', '.join(RESUMABLE_SETTINGS)} "
                          f"may change (got {', '.join(refused)})")
    for key, value in changes.items():
        config[key] = value
    knobs.validate_run(config)
    return config


def run_single(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True,
               resume=None):
    checkpoint = load_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        config = resumed_config(checkpoint, config_dict, cmd_args)
    else:
        config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    init_seed(config["seed"], config["reproducibility"])
    if distributed.is_distributed(config):  # RecBole's logger checks, then creates, its folder: ranks race
        os.makedirs(os.path.join("log", str(config["model"])), exist_ok=True)
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    valid_data, test_data = (distributed.shard_evaluation(config, loader) for loader in (valid_data, test_data))

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)

    os.makedirs(config["checkpoint_dir"], exist_ok=True)  # RecBole's check-then-create races between ranks
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    loaders = [train_data, valid_data, test_data]
    if checkpoint is not None:
        start = resume_trainer(trainer, checkpoint, resume, loaders)
        logger.info(set_color("resumed", "yellow") + f" from {resume}: training goes on at epoch {start}")
    if distributed.is_distributed(config):  # every rank reloads rank 0's checkpoint file
        names = [trainer.saved_model_file]
        torch.distributed.broadcast_object_list(names, src=0)
        trainer.saved_model_file = names[0]
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"],
        callback_fn=EpochCheckpoints(trainer, loaders) if saved else None,
    )
    if distributed.is_distributed(config):
        torch.distributed.barrier()  # rank 0 has written the best model
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "config": config,
        "saved_model_file": trainer.saved_model_file if saved else None,
    }


# settings that would make loading a checkpoint write or unpickle files of the config's choosing
_LOADING_OFF = {"save_dataset": False, "save_dataloaders": False, "dataset_save_path": None,
                "dataloaders_save_path": None}


def without_saved_pickles(config):
    """A config from a checkpoint, made unable to unpickle or write files of the file's choosing:
    RecBole's ``create_dataset`` and ``data_preparation`` unpickle ``<checkpoint_dir>/<dataset>-*.pth``
    whenever such a file exists, so ``checkpoint_dir`` becomes a fresh empty folder (removed at
    exit) and saving datasets and dataloaders is off."""
    import atexit
    import shutil
    import tempfile

    for key, value in _LOADING_OFF.items():
        config[key] = value
    folder = tempfile.mkdtemp(prefix="recbole-dien-load-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    config["checkpoint_dir"] = folder
    return config


def load_data_and_model(model_file, model_class=None):
    """Rebuild config, data, and the trained model (best epoch) from a checkpoint written by a run.

    Returns ``(config, model, dataset, train_data, valid_data, test_data)`` like RecBole's function
    of the same name. The checkpoint is read as plain data (:func:`recbole_dien.trainer.checkpoint.load_checkpoint`:
    nothing in it can run code), its config rebuilt without evaluating any string, and the model
    class resolved among this package's and RecBole's (``model_class`` for your own). Loading
    neither saves nor reads saved datasets or dataloaders.
    """
    checkpoint = load_checkpoint(model_file)
    config = without_saved_pickles(config_from_checkpoint(checkpoint, model_class))
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().info(config)

    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter") or None)
    return config, model, dataset, train_data, valid_data, test_data


DEFAULT_MODEL = "DIEN"
DEFAULT_DATASET = "ml-100k"


def build_parser(prog="recbole-dien run"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train, validate and test a recommender with RecBole; DIN, DIEN and DSIN are "
                    "recbole-dien's models, recbole.DIN and recbole.DIEN RecBole's own, any other name "
                    "(GRU4Rec, SASRec, ...) RecBole's.",
        epilog="Any other option --key=value overrides a RecBole / model setting, e.g. "
               "--epochs=1 --train_batch_size=1024 --attention_softmax=True.",
    )
    parser.add_argument("--model", "-m", default=None, help=f"model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--dataset", "-d", default=None, help=f"dataset name (default: {DEFAULT_DATASET})")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT",
                        help="continue the run a checkpoint (saved/<Model>-<date>.pth) comes from, after its last "
                             "completed epoch; only --epochs, --stopping_step and --show_progress may change")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training on this machine")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes across machines")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    return parser


def main(argv=None, prog="recbole-dien run"):
    """The ``run`` command (``run_recbole.py``): RecBole's flags, ``--key=value`` settings."""
    parser = build_parser(prog)
    args, overrides = parser.parse_known_args(argv)
    try:
        parse_overrides(overrides)
    except ConfigError as error:
        parser.error(str(error))
    if args.resume and (args.model or args.dataset or args.config_files):
        parser.error("--resume takes the model, dataset and settings from the checkpoint; "
                     "leave out --model, --dataset and --config_files")

    try:
        result = run(
            args.model or DEFAULT_MODEL, args.dataset or DEFAULT_DATASET,
            config_file_list=args.config_files.split() if args.config_files else None,
            cmd_args=overrides, nproc=args.nproc, world_size=args.world_size,
            ip=args.ip, port=args.port, group_offset=args.group_offset, resume=args.resume,
        )
    except RecBoleDienError as error:
        return report(parser, error)
    if result is not None:
        print(f"best valid: {dict(result['best_valid_result'] or {})}")
        print(f"test result: {dict(result['test_result'])}")
    return 0
