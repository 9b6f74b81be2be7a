"""The lean sequential data path: RecBole's sequential rows without their dense histories.

RecBole's ``SequentialDataset.data_augmentation`` turns a log of N interactions into one row per
interaction that has a predecessor, and stores for *every* interaction column a dense
[rows, MAX_ITEM_LIST_LENGTH] history, filled by a Python loop over the rows: memory grows with
N x MAX_ITEM_LIST_LENGTH (about 2.5 GB per million interactions at 50) and so does the time.

:class:`LeanSequentialDataset` keeps each interaction column once, flat, sorted by (user, time)
(``history_log``); a row holds, besides RecBole's columns, where its history starts in that log
(its length is RecBole's ``item_length``). The [B, L] histories - item ids, timestamps, DIEN's
negatives, any list column RecBole would have built - are gathered when a batch is built
(``dataset[index]``, which is what every RecBole dataloader calls). Augmentation and the grouped
splits run on index tensors. Rows, their order, the splits and every batch tensor are RecBole's
(tests/data/test_lean.py compares them under the three protocols); memory grows with N only.

``lean_sequential_data`` chooses the path: ``~`` (default) lean for the plugin's models and
RecBole's own ``SequentialDataset`` for RecBole's models; ``True`` lean also for RecBole's
sequential models whose dataset RecBole builds as a plain ``SequentialDataset`` (not FEARec,
which reads its histories from ``dataset.inter_feat``); ``False`` RecBole's path (this class then
behaves as RecBole's ``SequentialDataset``).

The classes here are host-neutral: :mod:`recbole_dien.utils.hosts` builds them on RecBole's or
hopwise's ``SequentialDataset`` (and ``Interaction``), whose methods the lean path overrides alike.
"""
import numpy as np
import torch

from recbole_dien.data.splits import GroupedIndex, leave_one_out_parts, ratio_parts

# the column of each row that says where its history starts in ``history_log``
HISTORY_START = "history_start"


def lean_requested(config, plugin_model):
    """Whether a model's sequential data takes the lean path (``lean_sequential_data``)."""
    choice = config["lean_sequential_data"]
    return plugin_model if choice is None else bool(choice)


def user_starts(users):
    """For each position of a log sorted by user: the position where that user's interactions start."""
    position = torch.arange(len(users))
    first = torch.ones(len(users), dtype=torch.bool)
    first[1:] = users[1:] != users[:-1]
    return torch.cummax(torch.where(first, position, 0), dim=0).values


def history_occurrences(dataset, field, minlength=0):
    """How often each value of ``field`` occurs in a sequential dataset's histories (a bincount
    over every row's real history steps); on the lean path without building the histories."""
    lengths = dataset.inter_feat[dataset.item_list_length_field]
    if not getattr(dataset, "is_lean", False):
        lists = dataset.inter_feat[getattr(dataset, f"{field}_list_field")]
        real = torch.arange(lists.shape[1]) < lengths.unsqueeze(1)
        return torch.bincount(lists[real], minlength=minlength)
    # coverage[p]: how many rows' histories hold log position p (a difference array over the spans)
    start = dataset.inter_feat[HISTORY_START]
    changes = torch.zeros(len(dataset.history_log) + 1, dtype=torch.long)
    changes.index_add_(0, start, torch.ones_like(start))
    changes.index_add_(0, start + lengths, -torch.ones_like(start))
    coverage = torch.cumsum(changes, 0)[:-1]
    return torch.bincount(dataset.history_log[field], weights=coverage.double(), minlength=minlength).long()


def first_history_values(dataset, field):
    """Each row's first history value of ``field`` (every row has at least one behaviour), on
    either path: with the rows' own values, every interaction of the log."""
    if getattr(dataset, "is_lean", False):
        return dataset.history_log[field][dataset.inter_feat[HISTORY_START]]
    return dataset.inter_feat[getattr(dataset, f"{field}_list_field")][:, 0]


class DirectlyIndexed:
    """An ``Interaction`` (the host's: :meth:`LeanSequentialDataset.directly_indexed`) that indexes its
    columns with a tensor or array as it is: RecBole's turns the index into a Python list first (at
    20M rows, a 20M-element list for every split)."""

    def __getitem__(self, index):
        if isinstance(index, (np.ndarray, torch.Tensor)) and index.ndim > 0:
            return type(self)({field: value[index] for field, value in self.interaction.items()})
        return super().__getitem__(index)


class LeanSequentialDataset:
    """The host's ``SequentialDataset`` with histories gathered at batch time (module docstring)."""

    host = None  # set on the class built for a host (recbole_dien.utils.hosts)

    def __init__(self, config):
        self.lean = config["lean_sequential_data"] is not False
        self.history_log = None     # Interaction: every list column's source, flat, sorted by (user, time)
        self.list_sources = {}      # list field -> its column in history_log
        super().__init__(config)

    @property
    def Interaction(self):  # noqa: N802 - the host's class of this name
        return self.host.Interaction

    def directly_indexed(self, interaction):
        """``interaction``'s columns as a :class:`DirectlyIndexed` of the host's ``Interaction``."""
        return self.host.build(DirectlyIndexed, self.Interaction)(interaction.interaction)

    @property
    def is_lean(self):
        """Whether rows carry history starts (False on RecBole's path, or before augmentation)."""
        return self.history_log is not None and HISTORY_START in self.inter_feat

    # --- augmentation ------------------------------------------------------------------------

    def data_augmentation(self):
        """RecBole's rows (each interaction with a predecessor, its history the <= L behaviours
        before it) as index arithmetic on the sorted log instead of a loop over rows."""
        if not self.lean:
            super().data_augmentation()
            return
        self.build_lean_rows()

    def build_lean_rows(self):
        """The rows of :meth:`data_augmentation`'s lean path: the log sorted by (user, time) kept
        flat in ``history_log``, each row its interaction's columns, its history's start in that
        log and its length."""
        self.logger.debug("data_augmentation (lean: histories gathered per batch)")
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        self.inter_feat = self.directly_indexed(self.inter_feat)
        user_start = user_starts(self.inter_feat[self.uid_field])
        position = torch.arange(len(user_start))
        targets = position[user_start != position]                            # one row per non-first interaction
        starts = torch.maximum(user_start[targets], targets - self.max_item_list_len)

        self.list_sources = {getattr(self, f"{field}_list_field"): field
                             for field in self.inter_feat if field != self.uid_field}
        self.history_log = self.Interaction({field: self.inter_feat[field] for field in self.list_sources.values()})
        rows = self.inter_feat[targets]
        rows.update(self.Interaction({self.item_list_length_field: targets - starts, HISTORY_START: starts}))
        self.inter_feat = rows

    # --- batches -----------------------------------------------------------------------------

    def gather_histories(self, rows, list_fields=None):
        """``rows`` (an Interaction of this dataset's rows) with every list field RecBole's rows
        hold (or those of ``list_fields``): [B, MAX_ITEM_LIST_LENGTH, ...], zero after each row's length."""
        start, length = rows[HISTORY_START], rows[self.item_list_length_field]
        steps = torch.arange(self.max_item_list_len)
        real = steps < length.unsqueeze(1)                                         # [B, L]
        positions = torch.where(real, start.unsqueeze(1) + steps, 0)               # padding reads row 0, zeroed below
        return self.rows_with_histories(rows, positions, real, list_fields)

    def rows_with_histories(self, rows, positions, real, list_fields=None, lengths=None):
        """``rows`` with the list fields read from ``history_log`` at ``positions`` [B, W] (zero
        where ``real`` [B, W] is False), and ``lengths`` [B] as their length if given."""
        columns = {field: value for field, value in rows.interaction.items() if field != HISTORY_START}
        if lengths is not None:
            columns[self.item_list_length_field] = lengths
        for list_field in list_fields or self.list_sources:
            values = self.history_log[self.list_sources[list_field]][positions]    # [B, L, ...]
            mask = real.view(real.shape + (1,) * (values.dim() - 2))
            columns[list_field] = torch.where(mask, values, torch.zeros((), dtype=values.dtype))
        return self.Interaction(columns)

    def __getitem__(self, index, join=True):
        if not self.is_lean:
            return super().__getitem__(index, join)
        if isinstance(index, str):
            if index in self.list_sources:  # one whole list column, dense, as RecBole holds it
                return self.gather_histories(self.inter_feat, [index])[index]
            return self.inter_feat[index]
        single = isinstance(index, (int, np.integer)) or (isinstance(index, (np.ndarray, torch.Tensor))
                                                           and index.ndim == 0)
        rows = self.gather_histories(self.inter_feat[[int(index)] if single else index])
        if join:
            rows = self.join(rows)
        return rows[0] if single else rows

    def inter_matrix(self, form="coo", value_field=None):
        """RecBole's: this dataset's interactions plus each user's first one (the history of the
        rows of length 1), read from the log instead of the dense lists."""
        if not self.is_lean:
            return super().inter_matrix(form, value_field)
        rows = self.inter_feat
        firsts = rows[rows[self.item_list_length_field] == 1]
        columns = {}
        for field, values in rows.interaction.items():
            if field in (HISTORY_START, self.item_list_length_field) or field in self.list_sources:
                continue
            first_values = self.history_log[field][firsts[HISTORY_START]] if field in self.history_log \
                else firsts[field]
            columns[field] = torch.cat([values, first_values])
        return self._create_sparse_matrix(self.Interaction(columns), self.uid_field, self.iid_field, form, value_field)

    # --- splits (RecBole's, on index tensors) -------------------------------------------------

    def _grouped_index(self, group_by_list):
        if not self.is_lean:
            return super()._grouped_index(group_by_list)
        return GroupedIndex(group_by_list)

    def _split_index_by_leave_one_out(self, grouped_index, leave_one_num):
        if not isinstance(grouped_index, GroupedIndex):
            return super()._split_index_by_leave_one_out(grouped_index, leave_one_num)
        return leave_one_out_parts(grouped_index, leave_one_num)

    def split_by_ratio(self, ratios, group_by=None):
        if not self.is_lean or group_by is None:
            return super().split_by_ratio(ratios, group_by)
        total = sum(ratios)
        ratios = [ratio / total for ratio in ratios]
        parts = ratio_parts(GroupedIndex(self.inter_feat[group_by].numpy()), ratios, self._calcu_split_ids)
        self._drop_unused_col()
        return [self.copy(self.inter_feat[index]) for index in parts]
