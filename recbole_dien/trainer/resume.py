"""Training that survives a crash: a checkpoint after every validated epoch, and exact resumption.

RecBole's ``Trainer`` writes its checkpoint only when validation improves, and its
``resume_checkpoint`` restores the *best* weights with the *latest* optimizer and no random state,
so a resumed run drifts from the one it continues. Here the checkpoint file (the trainer's
``saved_model_file``) holds, beside RecBole's keys for the best epoch:

``resume``
    the state after the last completed (validated) epoch: the model's weights and other
    parameters, the optimizer, the epoch, the early-stopping counter, the best score and result
    (the best epoch is RecBole's ``epoch`` key beside it), and every random state the rest of the run draws from - torch (and CUDA), numpy (RecBole's
    negative samplers), Python's ``random``, and the generator of each dataloader (its shuffling).
    DIEN's per-epoch negatives draw from torch's generator.

:class:`EpochCheckpoints` writes it (atomically: a temporary file renamed over the old one) as the
``callback_fn`` of ``Trainer.fit``; :func:`resume_trainer` puts a freshly built trainer back into that
state. Resuming with the same code on the same machine gives the run the uninterrupted one would
have given, to the last bit on CPU (tests/trainer/test_resume.py kills a run with SIGKILL and compares).
"""
import copy
import os
import random

import numpy as np
import torch

from recbole_dien.trainer.checkpoint import (FORMAT, CheckpointError, CheckpointWriteError, encode_config,
                                             plain_other_parameter, reserve_file, write_atomically)

BEST_KEYS = ("epoch", "cur_step", "best_valid_score", "state_dict", "other_parameter", "optimizer")
# called with the path of a trainer's checkpoint file once it is first written (a multi-process run's
# parent learns it so, to name it if a rank dies)
CHECKPOINT_LISTENERS = []


# --------------------------------------------------------------------------- random states

def generator_of(loader):
    """The torch generator a RecBole dataloader shuffles with (a knowledge-graph loader's is its
    general loader's)."""
    generator = getattr(loader, "generator", None)
    return generator if generator is not None else loader.general_dataloader.generator


def random_states(loaders):
    """Every random state a run draws from, as plain data."""
    keys, position, has_gauss, cached_gaussian = np.random.get_state()[1:]
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "loaders": [generator_of(loader).get_state() for loader in loaders],
    }


def set_random_states(states, loaders):
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy = states["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss_next"]))
    if len(states["loaders"]) != len(loaders):
        raise CheckpointError(f"the checkpoint has the random state of {len(states['loaders'])} dataloaders, "
                              f"this run has {len(loaders)}")
    for loader, state in zip(loaders, states["loaders"]):
        generator_of(loader).set_state(state)


# --------------------------------------------------------------------------- checkpoints

def _detached(state_dict):
    return {key: value.detach().clone() for key, value in state_dict.items()}


def _number(value):
    """A Python number for a numpy / torch scalar (RecBole's metrics are numpy floats, which
    torch's weights-only loader does not rebuild)."""
    return value.item() if hasattr(value, "item") else value


def writes_checkpoints(trainer):
    """Whether this process writes the checkpoint: always, except ranks other than 0 of a
    distributed run - the global rank: a machine's first process (``local_rank`` 0) is not rank 0
    unless its ``offset`` is 0, and the machines need not share a filesystem."""
    config = trainer.config
    return config["single_spec"] or config["local_rank"] + (config["offset"] or 0) == 0


def best_state(trainer, epoch):
    """RecBole's checkpoint keys for the model as it is now (the best epoch so far)."""
    return {"epoch": epoch, "cur_step": trainer.cur_step, "best_valid_score": _number(trainer.best_valid_score),
            "state_dict": _detached(trainer.model.state_dict()),
            "other_parameter": plain_other_parameter(trainer.model),
            # a copy: Adam updates its moments in place, and this is the best epoch's
            "optimizer": copy.deepcopy(trainer.optimizer.state_dict())}


def checkpoint_file(trainer):
    """The trainer's checkpoint file, created (empty, exclusively) at its first write: RecBole names
    it ``<Model>-<second>.pth``, so two runs started in the same second with one ``checkpoint_dir``
    would write one file; the second gets ``<Model>-<second>-2.pth`` (:func:`reserve_file`)."""
    if not getattr(trainer, "recbole_dien_reserved", False):
        trainer.saved_model_file = reserve_file(trainer.saved_model_file)
        trainer.recbole_dien_reserved = True
    return trainer.saved_model_file


def write_checkpoint(trainer, resume=None, path=None):
    """Write ``trainer``'s checkpoint file: RecBole's keys for the best epoch (kept in memory by
    :func:`save_checkpoint`), the configuration as plain data and, once an epoch has completed,
    the state to resume from. Only rank 0 of a distributed run writes. Returns the path written.

    A failed write (disk full) stops the run with one :class:`CheckpointError` line naming the
    run's last good checkpoint, which the atomic write keeps whole."""
    if not writes_checkpoints(trainer):
        return None
    if resume is not None:
        trainer.recbole_dien_resume = resume
    best = getattr(trainer, "recbole_dien_best", None) or best_state(trainer, -1)
    state = {"format": FORMAT, "config": encode_config(trainer.config), **best}
    if getattr(trainer, "recbole_dien_resume", None):
        state["resume"] = trainer.recbole_dien_resume
    own_file = path is None or str(path) == str(trainer.saved_model_file)
    target = checkpoint_file(trainer) if own_file else str(path)
    try:
        write_atomically(state, target)
    except CheckpointWriteError as error:
        if own_file and getattr(trainer, "recbole_dien_written", None) is None and os.path.isfile(target) \
                and os.path.getsize(target) == 0:
            os.remove(target)  # the name reserved for a file never written
        raise CheckpointError(f"{error}; the run stopped. {last_good_checkpoint(trainer)}") from None
    if own_file:
        first = getattr(trainer, "recbole_dien_written", None) is None
        trainer.recbole_dien_written = (target, state.get("resume", {}).get("epoch"))
        for listener in CHECKPOINT_LISTENERS if first else ():
            listener(target)
    return target


def last_good_checkpoint(trainer):
    """What survives of the run: its checkpoint file as last written, and how to go on from it."""
    written = getattr(trainer, "recbole_dien_written", None)
    if written is None:
        return "No checkpoint of this run was written before"
    path, epoch = written
    if epoch is None:
        return f"Its last good checkpoint is {path} (the best model, written before an epoch completed)"
    return (f"Its last good checkpoint is {path} (after epoch {epoch}): once there is room, go on with "
            f"--resume={path}")


def save_checkpoint(self, epoch, verbose=True, **kwargs):
    """Replaces ``Trainer._save_checkpoint`` (see :mod:`recbole_dien.compat`), which ``fit`` calls
    when validation improves: remember the model as the best and write the checkpoint, plain data
    only."""
    from recbole_dien.utils.hosts import host_of

    set_color = host_of(self).module("utils").set_color
    if not writes_checkpoints(self):
        return
    if epoch < 0 and getattr(self, "recbole_dien_best", None) is not None:
        return  # fit() of a run resumed after its last epoch: the file already holds the best model
    self.recbole_dien_best = best_state(self, epoch)
    saved_model_file = write_checkpoint(self, path=kwargs.pop("saved_model_file", None))
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


class EpochCheckpoints:
    """``callback_fn`` for ``Trainer.fit``: after each validated epoch, rewrite the trainer's
    checkpoint with the best epoch's keys and the ``resume`` state (see the module docstring)."""

    def __init__(self, trainer, loaders):
        self.trainer, self.loaders = trainer, list(loaders)

    def resume_state(self, epoch):
        trainer = self.trainer
        return {"epoch": epoch, "cur_step": trainer.cur_step, "best_valid_score": _number(trainer.best_valid_score),
                "best_valid_result": {k: float(v) for k, v in (trainer.best_valid_result or {}).items()},
                "state_dict": _detached(trainer.model.state_dict()),
                "other_parameter": plain_other_parameter(trainer.model),
                "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
                "random": random_states(self.loaders)}

    def __call__(self, epoch, valid_score):
        by_rank = gathered_random_states(self.trainer, self.loaders)
        if writes_checkpoints(self.trainer):  # other ranks would copy weights for nothing
            state = self.resume_state(epoch)
            if by_rank is not None:
                state["random_by_rank"] = by_rank
            write_checkpoint(self.trainer, resume=state)


def gathered_random_states(trainer, loaders):
    """In a multi-process run, every rank's random states (in rank order), for rank 0's checkpoint:
    each rank draws its own dropout masks, negatives and shuffles. None in a single-process run."""
    import torch.distributed as dist

    if trainer.config["single_spec"] or not dist.is_initialized():
        return None
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, random_states(loaders))
    return states


def resume_trainer(trainer, checkpoint, path, loaders):
    """Put a freshly built ``trainer`` (same config, data and model class) into the state a
    checkpoint recorded after its last completed epoch; training goes on with ``trainer.fit``
    and keeps writing to ``path``."""
    state = checkpoint.get("resume")
    if not state:
        raise CheckpointError(f"{path} holds no state to resume from (it was written before its first epoch "
                              "ended, or by a trainer that saved only the best model)")
    model = trainer.model
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state["other_parameter"] or None)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.start_epoch = state["epoch"] + 1
    trainer.cur_step = state["cur_step"]
    if trainer.cur_step > trainer.stopping_step:
        # the run had stopped early (and was interrupted after, e.g. in its test pass): no more
        # training, unless the resumed run raised stopping_step
        trainer.start_epoch = trainer.epochs
    trainer.best_valid_score = state["best_valid_score"]
    trainer.best_valid_result = state["best_valid_result"] or None
    trainer.saved_model_file = str(path)
    trainer.recbole_dien_reserved = True  # the run goes on writing the file it resumes
    trainer.recbole_dien_written = (str(path), state["epoch"])
    trainer.recbole_dien_best = {key: checkpoint[key] for key in BEST_KEYS}
    trainer.recbole_dien_resume = state
    states = state["random"]
    if not trainer.config["single_spec"]:
        from recbole_dien.trainer.distributed import global_rank

        by_rank, rank = state.get("random_by_rank") or [], global_rank(trainer.config)
        if rank >= len(by_rank):
            raise CheckpointError(f"{path} holds the random states of {len(by_rank) or 1} process(es); resume it "
                                  "with as many (--nproc / --world_size as the run had)")
        states = by_rank[rank]
    set_random_states(states, loaders)  # last: nothing may draw between here and fit
    return trainer.start_epoch
