"""Writing the rows file (:mod:`.rows`) from RecBole's own pipeline, in the main virtualenv.

The rows are those the plugin's DIEN trains and is evaluated on under the default protocol:
``recbole_dien.Config`` and ``create_dataset`` build the plugin's ``DIENDataset`` (its aligned
negative behaviours come with every history) and ``data_preparation`` the loaders; the training
negatives come from the training loader's own sampling (``_neg_sampling``, one per positive, as
each epoch of RecBole's training draws them), the evaluation rows from iterating the validation
and test loaders (each target with its 100 sampled items).

DSIN's input for the same targets is computed with the plugin's own session code
(:func:`recbole_dien.data.dataset.log_sessions` and ``session_positions``, what its
``DSINDataset`` does) on the same log, in the same order, with the exact timestamps: DIEN's
dataset sorts the log by RecBole's float32 times, which round today's unix times to 128 s, so
sorting by the exact times (as DSIN's own dataset does) would order same-minute ratings
differently and, on ml-100k, make a quarter of the users' validation targets other items than
the rows every other model is tested on.
"""
import datetime
import platform

import numpy as np
import torch

from peer_adapters.rows import FORMAT, Rows, RowsError


def _order(count, generator):
    return torch.randperm(count, generator=generator).numpy().astype(np.int32)


def dump_rows(path, dataset="ml-100k", config_dict=None, seed=2020, commit=""):
    """Write the rows of ``dataset`` under the plugin's default protocol to ``path``; returns a
    summary (row counts, seconds). ``config_dict``: settings for every model's config (the item
    and user fields to load, ``data_path``); ``seed``: RecBole's seed for the split's samplers and
    the negatives, and of the stored orders that ``fraction`` follows."""
    import time

    from recbole.data import data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import init_seed

    from recbole_dien import Config, create_dataset
    from recbole_dien.config.knobs import model_hyperparameters
    from recbole_dien.data.dataset import log_sessions, session_positions
    from recbole_dien.data.lean import HISTORY_START

    started = time.perf_counter()
    settings = {**(config_dict or {}), "seed": seed, "show_progress": False}
    config = Config("DIEN", dataset, config_dict=settings, cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    # the log that the histories index is sorted by (user, time) and holds no user column: each
    # position's user, from the interactions before the split
    log_users = torch.from_numpy(np.sort(np.asarray(data.inter_feat[data.uid_field], dtype=np.int64)))
    loaders = data_preparation(config, data)
    train_data = loaders[0]
    uid, iid, time_field = data.uid_field, data.iid_field, data.time_field
    list_suffix, length_field = config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    negative_list = config["NEG_PREFIX"] + iid + list_suffix
    item_fields = [iid] + [field for field in data.item_feat.interaction if field != iid]
    user_fields = [field for field in data.user_feat.interaction if field != uid]
    for field in item_fields[1:] + user_fields:
        if data.field2type[field].name != "TOKEN":
            raise RowsError(f"the peers take token fields only; '{field}' is {data.field2type[field].name.lower()}: "
                            "leave it out of load_col")

    # DSIN's sessions over the log in this dataset's order, with the exact times of DSIN's own config
    dsin_config = Config("DSIN", dataset, config_dict=settings, cmd_args=[])
    session_gap, max_sessions, max_session_length = (model_hyperparameters(dsin_config, "DSIN")[key] for key in
                                                     ("session_gap", "max_sessions", "max_session_length"))
    exact = create_dataset(dsin_config).build()[0].history_log   # the log, sorted by (user, exact time)
    log = train_data._dataset.history_log
    if len(exact) != len(log_users) or len(log) != len(log_users):
        raise RowsError(f"{dataset}: DSIN's config loads another log than DIEN's ({len(exact)} and {len(log)} "
                        "interactions)")
    exact_key = log_users.numpy().astype(np.int64) * data.item_num + exact[iid].numpy()
    log_key = log_users.numpy().astype(np.int64) * data.item_num + log[iid].numpy()
    order = np.argsort(exact_key)
    found = order[np.searchsorted(exact_key, log_key, sorter=order)]
    if not np.array_equal(exact_key[found], log_key):
        raise RowsError(f"{dataset}: a (user, item) pair occurs twice in the log, so its exact time is ambiguous")
    exact_times = exact[time_field].double()[torch.from_numpy(found)]
    sessions = log_sessions(log_users, exact_times, session_gap)

    generator = torch.Generator().manual_seed(seed)
    arrays = {}
    for name, split in zip(("train", "valid", "test"), loaders):
        table = split._dataset
        rows = table[np.arange(len(table))]                       # every row's history, gathered
        lengths = rows[length_field]
        last = table.inter_feat[HISTORY_START] + table.inter_feat[length_field] - 1   # the target's predecessor
        positions, real, dsin_lengths = session_positions(sessions, last, max_sessions, max_session_length)
        # chronological inside each row, as DSIN's own dataset gives them (this order ties within 128 s)
        by_time = torch.argsort(torch.where(real, exact_times[positions], float("inf")), dim=1, stable=True)
        positions = torch.gather(positions, 1, by_time)
        arrays.update({
            f"{name}_hist_item": rows[iid + list_suffix].numpy().astype(np.int32),
            f"{name}_hist_length": lengths.numpy().astype(np.int32),
            f"{name}_hist_negative": rows[negative_list].numpy().astype(np.int32),
            f"{name}_dsin_item": torch.where(real, log[iid][positions], 0).numpy().astype(np.int32),
            f"{name}_dsin_time": torch.where(real, exact_times[positions], 0.0).numpy(),
            f"{name}_dsin_length": dsin_lengths.numpy().astype(np.int32),
        })
        if name == "train":  # each positive, then the negative RecBole's training sampler draws for it
            sampled = split._neg_sampling(Interaction({uid: rows[uid], iid: rows[iid]}))
            users, items, labels = sampled[uid], sampled[iid], sampled[config["LABEL_FIELD"]]
            history = np.tile(np.arange(len(table)), len(sampled) // len(table))
            arrays["train_order"] = _order(len(table), generator)
        else:  # the loader's rows: each user's target and its sampled items
            batches = [batch[0] for batch in split]
            users, items, labels = (torch.cat([b[field] for b in batches]) for field in
                                    (uid, iid, config["LABEL_FIELD"]))
            row_of_user = np.full(data.user_num, -1)
            row_of_user[rows[uid].numpy()] = np.arange(len(table))
            history = row_of_user[users.numpy()]
            if name == "valid":  # the same users in the validation and the test rows
                user_order = _order(data.user_num, generator)
            rank = np.empty(data.user_num, dtype=np.int64)
            rank[user_order] = np.arange(data.user_num)
            arrays[f"{name}_order"] = np.argsort(rank[rows[uid].numpy()], kind="stable").astype(np.int32)
        arrays.update({f"{name}_user": users.numpy().astype(np.int32), f"{name}_item": items.numpy().astype(np.int32),
                       f"{name}_label": labels.numpy().astype(np.float32),
                       f"{name}_history": history.astype(np.int32)})
    for field in item_fields[1:]:
        arrays[f"item_{field}"] = data.item_feat[field].numpy().astype(np.int32)
    for field in user_fields:
        arrays[f"user_{field}"] = data.user_feat[field].numpy().astype(np.int32)

    import recbole
    meta = {
        "format": FORMAT, "dataset": dataset, "config": config_dict or {}, "seed": seed,
        "item_fields": item_fields, "user_fields": user_fields,
        "vocabulary": {field: int(data.num(field)) for field in item_fields + user_fields},
        "max_length": int(config["MAX_ITEM_LIST_LENGTH"]), "dsin_width": max_sessions * max_session_length,
        "dsin": {"session_gap": session_gap, "max_sessions": max_sessions, "max_session_length": max_session_length},
        "made": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit,
        "recbole": recbole.__version__, "torch": torch.__version__, "python": platform.python_version(),
    }
    rows = Rows(arrays, meta)
    rows.save(path)
    return {"rows": {split: rows.size(split) for split in ("train", "valid", "test")},
            "histories": {split: len(arrays[f"{split}_hist_length"]) for split in ("train", "valid", "test")},
            "seconds": round(time.perf_counter() - started, 1)}
