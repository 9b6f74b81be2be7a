"""Impressions with click labels whose histories come from a separate behaviour log.

The DIN and DSIN papers' industrial setting (Alibaba's display advertising): the rows to score are
impressions - a user, the ad shown (the item), the time, the click label (``LABEL_FIELD``) and the
impression's own context fields (the ad slot ``pid``) - in the ``.inter`` file, and a user's history
is not those rows but a second atomic file of the user's behaviours, ``<dataset>.<suffix>``
(``behavior_log_suffix``), with the user and time columns of the ``.inter`` file and behaviour fields
of its own: category, brand, behaviour type, and optionally an item id. RecBole reads it like any
atomic file (``load_col[<suffix>]`` chooses its columns, ``val_interval`` filters it); a field named
like an item feature (an ad's ``cate_id``, ``brand``) is remapped together with it, so a behaviour's
category and a candidate's are one token id and the models embed them with one table.

An impression's history is the user's behaviours **strictly before** its time - a behaviour in the
same second or later never enters (a click is often logged as a behaviour in the impression's own
second; it would leak the label) - the most recent ``MAX_ITEM_LIST_LENGTH`` of them; for DSIN the K
most recent sessions of the user's whole behaviour history before it (:class:`ImpressionDSINDataset`),
for DIEN with an aligned negative behaviour per step (:class:`ImpressionDIENDataset`). Times stay
exact float64 seconds for every model (``time_in_seconds``: :mod:`recbole_dien.compat`).

Both logs are kept once, on the lean path of :mod:`recbole_dien.data.lean`: ``history_log`` is the
behaviour log sorted by (user, time), each behaviour as the id of its distinct field values
(``behavior_id``; the values once per id in ``distinct_behaviors``, row 0 the padding); each row
(one per impression, in (user, time) order) holds where its history starts in that log and its
length, found by binary search on (user, time) (:func:`~recbole_dien.data.behavior_log.histories_before`);
the [B, L] histories are gathered per batch. Memory grows with impressions + behaviours.

Splits: ``time_split`` (:mod:`recbole_dien.config.time_split`) cuts the impressions at absolute
instants (the DSIN paper: 7 days of training, the 8th for test); without it, RecBole's
``eval_args`` split applies to the impressions.
"""
import os

import torch

from recbole_dien.config.time_split import boundaries, describe
from recbole_dien.data.behavior_log import distinct_behaviours, histories_before, sort_by_user_and_time
from recbole_dien.data.dataset import DIENNegatives, DSINSessions, log_sessions, session_positions
from recbole_dien.data.lean import HISTORY_START, LeanSequentialDataset
from recbole_dien.data.negatives import sample_log_negatives, sample_negative_sequences
from recbole_dien.utils.errors import DatasetError

# the computed column of the behaviour log: the id of each behaviour's distinct field values
BEHAVIOR_ID = "behavior_id"


class ImpressionDataset(LeanSequentialDataset):
    """Impressions (``.inter``) whose histories come from the behaviour log ``<dataset>.<suffix>``
    (module docstring); DIN's dataset, and the base of DIEN's and DSIN's.

    Attributes beyond RecBole's: ``behavior_fields`` (the log's behaviour fields, as loaded),
    ``context_fields`` (the impressions' own fields besides user, item, label and time),
    ``distinct_behaviors`` (Interaction: each field's value per behaviour id), ``history_log``
    (``behavior_id`` and the time of every behaviour, sorted by (user, time))."""

    time_in_seconds = True  # row and behaviour times compared exactly, never normalised (compat)

    def __init__(self, config):
        self.behavior_suffix = config["behavior_log_suffix"]
        self.behavior_fields, self.context_fields = [], []
        self.distinct_behaviors = None
        super().__init__(config)

    @property
    def behavior_id_field(self):
        return BEHAVIOR_ID

    @property
    def behavior_id_list_field(self):
        return BEHAVIOR_ID + self.config["LIST_SUFFIX"]

    @property
    def behavior_num(self):
        """Distinct behaviours + 1 (the padding id 0), like ``item_num``."""
        return len(self.distinct_behaviors)

    def get_behavior_feature(self):
        """The field values of each behaviour id (row 0: padding), as ``get_item_feature`` gives items'."""
        return self.distinct_behaviors

    def _behavior_log_name(self):
        return f"{self.behavior_suffix}_feat"  # RecBole's name for the feat of an atomic file's suffix

    # --- loading: the log as one more atomic file, its shared fields in the items' id spaces ----

    def _load_data(self, token, dataset_path):
        super()._load_data(token, dataset_path)
        self._load_behavior_log(token, dataset_path)

    def _load_behavior_log(self, token, dataset_path):
        path = os.path.join(dataset_path, f"{token}.{self.behavior_suffix}")
        if not os.path.isfile(path):  # recbole_dien.data.checks says so first; RecBole's create_dataset does not
            raise DatasetError(f"no behaviour log {path} (behavior_log_suffix={self.behavior_suffix!r})")
        # a field the log shares with the impressions, users or items keeps their type and source
        # (RecBole keys both by field name; the last file read would win)
        known = {name: dict(getattr(self, name)) for name in ("field2source", "field2type", "field2seqlen")}
        log = self._load_feat(path, self.behavior_suffix)
        if log is None:
            raise DatasetError(f"no column of the behaviour log {path} is loaded: list them in "
                               f"load_col['{self.behavior_suffix}']")
        for field in log.columns:
            if field not in known["field2type"]:
                continue
            if self.field2type[field] != known["field2type"][field]:
                raise DatasetError(f"{path}: column '{field}' is {self.field2type[field].value} but "
                                   f"{known['field2type'][field].value} elsewhere in the dataset; a field shared by "
                                   "the behaviours and the items (or impressions) needs one type in every file")
            for name, before in known.items():
                if field in before:
                    getattr(self, name)[field] = before[field]
        for key, field in (("USER_ID_FIELD", self.uid_field), ("TIME_FIELD", self.time_field)):
            if field not in log.columns:
                raise DatasetError(f"the behaviour log {path} has no column '{field}' ({key}, as in the .inter file) "
                                   "loaded; add it to the file and to load_col")
        if BEHAVIOR_ID in log.columns:
            raise DatasetError(f"{path}: '{BEHAVIOR_ID}' names the id each distinct behaviour is given; rename "
                               "that column")
        self.behavior_fields = [field for field in log.columns if field not in (self.uid_field, self.time_field)]
        if not self.behavior_fields:
            raise DatasetError(f"the behaviour log {path} loads no behaviour field besides user and time")
        setattr(self, self._behavior_log_name(), log)

    def _build_feat_name_list(self):
        names = super()._build_feat_name_list()
        log_name = self._behavior_log_name()
        if getattr(self, log_name, None) is not None and log_name not in names:
            names.append(log_name)  # filled, remapped, converted like any feat
        return names

    def _init_alias(self):
        """RecBole's, and the behaviour log's own token fields (``btag``) remapped too: RecBole
        remaps only fields whose source is one of its ``FeatureSource`` values, and a suffix's
        fields have the suffix as their source."""
        super()._init_alias()
        FeatureType = self.host.enums.FeatureType  # noqa: N806 - the host's enum
        own = [field for field in self.behavior_fields if self.field2source[field] == self.behavior_suffix
               and self.field2type[field] in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)]
        self._rest_fields = list(self._rest_fields) + [field for field in own if field not in self._rest_fields]

    def field2feats(self, field):
        """RecBole's feats of ``field``, plus the behaviour log where it has the field: its users,
        items, categories, ... are remapped together with the other files' (one id space)."""
        feats = super().field2feats(field)
        log = getattr(self, self._behavior_log_name(), None)
        if log is not None and field in log.columns and not any(feat is log for feat in feats):
            feats = feats + [log]
        return feats

    # --- rows ---------------------------------------------------------------------------------

    def data_augmentation(self):
        """One row per impression, with where its history lies in the sorted behaviour log."""
        self._check_field("uid_field", "time_field")
        if self.label_field not in self.inter_feat:
            raise DatasetError(f"impressions need their click label '{self.label_field}' (LABEL_FIELD) in "
                               f"{self.dataset_name}.inter: a label:float column of 1 (click) and 0")
        self.build_impression_rows()
        if not self.lean:  # RecBole's path: the rows hold their histories, dense
            self.inter_feat = self.gather_histories(self.inter_feat)
            self.history_log = None

    def _context_fields(self):
        FeatureType = self.host.enums.FeatureType  # noqa: N806 - the host's enum
        embeddable = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ, FeatureType.FLOAT)
        ids = (self.uid_field, self.iid_field, self.label_field, self.time_field)
        return [field for field in self.inter_feat.columns if field not in ids and self.field2type[field] in embeddable]

    def _take_behavior_log(self):
        """The behaviour log's columns, out of the dataset's feats (rows left in ``history_log`` only)."""
        name = self._behavior_log_name()
        log = getattr(self, name)
        setattr(self, name, None)
        self.feat_name_list = [feat for feat in self.feat_name_list if feat != name]
        return {field: log[field] for field in log.columns}

    def build_impression_rows(self):
        """``history_log``, ``distinct_behaviors`` and the rows; returns the sorted log's users
        (for the subclasses' per-behaviour columns)."""
        enums = self.host.enums
        self.context_fields = self._context_fields()
        log = self._take_behavior_log()
        users, times = log.pop(self.uid_field), log.pop(self.time_field)
        # behaviours of users without impressions (or without a user id) never enter a history
        shown = torch.zeros(self.user_num, dtype=torch.bool)
        shown[self.inter_feat[self.uid_field]] = True
        shown[0] = False
        order = sort_by_user_and_time(users, times)
        order = order[shown[users[order]]]
        if len(order) < len(users):
            self.logger.info(f"behaviour log: {len(users) - len(order)} of {len(users)} behaviours belong to no user "
                             "with impressions and are left out")
        if not len(order):
            raise DatasetError(f"the behaviour log {self.dataset_name}.{self.behavior_suffix} has no behaviour of any "
                               "user with impressions: nothing to build histories from")
        # each raw column is let go once its sorted copy exists: the build's peak stays a few columns of the log
        log_users, log_times = users[order], times[order]
        del users, times
        sorted_fields = {}
        for field in self.behavior_fields:
            sorted_fields[field] = log.pop(field)[order]
        del order
        ids, table = distinct_behaviours(sorted_fields)
        del sorted_fields
        self.distinct_behaviors = self.Interaction(table)
        self.history_log = self.Interaction({BEHAVIOR_ID: ids, self.time_field: log_times})

        # the impressions, in (user, time) order, each with its history's span in the log
        rows = self.directly_indexed(self.inter_feat)
        rows = rows[sort_by_user_and_time(rows[self.uid_field], rows[self.time_field])]
        first, end = histories_before(log_users, log_times, rows[self.uid_field], rows[self.time_field])
        start = torch.maximum(first, end - self.max_item_list_len)
        rows.update(self.Interaction({self.item_list_length_field: end - start, HISTORY_START: start}))
        self.inter_feat = rows

        list_suffix, length = self.config["LIST_SUFFIX"], self.max_item_list_len
        self.set_field_property(BEHAVIOR_ID, enums.FeatureType.TOKEN, self.behavior_suffix, 1)
        self.set_field_property(self.behavior_id_list_field, enums.FeatureType.TOKEN_SEQ,
                                enums.FeatureSource.INTERACTION, length)
        self.set_field_property(self.time_field + list_suffix, enums.FeatureType.FLOAT_SEQ,
                                enums.FeatureSource.INTERACTION, length)
        self.set_field_property(self.item_list_length_field, enums.FeatureType.TOKEN,
                                enums.FeatureSource.INTERACTION, 1)
        self.list_sources = {self.behavior_id_list_field: BEHAVIOR_ID, self.time_field + list_suffix: self.time_field}
        setattr(self, f"{self.time_field}_list_field", self.time_field + list_suffix)  # as RecBole names it
        return log_users

    def inter_matrix(self, form="coo", value_field=None):
        """The (user, ad) matrix of the impressions (every impression is a row)."""
        return self._create_sparse_matrix(self.inter_feat, self.uid_field, self.iid_field, form, value_field)

    def __str__(self):
        text = super().__str__()
        raw = getattr(self, self._behavior_log_name(), None)
        if self.distinct_behaviors is not None and self.history_log is not None:
            return (f"{text}\nThe number of behaviours: {len(self.history_log)} ({self.behavior_num - 1} distinct; "
                    f"fields {', '.join(self.behavior_fields)}); context fields: {', '.join(self.context_fields) or 'none'}")
        if raw is not None:
            return f"{text}\nThe number of behaviours: {len(raw)} (fields {', '.join(self.behavior_fields)})"
        return text

    # --- splits -------------------------------------------------------------------------------

    def build(self):
        """RecBole's splits, or with ``time_split`` the impressions cut at its instants: training
        before ``valid``, validation from ``valid`` to ``test``, test from ``test`` on; each part
        in time order."""
        setting = self.config["time_split"]
        if not setting:
            return super().build()
        self._change_feat_format()
        self._drop_unused_col()
        valid_start, test_start = boundaries(setting)
        times = self.inter_feat[self.time_field].double()
        order = torch.sort(times, stable=True).indices
        ordered = times[order]
        cuts = torch.searchsorted(ordered, torch.tensor([valid_start, test_start], dtype=torch.float64))
        parts = torch.tensor_split(order, cuts)
        for name, part in zip(("training", "validation", "test"), parts):
            if not len(part):
                raise DatasetError(
                    f"time_split ({describe(setting)}) leaves no {name} impressions: they span "
                    f"{float(ordered[0]):.0f} to {float(ordered[-1]):.0f} (unix seconds); move the boundaries inside")
        self.logger.info(f"time_split: {describe(setting)}; impressions: "
                         + ", ".join(f"{name} {len(part)}" for name, part in zip(("train", "valid", "test"), parts)))
        return [self.copy(self.inter_feat[part]) for part in parts]


class ImpressionDIENDataset(DIENNegatives, ImpressionDataset):
    """DIEN's impressions: every behaviour of the log gets an aligned negative behaviour (for the
    auxiliary loss), drawn once from ``seed`` uniformly over the log's distinct behaviours - never
    the positive's field values and, by default (``neg_exclude: history``), none of the behaviours
    any row's history shows up to that step (:func:`~recbole_dien.data.negatives.sample_log_negatives`);
    ``neg_resample_each_epoch: True`` draws fresh ones per training row whenever it is loaded."""

    @property
    def negatives_list_field(self):
        return self.neg_behavior_id_list_field

    @property
    def neg_behavior_id_field(self):
        return self.config["NEG_PREFIX"] + BEHAVIOR_ID

    @property
    def neg_behavior_id_list_field(self):
        return self.config["NEG_PREFIX"] + self.behavior_id_list_field

    def build_impression_rows(self):
        log_users = super().build_impression_rows()
        if self.behavior_num < 3:
            raise DatasetError("DIEN's auxiliary loss tells each next behaviour from a negative one drawn from the "
                               "log's other behaviours, but the log holds one distinct behaviour: set alpha=0 or "
                               "train DIN")
        generator = torch.Generator().manual_seed(self.config["seed"])
        negatives = sample_log_negatives(log_users, self.history_log[BEHAVIOR_ID], self.behavior_num,
                                         self.max_item_list_len, self.neg_exclude, generator)
        self.history_log.update(self.Interaction({self.neg_behavior_id_field: negatives}))
        enums = self.host.enums
        self.set_field_property(self.neg_behavior_id_field, enums.FeatureType.TOKEN, self.behavior_suffix, 1)
        self.set_field_property(self.neg_behavior_id_list_field, enums.FeatureType.TOKEN_SEQ,
                                enums.FeatureSource.INTERACTION, self.max_item_list_len)
        self.list_sources[self.neg_behavior_id_list_field] = self.neg_behavior_id_field
        return log_users

    def _sample(self, rows, generator=None):
        behaviours, lengths = rows[self.behavior_id_list_field], rows[self.item_list_length_field]
        negatives = sample_negative_sequences(behaviours.view(-1, behaviours.shape[-1]), lengths.view(-1),
                                              self.behavior_num, self.neg_exclude, generator)
        return negatives.view(behaviours.shape)


class ImpressionDSINDataset(DSINSessions, ImpressionDataset):
    """DSIN's impressions: each row's history is the K most recent sessions (``max_sessions``) of
    its user's behaviours strictly before the impression, each its T most recent
    (``max_session_length``), sessions cut where adjacent behaviours of the log are more than
    ``session_gap`` apart - from the user's whole behaviour history, whatever
    ``MAX_ITEM_LIST_LENGTH`` is (as :class:`~recbole_dien.data.dataset.DSINDataset` does for
    interaction logs). The session holding the impression's time is cut at the impression: its
    later behaviours belong to the future."""

    def build_impression_rows(self):
        log_users = super().build_impression_rows()
        self.log_sessions = log_sessions(log_users, self.history_log[self.time_field], self.session_settings[0])
        for list_field in self.list_sources:
            self.field2seqlen[list_field] = self.session_width
        return log_users

    def data_augmentation(self):
        super().data_augmentation()
        if not self.lean:
            self.log_sessions = None

    def gather_histories(self, rows, list_fields=None):
        """``rows`` with every list field [B, K*T, ...] and ``item_length`` [B] of their sessions
        (0 for an impression whose user has no earlier behaviour)."""
        length = rows[self.item_list_length_field]
        last = rows[HISTORY_START] + length - 1                                # the last behaviour before it
        positions, real, lengths = session_positions(self.log_sessions, last.clamp(min=0), *self.session_settings[1:])
        has_history = (length > 0).unsqueeze(1)
        real = real & has_history
        positions = torch.where(real, positions, 0)
        lengths = torch.where(has_history.squeeze(1), lengths, 0)
        return self.rows_with_histories(rows, positions, real, list_fields, lengths)
