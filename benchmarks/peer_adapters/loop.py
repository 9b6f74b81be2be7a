"""The training loop of every peer-benchmark run, whatever the library: the same batches in the
same order for a seed, each library's own training step, the same evaluation and early stopping.

An adapter (one per library, :mod:`peer_adapters`) is built as ``Adapter(model_name, rows,
settings, seed)`` and has ``model`` (the ``nn.Module``), ``inputs(batch)`` (a :meth:`Rows.batch`
in the library's own input format), ``train_step(inputs, labels)`` (forward, loss, backward and
optimizer step as the library's own fit loop does them for one batch) and ``predict(inputs)``
(click probabilities, numpy). Training seconds count ``train_step`` alone: turning rows into the
library's inputs is left out for every library alike.
"""
import copy
import random
import time

import numpy as np
import torch

from peer_adapters.rows import auc, log_loss

# a last batch this small joins the one before it: BatchNorm and Dice need batch statistics
MIN_BATCH = 16
EVAL_BATCH = 4096


def named_history_inputs(rows, batch, negatives):
    """A :meth:`Rows.batch` as one flat dict of tensors, the layout torch-rechub and NextRec take:
    each user field and candidate field under its own name, the history's fields as
    ``hist_<field>`` and, with ``negatives`` (DIEN), its negative behaviours as ``neg_hist_<field>``."""
    x = {field: batch["user"][field] for field in rows.user_fields}
    x.update(batch["target"])
    x.update({"hist_" + field: batch["history"][field] for field in rows.item_fields})
    if negatives:
        x.update({"neg_hist_" + field: batch["negative"][field] for field in rows.item_fields})
    return {name: torch.from_numpy(value) for name, value in x.items()}


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cut(order, batch_size):
    """``order`` cut into batches of ``batch_size`` rows; a last batch under :data:`MIN_BATCH` rows
    joins the one before it (some models' code cannot take a batch of one row)."""
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] < MIN_BATCH:
        starts.pop()
    ends = starts[1:] + [len(order)]
    return [order[start:end] for start, end in zip(starts, ends)]


def batches(count, batch_size, generator):
    """The batches of one epoch: a fresh permutation of ``count`` rows from ``generator``, cut."""
    return cut(torch.randperm(count, generator=generator).numpy(), batch_size)


def evaluate(adapter, rows, split, dsin=False):
    """(AUC, log loss) of the adapter's predictions on every row of ``split``."""
    scores = []
    for index in cut(np.arange(rows.size(split)), EVAL_BATCH):
        scores.append(np.asarray(adapter.predict(adapter.inputs(rows.batch(split, index, dsin))), dtype=np.float64))
    labels, scores = rows.arrays[f"{split}_label"], np.concatenate(scores).reshape(-1)
    return auc(labels, scores), log_loss(labels, scores)


def early_stopping(score, best, bad_epochs, patience):
    """RecBole's rule (``recbole.utils.early_stopping``): a score that ties or beats the best is the
    new best; the run stops once more than ``patience`` epochs in a row did not. Returns (best,
    bad epochs, improved, stop)."""
    if best is None or score >= best:
        return score, 0, True, False
    return best, bad_epochs + 1, False, bad_epochs + 1 > patience


def train_and_test(adapter_class, model_name, rows, settings, seed, max_epochs, patience=None, progress=None):
    """Train ``model_name`` of one library on ``rows`` and test it.

    ``max_epochs`` epochs, or fewer with ``patience`` (early stopping on validation AUC, the best
    epoch's weights tested); without ``patience`` the last epoch is tested. ``settings``: the
    matched sizes and the optimiser (benchmarks/peers.py). Returns the measurements as plain data.
    """
    seed_everything(seed)
    adapter = adapter_class(model_name, rows, settings, seed)
    dsin = model_name == "DSIN"
    generator = torch.Generator().manual_seed(seed)
    history, best, bad_epochs, best_state, best_epoch = [], None, 0, None, 0
    epoch_seconds = []
    for epoch in range(1, max_epochs + 1):
        seconds, losses = 0.0, []
        for index in batches(rows.size("train"), settings["train_batch_size"], generator):
            batch = rows.batch("train", index, dsin)
            inputs, labels = adapter.inputs(batch), torch.from_numpy(batch["label"])
            started = time.perf_counter()
            losses.append(float(adapter.train_step(inputs, labels)))
            seconds += time.perf_counter() - started
        epoch_seconds.append(seconds)
        started = time.perf_counter()
        valid_auc, valid_loss = evaluate(adapter, rows, "valid", dsin)
        entry = {"epoch": epoch, "train_s": round(seconds, 3), "valid_s": round(time.perf_counter() - started, 3),
                 "loss": round(float(np.mean(losses)), 5), "valid_auc": round(valid_auc, 5)}
        history.append(entry)
        if progress:
            progress(entry)
        if not np.isfinite(entry["loss"]):
            raise FloatingPointError(f"{model_name}: the training loss is {entry['loss']} in epoch {epoch}")
        best, bad_epochs, improved, stop = early_stopping(valid_auc, best, bad_epochs,
                                                          patience if patience is not None else max_epochs)
        if improved or patience is None:
            best_state, best_epoch = copy.deepcopy(adapter.model.state_dict()), epoch
        if patience is not None and stop:
            break
    adapter.model.load_state_dict(best_state)
    test_auc, test_loss = evaluate(adapter, rows, "test", dsin)
    return {
        "epochs": len(history), "best_epoch": best_epoch,
        "train_s": round(sum(epoch_seconds), 3),
        "train_s_to_best": round(sum(epoch_seconds[:best_epoch]), 3),
        "valid_auc": history[best_epoch - 1]["valid_auc"],
        "test_auc": round(test_auc, 5), "test_logloss": round(test_loss, 5),
        "parameters": sum(p.numel() for p in adapter.model.parameters() if p.requires_grad),
        "train_rows": rows.size("train"), "test_rows": rows.size("test"),
        "history": history,
    }
