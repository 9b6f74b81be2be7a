"""One benchmark run in this process: train with early stopping, test, and what it cost."""
import glob
import os
import resource
import shutil
import tempfile

from recbole_dien.trainer.resume import EpochCheckpoints

# A model entry is a name run_recbole.py takes or one of these presets: plugin models at the
# hyper-parameters of RecBole's built-in of the same name (its properties/model/<Model>.yaml), one
# embedding width and one MLP shape for every tower.
RECBOLE_SIZES = {"embedding_size": 10, "attention_mlp_sizes": [256, 256, 256], "mlp_hidden_size": [256, 256, 256]}
PRESETS = {
    "DIN@recbole-hparams": ("DIN", RECBOLE_SIZES),
    # RecBole's DIEN also reuses the 256-256-256 MLP, without non-linearity, as its auxiliary net
    "DIEN@recbole-hparams": ("DIEN", {**RECBOLE_SIZES, "aux_mlp_sizes": [256, 256, 256], "aux_activation": "none"}),
}

# set by the runner for each run, not through --set (checkpoints go to the run's work folder,
# deleted once the run has ended); the value says which argument to use instead
RESERVED_SETTINGS = {"epochs": "--epochs", "seed": "--seeds", "protocol": "--protocols",
                     "checkpoint_dir": "nothing: each run uses its own work folder"}


def resolve(entry):
    """(model name, preset settings) of a model entry."""
    return PRESETS.get(entry, (entry, {}))


def _timed(method, clock, record):
    """``method`` whose every call appends (seconds, result) to ``record``; paused time excluded."""
    def wrapper(*args, **kwargs):
        start = clock.now()
        result = method(*args, **kwargs)
        record.append((clock.now() - start, result))
        return result
    return wrapper


def _history(train_calls, valid_calls, eval_step):
    """Per validated epoch: its number, the cumulative training and validation seconds up to it,
    and the validation score."""
    history, train_total, valid_total = [], 0.0, 0.0
    for index, (seconds, (score, _)) in enumerate(valid_calls):
        epoch = (index + 1) * eval_step
        train_total = sum(s for s, _ in train_calls[:epoch])
        valid_total += seconds
        history.append({"epoch": epoch, "train_s": round(train_total, 3), "valid_s": round(valid_total, 3),
                        "valid": float(score)})
    return history


class TimedEpochCheckpoints(EpochCheckpoints):
    """The run's checkpoint after each validated epoch (see :mod:`recbole_dien.trainer.resume`), with the
    run's timings so far in its ``resume`` state, so that a run killed mid-way resumes with them."""

    def __init__(self, trainer, loaders, timings):
        super().__init__(trainer, loaders)
        self.timings = timings

    def resume_state(self, epoch):
        return {**super().resume_state(epoch), "benchmark": self.timings()}


def _resume_point(work_dir):
    """(checkpoint path, loaded checkpoint) of an interrupted run in ``work_dir``, or (None, None)."""
    from recbole_dien.trainer.checkpoint import CheckpointError, load_checkpoint

    for path in sorted(glob.glob(os.path.join(work_dir, "*.pth"))):
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError:
            continue
        if checkpoint.get("resume", {}).get("benchmark"):
            return path, checkpoint
    return None, None


def measure(entry, dataset, protocol="default", seed=2020, epochs=1, overrides=None, config_files=None,
            work_dir=None):
    """Train (early stopping on validation), test, and return the measurements of one run.

    Every duration excludes the time the run spent paused for a hold (see
    :mod:`recbole_dien.benchmark.pause`); ``paused_s`` says how long that was.

    ``work_dir``: the run's checkpoint folder, kept until the run ends. A run killed mid-way (a
    session that ended, a crash) resumes there after its last validated epoch, exactly (see
    :mod:`recbole_dien.trainer.resume`) and with the timings it had recorded; by default a temporary
    folder (no resumption).
    """
    from recbole.data import data_preparation
    from recbole.utils import get_trainer, init_logger, init_seed

    from recbole_dien import Config, create_dataset
    from recbole_dien.trainer.resume import resume_trainer
    from recbole_dien.benchmark.pause import PausableClock, pausing

    model_name, preset = resolve(entry)
    reserved = set(RESERVED_SETTINGS) & set(overrides or {})
    if reserved:
        raise ValueError(f"set {', '.join(sorted(reserved))} through the runner's own arguments, not as settings")
    clock = PausableClock()
    started = clock.now()
    if work_dir:
        os.makedirs(work_dir, exist_ok=True)
    checkpoint_dir = work_dir or tempfile.mkdtemp(prefix="recbole-dien-bench-")
    resume_path, resume_checkpoint = _resume_point(checkpoint_dir)
    prior = resume_checkpoint["resume"]["benchmark"] if resume_checkpoint else {"train": [], "valid": [],
                                                                                "paused_s": 0.0, "wall_s": 0.0}
    settings = {**preset, **(overrides or {}), "epochs": epochs, "seed": seed, "protocol": protocol,
                "checkpoint_dir": checkpoint_dir}
    settings.setdefault("show_progress", False)
    try:
        clock.wait_while_held()
        config = Config(model_name, dataset, config_file_list=config_files, config_dict=settings, cmd_args=[])
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        data = create_dataset(config)
        train_data, valid_data, test_data = (pausing(loader, clock) for loader in data_preparation(config, data))
        init_seed(config["seed"], config["reproducibility"])
        model = config.model_class(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

        train_calls = [(seconds, None) for seconds in prior["train"]]
        valid_calls = [(seconds, (score, None)) for seconds, score in prior["valid"]]
        test_calls = []
        loaders = [train_data, valid_data, test_data]
        if resume_checkpoint:
            resume_trainer(trainer, resume_checkpoint, resume_path, loaders)
        trainer._train_epoch = _timed(trainer._train_epoch, clock, train_calls)
        trainer._valid_epoch = _timed(trainer._valid_epoch, clock, valid_calls)

        def timings():
            return {"train": [seconds for seconds, _ in train_calls],
                    "valid": [[seconds, float(score)] for seconds, (score, _) in valid_calls],
                    "paused_s": prior["paused_s"] + clock.paused, "wall_s": prior["wall_s"] + clock.now() - started}

        _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"],
                                    callback_fn=TimedEpochCheckpoints(trainer, loaders, timings))
        evaluate = _timed(trainer.evaluate, clock, test_calls)
        test = evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    except BaseException:
        if not work_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        raise
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    finally:
        clock.close()
    train_seconds = [seconds for seconds, _ in train_calls]
    valid_seconds = [seconds for seconds, _ in valid_calls]
    return {
        "model_class": f"{config.model_class.__module__}.{config.model_class.__name__}",
        # next-item models (cross-entropy / BPR) score with unbounded logits: LogLoss means nothing for them
        "probabilistic": config["loss_type"] not in ("CE", "BPR") if "loss_type" in config else True,
        "epochs": len(train_seconds),
        # as RecBole counts it: the last validation that tied or beat the best is the saved model
        "best_epoch": (len(valid_seconds) - trainer.cur_step) * trainer.eval_step if valid_seconds else "",
        "train_s_per_epoch": sum(train_seconds) / len(train_seconds),
        "train_s": sum(train_seconds),
        "valid_s": sum(valid_seconds) / max(len(valid_seconds), 1),
        "test_s": test_calls[0][0],
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "paused_s": prior["paused_s"] + clock.paused,
        # the wall seconds of the earlier parts of a resumed run (the runner times this part)
        "prior_wall_s": prior["wall_s"],
        "prior_paused_s": prior["paused_s"],
        "resumed": bool(resume_checkpoint),
        "valid_metric": config["valid_metric"].lower(),
        "history": _history(train_calls, valid_calls, trainer.eval_step),
        # RecBole's ranking metrics come back as numpy scalars
        "valid": {metric: float(value) for metric, value in best_valid.items()},
        "test": {metric: float(value) for metric, value in test.items()},
    }
