"""Taobao's user-behaviour log (UserBehavior.csv, Tianchi dataset 649) as a sequential dataset.

    python -m recbole_dien.datasets taobao --raw DIR --out data/
    python run_recbole.py --model=DIEN --dataset=taobao --data_path=data/ --config_files=data/taobao/taobao.yaml

Reads ``UserBehavior.csv`` (plain or ``.gz``) from ``--raw``: about 100 million lines without a
header, ``user_id,item_id,category_id,behavior_type,timestamp``, behaviour type one of ``pv``
(a page view), ``buy``, ``cart``, ``fav``; the collection covers the 9 days 2017-11-25 to
2017-12-03 in Asia/Shanghai time (UTC+8, no daylight saving), i.e. unix times 1511539200 to
1512316799. Lines with a timestamp outside those days (the file has some) are dropped and counted;
lines with the wrong number of fields, an id or time that is not a whole number, or another
behaviour type are malformed, counted with their first line number.

The file is streamed in blocks (:func:`recbole_dien.datasets.convert.read_csv_blocks`); what is kept
of it is five integer columns (int32 where the ids fit, as the real ones do: 13 bytes a behaviour),
sorted by user then time with numpy (a stable sort: one user's behaviours of the same second keep
the file's order). Writes ``OUT/taobao/``:

* ``taobao.inter``: ``user_id``, ``item_id``, ``behavior_type`` (pv / buy / cart / fav, a field of
  each behaviour), ``timestamp``;
* ``taobao.item``: ``item_id``, ``category``: the item's category, an item feature; the log repeats
  it on every line, and where one item shows up with several categories the first line's is kept
  (the report counts such items);
* ``taobao.yaml``: the protocol (see :data:`PROTOCOL`).
"""
import os

import numpy as np
import pandas as pd

from recbole_dien.datasets import convert as conversion
from recbole_dien.utils.errors import DatasetError

BEHAVIOURS = ("pv", "buy", "cart", "fav")
COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]
FIRST_SECOND = 1511539200            # 2017-11-25 00:00:00 Asia/Shanghai (UTC+8)
END_SECOND = FIRST_SECOND + 9 * 86400  # 2017-12-04 00:00:00 Asia/Shanghai: the first second after the 9 days
WINDOW = "2017-11-25 to 2017-12-03 (Asia/Shanghai)"
WRITE_ROWS = 1 << 20
PAIR_BUFFER = 1 << 24                # (item, category) pairs gathered before they are reduced to distinct ones

LAYOUT = conversion.CsvLayout(name="Taobao's UserBehavior.csv", columns=COLUMNS, header=False,
                              integers=("user_id", "item_id", "category_id", "timestamp"))

PROTOCOL = """{dataset}: Taobao's user-behaviour log (UserBehavior.csv, 9 days from 2017-11-25,
Asia/Shanghai), converted by python -m recbole_dien.datasets taobao.
The log has behaviours but no impressions and no labels, so the protocol is the DIN / DIEN
papers' public-data one (their Amazon setting): each user's behaviours of every type (pv, buy,
cart, fav) in time order; each behaviour after the first is a target whose history is the
behaviours before it. Each user's last behaviour is the test target, the one before it the
validation target, the rest are training targets, every target scored against one item drawn
uniformly from those the user never touched (uni1), one such negative per training target;
AUC and LogLoss. Item features: id and category. The behaviour type is loaded as a field
(behavior_type; in each history as behavior_type_list). Histories hold the 50 most recent
behaviours (the project's default; the median user has about 100 in the 9 days, and each step of
history costs time per row)."""

SETTINGS = conversion.last_target_protocol(
    {"inter": ["user_id", "item_id", "behavior_type", "timestamp"], "item": ["item_id", "category"]}, history_length=50)


def add_arguments(parser):
    parser.add_argument("--name", default="taobao", help="dataset name (default: taobao)")


def _narrow(values):
    """int32 where every value fits (the real ids and times do), else int64."""
    info = np.iinfo(np.int32)
    if len(values) == 0 or (values.min() >= info.min and values.max() <= info.max):
        return values.astype(np.int32)
    return values.astype(np.int64)


class FirstCategory:
    """Each item's category on its first line, and how many items show up with more than one.

    The distinct (item, category) pairs are kept as one int64 each (item << 31 | category, where
    both fit in 31 bits, as the real ids do; else as rows of two), reduced whenever they pile up."""

    def __init__(self):
        self.items, self.categories, self.pairs, self.buffered, self.as_rows = [], [], [], 0, False

    def add(self, item, category):
        distinct, first = np.unique(item, return_index=True)  # np.unique's index is the first occurrence
        self.items.append(distinct)
        self.categories.append(category[first])
        fits = min(item.min(), category.min()) >= 0 and max(item.max(), category.max()) < 2 ** 31
        if not fits and not self.as_rows:
            self.pairs, self.as_rows = [self._rows(np.concatenate(self.pairs))] if self.pairs else [], True
        if self.as_rows:
            self.pairs.append(np.unique(np.stack([item, category], axis=1).astype(np.int64), axis=0))
        else:
            self.pairs.append(np.unique((item.astype(np.int64) << 31) | category))
        self.buffered += len(self.pairs[-1])
        if self.buffered > PAIR_BUFFER:
            self.pairs = [np.unique(np.concatenate(self.pairs), axis=0 if self.as_rows else None)]
            self.buffered = len(self.pairs[0])
        if len(self.items) > 64:  # keep the per-block tables few: reduce them to one (first wins)
            self._reduce()

    @staticmethod
    def _rows(keys):
        return np.stack([keys >> 31, keys & (2 ** 31 - 1)], axis=1)

    def _reduce(self):
        items, categories = np.concatenate(self.items), np.concatenate(self.categories)
        distinct, first = np.unique(items, return_index=True)  # the earliest block's entry comes first
        self.items, self.categories = [distinct], [categories[first]]

    def result(self):
        """(items, their first category, number of items with several categories)."""
        self._reduce()
        pairs = np.unique(np.concatenate(self.pairs), axis=0 if self.as_rows else None)
        pair_items = pairs[:, 0] if self.as_rows else pairs >> 31
        several = int((np.unique(pair_items, return_counts=True)[1] > 1).sum())
        return self.items[0], self.categories[0], several


def read_log(path, tally):
    """The kept behaviours as arrays (user, item, behaviour code, time) in file order, and the items' categories."""
    columns = {name: [] for name in ("user", "item", "behaviour", "time")}
    categories = FirstCategory()
    for frame, lines in conversion.read_csv_blocks(path, LAYOUT, tally):
        behaviour = pd.Categorical(frame["behavior_type"], categories=BEHAVIOURS).codes
        unknown = behaviour < 0
        if unknown.any():
            tally.add_malformed(f"behavior_type is not one of {', '.join(BEHAVIOURS)}", lines[unknown])
        time = frame["timestamp"].to_numpy()
        outside = ~unknown & ((time < FIRST_SECOND) | (time >= END_SECOND))
        tally.add_dropped(f"timestamp outside {WINDOW}", lines[outside])
        keep = ~unknown & ~outside
        if not keep.any():
            continue
        user, item = frame["user_id"].to_numpy()[keep], frame["item_id"].to_numpy()[keep]
        columns["user"].append(_narrow(user))
        columns["item"].append(_narrow(item))
        columns["behaviour"].append(behaviour[keep].astype(np.int8))
        columns["time"].append(_narrow(time[keep]))
        categories.add(item, frame["category_id"].to_numpy()[keep])
    if not columns["user"]:
        raise DatasetError(f"{path}: no behaviour is left: every line is malformed or outside {WINDOW}")
    # one column at a time, so that at most one column exists twice (its blocks and the whole)
    log = {}
    for name in list(columns):
        log[name] = np.concatenate(columns.pop(name))
    return log, categories.result()


def convert(raw_dir, out_dir, name="taobao"):
    timer = conversion.Timer()
    path = conversion.raw_file(raw_dir, "UserBehavior.csv", "Taobao's user-behaviour log (Tianchi dataset 649)")
    tally = conversion.LineTally(path)
    log, (items, item_category, several) = read_log(path, tally)

    folder = conversion.dataset_folder(out_dir, name)
    order = np.lexsort((log["time"], log["user"]))  # stable: ties keep the file's order
    behaviour_names = np.array(BEHAVIOURS, dtype=object)
    with conversion.AtomicFileWriter(os.path.join(folder, f"{name}.inter"),
                                     [("user_id", "token"), ("item_id", "token"), ("behavior_type", "token"),
                                      ("timestamp", "float")]) as out:
        for start in range(0, len(order), WRITE_ROWS):
            rows = order[start:start + WRITE_ROWS]
            out.write({"user_id": log["user"][rows], "item_id": log["item"][rows],
                       "behavior_type": behaviour_names[log["behaviour"][rows]], "timestamp": log["time"][rows]})
    inter_rows = out.rows
    with conversion.AtomicFileWriter(os.path.join(folder, f"{name}.item"),
                                     [("item_id", "token"), ("category", "token")]) as out:
        for start in range(0, len(items), WRITE_ROWS):
            out.write({"item_id": items[start:start + WRITE_ROWS], "category": item_category[start:start + WRITE_ROWS]})
    conversion.write_dataset_config(folder, name, PROTOCOL.format(dataset=name), SETTINGS)

    report = conversion.ConversionReport(name, folder, out_dir, model="DIEN", tallies=[tally])
    report.written = {f"{name}.inter": inter_rows, f"{name}.item": out.rows}
    counts = np.bincount(log["behaviour"], minlength=len(BEHAVIOURS))
    report.notes.append(f"{len(np.unique(log['user'])):,} users, {len(items):,} items, "
                        f"{len(np.unique(item_category)):,} categories; behaviours: "
                        + ", ".join(f"{kind} {count:,}" for kind, count in zip(BEHAVIOURS, counts)))
    if several:
        report.notes.append(f"{several:,} items show up with more than one category: their first line's is kept")
    report.seconds = timer.seconds()
    return report
