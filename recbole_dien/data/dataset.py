"""The plugin's own ``<Model>Dataset`` classes; :func:`recbole_dien.data.create_dataset` prefers
them over RecBole's for the plugin's models."""
import itertools

import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction

from recbole_dien.model.layers import sequence_mask

NEGATIVE_EXCLUSIONS = ("history", "positive")


def sample_negative_sequences(item_seq, lengths, n_items, exclude="history", generator=None, chunk_rows=8192,
                              max_rounds=100):
    """One negative item per real position of each behaviour sequence: [R, L] (0 at padding).

    The negative at step k is never the positive ``item_seq[r, k]``; with ``exclude='history'`` it
    is also none of the behaviours the row shows up to that step, ``item_seq[r, :k+1]``. Items are
    drawn uniformly from 1..n_items-1 and redrawn where they break the rule (vectorised). Where a
    history covers nearly the whole catalogue, after ``max_rounds`` draws only the positive is
    excluded.
    """
    if n_items < 3:
        raise ValueError("negative sampling needs at least two items besides the padding id")
    if exclude not in NEGATIVE_EXCLUSIONS:
        raise ValueError(f"negative exclusion must be one of {', '.join(NEGATIVE_EXCLUSIONS)}, not '{exclude}'")
    negatives = torch.zeros_like(item_seq)
    for start in range(0, len(item_seq), chunk_rows):
        seq, length = item_seq[start:start + chunk_rows], lengths[start:start + chunk_rows]
        real = sequence_mask(length, seq.shape[1])
        if exclude == "history":
            # visible[k, j]: position j is part of the history at step k (j <= k)
            visible = torch.ones(seq.shape[1], seq.shape[1], dtype=torch.bool, device=seq.device).tril()
        chunk = torch.zeros_like(seq)
        pending = real.clone()
        for round_ in itertools.count():
            if not pending.any():
                break
            draw = torch.randint(1, n_items, seq.shape, generator=generator, device=seq.device)
            if exclude == "history" and round_ < max_rounds:
                clash = ((draw.unsqueeze(-1) == seq.unsqueeze(-2)) & visible).any(-1)
            else:
                clash = draw == seq
            accept = pending & ~clash
            chunk = torch.where(accept, draw, chunk)
            pending &= ~accept
        negatives[start:start + chunk_rows] = chunk
    return negatives


class DIENDataset(SequentialDataset):
    """A ``SequentialDataset`` whose rows also carry ``NEG_ITEM_SEQ``: a negative behaviour for
    every real step of the history, aligned with it (the negative at step k is never the positive
    at step k and, by default, none of the row's behaviours up to step k).

    Settings: ``neg_exclude`` (``history`` | ``positive``); ``neg_resample_each_epoch`` (draw fresh
    negatives whenever a training row is loaded, so every epoch sees new ones; otherwise they are
    drawn once, from ``seed``, and fixed).

    RecBole's own ``DIENDataset`` draws one negative per interaction in file order and indexes the
    draws after sorting by (user, time), so a negative can equal its positive; this class samples
    per row, after the sort.
    """

    def __init__(self, config):
        self.neg_exclude = config["neg_exclude"] or "history"
        self.resample_each_epoch = bool(config["neg_resample_each_epoch"])
        super().__init__(config)

    @property
    def neg_item_list_field(self):
        return self.config["NEG_PREFIX"] + self.iid_field + self.config["LIST_SUFFIX"]

    def data_augmentation(self):
        super().data_augmentation()
        self.copy_field_property(self.neg_item_list_field, self.item_id_list_field)
        generator = torch.Generator().manual_seed(self.config["seed"])
        self.inter_feat.update(Interaction({self.neg_item_list_field: self._sample(self.inter_feat, generator)}))

    def _sample(self, rows, generator=None):
        return sample_negative_sequences(rows[self.item_id_list_field], rows[self.item_list_length_field],
                                         self.item_num, self.neg_exclude, generator)

    def build(self):
        datasets = super().build()
        for evaluation_split in datasets[1:]:  # negatives only feed the training loss
            evaluation_split.resample_each_epoch = False
        return datasets

    def __getitem__(self, index, join=True):
        rows = super().__getitem__(index, join)
        if self.resample_each_epoch:
            rows.update(Interaction({self.neg_item_list_field: self._sample(rows)}))
        return rows

