"""Building blocks shared by DIN, DIEN and DSIN.

* :class:`FeatureEmbedding` - the embedding of an item (or a user) = its id ⊕ its side features.
* :class:`ActivationUnit` - DIN's attention MLP over [q, k, q − k, q ⊙ k];
  :class:`BilinearAttention` - the bilinear form k W q (DIEN's eq. 8), with the same interface.
* :class:`Dice` - DIN's data-adaptive activation; :class:`MLP` - the fully connected towers.
* :func:`sequence_mask`, :func:`masked_softmax`; :func:`time_major_positions` and
  :func:`packed_softmax` for work on the real positions of right-padded histories only (their cost
  follows the behaviours, not ``MAX_ITEM_LIST_LENGTH``).
"""
import contextlib
import keyword
import re
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dien.utils.hosts import host_of


def sequence_mask(lengths, max_length):
    """``mask[b, t] = t < lengths[b]`` -> [B, max_length] bool."""
    return torch.arange(max_length, device=lengths.device) < lengths.unsqueeze(-1)


def masked_softmax(scores, mask):
    """Softmax over the last dim, restricted to ``mask``; an all-masked row gets all-zero weights."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * mask


def time_major_positions(lengths):
    """The real positions of right-padded sequences whose ``lengths`` are sorted in descending
    order, step by step (the layout of ``torch.nn.utils.rnn.PackedSequence``).

    Returns ``steps`` [N] and ``rows`` [N] (step 0's rows, then step 1's, ...; N = the sum of the
    lengths) and ``batch_sizes``, a list: the rows still active at each step, a prefix of them.
    """
    longest = int(lengths[0]) if len(lengths) else 0
    active = lengths.unsqueeze(0) > torch.arange(longest, device=lengths.device).unsqueeze(1)  # [T, B]
    steps, rows = active.nonzero(as_tuple=True)
    return steps, rows, active.sum(1).tolist()


def gru_step(gru, state, projected_input, attention=None, variant="GRU"):
    """One step of ``gru`` (a one-layer ``torch.nn.GRU``, its gate layout: reset r, keep z,
    candidate n) from ``state`` [R, H] and the input's projection W_i x + b_i [R, 3H]; with
    ``attention`` [R, 1], the attentional update of AGRU / AUGRU (see :class:`InterestEvolution`)."""
    hidden = gru.hidden_size
    x_rz, x_n = projected_input.split([2 * hidden, hidden], dim=-1)
    h_rz, h_n = F.linear(state, gru.weight_hh_l0, gru.bias_hh_l0).split([2 * hidden, hidden], dim=-1)
    reset, keep = torch.sigmoid(x_rz + h_rz).chunk(2, dim=-1)
    candidate = torch.tanh(x_n + reset * h_n)
    return state + attentional_update(keep, attention, variant) * (candidate - state)


def attentional_update(keep, attention, variant):
    """The share of the candidate state taken at a step (1 - the share of the state kept), from
    the GRU's keep gate and, for AGRU / AUGRU, the attention (see :class:`InterestEvolution`)."""
    if variant == "GRU":
        return 1 - keep
    if variant == "AGRU":
        return attention
    if variant == "AUGRU":
        return attention * (1 - keep)
    return 1 - (1 - attention) * keep  # the authors' AUGRU: the keep gate scaled by 1 - a


def packed_gru_states(gru, inputs, batch_sizes):
    """The states of ``gru`` (one-layer ``torch.nn.GRU``, zero initial state) over a packed
    sequence - ``inputs`` [N, I] step by step, ``batch_sizes`` the rows active at each step
    (:func:`time_major_positions`) - in the same layout: [N, H].

    What ``gru(PackedSequence(inputs, batch_sizes))`` computes, with a backward that costs what
    the forward does: torch's CPU implementation slices the packed input step by step, and the
    backward of each slice fills a gradient the size of the whole input (measured: 40% of a
    DIEN training step at MAX_ITEM_LIST_LENGTH 100)."""
    projected = F.linear(inputs, gru.weight_ih_l0, gru.bias_ih_l0)                  # [N, 3H], one product
    state = projected.new_zeros(batch_sizes[0] if batch_sizes else 0, gru.hidden_size)
    states = []
    for x in projected.split(batch_sizes):
        state = gru_step(gru, state[:len(x)], x)
        states.append(state)
    return torch.cat(states) if states else projected.new_zeros(0, gru.hidden_size)


def packed_softmax(scores, groups, n_groups):
    """Softmax of ``scores`` [N, ...] within each group (``groups`` [N] in 0..n_groups-1): the
    masked softmax over a history's real positions, with the positions packed."""
    shape = (n_groups,) + scores.shape[1:]
    index = groups.view(-1, *([1] * (scores.dim() - 1))).expand_as(scores)
    # shifting by a constant per group leaves the softmax unchanged; no gradient needed through it
    peak = scores.new_full(shape, torch.finfo(scores.dtype).min).scatter_reduce(
        0, index, scores.detach(), "amax", include_self=True)
    exp = torch.exp(scores - peak.gather(0, index))
    return exp / exp.new_zeros(shape).index_add(0, groups, exp).gather(0, index)


def batch_norm(norm, x):
    """``norm(x)`` for a BatchNorm over [N, C], except that a training batch of a single row is
    normalised with the running statistics: one row has no batch variance, and BatchNorm would
    refuse it (the last batch of an epoch can hold one row)."""
    if norm.training and x.shape[0] == 1:
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
    return norm(x)


class Dice(nn.Module):
    r"""Dice (Zhou et al., 2018, eq. 9): :math:`f(s) = p(s)\,s + (1 - p(s))\,\alpha s`,
    :math:`p(s) = \sigma\big((s - E[s]) / \sqrt{Var[s] + \epsilon}\big)`.

    E[s], Var[s] are the mini-batch statistics in training and their moving averages in
    evaluation (a BatchNorm without affine parameters). Accepts [..., dim].
    """

    def __init__(self, dim, eps=1e-8):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, eps=eps, affine=False)
        self.alpha = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        p = torch.sigmoid(batch_norm(self.norm, x.reshape(-1, x.shape[-1]))).view_as(x)
        return p * x + (1 - p) * self.alpha * x


def activation_layer(name, dim):
    name = name.lower()
    if name == "dice":
        return Dice(dim)
    if name == "prelu":
        return nn.PReLU(dim)
    layers = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "none": nn.Identity}
    if name not in layers:
        raise ValueError(f"unknown activation '{name}' (choose from dice, prelu, {', '.join(layers)})")
    return layers[name]()


class MLP(nn.Module):
    """Linear -> activation (-> dropout) for each hidden size; optional BatchNorm on the input."""

    def __init__(self, sizes, activation="dice", dropout=0.0, input_batch_norm=False):
        super().__init__()
        self.input_norm = nn.BatchNorm1d(sizes[0]) if input_batch_norm else None
        layers = []
        for in_size, out_size in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(in_size, out_size), activation_layer(activation, out_size)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.output_size = sizes[-1]

    def forward(self, x):  # [..., sizes[0]] -> [..., sizes[-1]]
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        if self.input_norm is not None:
            x = batch_norm(self.input_norm, x)
        return self.layers(x).view(*shape, self.output_size)


KEY_BLOCK = 10          # history positions scored together by ActivationUnit.score_key_blocks


class ActivationUnit(nn.Module):
    r"""DIN's activation unit: :math:`a(q, k) = \mathrm{MLP}([q, k, q - k, q \odot k])`.

    The first layer :math:`W[q, k, q-k, q \odot k]` is evaluated as
    :math:`(W_q + W_d) q + (W_k - W_d) k + W_p (q \odot k)` - the same function and parameters as
    one ``Linear(4D, H)`` on the concatenation, but the query term is computed once per query
    instead of once per behaviour, and nothing of size 4D is materialised.

    ``query`` [..., D] and ``keys`` [..., L, D] broadcast against each other (``query[..., None, :]``
    against ``keys``), so one call scores a batch of candidates against a batch of histories.
    Returns raw scores [..., L].
    """

    def __init__(self, dim, hidden_sizes=(80, 40), activation="sigmoid", dropout=0.0):
        super().__init__()
        self.dim = dim
        self.input_layer = nn.Linear(4 * dim, hidden_sizes[0])
        self.input_activation = activation_layer(activation, hidden_sizes[0])
        self.hidden = MLP(list(hidden_sizes), activation, dropout)
        self.output_layer = nn.Linear(hidden_sizes[-1], 1)

    def project_keys(self, keys):
        """The query-independent term (W_k - W_d) k: [..., D] -> [..., H]. Pass it to
        :meth:`forward` to score many queries against the same keys without recomputing it."""
        _, w_k, w_diff, _ = self.input_layer.weight.split(self.dim, dim=1)
        return F.linear(keys, w_k - w_diff)

    def project_query(self, query):
        """The key-independent term (W_q + W_d) q + b: [..., D] -> [..., H]."""
        w_q, _, w_diff, _ = self.input_layer.weight.split(self.dim, dim=1)
        return F.linear(query, w_q + w_diff, self.input_layer.bias)

    def score_projected(self, query, keys, query_projection, key_projection):
        """Raw scores of queries against keys whose projections are given; all four broadcast
        against each other (e.g. [N, D] with [N, D] for packed pairs, or [1, C, D] with [S, 1, D]
        for every key against every query) -> the broadcast shape without D."""
        _, _, _, w_prod = self.input_layer.weight.split(self.dim, dim=1)
        hidden = query_projection + key_projection + F.linear(query * keys, w_prod)  # [..., H]
        shape = hidden.shape[:-1]
        hidden = self.hidden(self.input_activation(hidden.reshape(-1, hidden.shape[-1])))
        return self.output_layer(hidden).view(shape)

    def score_every_pair(self, queries, keys, query_projections, key_projections):
        """Raw scores of every key [S, D] against every query [C, D] -> [S, C], given their
        projections [C, H] and [S, H]. The product term W_p (q ⊙ k) of all pairs is one matrix
        product, keys [S, D] @ (W_p ⊙ q)ᵀ [D, C·H], with no [S, C, D] intermediate."""
        _, _, _, w_prod = self.input_layer.weight.split(self.dim, dim=1)             # [H, D]
        per_query = (w_prod.unsqueeze(0) * queries.unsqueeze(1)).flatten(0, 1)       # [C·H, D]
        hidden = torch.matmul(keys, per_query.t()).view(len(keys), len(queries), -1)  # [S, C, H]
        hidden = hidden + key_projections.unsqueeze(1) + query_projections.unsqueeze(0)
        shape = hidden.shape[:-1]
        hidden = self.hidden(self.input_activation(hidden.reshape(-1, hidden.shape[-1])))
        return self.output_layer(hidden).view(shape)

    def score_key_blocks(self, query, keys, block=None):
        """:meth:`forward` of ``query`` [B, C, D] against ``keys`` [B, L, D], ``block`` key positions
        at a time (default :data:`KEY_BLOCK`) -> [B, C, L]. The same numbers; each block's
        intermediates are [B, C, block, H] instead of one [B, C, L, H] for all L, so that they stay
        in the CPU's cache where the whole one streams through memory (fixed-shape serving
        programs, :mod:`recbole_dien.serving.export`). DIEN's programs at ml-100k sizes, L = 50
        (2 cores, 2026-12-05), one user x 100 candidates p50 ms and 100 users x 100 candidates
        pairs/s, torch.export / ONNX Runtime: block 1: 17.6 ms, 22,200 / 6.19 ms,
        44,700; 5: 9.62, 38,100 / 3.81, 50,800; 10: 9.26, 36,500 / 3.80, 50,100; 25: 10.0, 34,600 /
        3.79, 48,500; all 50 at once: 10.0, 35,700 / 5.91, 40,000."""
        block = block or KEY_BLOCK
        query_projection, key_projections = self.project_query(query), self.project_keys(keys)    # [B, C, H], [B, L, H]
        return torch.cat([self.score_projected(query.unsqueeze(-2), keys[:, start:start + block].unsqueeze(1),
                                               query_projection.unsqueeze(-2),
                                               key_projections[:, start:start + block].unsqueeze(1))  # [B, C, block]
                          for start in range(0, keys.shape[1], block)], dim=-1)

    @property
    def pair_width(self):
        """Numbers per (query, key) pair in the largest intermediate (the first hidden layer)."""
        return self.input_layer.out_features

    def forward(self, query, keys, key_projection=None):
        if key_projection is None:
            key_projection = self.project_keys(keys)                          # [..., L, H]
        query = query.unsqueeze(-2)                                           # [..., 1, D]
        return self.score_projected(query, keys, self.project_query(query), key_projection)  # [..., L]


class BilinearAttention(nn.Module):
    r"""Bilinear attention scores :math:`s(q, k) = k^\top W q` (DIEN's eq. 8, :math:`h_t W e_a`),
    with :math:`W` [key_dim, query_dim].

    The interface of :class:`ActivationUnit`, so a model can take either: ``project_query`` is
    :math:`W q` (computed once per query), ``project_keys`` the keys themselves, and a score is
    the dot product of the two. Returns raw scores [..., L]."""

    def __init__(self, query_dim, key_dim):
        super().__init__()
        self.weight = nn.Linear(query_dim, key_dim, bias=False)                 # W: q -> W q

    pair_width = 1  # per (query, key) pair: one product

    def project_keys(self, keys):
        return keys

    def project_query(self, query):
        return self.weight(query)

    def score_projected(self, query, keys, query_projection, key_projection):
        """``query_projection`` (W q) against ``key_projection`` (k), broadcast -> the broadcast
        shape without the last dim; ``query`` and ``keys`` are not needed again."""
        return (query_projection * key_projection).sum(-1)

    def score_every_pair(self, queries, keys, query_projections, key_projections):
        """Every key [S, K] against every query's W q [C, K] -> [S, C], one matrix product."""
        return torch.matmul(key_projections, query_projections.t())

    def forward(self, query, keys, key_projection=None):
        """query [..., Q] against keys [..., L, K] -> [..., L]."""
        return torch.matmul(keys, self.project_query(query).unsqueeze(-1)).squeeze(-1)


def attribute_name(field):
    """A field name usable as a sub-module name: itself unless it is a Python keyword (ml-100k's
    ``class``) or not an identifier, which ``torch.export`` / ``torch.fx`` code cannot address."""
    if field.isidentifier() and not keyword.iskeyword(field):
        return field
    return "field_" + re.sub(r"\W", "_", field)


class FieldModuleDict(nn.ModuleDict):
    """``nn.ModuleDict`` keyed by field names, stored under :func:`attribute_name`."""

    def __getitem__(self, field):
        return super().__getitem__(attribute_name(field))

    def __setitem__(self, field, module):
        super().__setitem__(attribute_name(field), module)


class FieldParameterDict(nn.ParameterDict):
    """``nn.ParameterDict`` keyed by field names, stored under :func:`attribute_name`."""

    def __getitem__(self, field):
        return super().__getitem__(attribute_name(field))

    def __setitem__(self, field, parameter):
        super().__setitem__(attribute_name(field), parameter)


class FeatureEmbedding(nn.Module):
    r"""Embeds a RecBole feature table (``item_feat`` or ``user_feat``) row by id; or the distinct
    behaviours of a behaviour log (``behavior``: :mod:`recbole_dien.data.impressions`), or the
    context fields of impression rows (``context``: no table, the values come with each row).

    The output for an id is the concatenation over fields of: a token embedding (``token``), the
    pooled embeddings of its tokens (``token_seq``; mean over non-padding tokens, or sum / max), and
    the value times a learned vector (``float``). The item id itself is one of the token fields
    when ``include_id``. ``float_seq`` fields are skipped with a warning.

    The rows are computed once per distinct id in a batch and then gathered, so a history of
    B x L behaviours costs one embedding per distinct item.

    ``unknown_id_dropout`` p: in training, each distinct id of a batch has its id part replaced by
    row 0 of the id embedding (the padding token, otherwise unused) with probability p, its side
    features kept, so that row 0 learns the id part of an item (or user) never seen in training
    (:data:`UNKNOWN_ID`; recbole_dien.serving scores unknown items with it).

    Serving (:mod:`recbole_dien.serving.export`): inside :meth:`rows_of_request` the ids index the
    feature rows a request brings (plain tensors, one per field) instead of the dataset's table, so
    an exported program embeds items and users it was never given.

    ``shared_with`` (another FeatureEmbedding): a field both embed uses that one's embedding table
    (or float vector), so that a behaviour's category and an item's category are one token with one
    vector (the dataset remaps them into one id space).

    Optionally tracks how often each embedding row occurs in the training data, for DIN's
    mini-batch aware regularisation (:meth:`minibatch_l2`).
    """

    UNKNOWN_ID = 0  # the id embedding row an unknown id is embedded with (learned with unknown_id_dropout)
    SOURCES = ("item", "user", "behavior", "context")

    def __init__(self, dataset, source, embedding_size, include_id=True, token_seq_pooling="mean",
                 unknown_id_dropout=0.0, shared_with=None):
        super().__init__()
        if source == "item":
            table, id_field = dataset.get_item_feature(), dataset.iid_field
        elif source == "user":
            table, id_field = dataset.get_user_feature(), dataset.uid_field
        elif source == "behavior":  # the distinct behaviours, by behaviour id (itself no feature)
            table, id_field, include_id = dataset.get_behavior_feature(), None, False
        elif source == "context":   # each row brings its own values: no table
            table, id_field, include_id = None, None, False
        else:
            raise ValueError(f"source must be one of {', '.join(self.SOURCES)}, not '{source}'")
        if token_seq_pooling not in ("mean", "sum", "max"):
            raise ValueError(f"token_seq_pooling must be mean, sum or max, not '{token_seq_pooling}'")
        if not 0 <= unknown_id_dropout < 1:
            raise ValueError(f"unknown_id_dropout must be >= 0 and < 1, not {unknown_id_dropout}")
        self.source = source
        self.id_field = id_field if include_id else None
        self.unknown_id_dropout = unknown_id_dropout
        self.request_rows = None  # serving: {field: values} of the request's rows (rows_of_request)
        self.embedding_size = embedding_size
        self.pooling = token_seq_pooling
        self.num_rows = len(table) if table is not None else 0

        if table is None:
            fields = list(dataset.context_fields)
        else:
            fields = [id_field] if include_id else []
            fields += [f for f in table.columns if f != id_field]
        shared = shared_with.fields if shared_with is not None else ()
        self.token_fields, self.token_seq_fields, self.float_fields = [], [], []
        self.shared_fields = []  # the fields whose table (or vector) is shared_with's
        self.embeddings = FieldModuleDict()
        self.float_weights = FieldParameterDict()
        FeatureType = host_of(dataset).FeatureType  # noqa: N806 - RecBole's and hopwise's never compare equal
        for field in fields:
            ftype = dataset.field2type[field]
            values = table[field] if table is not None else None
            if field in shared:
                self.shared_fields.append(field)
            if ftype == FeatureType.TOKEN:
                self.token_fields.append(field)
                self.embeddings[field] = shared_with.embeddings[field] if field in shared else \
                    nn.Embedding(dataset.num(field), embedding_size)
            elif ftype == FeatureType.TOKEN_SEQ:
                self.token_seq_fields.append(field)
                self.embeddings[field] = shared_with.embeddings[field] if field in shared else \
                    nn.Embedding(dataset.num(field), embedding_size, padding_idx=0)
            elif ftype == FeatureType.FLOAT and (values is None or values.dim() == 1):
                self.float_fields.append(field)
                if field in shared:
                    self.float_weights[field] = shared_with.float_weights[field]
                else:
                    self.float_weights[field] = nn.Parameter(torch.empty(embedding_size))
                    nn.init.normal_(self.float_weights[field], std=embedding_size ** -0.5)
            else:
                warnings.warn(f"{source} field '{field}' ({ftype.value}) is not embedded")
                if field in shared:
                    self.shared_fields.remove(field)
                continue
            if values is not None:
                self.register_buffer(self._buffer(field), values.clone(), persistent=False)
        self.fields = self.token_fields + self.token_seq_fields + self.float_fields
        self.output_size = len(self.fields) * embedding_size

    @staticmethod
    def _buffer(field):
        return f"table_{attribute_name(field)}"

    def column(self, field):
        return getattr(self, self._buffer(field))

    def embed_field(self, field, values):
        """One field's part of the embedding: values [N] (token, float) or [N, S] (token_seq) -> [N, E]."""
        if field in self.float_fields:
            return values.float().unsqueeze(-1) * self.float_weights[field]
        vectors = self.embeddings[field](values)
        if field not in self.token_seq_fields:
            return vectors
        present = (values != 0).unsqueeze(-1)                                   # [N, S, 1]
        if self.pooling == "max":
            pooled = vectors.masked_fill(~present, float("-inf")).max(dim=1).values
            return pooled.masked_fill(~present.any(dim=1), 0.0)
        # mask explicitly: a model's weight init may overwrite the padding row
        pooled = (vectors * present).sum(dim=1)
        return pooled / present.sum(dim=1).clamp(min=1) if self.pooling == "mean" else pooled

    def embed_columns(self, columns):
        """``columns`` {field: values of N rows} (every field of :attr:`fields`, at least one) ->
        [N, output_size]."""
        return torch.cat([self.embed_field(field, columns[field]) for field in self.fields], dim=-1)

    def embed_rows(self, ids):
        """[N] ids -> [N, output_size]."""
        if not self.fields:
            return ids.new_zeros((ids.shape[0], 0), dtype=torch.float)
        columns = {field: self.column(field)[ids] for field in self.fields}
        if self.training and self.unknown_id_dropout > 0 and self.id_field is not None:
            dropped = torch.rand(ids.shape, device=ids.device) < self.unknown_id_dropout
            columns[self.id_field] = columns[self.id_field].masked_fill(dropped, self.UNKNOWN_ID)
        return self.embed_columns(columns)

    @contextlib.contextmanager
    def rows_of_request(self, columns):
        """Within the block, ids index ``columns`` ({field: values [N, ...]}, the request's own feature
        rows, row 0 the padding row) instead of the dataset's table; each row is embedded once."""
        self.request_rows = columns
        try:
            yield
        finally:
            self.request_rows = None

    def forward(self, ids, transform=None):
        """ids of any shape -> ids.shape + (output_size,), or + (its size,) after ``transform``,
        which is applied once per distinct id (e.g. a linear layer on many repeated items)."""
        if self.request_rows is not None:  # serving: the request's rows, no data-dependent shapes
            if not self.fields:
                return ids.new_zeros((*ids.shape, 0), dtype=torch.float)
            rows = self.embed_columns(self.request_rows)
            rows = transform(rows) if transform is not None else rows
            return rows.index_select(0, ids.reshape(-1)).view(*ids.shape, rows.shape[-1])
        distinct, position = torch.unique(ids, return_inverse=True)
        rows = self.embed_rows(distinct)
        if transform is not None:
            rows = transform(rows)
        # index_select: its backward is an index_add, far cheaper on CPU than advanced indexing's
        return rows.index_select(0, position.reshape(-1)).view(*ids.shape, rows.shape[-1])

    # --- mini-batch aware regularisation (Zhou et al., 2018, section 4.1) ---

    def token_occurrences(self, occurrences):
        """``occurrences[r]``: how often table row ``r`` occurs in the training samples ->
        {field: how often each of its tokens occurs} over the token and token_seq fields."""
        occurrences = occurrences.float()
        counts = {}
        for field in self.token_fields + self.token_seq_fields:
            column = self.column(field)
            per_token = occurrences.unsqueeze(-1).expand_as(column) if column.dim() == 2 else occurrences
            counts[field] = torch.zeros(self.embeddings[field].num_embeddings, device=occurrences.device)
            counts[field].index_add_(0, column.reshape(-1), per_token.reshape(-1))
        return counts

    def set_token_occurrences(self, counts):
        """Keep {field: per-token occurrences} (:meth:`token_occurrences`) as the n_j of the paper."""
        for field, field_counts in counts.items():
            self.register_buffer(f"occurrences_{field}", field_counts.clamp(min=1.0), persistent=False)

    def set_row_occurrences(self, occurrences):
        """``occurrences[r]``: how often table row ``r`` occurs in the training samples. Derives,
        for every token of every field, how often it occurs (the n_j of the paper)."""
        self.set_token_occurrences(self.token_occurrences(occurrences))

    def used_tokens(self, ids):
        """{field: the distinct tokens (padding of token_seq fields left out) the rows ``ids`` use}."""
        rows = torch.unique(ids)
        used = {}
        for field in self.token_fields + self.token_seq_fields:
            tokens = torch.unique(self.column(field)[rows])
            used[field] = tokens[tokens != 0] if field in self.token_seq_fields else tokens
        return used

    def minibatch_l2(self, ids):
        r""":math:`\sum_j \lVert w_j \rVert^2 / n_j` over the embedding rows j used by ``ids``
        (each row once, however often it occurs in the batch)."""
        return minibatch_l2([(self, ids)])


def minibatch_l2(used):
    r""":math:`\sum_j \lVert w_j \rVert^2 / n_j` over the embedding rows j that ``used``, pairs of
    (:class:`FeatureEmbedding`, ids of its rows), bring - each row once, also where two embeddings
    share a table (a behaviour's and a candidate's brand are one row of one table)."""
    tables = {}  # id(table) -> (weights, occurrences, [tokens, ...])
    for embedding, ids in used:
        for field, tokens in embedding.used_tokens(ids).items():
            table = embedding.embeddings[field]
            entry = tables.setdefault(id(table), (table.weight, getattr(embedding, f"occurrences_{field}"), []))
            entry[2].append(tokens)
    penalty = 0.0
    for weights, occurrences, tokens in tables.values():
        tokens = tokens[0] if len(tokens) == 1 else torch.unique(torch.cat(tokens))
        penalty = penalty + (weights[tokens].pow(2).sum(-1) / occurrences[tokens]).sum()
    return penalty


class CandidateAsBehaviour(nn.Module):
    """A candidate item embedded in the layout of a behaviour, so that attention can compare the
    two (:mod:`recbole_dien.data.impressions`: behaviours from a separate log with fields of their
    own, e.g. category, brand and behaviour type, but no item id).

    Field by field, in the behaviour embedding's order: a field the item table shares (the item id
    itself, or a side feature of the same name, e.g. ``cate_id``) is the candidate's own value,
    embedded with the one shared table; a field only behaviours have (the behaviour type ``btag``)
    is a learned vector - the slot of a behaviour type the candidate does not have. ``forward``:
    item ids [...] -> [..., behaviour width]."""

    def __init__(self, item_embedding, behaviour_embedding):
        super().__init__()
        if not behaviour_embedding.shared_fields:
            raise ValueError("the behaviours share no embedded field with the items")
        # the model owns the two embeddings; a tuple keeps them out of this module's parameters
        self.embeddings = (item_embedding, behaviour_embedding)
        size = behaviour_embedding.embedding_size
        self.behaviour_only = FieldParameterDict()
        for field in behaviour_embedding.fields:
            if field not in behaviour_embedding.shared_fields:
                self.behaviour_only[field] = nn.Parameter(torch.empty(size))
                nn.init.normal_(self.behaviour_only[field], std=size ** -0.5)
        self.output_size = behaviour_embedding.output_size

    def embed_rows(self, ids):
        """[N] distinct item ids -> [N, output_size]."""
        items, behaviours = self.embeddings
        parts = []
        for field in behaviours.fields:
            if field not in behaviours.shared_fields:
                parts.append(self.behaviour_only[field].expand(len(ids), -1))
                continue
            values = ids if field == items.id_field else items.column(field)[ids]
            parts.append(behaviours.embed_field(field, values))
        return torch.cat(parts, dim=-1)

    def forward(self, ids):
        distinct, position = torch.unique(ids, return_inverse=True)
        rows = self.embed_rows(distinct)
        return rows.index_select(0, position.reshape(-1)).view(*ids.shape, rows.shape[-1])


class InterestEvolution(nn.Module):
    r"""DIEN's interest evolving layer (Zhou et al., AAAI 2019, section 4.3) over interest states
    :math:`h_1..h_T` with attention scores :math:`a_1..a_T` (zero at padded steps).

    One set of GRU parameters (``torch.nn.GRU`` layout: reset r, keep z = 1 - u, candidate n) and
    :math:`r_t = \sigma(W_r i_t + U_r h'_{t-1} + b_r)`, :math:`u_t = 1 - z_t`,
    :math:`\tilde h'_t = \tanh(W_n i_t + r_t \circ (U_n h'_{t-1} + b_{hn}) + b_{in})`. ``gru_type``:

    * ``GRU``: :math:`i_t = h_t`, plain GRU; the output is :math:`\sum_t a_t h'_t`.
    * ``AIGRU``: :math:`i_t = a_t h_t`, plain GRU; the output is :math:`h'_{T}`.
    * ``AGRU``: :math:`h'_t = (1 - a_t) h'_{t-1} + a_t \tilde h'_t`.
    * ``AUGRU``: :math:`\tilde u_t = a_t u_t`, :math:`h'_t = (1 - \tilde u_t) \circ h'_{t-1} + \tilde u_t \circ
      \tilde h'_t` (eq. 7-8), so :math:`a_t = 0` keeps the state. ``augru_variant='authors'`` is the
      released code instead: the keep gate is scaled, :math:`\tilde z_t = (1 - a_t) z_t`,
      :math:`h'_t = \tilde z_t h'_{t-1} + (1 - \tilde z_t) \tilde h'_t`, which at :math:`a_t = 0` is a
      plain GRU step.

    For AGRU/AUGRU the output is the state at the last real step. Only real steps are computed:
    rows are sorted by length and the active batch shrinks as histories end
    (:meth:`evolve_packed`; GRU / AIGRU run ``torch.nn.GRU`` on a packed sequence). The input
    projections of all steps are one matrix product (:meth:`project_inputs`, shareable between
    candidates), leaving only the hidden-state product and the gates inside the step loop. On CPU
    this loop is as fast as ``torch.nn.GRU``'s own kernel at these sizes; a hand-written backward
    (custom autograd function) was measured slower, so autograd does it.
    """

    GRU_TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")

    def __init__(self, input_size, hidden_size, gru_type="AUGRU", augru_variant="paper"):
        super().__init__()
        if gru_type not in self.GRU_TYPES:
            raise ValueError(f"gru_type must be one of {', '.join(self.GRU_TYPES)}, not '{gru_type}'")
        if augru_variant not in ("paper", "authors"):
            raise ValueError(f"augru_variant must be 'paper' or 'authors', not '{augru_variant}'")
        self.gru_type, self.augru_variant = gru_type, augru_variant
        self.hidden_size = hidden_size
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)

    @property
    def projects_inputs(self):
        """Whether the recurrence input is the interest itself (AGRU, AUGRU), so that its
        projection W_i h_t + b_i can be computed once per history and shared by candidates."""
        return self.gru_type in ("AGRU", "AUGRU")

    def project_inputs(self, interests):
        """[B, L, I] -> [B, L, 3H], the input projections of every step in one matrix product."""
        return F.linear(interests, self.gru.weight_ih_l0, self.gru.bias_ih_l0)

    def forward(self, interests, attention, lengths, projected=None):
        """interests [B, L, I], attention [B, L], lengths [B] -> evolved interest [B, H].
        ``projected``: :meth:`project_inputs` of ``interests``, if already computed (AGRU, AUGRU).
        Only the real steps are computed (the batch shrinks as histories end)."""
        if self.gru_type in ("GRU", "AIGRU"):
            inputs = interests if self.gru_type == "GRU" else interests * attention.unsqueeze(-1)
            packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths.clamp(min=1).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            states, last = self.gru(packed)
            if self.gru_type == "GRU":
                states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True,
                                                             total_length=interests.shape[1])
                attention = attention * sequence_mask(lengths, attention.shape[-1])
                return torch.matmul(attention.unsqueeze(-2), states).squeeze(-2)
            return last[0] * (lengths > 0).unsqueeze(-1)  # an empty history keeps the zero initial state
        projected = self.project_inputs(interests) if projected is None else projected
        order = torch.argsort(lengths, descending=True, stable=True)
        steps, rows, batch_sizes = time_major_positions(lengths[order])
        flat = order[rows] * projected.shape[1] + steps                     # (row, step) in [B * L]
        final = self.evolve_packed(projected.flatten(0, 1).index_select(0, flat),
                                   attention.flatten().index_select(0, flat), batch_sizes, len(lengths))
        return final.index_select(0, torch.argsort(order))

    @property
    def variant(self):
        """The update rule of :func:`gru_step`: the gru_type, or ``authors`` for the authors' AUGRU."""
        return "authors" if self.gru_type == "AUGRU" and self.augru_variant == "authors" else self.gru_type

    def evolve_dense(self, projected, attention, lengths):
        """AGRU / AUGRU over every step of right-padded rows, for fixed-shape programs
        (:mod:`recbole_dien.serving.export`): input projections [B, L, 3H], attention [B, C, L]
        (0 past each row's length) and lengths [B] -> the final state of each (row, candidate)
        [B, C, H]. Past a row's end AGRU's and the paper's AUGRU's update is a * (...) = 0, so the
        state stays exactly as it is; the authors' AUGRU updates there (a = 0 is a plain GRU step),
        so its state is held by a mask.

        The step of :func:`gru_step`, arranged for a graph of many small operations: three
        matrix products (reset, keep, candidate) instead of one to be split, the hidden biases of
        reset and keep added to the inputs once for all steps, and the candidate's a fused
        product-and-bias. DIEN's ONNX program at ml-100k sizes (100 users x 100 candidates a call,
        2 cores): 48,600 pairs/s against 38,000 with :func:`gru_step` in the loop (2026-12-05)."""
        hidden, variant = self.hidden_size, self.variant
        w_reset, w_keep, w_new = self.gru.weight_hh_l0.split(hidden)                 # [H, H] each
        b_reset, b_keep, b_new = self.gru.bias_hh_l0.split(hidden)
        x_reset, x_keep, x_new = projected.split(hidden, dim=-1)                     # [B, L, H] each
        x_reset, x_keep = (x_reset + b_reset).unsqueeze(1), (x_keep + b_keep).unsqueeze(1)   # [B, 1, L, H]
        x_new = x_new.unsqueeze(1)
        state = projected.new_zeros(*attention.shape[:2], hidden)                    # [B, C, H]
        for step in range(attention.shape[-1]):
            flat = state.flatten(0, 1)                                               # [B·C, H]
            reset = torch.sigmoid(x_reset[:, :, step] + torch.mm(flat, w_reset.t()).view_as(state))
            keep = (None if variant == "AGRU"  # AGRU's update is the attention alone
                    else torch.sigmoid(x_keep[:, :, step] + torch.mm(flat, w_keep.t()).view_as(state)))
            candidate = torch.tanh(x_new[:, :, step] + reset * torch.addmm(b_new, flat, w_new.t()).view_as(state))
            new = state + attentional_update(keep, attention[:, :, step].unsqueeze(-1), variant) * (candidate - state)
            state = torch.where((step < lengths).view(-1, 1, 1), new, state) if variant == "authors" else new
        return state

    def evolve_packed(self, projected, attention, batch_sizes, n_rows):
        """AGRU / AUGRU over rows sorted by descending length, their real steps packed step by
        step (:func:`time_major_positions`): input projections [N, 3H], attention [N] ->
        the state of each row at its last real step [n_rows, H], zero for a row without steps.

        Step t updates only the ``batch_sizes[t]`` rows still active; a row's state is set aside
        when its history ends, so the cost is that of the real steps.

        ``attention`` [N, C] evolves each row for C candidates at once (states [n_rows, C, H]):
        the input projections are shared by the candidates, and broadcast rather than copied."""
        variant = self.variant
        candidates = attention.shape[1:]                                             # () or (C,)
        projected = projected.view(len(projected), *[1] * len(candidates), projected.shape[-1])
        state = projected.new_zeros(batch_sizes[0] if batch_sizes else 0, *candidates, self.hidden_size)
        finished = [projected.new_zeros(n_rows - len(state), *candidates, self.hidden_size)]  # rows without steps
        for x, a in zip(projected.split(batch_sizes), attention.unsqueeze(-1).split(batch_sizes)):
            if len(x) < len(state):
                finished.append(state[len(x):])  # the shortest active histories ended at the last step
                state = state[:len(x)]
            state = gru_step(self.gru, state, x, a, variant)
        finished.append(state)
        return torch.cat(finished[::-1])
