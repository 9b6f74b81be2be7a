"""Train-and-test runs, resumed runs and checkpoint reloading, with plugin-first model and dataset
lookup, in RecBole or in hopwise (``host``); the ``run`` command (``run_recbole.py``)."""
import argparse
import logging
import os
from logging import getLogger

import torch

from recbole_dien.config import config_class, knobs, parse_overrides
from recbole_dien.data import create_dataset
from recbole_dien.trainer import distributed
from recbole_dien.trainer.checkpoint import checkpoint_host, config_from_checkpoint, load_checkpoint
from recbole_dien.trainer.resume import EpochCheckpoints, resume_trainer
from recbole_dien.utils.errors import ConfigError, RecBoleDienError, report
from recbole_dien.utils.hosts import HOSTS, RECBOLE, Host, get_host, host_of

# settings a resumed run may change; everything else is the checkpoint's
RESUMABLE_SETTINGS = ("epochs", "stopping_step", "show_progress")


def check_processes(nproc, world_size):
    """One line for process counts that cannot work."""
    if nproc < 1:
        raise ConfigError(f"--nproc={nproc}: the number of processes on this machine must be at least 1")
    if 0 < world_size < nproc:
        raise ConfigError(f"--world_size={world_size} is smaller than --nproc={nproc}: the world size counts the "
                          "processes of every machine, this one's included")


def _host(host):
    """A host given by name (recbole | hopwise) or as a :class:`~recbole_dien.utils.hosts.Host`, installed."""
    return get_host(host.name if isinstance(host, Host) else host)


def run(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True,
        nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0, resume=None, host=RECBOLE):
    """Train on the train split, early-stop on valid, report test. Returns a dict with
    ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``, ``config``.

    ``host``: the framework the run trains in, ``recbole`` (default) or ``hopwise``: its config,
    data preparation, dataloaders and trainer, with the plugin's model, datasets, settings files
    and plain-data checkpoints (a resumed run keeps its checkpoint's host). Multi-process runs are
    RecBole's only.

    ``resume``: a checkpoint written by an earlier run; training continues after its last
    completed epoch, exactly as the uninterrupted run would have (see :mod:`recbole_dien.trainer.resume`),
    with the checkpoint's settings (``config_dict`` / ``cmd_args`` may change only
    ``RESUMABLE_SETTINGS``). ``nproc`` > 1 (or ``world_size`` > 0) runs RecBole's distributed
    training: NCCL on CUDA GPUs, gloo on CPUs (:mod:`recbole_dien.trainer.distributed`); each rank trains
    on its shard of the training rows, and evaluation covers every row once. A multi-process run
    resumes with the same ``nproc`` / ``world_size``; rank 0 needs the checkpoint file, and sends it
    to ranks on machines that do not have it.
    """
    check_processes(nproc, world_size)
    saved_timeout = None
    if resume is None:
        host = _host(host)
    elif os.path.isfile(resume) or (nproc == 1 and world_size <= 0):
        checkpoint = load_checkpoint(resume)  # one line if it is missing or not a checkpoint
        host = checkpoint_host(checkpoint)
        saved_timeout = checkpoint["config"]["final_config_dict"].get("ddp_timeout")
    else:  # a machine without rank 0's file: multi-process runs are RecBole's, and rank 0 sends the file
        host = RECBOLE
    if nproc == 1 and world_size <= 0:
        return run_single(model, dataset, config_file_list, config_dict, cmd_args, saved, resume, host=host)
    if host is not RECBOLE:
        raise ConfigError(f"--nproc / --world_size: multi-process runs train in RecBole only; run {host.title} "
                          "with one process")
    Config = config_class(RECBOLE)  # noqa: N806
    # settings and data files are checked here, so that a mistake is one line, not a rank's traceback
    from recbole_dien.config.parsing import parse_value
    from recbole_dien.data import check_dataset

    config_dict = dict(config_dict or {})
    typed = parse_overrides(cmd_args)
    if "ddp_timeout" in typed:  # how long to wait for the peers: needed before any config exists
        config_dict["ddp_timeout"] = parse_value(typed["ddp_timeout"])
        cmd_args = [arg for arg in cmd_args if not arg.startswith("--ddp_timeout=")]
    if "ddp_timeout" not in config_dict and saved_timeout is not None:  # the resumed run's own, unless given
        config_dict["ddp_timeout"] = saved_timeout
    if "ddp_timeout" in config_dict:
        knobs.check_value("ddp_timeout", config_dict["ddp_timeout"], knobs.general_knobs()["ddp_timeout"][0],
                          "docs/configuration.md")
    if resume is None:
        check_dataset(Config(model, dataset, config_file_list, config_dict, cmd_args))
    elif group_offset == 0:  # one line here if rank 0's file is missing, not a checkpoint, or of another size
        check_resumed_world(load_checkpoint(resume), world_size if world_size > 0 else nproc)
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    config_dict.update({"world_size": world_size if world_size > 0 else nproc, "ip": ip, "port": port,
                        "nproc": nproc, "offset": group_offset})
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)  # its "Terminating process ..." when a rank fails: the line below says it
    try:
        mp.spawn(_run_rank, args=(model, dataset, config_file_list, config_dict, cmd_args, saved, queue, resume),
                 nprocs=nproc, join=True)
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as error:
        raise _rank_failure(error, group_offset, _messages(queue)) from None
    finally:
        spawn_log.setLevel(level)
    results = _messages(queue).get("result", [])
    return results[0] if results else None


def _messages(queue):
    """What the ranks reported, by kind: ``result``, ``error`` (one line each), ``checkpoint`` (paths)."""
    messages = {}
    while not queue.empty():
        kind, value = queue.get()
        messages.setdefault(kind, []).append(value)
    return messages


def _rank_failure(error, group_offset, messages):
    """One line for a multi-process run a rank of which failed or died."""
    if messages.get("error"):  # a rank's own one line (a dead peer, a bad setting, a full disk, ...)
        lost = [line for line in messages["error"] if " of the process group (" not in line]
        return distributed.DistributedError((lost or messages["error"])[0])
    rank = group_offset + error.error_index
    if isinstance(error, torch.multiprocessing.ProcessExitedException) and error.signal_name:
        how = f"was killed by {error.signal_name}"
    elif isinstance(error, torch.multiprocessing.ProcessExitedException):
        how = f"exited with status {error.exit_code}"
    else:
        how = f"failed ({str(error).strip().splitlines()[-1]})"
    checkpoints = messages.get("checkpoint")
    if group_offset > 0:  # rank 0 runs on another machine
        resume = "; rank 0's checkpoint resumes it (--resume on every machine, the same --nproc / --world_size)"
    elif checkpoints:
        resume = (f"; rank 0's checkpoint {checkpoints[-1]} resumes it with --resume={checkpoints[-1]} and the same "
                  "--nproc / --world_size")
    else:
        resume = "; no checkpoint had been written"
    return distributed.DistributedError(f"rank {rank} {how}: the run stopped{resume}")


def _run_rank(rank, model, dataset, config_file_list, config_dict, cmd_args, saved, queue, resume=None):
    from recbole_dien.trainer import resume as resume_module

    settings = dict(config_dict, local_rank=rank)
    written = []
    if distributed.global_rank(settings) == 0:
        def announce(path):
            written.append(path)
            queue.put(("checkpoint", path))
        resume_module.CHECKPOINT_LISTENERS.append(announce)
    try:
        result = run_single(model, dataset, config_file_list, settings, cmd_args, saved, resume)
        if rank == 0:
            result.pop("config")
            queue.put(("result", result))
        if torch.distributed.is_initialized():
            torch.distributed.barrier()  # leave the group together
    except RecBoleDienError as error:
        queue.put(("error", str(error)))
        raise SystemExit(2) from None
    except RuntimeError as error:  # gloo: a peer closed its connections (it died or was killed)
        if not torch.distributed.is_initialized():
            raise
        queue.put(("error", str(distributed.lost_peer(settings, error, written[-1] if written else resume))))
        raise SystemExit(2) from None
    finally:
        # a process that exits with its group alive can abort in gloo's teardown (SIGABRT)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# the settings run() gives each rank of a multi-process run (where it runs, not what it trains)
LAUNCH_SETTINGS = ("world_size", "ip", "port", "nproc", "offset", "local_rank", "ddp_timeout")


def check_resumed_world(checkpoint, world):
    """A checkpoint resumes with as many processes as its run had (each rank's random states)."""
    saved = checkpoint["config"]["final_config_dict"]
    saved_world = 1 if saved.get("single_spec", True) else saved.get("world_size")
    if world != saved_world:
        raise ConfigError(f"this checkpoint comes from a run of {saved_world} process(es); resume it with as many "
                          f"(--nproc / --world_size; got {world})")


def resumed_config(checkpoint, config_dict=None, cmd_args=None):
    """The checkpoint's config with the changes a resumed run may make (command line wins). The
    run goes on writing the checkpoint it resumes (its other files go to a temporary folder). A
    multi-process checkpoint resumes with as many processes, each joining the group here."""
    settings = dict(config_dict or {})
    launch = {key: settings.pop(key) for key in LAUNCH_SETTINGS if key in settings}
    check_resumed_world(checkpoint, launch.get("world_size", 1) if "local_rank" in launch else 1)
    config = without_saved_pickles(config_from_checkpoint(checkpoint))
    if launch:
        config.final_config_dict.update(launch)
        config._init_device()  # joins the process group (recbole_dien.trainer.distributed)
    changes = config._convert_config_dict({**settings, **parse_overrides(cmd_args)})
    refused = sorted(set(changes) - set(RESUMABLE_SETTINGS))
    if refused:
        raise ConfigError(f"a resumed run keeps the settings of its checkpoint; only {', '.join(RESUMABLE_SETTINGS)} "
                          f"may change (got {', '.join(refused)})")
    for key, value in changes.items():
        config[key] = value
    knobs.validate_run(config)
    return config


def run_single(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True,
               resume=None, host=RECBOLE):
    """One process of :func:`run`, in ``host`` (a resumed run: its checkpoint's host)."""
    checkpoint = None
    if resume is not None:
        launch = config_dict or {}
        checkpoint = distributed.shared_checkpoint(launch, resume, load_checkpoint) if "local_rank" in launch and \
            not torch.cuda.is_available() else load_checkpoint(resume)
        config = resumed_config(checkpoint, config_dict, cmd_args)
    else:
        config = config_class(_host(host))(model, dataset, config_file_list, config_dict, cmd_args)
    host = host_of(config)
    utils = host.module("utils")
    init_seed, set_color = utils.init_seed, utils.set_color
    init_seed(config["seed"], config["reproducibility"])
    if distributed.is_distributed(config):  # RecBole's logger checks, then creates, its folder: ranks race
        os.makedirs(os.path.join("log", str(config["model"])), exist_ok=True)
    utils.init_logger(config)
    logger = getLogger()
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = host.module("data").data_preparation(config, dataset)
    valid_data, test_data = (distributed.shard_evaluation(config, loader) for loader in (valid_data, test_data))

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)

    os.makedirs(config["checkpoint_dir"], exist_ok=True)  # RecBole's check-then-create races between ranks
    trainer = utils.get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    loaders = [train_data, valid_data, test_data]
    if checkpoint is not None:
        start = resume_trainer(trainer, checkpoint, resume, loaders)
        logger.info(set_color("resumed", "yellow") + f" from {resume}: training goes on at epoch {start}")
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"],
        callback_fn=EpochCheckpoints(trainer, loaders) if saved else None,
    )
    load_best = saved
    if distributed.is_distributed(config) and saved:
        # the best weights come from rank 0 over the group: other machines need not see its file
        distributed.take_best_model_from_rank0(trainer)
        load_best = False
    test_result = trainer.evaluate(test_data, load_best_model=load_best, show_progress=config["show_progress"])

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
    class resolved among this package's and the host's (``model_class`` for your own). The host is
    the one the run trained in (RecBole or hopwise). Loading neither saves nor reads saved datasets
    or dataloaders.
    """
    checkpoint = load_checkpoint(model_file)
    config = without_saved_pickles(config_from_checkpoint(checkpoint, model_class))
    host = host_of(config)
    init_seed = host.module("utils").init_seed
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().info(config)

    dataset = create_dataset(config)
    train_data, valid_data, test_data = host.module("data").data_preparation(config, dataset)

    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter") or None)
    return config, model, dataset, train_data, valid_data, test_data


def recbole_run_recbole_training_classes(run_recbole, host=RECBOLE):
    """RecBole's ``run_recbole`` (hopwise's ``run_hopwise``, ``host``) that trains the model class it
    is given. RecBole's own builds its config from the class but then looks the class's *name* up
    again (``get_model(config["model"])``), so ``run_recbole(model=recbole_dien.DIN)`` trained
    RecBole's built-in DIN. A class the host's lookup would not return is run by :func:`run_single`
    (the plugin's config, data and checkpoints); everything else by the host's function unchanged.
    Returns the host's result dict."""
    import inspect

    from recbole_dien.utils.utils import _recbole_model

    signature = inspect.signature(run_recbole)

    def wrapper(*args, **kwargs):
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        arguments = given.arguments
        model, queue = arguments.get("model"), arguments.get("queue")
        if not isinstance(model, type) or _recbole_model(model.__name__, host) is model:
            return run_recbole(*args, **kwargs)
        if arguments.get("run", "train") != "train" or arguments.get("checkpoint") is not None:
            raise ConfigError(f"{run_recbole.__name__}(model={model.__name__}, run=..., checkpoint=...): "
                              "a plugin model's checkpoint is loaded with load_data_and_model(checkpoint)")
        result = run_single(model, arguments.get("dataset"), arguments.get("config_file_list"),
                            arguments.get("config_dict"), saved=arguments.get("saved", True), host=host)
        config = result["config"]
        result = {key: result[key] for key in ("best_valid_score", "valid_score_bigger", "best_valid_result",
                                               "test_result")}
        if distributed.is_distributed(config) and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if config["local_rank"] == 0 and queue is not None:
            queue.put(result)  # RecBole's run_recboles under mp.spawn
        return result

    wrapper.__wrapped__ = run_recbole
    return wrapper


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
                             "completed epoch; only --epochs, --stopping_step and --show_progress may change; a "
                             "multi-process run resumes with the same --nproc / --world_size")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training on this machine")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1,
                        help="total processes across machines; the peers are waited for --ddp_timeout=SECONDS "
                             "(default 300), then the missing ranks are named")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    parser.add_argument("--host", choices=sorted(HOSTS), default=None,
                        help="the framework to train in: recbole (default) or hopwise (pip install "
                             "'recbole-dien[hopwise]'); hopwise.<Name> is hopwise's own model of a name")
    return parser


def plain_metrics(result):
    """A result's metrics as Python floats: printed the same whether RecBole's metric gave a numpy
    scalar (``np.float64(0.6957)`` under numpy 2) or a checkpoint's plain number."""
    return {key: float(value) for key, value in dict(result or {}).items()}


def main(argv=None, prog="recbole-dien run"):
    """The ``run`` command (``run_recbole.py``): RecBole's flags, ``--key=value`` settings."""
    parser = build_parser(prog)
    args, overrides = parser.parse_known_args(argv)
    try:
        parse_overrides(overrides)
    except ConfigError as error:
        parser.error(str(error))
    if args.resume and (args.model or args.dataset or args.config_files or args.host):
        parser.error("--resume takes the model, dataset, settings and host from the checkpoint; "
                     "leave out --model, --dataset and --config_files (and --host)")

    try:
        result = run(
            args.model or DEFAULT_MODEL, args.dataset or DEFAULT_DATASET,
            config_file_list=args.config_files.split() if args.config_files else None,
            cmd_args=overrides, nproc=args.nproc, world_size=args.world_size,
            ip=args.ip, port=args.port, group_offset=args.group_offset, resume=args.resume,
            host=args.host or RECBOLE.name,
        )
    except RecBoleDienError as error:
        return report(parser, error)
    if result is not None:
        print(f"best valid: {plain_metrics(result['best_valid_result'])}")
        print(f"test result: {plain_metrics(result['test_result'])}")
    return 0
