"""The plugin's own ``<Model>Dataset`` classes; :func:`recbole_dien.data.create_dataset` prefers
them over RecBole's for the plugin's models."""
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_dien.data.lean import LeanSequentialDataset
from recbole_dien.data.negatives import sample_log_negatives, sample_negative_sequences


class DIENDataset(LeanSequentialDataset):
    """A sequential dataset whose rows also carry ``NEG_ITEM_SEQ``: a negative behaviour for every
    real step of the history, aligned with it (the negative at step k is never the positive at
    step k and, by default, none of the row's behaviours up to step k).

    The negatives are drawn once, from ``seed``, one per interaction of the log sorted by (user,
    time) (:func:`~recbole_dien.data.negatives.sample_log_negatives`), and become a list column like
    any other: gathered per batch on the lean path, dense on RecBole's. Settings: ``neg_exclude``
    (``history`` | ``positive``); ``neg_resample_each_epoch`` (instead, draw fresh negatives for
    each training row whenever it is loaded, so every epoch sees new ones).

    RecBole's own ``DIENDataset`` draws one negative per interaction in file order and indexes the
    draws after sorting by (user, time), so a negative can equal its positive; here they are drawn
    after the sort.
    """

    def __init__(self, config):
        self.neg_exclude = config["neg_exclude"] or "history"
        self.resample_each_epoch = bool(config["neg_resample_each_epoch"])
        super().__init__(config)

    @property
    def neg_item_field(self):
        return self.config["NEG_PREFIX"] + self.iid_field

    @property
    def neg_item_list_field(self):
        return self.neg_item_field + self.config["LIST_SUFFIX"]

    def data_augmentation(self):
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        generator = torch.Generator().manual_seed(self.config["seed"])
        negatives = sample_log_negatives(self.inter_feat[self.uid_field], self.inter_feat[self.iid_field],
                                         self.item_num, self.max_item_list_len, self.neg_exclude, generator)
        self.set_field_property(self.neg_item_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        self.inter_feat.update(Interaction({self.neg_item_field: negatives}))
        super().data_augmentation()  # its list becomes NEG_ITEM_SEQ
        self._del_col(self.inter_feat, self.neg_item_field)  # the row's own negative is no model input

    def _sample(self, rows, generator=None):
        item_seq, lengths = rows[self.item_id_list_field], rows[self.item_list_length_field]
        negatives = sample_negative_sequences(item_seq.view(-1, item_seq.shape[-1]), lengths.view(-1),
                                              self.item_num, self.neg_exclude, generator)
        return negatives.view(item_seq.shape)  # one row (dataset[i]) or a batch

    def build(self):
        datasets = super().build()
        for evaluation_split in datasets[1:]:  # negatives only feed the training loss
            evaluation_split.resample_each_epoch = False
        return datasets

    def __getitem__(self, index, join=True):
        rows = super().__getitem__(index, join)
        if self.resample_each_epoch and isinstance(rows, Interaction):
            rows.update(Interaction({self.neg_item_list_field: self._sample(rows)}))
        return rows
