"""The rows every library trains and is tested on: one ``.npz`` file, written once by
:mod:`.dump` from RecBole's pipeline, read by every run in either virtualenv (numpy only here).

The file holds RecBole's own rows under the plugin's default protocol: the training split's rows
(each interaction with a predecessor, its history the <= L behaviours before it, label 1) each
followed by the negative RecBole's training sampler drew for it (same history, label 0), and the
validation and test rows (each user's target, label 1, and the 100 items the evaluation sampler
drew, label 0). A history is stored once and shared by the rows that show it:

* ``{split}_user``, ``{split}_item``, ``{split}_label`` [R]: each row's user, candidate and label;
  ``{split}_history`` [R]: the index of its history.
* ``{split}_hist_item`` [H, L] and ``{split}_hist_length`` [H]: the behaviours, oldest first,
  zero after the length (RecBole's ``item_id_list`` and ``item_length``); ``{split}_hist_negative``
  [H, L]: DIEN's negative behaviour at each step (the plugin's ``DIENDataset``: never the clicked
  item at that step, nor any behaviour up to it).
* ``{split}_dsin_item``, ``{split}_dsin_time`` [H, W] and ``{split}_dsin_length`` [H]: DSIN's input
  for the same target: the behaviours of the K most recent sessions of the user's whole history,
  each its T most recent, with their exact times (W = K*T).
* ``{split}_order`` [H]: a fixed random order of the histories; ``fraction`` keeps the rows of
  the first ``round(fraction * H)`` of them (training: a positive and its negative together;
  validation and test: the users, the same ones in both), so that every library and seed gets
  the same rows.
* ``item_<field>`` [n_items] and ``user_<field>`` [n_users]: the item and user side features by id
  (token ids, 0 = padding); ``meta``: a JSON string (fields, vocabulary sizes, L, W, the config the
  rows were made with, where and when).
"""
import json

import numpy as np

SPLITS = ("train", "valid", "test")
HISTORY_ARRAYS = ("hist_item", "hist_length", "hist_negative", "dsin_item", "dsin_time", "dsin_length")
ROW_ARRAYS = ("user", "item", "label", "history")
FORMAT = 1


class RowsError(Exception):
    """A rows file that cannot be used (missing, another format, or rows the run's dataset does not have)."""


class Rows:
    """The dumped rows in memory; :meth:`selected` keeps a fraction of them, :meth:`batch` gathers a
    batch as plain arrays."""

    def __init__(self, arrays, meta):
        self.arrays, self.meta = arrays, meta
        self.item_fields = list(meta["item_fields"])        # the item id first, then its side features
        self.user_fields = list(meta["user_fields"])        # the profile: the user's side features
        self.vocabulary = dict(meta["vocabulary"])           # field -> number of ids (0 = padding)
        self.max_length = int(meta["max_length"])
        self.dsin_width = int(meta["dsin_width"])

    @classmethod
    def load(cls, path):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as error:
            raise RowsError(f"cannot read the rows file {path}: {error}; write it again with benchmarks/peers.py "
                            "--dump-only") from None
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT:
            raise RowsError(f"{path} is rows format {meta.get('format')}, this code reads {FORMAT}: write it again "
                            "with benchmarks/peers.py --dump-only")
        return cls(arrays, meta)

    def save(self, path):
        np.savez_compressed(path, meta=np.array(json.dumps({**self.meta, "format": FORMAT})), **self.arrays)

    def size(self, split):
        return len(self.arrays[f"{split}_label"])

    def selected(self, fraction, eval_fraction):
        """The rows of the first ``fraction`` of the training histories and of the first
        ``eval_fraction`` of the validation and test users, in each split's stored order."""
        arrays = dict(self.arrays)
        for split, share in (("train", fraction), ("valid", eval_fraction), ("test", eval_fraction)):
            if not 0 < share <= 1:
                raise RowsError(f"a fraction must be > 0 and <= 1, not {share}")
            order = self.arrays[f"{split}_order"]
            kept = np.zeros(len(order), dtype=bool)
            kept[order[:max(1, round(share * len(order)))]] = True
            rows = kept[self.arrays[f"{split}_history"]]
            for name in ROW_ARRAYS:
                arrays[f"{split}_{name}"] = self.arrays[f"{split}_{name}"][rows]
        return Rows(arrays, self.meta)

    def item_table(self, field):
        """The ``field`` of every item id (the id itself for the id field)."""
        if field == self.item_fields[0]:
            return np.arange(self.vocabulary[field])
        return self.arrays[f"item_{field}"]

    def batch(self, split, rows, dsin=False):
        """Rows ``rows`` (indices into ``split``) as int64 / float32 arrays: ``label`` [B],
        ``user_id`` [B], ``length`` [B] (behaviours in the history), ``user`` {field: [B]} (the
        profile), ``target`` {item field: [B]}, ``history`` and ``negative`` {item field: [B, L]}
        (the behaviours and DIEN's negatives with their side features, 0 after the length); with
        ``dsin``, also ``dsin`` {``item_id``: [B, W], ``time``: [B, W] float64, ``length``: [B]}."""
        a = self.arrays
        history = a[f"{split}_history"][rows]
        users, items = a[f"{split}_user"][rows].astype(np.int64), a[f"{split}_item"][rows].astype(np.int64)
        behaviours = a[f"{split}_hist_item"][history].astype(np.int64)
        negatives = a[f"{split}_hist_negative"][history].astype(np.int64)
        batch = {
            "label": a[f"{split}_label"][rows].astype(np.float32),
            "user_id": users,
            "length": a[f"{split}_hist_length"][history].astype(np.int64),
            "user": {field: a[f"user_{field}"][users].astype(np.int64) for field in self.user_fields},
            "target": {}, "history": {}, "negative": {},
        }
        for field in self.item_fields:
            table = self.item_table(field).astype(np.int64)
            batch["target"][field] = table[items]
            batch["history"][field] = table[behaviours]   # item 0 (padding) has every side feature 0
            batch["negative"][field] = table[negatives]
        if dsin:
            batch["dsin"] = {"item_id": a[f"{split}_dsin_item"][history].astype(np.int64),
                             "time": a[f"{split}_dsin_time"][history].astype(np.float64),
                             "length": a[f"{split}_dsin_length"][history].astype(np.int64)}
        return batch


def auc(labels, scores):
    """Area under the ROC curve over all rows, ties counted half (the rank statistic RecBole's AUC
    computes over a split's rows)."""
    labels, scores = np.asarray(labels) > 0.5, np.asarray(scores, dtype=np.float64)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0           # 1-based rank of each distinct score, ties averaged
    rank_sum = average_rank[inverse][labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(labels, probabilities, eps=1e-15):
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
