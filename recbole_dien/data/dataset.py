"""The plugin's own ``<Model>Dataset`` classes; :func:`recbole_dien.data.create_dataset` prefers
them over the host's for the plugin's models. Host-neutral, like :mod:`recbole_dien.data.lean`:
built on RecBole's or hopwise's ``SequentialDataset`` by :mod:`recbole_dien.utils.hosts`."""
import torch

from recbole_dien.data.lean import HISTORY_START, LeanSequentialDataset, user_starts
from recbole_dien.data.negatives import sample_log_negatives, sample_negative_sequences


class DIENNegatives:
    """DIEN's negative-behaviour settings on a dataset - ``neg_exclude`` (``history`` |
    ``positive``), ``neg_resample_each_epoch`` - and the resampling itself: with it, every training
    row loaded gets fresh negatives (``_sample``) in ``negatives_list_field``; evaluation splits
    never resample (negatives only feed the training loss). Shared by :class:`DIENDataset` and
    the impressions' DIEN dataset."""

    def __init__(self, config):
        self.neg_exclude = config["neg_exclude"] or "history"
        self.resample_each_epoch = bool(config["neg_resample_each_epoch"])
        super().__init__(config)

    def build(self):
        datasets = super().build()
        for evaluation_split in datasets[1:]:  # negatives only feed the training loss
            evaluation_split.resample_each_epoch = False
        return datasets

    def __getitem__(self, index, join=True):
        rows = super().__getitem__(index, join)
        if self.resample_each_epoch and isinstance(rows, self.Interaction):
            rows.update(self.Interaction({self.negatives_list_field: self._sample(rows)}))
        return rows


class DIENDataset(DIENNegatives, LeanSequentialDataset):
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

    @property
    def neg_item_field(self):
        return self.config["NEG_PREFIX"] + self.iid_field

    @property
    def negatives_list_field(self):
        return self.neg_item_list_field

    @property
    def neg_item_list_field(self):
        return self.neg_item_field + self.config["LIST_SUFFIX"]

    def data_augmentation(self):
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        generator = torch.Generator().manual_seed(self.config["seed"])
        negatives = sample_log_negatives(self.inter_feat[self.uid_field], self.inter_feat[self.iid_field],
                                         self.item_num, self.max_item_list_len, self.neg_exclude, generator)
        enums = self.host.enums
        self.set_field_property(self.neg_item_field, enums.FeatureType.TOKEN, enums.FeatureSource.INTERACTION, 1)
        self.inter_feat.update(self.Interaction({self.neg_item_field: negatives}))
        super().data_augmentation()  # its list becomes NEG_ITEM_SEQ
        self._del_col(self.inter_feat, self.neg_item_field)  # the row's own negative is no model input

    def _sample(self, rows, generator=None):
        item_seq, lengths = rows[self.item_id_list_field], rows[self.item_list_length_field]
        negatives = sample_negative_sequences(item_seq.view(-1, item_seq.shape[-1]), lengths.view(-1),
                                              self.item_num, self.neg_exclude, generator)
        return negatives.view(item_seq.shape)  # one row (dataset[i]) or a batch



def log_sessions(users, times, session_gap):
    """The sessions of a log sorted by (user, time): a new one starts at each user's first
    interaction and wherever adjacent interactions are more than ``session_gap`` apart (the
    comparison DSIN's ``split_sessions`` makes, in float64).

    Returns ``session`` [N] (each position's session, numbered over the whole log), and per
    session ``first`` [S], ``last`` [S] (its first and last position) and ``users_first`` [S]
    (the first session of its user)."""
    position = torch.arange(len(users))
    user_start = user_starts(users)
    starts = user_start == position
    starts[1:] |= torch.diff(times.double()) > session_gap
    session = torch.cumsum(starts, 0) - 1
    first = position[starts]
    last = torch.cat([first[1:] - 1, position[-1:]])
    return {"session": session, "first": first, "last": last, "users_first": session[user_start[first]]}


def session_positions(sessions, last, max_sessions, max_session_length):
    """The log positions of DSIN's input for histories ending at log position ``last`` [B]: the
    K most recent sessions up to there, each its T most recent behaviours (``sessions``:
    :func:`log_sessions`), oldest first.

    Returns ``positions`` [B, K*T] (right-padded with 0), ``real`` [B, K*T] and ``lengths`` [B]."""
    K, T = max_sessions, max_session_length
    newest = sessions["session"][last]                                                     # [B]
    kept = newest.unsqueeze(1) - (K - 1) + torch.arange(K)                                # [B, K], oldest first
    valid = kept >= sessions["users_first"][newest].unsqueeze(1)                           # the user's own sessions
    kept = kept.clamp(min=0)
    end = torch.minimum(sessions["last"][kept], last.unsqueeze(1))                         # the newest ends at last
    begin = torch.maximum(sessions["first"][kept], end - T + 1)
    counts = torch.where(valid, end - begin + 1, 0)                                        # [B, K]
    lengths = counts.sum(1)
    steps = torch.arange(T)
    in_session = steps < counts.unsqueeze(-1)                                              # [B, K, T]
    # each kept behaviour's column: its session's offset plus its step; the others to one extra column
    column = torch.where(in_session, (torch.cumsum(counts, 1) - counts).unsqueeze(-1) + steps, K * T)
    position = torch.where(in_session, begin.unsqueeze(-1) + steps, 0)
    positions = torch.zeros(len(last), K * T + 1, dtype=torch.long).scatter_(1, column.flatten(1), position.flatten(1))
    return positions[:, :-1], torch.arange(K * T) < lengths.unsqueeze(1), lengths


class DSINSessions:
    """DSIN's session knobs on a dataset (``session_gap``, ``max_sessions`` K,
    ``max_session_length`` T of props/DSIN.yaml) and the log's sessions once cut
    (:func:`log_sessions`); shared by :class:`DSINDataset` and the impressions' DSIN dataset."""

    def __init__(self, config):
        from recbole_dien.config.knobs import model_hyperparameters

        knobs = model_hyperparameters(config, "DSIN")
        self.session_settings = (knobs["session_gap"], knobs["max_sessions"], knobs["max_session_length"])
        self.log_sessions = None
        super().__init__(config)

    @property
    def session_width(self):
        """K*T: the width of every list column."""
        return self.session_settings[1] * self.session_settings[2]


class DSINDataset(DSINSessions, LeanSequentialDataset):
    """A sequential dataset whose rows' histories are DSIN's input, from the user's whole history
    before the target whatever ``MAX_ITEM_LIST_LENGTH`` is: the behaviours of the K most recent
    sessions (``max_sessions``), each its T most recent (``max_session_length``), sessions cut at
    gaps of more than ``session_gap`` (the knobs of props/DSIN.yaml), oldest first.

    Every list column (item ids, timestamps, ...) holds at most K*T behaviours, so a batch costs
    what enters DSIN's session grid. Cutting them into sessions again (as the model does) gives the
    same sessions: inside a kept session adjacent behaviours are adjacent in the log, and between
    two kept sessions the gap is at least the one that separates them in the log.

    The rows are RecBole's (one per interaction with a predecessor); ``item_length`` of a row in
    ``inter_feat`` is RecBole's history window on the lean path, and a batch's is the number of
    behaviours in its sessions. On the lean path the positions are computed per batch from the
    log's sessions (memory grows with N); on RecBole's path (``lean_sequential_data: False``) the
    rows hold them as dense [rows, K*T] columns.
    """

    def data_augmentation(self):
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)  # as build_lean_rows does (stable)
        self.log_sessions = log_sessions(self.inter_feat[self.uid_field], self.inter_feat[self.time_field],
                                         self.session_settings[0])
        self.build_lean_rows()
        for list_field in self.list_sources:
            self.field2seqlen[list_field] = self.session_width
        if not self.lean:  # RecBole's path: the rows hold their histories, dense
            self.inter_feat = self.gather_histories(self.inter_feat)
            self.history_log = self.log_sessions = None

    def gather_histories(self, rows, list_fields=None):
        """``rows`` with every list field [B, K*T, ...] and ``item_length`` [B] of their sessions."""
        last = rows[HISTORY_START] + rows[self.item_list_length_field] - 1                 # the target's predecessor
        positions, real, lengths = session_positions(self.log_sessions, last, *self.session_settings[1:])
        return self.rows_with_histories(rows, positions, real, list_fields, lengths)
