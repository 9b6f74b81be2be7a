r"""DSIN - Deep Session Interest Network (DSIN-BE).

Reference:
    Yufei Feng, Fuyu Lv, Weichen Shen, Menghan Wang, Fei Sun, Yu Zhu, Keping Yang.
    "Deep Session Interest Network for Click-Through Rate Prediction." IJCAI 2019 (arXiv:1905.06482).

Session division (section 4.1): a user's behaviours are cut into sessions where two adjacent
behaviours are more than ``session_gap`` seconds apart; the K most recent sessions are kept, each
with its T most recent behaviours: :math:`Q \in R^{K \times T \times d}`. They come from the
user's whole history before the target, whatever ``MAX_ITEM_LIST_LENGTH`` is:
:class:`~recbole_dien.data.dataset.DSINDataset` gives each row the behaviours of those sessions
(at most K*T), and the timestamps exact (float64, :mod:`recbole_dien.compat`).

Bias encoding (eq. 1): :math:`BE_{(k,t,c)} = w^K_k + w^T_t + w^C_c`, added to the behaviour
embeddings, :math:`Q = Q + BE`. Here k counts sessions back from the most recent one (k = 0), so
the same k means the same recency for every user, and t is the position inside the session.

Session interest extractor (eq. 2-5): one Transformer layer - multi-head self-attention and a
feed-forward network, each with a residual connection and layer normalisation - shared by all
sessions; padded positions are excluded from the attention and from the average pooling
:math:`I_k = \mathrm{Avg}(\mathrm{FFN}(\mathrm{MHA}(Q_k)))`. Empty sessions are never run through it.

Session interest interacting layer (eq. 6-9): a Bi-LSTM over the real sessions (packed by each
user's session count), :math:`H_k = \overrightarrow{h_k} \oplus \overleftarrow{h_k}`.

Activation units (eq. 10-11), with the candidate's embedding :math:`X^I`:
:math:`a^I_k = \mathrm{softmax}_k(I_k W^I X^I)`, :math:`U^I = \sum_k a^I_k I_k`, and
:math:`a^H_k = \mathrm{softmax}_k(H_k W^H X^I)`, :math:`U^H = \sum_k a^H_k H_k`, over the real sessions.

Prediction: :math:`\hat y = \sigma(\mathrm{MLP}_{Dice}([p_U, X^I, U^I, U^H]))` with BCE loss.

On impressions with a separate behaviour log (:mod:`recbole_dien.data.impressions`; the paper's
setting) the sessions are cut from the log's behaviours before the impression, a behaviour is its
own fields (category, brand, behaviour type), the activation units score the candidate in that
layout (the fields they share), the MLP's :math:`X^I` is all the ad's features and :math:`p_U` the
user's with the impression's context (the ad slot).

Sessions are cut in the model from the timestamp list beside the item list, with tensor
operations on the whole batch, from whatever history it is given: DSINDataset's (the exact
sessions, which cut again stay the same), or any RecBole sequential dataset with its time field
loaded - RecBole's own ``create_dataset`` gives the last ``MAX_ITEM_LIST_LENGTH`` behaviours, so the
oldest sessions can be cut short or missing (the model logs a warning saying so).
"""
import logging

import torch
import torch.nn as nn

from recbole_dien.model.abstract_recommender import AttentionCTRRecommender
from recbole_dien.utils.errors import ConfigError, DatasetError
from recbole_dien.model.layers import MLP, ActivationUnit, masked_softmax, sequence_mask


def split_sessions(timestamps, lengths, session_gap, max_sessions, max_session_length):
    """Place each behaviour of a right-padded history into a session grid.

    timestamps [B, L] (ascending over the first ``lengths[b]`` positions) -> a dict of
    ``slot`` [B, L] (session slot 0..K-1, oldest kept session first, -1 where dropped or padded),
    ``position`` [B, L] (0..T-1 inside the session), ``recency`` [B, K] (0 = most recent session,
    -1 for an empty slot) and ``count`` [B] (sessions kept).
    """
    batch, length = timestamps.shape
    real = sequence_mask(lengths, length)
    index = torch.arange(length, device=timestamps.device).expand(batch, length)
    gap = torch.diff(timestamps, dim=1) > session_gap                               # [B, L-1]
    first = torch.ones(batch, 1, dtype=torch.bool, device=timestamps.device)       # (gap is empty when L = 1)
    starts = torch.cat([first, gap], dim=1) & real                                 # a session starts here
    session = torch.cumsum(starts, dim=1) - 1                                      # chronological id
    total = starts.sum(dim=1)                                                      # sessions per user
    # last position of each behaviour's session: one before the next start (or the last real one)
    next_start = torch.where(starts, index, torch.full_like(index, length))
    next_start = torch.cat([next_start[:, 1:], torch.full_like(index[:, :1], length)], dim=1)
    next_start = torch.flip(torch.cummin(torch.flip(next_start, [1]), dim=1).values, [1])
    end = torch.minimum(next_start, lengths.unsqueeze(-1)) - 1
    start = torch.cummax(torch.where(starts, index, torch.zeros_like(index)), dim=1).values

    count = total.clamp(max=max_sessions)
    slot = session - (total - count).unsqueeze(-1)                                 # oldest kept = 0
    kept_start = torch.maximum(start, end - max_session_length + 1)
    keep = real & (slot >= 0) & (index >= kept_start)
    slots = torch.arange(max_sessions, device=timestamps.device)
    recency = torch.where(slots < count.unsqueeze(-1), count.unsqueeze(-1) - 1 - slots, -1)
    return {"slot": torch.where(keep, slot, -1), "position": torch.where(keep, index - kept_start, 0),
            "recency": recency, "count": count}


class DSIN(AttentionCTRRecommender):
    """Deep Session Interest Network (Feng et al., IJCAI 2019), DSIN-BE. Knobs: ``props/DSIN.yaml``."""

    props_name = "DSIN"
    time_in_seconds = True  # the host's normalisation leaves the time field alone (recbole_dien.compat)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hp = self.hyperparameters
        time_field = config["TIME_FIELD"]
        self.TIME_SEQ = f"{time_field}{config['LIST_SUFFIX']}"
        if time_field is None or self.TIME_SEQ not in dataset.field2type:
            raise DatasetError(
                f"DSIN splits behaviours into sessions by time, but the dataset has no '{self.TIME_SEQ}': "
                f"load the time column (TIME_FIELD='{time_field}') in load_col['inter']"
            )
        if (config["normalize_all"] or time_field in (config["normalize_field"] or [])) and not getattr(
                self.host.module("data.dataset").Dataset._normalize, "keeps_time_in_seconds", False):
            raise DatasetError(  # only if the host's shims were not applied
                f"DSIN cuts sessions at gaps of session_gap seconds, but the config normalises the time field "
                f"'{time_field}': set normalize_all: False or leave '{time_field}' out of normalize_field"
            )
        self.session_gap = hp["session_gap"]
        self.max_sessions = hp["max_sessions"]
        self.max_session_length = hp["max_session_length"]
        self.attention_type = hp["session_attention"]
        self.bilstm_merge = hp["bilstm_merge"]
        self._check_dataset_sessions(dataset)

        dim, item_size = self.behaviour_size, self.item_embedding.output_size
        if dim % hp["num_heads"]:
            raise ConfigError(f"invalid setting num_heads={hp['num_heads']}: it must divide the behaviour embedding "
                              f"width, {dim} ({dim // hp['embedding_size']} behaviour fields x embedding_size "
                              f"{hp['embedding_size']}); e.g. num_heads="
                              f"{max(h for h in range(1, hp['num_heads'] + 1) if dim % h == 0)}")

        # bias encoding: w^K (session), w^T (position) and w^C (embedding unit)
        self.session_bias = nn.Parameter(torch.zeros(self.max_sessions, 1, 1))        # w^K: [K, 1, 1]
        self.position_bias = nn.Parameter(torch.zeros(self.max_session_length, 1))    # w^T: [T, 1]
        self.unit_bias = nn.Parameter(torch.zeros(dim))                               # w^C: [D]
        self.session_extractor = nn.TransformerEncoderLayer(
            dim, hp["num_heads"], hp["feedforward_size"], hp["transformer_dropout"], batch_first=True)
        self.session_interacting = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        interacting_size = 2 * dim if self.bilstm_merge == "concat" else dim

        if self.attention_type == "bilinear":
            self.interest_bilinear = nn.Linear(dim, dim, bias=False)                  # W^I
            self.interacting_bilinear = nn.Linear(dim, interacting_size, bias=False)  # W^H
        else:  # mlp (props/DSIN.yaml's knobs are validated before the model is built)
            self.interest_attention = ActivationUnit(dim, hp["attention_mlp_sizes"], hp["attention_activation"])
            self.interacting_query = nn.Linear(dim, interacting_size)
            self.interacting_attention = ActivationUnit(interacting_size, hp["attention_mlp_sizes"],
                                                        hp["attention_activation"])

        mlp_sizes = [self.profile_size + item_size + dim + interacting_size] + list(hp["mlp_hidden_size"])
        self.mlp = MLP(mlp_sizes, hp["mlp_activation"], hp["dropout_prob"], input_batch_norm=hp["mlp_batch_norm"])
        # numbers per (user, candidate) pair in full_sort_predict's largest intermediate
        attention_width = self.max_sessions * (hp["attention_mlp_sizes"][0] if self.attention_type == "mlp" else 1)
        self.pair_width = max(max(mlp_sizes), attention_width)
        self.prediction = nn.Linear(self.mlp.output_size, 1)
        self.finish_init(config)

    def _check_dataset_sessions(self, dataset):
        from recbole_dien.data.dataset import DSINDataset
        from recbole_dien.data.impressions import ImpressionDSINDataset

        settings = (self.session_gap, self.max_sessions, self.max_session_length)
        if not isinstance(dataset, (DSINDataset, ImpressionDSINDataset)):
            logging.getLogger().warning(
                f"DSIN: the dataset is {type(dataset).__module__}.{type(dataset).__name__}, not recbole-dien's "
                "DSINDataset, so sessions are cut from the last MAX_ITEM_LIST_LENGTH behaviours only (the oldest "
                "kept sessions can be cut short or missing); build the dataset with recbole_dien.create_dataset")
        elif dataset.session_settings != settings:
            raise ConfigError(
                f"DSIN's sessions (session_gap, max_sessions, max_session_length) = {settings}, but the dataset "
                f"was built with {dataset.session_settings}: build the dataset and the model from one config")

    # --- candidate-independent part -----------------------------------------------------------

    def session_grid(self, interaction):
        """Items [B, K, T], their mask, the session recency [B, K] and the session mask [B, K]."""
        item_seq, lengths = interaction[self.BEHAVIOUR_SEQ], interaction[self.ITEM_SEQ_LEN]
        # float64 (exact seconds) from the datasets already; float32 from a caller is widened as it is
        grid = split_sessions(interaction[self.TIME_SEQ].double(), lengths, self.session_gap,
                              self.max_sessions, self.max_session_length)
        batch, K, T = item_seq.shape[0], self.max_sessions, self.max_session_length
        kept = grid["slot"] >= 0
        rows = torch.arange(batch, device=item_seq.device).unsqueeze(-1).expand_as(item_seq)
        # every behaviour goes to its cell; dropped ones to one extra cell, cut off after (fixed shapes)
        cells = torch.where(kept, (rows * K + grid["slot"]) * T + grid["position"], batch * K * T)
        items = item_seq.new_zeros(batch * K * T + 1).scatter(0, cells.flatten(), item_seq.flatten())
        behaviour_mask = torch.zeros(batch * K * T + 1, dtype=torch.bool, device=item_seq.device).scatter(
            0, cells.flatten(), kept.flatten())
        return (items[:-1].view(batch, K, T), behaviour_mask[:-1].view(batch, K, T), grid["recency"],
                grid["recency"] >= 0, grid["count"])

    def bias_encoding(self, sessions, recency):
        """BE(k, t, c) = w^K_k + w^T_t + w^C_c added to sessions [B, K, T, D]; k is the session's
        recency [B, K] (empty slots, -1, get any row: they are never used)."""
        return sessions + self.session_bias[recency.clamp(min=0)] + self.position_bias + self.unit_bias

    def session_interests(self, interaction, dense=False):
        """Per user: session interests I [B, K, D], interacting states H [B, K, D'], session mask
        [B, K] and the profile [B, P].

        Only the real sessions go through the Transformer, and the Bi-LSTM runs packed by each
        user's session count; ``dense`` computes the same with fixed shapes (every slot through the
        Transformer, the Bi-LSTM on the sessions left- and right-aligned), for
        :mod:`recbole_dien.serving.export`."""
        items, behaviour_mask, recency, session_mask, count = self.session_grid(interaction)
        embedded = self.bias_encoding(self.embed_behaviours(items), recency)         # [B, K, T, D]
        if dense:
            interests = self._dense_session_interests(embedded, behaviour_mask, session_mask)
            states = self._dense_interacting_states(interests, count)
        else:
            real_sessions = session_mask.reshape(-1)                                 # [B*K]
            sessions = embedded.flatten(0, 1)[real_sessions]                         # [S, T, D]
            masks = behaviour_mask.flatten(0, 1)[real_sessions]                      # [S, T]
            outputs = self.session_extractor(sessions, src_key_padding_mask=~masks)  # [S, T, D]
            pooled = (outputs * masks.unsqueeze(-1)).sum(1) / masks.sum(1, keepdim=True)  # [S, D]
            interests = embedded.new_zeros(session_mask.numel(), embedded.shape[-1])
            interests[real_sessions] = pooled
            interests = interests.view(*session_mask.shape, -1)                      # [B, K, D]

            packed = nn.utils.rnn.pack_padded_sequence(interests, count.clamp(min=1).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            states, _ = self.session_interacting(packed)
            states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=self.max_sessions)
        if self.bilstm_merge == "sum":
            states = sum(states.chunk(2, dim=-1))
        states = states * session_mask.unsqueeze(-1)                                 # [B, K, D']
        return {"interests": interests, "states": states, "mask": session_mask,
                "profile": self.profile_of(interaction)}

    def _dense_session_interests(self, embedded, behaviour_mask, session_mask):
        """The Transformer over every session slot [B, K, T, D] -> pooled interests [B, K, D]; an
        empty slot attends to its first position (never all-masked, which would give NaN) and is
        zeroed after."""
        batch, K, T, dim = embedded.shape
        masks = behaviour_mask.flatten(0, 1)                                          # [B*K, T]
        first = torch.arange(T, device=masks.device) == 0
        attended = masks | (~masks.any(1, keepdim=True) & first)
        outputs = self.session_extractor(embedded.flatten(0, 1), src_key_padding_mask=~attended)
        pooled = (outputs * masks.unsqueeze(-1)).sum(1) / masks.sum(1, keepdim=True).clamp(min=1)
        return (pooled * session_mask.reshape(-1, 1)).view(batch, K, dim)

    def _dense_interacting_states(self, interests, count):
        """The Bi-LSTM over each user's real sessions without packing: the forward direction on
        the sessions left-aligned (padding after), the backward one on them right-aligned (padding
        before, so it starts at the last real session) -> [B, K, 2D']."""
        K = interests.shape[1]
        slots = torch.arange(K, device=interests.device)
        shift = (K - count).unsqueeze(1)                                              # [B, 1]
        source = (slots - shift).clamp(min=0)                                         # right-aligned slot -> session
        right = interests.gather(1, source.unsqueeze(-1).expand_as(interests)) * (slots >= shift).unsqueeze(-1)
        forward_states, _ = self.session_interacting(interests)
        backward_states, _ = self.session_interacting(right)
        back = backward_states.chunk(2, dim=-1)[1]
        back = back.gather(1, (slots + shift).clamp(max=K - 1).unsqueeze(-1).expand_as(back))  # left-aligned again
        return torch.cat([forward_states.chunk(2, dim=-1)[0], back], dim=-1)

    def dense_logits(self, users, item_seq, lengths, time_seq, candidates):
        """Logits of each user's candidates from plain tensors with fixed shapes (for
        :mod:`recbole_dien.serving.export`): users [B], item_seq and time_seq [B, L], lengths [B],
        candidates [B, C] -> [B, C]. Equals :meth:`forward` (tests/serving/test_export.py)."""
        sessions = self.session_interests({self.BEHAVIOUR_SEQ: item_seq, self.ITEM_SEQ_LEN: lengths,
                                           self.TIME_SEQ: time_seq, self.USER_ID: users}, dense=True)
        per_user = {key: value.unsqueeze(1) for key, value in sessions.items()}     # [B, 1, ...]
        return self.score(per_user, *self.embed_candidates(candidates))

    # --- candidate-dependent part ---------------------------------------------------------------

    def attention_scores(self, sessions, query):
        """sessions: output of :meth:`session_interests` with tensors [B, (1,) K, ...]; query
        [(B|1), (N,) D] (the candidates as behaviours, :meth:`embed_candidates`) -> scores over
        the sessions of the interests and of the states."""
        interests, states = sessions["interests"], sessions["states"]
        if self.attention_type == "bilinear":
            # I_k W^I X and H_k W^H X
            interest = torch.matmul(interests, self.interest_bilinear(query).unsqueeze(-1)).squeeze(-1)
            interacting = torch.matmul(states, self.interacting_bilinear(query).unsqueeze(-1)).squeeze(-1)
            return interest, interacting
        return (self.interest_attention(query, interests),
                self.interacting_attention(self.interacting_query(query), states))

    def session_weights(self, sessions, query):
        """Softmax weights over the real sessions, of the interests I and of the states H."""
        interest_scores, interacting_scores = self.attention_scores(sessions, query)
        return masked_softmax(interest_scores, sessions["mask"]), masked_softmax(interacting_scores, sessions["mask"])

    def attention_weights(self, interaction):
        """Each row's candidate on each session slot (oldest kept first; ``session_grid`` gives the
        items): ``{"session interests": [B, K], "interacting states": [B, K]}``."""
        interest, interacting = self.session_weights(self.session_interests(interaction),
                                                     self.embed_candidates(interaction[self.ITEM_ID])[0])
        return {"session interests": interest, "interacting states": interacting}

    def score(self, sessions, query, target):
        """Logits of the candidates (``query`` and ``target``: :meth:`embed_candidates`)."""
        interest_weights, interacting_weights = self.session_weights(sessions, query)
        pooled_interest = torch.matmul(interest_weights.unsqueeze(-2), sessions["interests"]).squeeze(-2)
        pooled_states = torch.matmul(interacting_weights.unsqueeze(-2), sessions["states"]).squeeze(-2)
        shape = pooled_interest.shape[:-1]
        features = torch.cat([sessions["profile"].expand(*shape, -1), target.expand(*shape, -1),
                              pooled_interest, pooled_states], dim=-1)
        return self.prediction(self.mlp(features)).squeeze(-1)

    def forward(self, interaction):
        sessions = self.session_interests(interaction)
        return self.score(sessions, *self.embed_candidates(interaction[self.ITEM_ID]))

    def full_sort_predict(self, interaction):
        """Click probabilities of every item for each user: [B, n_items]; sessions, Transformer and
        Bi-LSTM run once per user, candidates are scored in memory-bounded chunks."""
        sessions = self.session_interests(interaction)
        per_user = {key: value.unsqueeze(1) for key, value in sessions.items()}     # [B, 1, ...]
        queries, targets = self.embed_candidates(torch.arange(self.n_items, device=sessions["mask"].device))
        chunk = self.full_sort_chunk(len(sessions["mask"]) * self.pair_width)
        scores = [self.score(per_user, query.unsqueeze(0), target.unsqueeze(0))
                  for query, target in zip(queries.split(chunk), targets.split(chunk))]
        return torch.sigmoid(torch.cat(scores, dim=1))

