r"""DIEN - Deep Interest Evolution Network.

Reference:
    Guorui Zhou, Na Mou, Ying Fan, Qi Pi, Weijie Bian, Chang Zhou, Xiaoqiang Zhu, Kun Gai.
    "Deep Interest Evolution Network for Click-Through Rate Prediction." AAAI 2019
    (arXiv:1809.03672).

Behaviours :math:`e_1..e_T` (item id ⊕ item side features), candidate :math:`e_a`, profile :math:`p_U`.

Interest extractor (section 4.2): a GRU, :math:`h_t = \mathrm{GRU}(e_t, h_{t-1})`, trained with the
auxiliary loss (eq. 6) on the behaviour that follows each state and a negative behaviour
:math:`\hat e_{t+1}` (``NEG_ITEM_SEQ``), over the real steps only:

.. math::

    L_{aux} = -\frac{1}{N} \sum_{i} \sum_{t} \Big[\log \sigma(h^i_t, e^i_{t+1})
              + \log\big(1 - \sigma(h^i_t, \hat e^i_{t+1})\big)\Big]

with :math:`\sigma(h, e)` a small MLP (default 100-50, sigmoid) on :math:`[h, e]` and N the number
of real (t, t+1) pairs - the paper writes N for the number of sequences; averaging over the pairs
makes the loss independent of history length, as in the authors' code (which, unlike this, also
counts padded steps). Each history counts once, although RecBole's point-wise training repeats it
in a positive and in sampled-negative rows. The authors' auxiliary net starts with a BatchNorm; it
is left out here, so that padded steps and the batch mix cannot affect the loss.

Interest evolving layer (section 4.3): attention of the candidate on each interest state over
the real steps, either the authors' code's (``attention_type: mlp``, the default), DIN's
activation unit :math:`a_t = \mathrm{softmax}_t(\mathrm{MLP}([e_a, h_t, e_a - h_t, e_a \odot h_t]))`,
or the paper's eq. 8 (``attention_type: bilinear``), :math:`a_t = \mathrm{softmax}_t(h_t W e_a)`; then
an attention-steered GRU (AUGRU by default, eq. 7-8; see
:class:`~recbole_dien.model.layers.InterestEvolution`) whose state at the last real step is the
evolved interest :math:`h'_T`.

Prediction: :math:`\hat y = \sigma(\mathrm{MLP}_{Dice}([h'_T, e_a, p_U]))`, trained with
:math:`L = L_{target} + \alpha L_{aux}`.

On impressions with a separate behaviour log (:mod:`recbole_dien.data.impressions`) the
behaviours :math:`e_t` are the log's own fields (category, brand, behaviour type), the auxiliary
loss tells the next logged behaviour from a negative one drawn from the log's other behaviours,
the attention compares the interest states with the candidate in the behaviours' layout (the
fields they share), and the MLP's :math:`e_a` is all the ad's features, :math:`p_U` the user's
with the impression's context (the ad slot).
"""
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dien.model.abstract_recommender import AttentionCTRRecommender
from recbole_dien.model.layers import (MLP, ActivationUnit, BilinearAttention, InterestEvolution, activation_layer,
                                       masked_softmax, packed_gru_states, packed_softmax, sequence_mask,
                                       time_major_positions)


class DIEN(AttentionCTRRecommender):
    """Deep Interest Evolution Network (Zhou et al., AAAI 2019). Knobs: ``props/DIEN.yaml``."""

    props_name = "DIEN"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hp = self.hyperparameters
        self.NEG_ITEM_SEQ = config["NEG_PREFIX"] + self.BEHAVIOUR_SEQ
        self.alpha = hp["alpha"]
        self.attention_softmax = hp["attention_softmax"]
        self.attention_type = hp["attention_type"]
        self.history_sum_features = hp["history_sum_features"]

        item_size, behaviour_size = self.item_embedding.output_size, self.behaviour_size
        hidden = hp["gru_hidden_size"] or behaviour_size

        self.interest_extractor = nn.GRU(behaviour_size, hidden, batch_first=True)
        # the auxiliary net MLP([h_t, e]) -> logit; its first layer W [h; e] = W_h h + W_e e is
        # applied in two parts: W_h h once per step for the clicked and the negative item, W_e e
        # once per distinct item
        aux_sizes = list(hp["aux_mlp_sizes"])
        self.auxiliary_input = nn.Linear(hidden + behaviour_size, aux_sizes[0])
        self.auxiliary_net = nn.Sequential(
            activation_layer(hp["aux_activation"], aux_sizes[0]),
            MLP(aux_sizes, hp["aux_activation"]),
            nn.Linear(aux_sizes[-1], 1),
        )
        if self.attention_type == "bilinear":  # h_t W e_a: W [H, D] maps the candidate to the states' width
            self.query_projection = nn.Identity()
            self.attention = BilinearAttention(behaviour_size, hidden)
        else:  # mlp (props/DIEN.yaml's knobs are validated before the model is built)
            # the activation unit compares the candidate with interest states: same width needed
            self.query_projection = nn.Identity() if hidden == behaviour_size else nn.Linear(behaviour_size, hidden)
            self.attention = ActivationUnit(hidden, hp["attention_mlp_sizes"], hp["attention_activation"])
        self.interest_evolution = InterestEvolution(hidden, hidden, hp["gru_type"], hp["augru_variant"])

        mlp_input = hidden + item_size + self.profile_size + (2 * behaviour_size if self.history_sum_features else 0)
        self.mlp = MLP([mlp_input] + list(hp["mlp_hidden_size"]), hp["mlp_activation"], hp["dropout_prob"],
                       input_batch_norm=hp["mlp_batch_norm"])
        self.prediction = nn.Linear(self.mlp.output_size, 1)
        self.finish_init(config)
        self._warn_about_misaligned_negatives(dataset)

    def _warn_about_misaligned_negatives(self, dataset):
        from recbole_dien.data.dataset import DIENDataset
        from recbole_dien.data.impressions import ImpressionDIENDataset

        if self.alpha > 0 and not isinstance(dataset, (DIENDataset, ImpressionDIENDataset)):
            logging.getLogger().warning(
                f"DIEN: the dataset is {type(dataset).__module__}.{type(dataset).__name__}, not recbole-dien's "
                "DIENDataset, so the auxiliary loss trains on its negatives (RecBole's own DIENDataset misaligns "
                "them: a negative can be the clicked item); build the dataset with recbole_dien.create_dataset")

    # --- candidate-independent part: once per distinct history ---------------------------------
    #
    # Everything per behaviour is computed on the real positions only, packed step by step over
    # the distinct histories sorted by length (``time_major_positions``), so that the cost follows
    # the behaviours of the batch, not MAX_ITEM_LIST_LENGTH.

    def extract_interests(self, interaction):
        """Run the interest extractor once per distinct (user, history) of the batch.

        Returns a dict with, per distinct history: ``rows`` (index of one batch row showing it),
        ``lengths`` [U], ``profile`` [U, P] and ``position`` [U, L] (the index of each real
        behaviour among the packed ones, -1 on padding); per real behaviour (packed, N in all):
        ``history`` [N], ``steps`` [N] (its history and step), ``behaviours`` [N, D], ``states``
        [N, H], and the candidate-independent products ``attention_keys`` [N, A] and
        ``evolution_inputs`` [N, 3H] (AGRU/AUGRU); the packing: ``order`` [U] (the distinct
        histories, longest first) and ``batch_sizes`` (how many of them are still active at each
        step); and ``inverse`` [B], the distinct history of each batch row. With context fields
        (impressions), a distinct history is one of (user, context, behaviours): the profile
        holds the context.
        """
        item_seq, lengths = interaction[self.BEHAVIOUR_SEQ], interaction[self.ITEM_SEQ_LEN]
        mask = sequence_mask(lengths, item_seq.shape[1])
        profile_columns = [interaction[self.USER_ID]] + [self._as_key(interaction[f]) for f in self.context_fields]
        key = torch.cat([column.reshape(len(item_seq), -1) for column in profile_columns] + [item_seq * mask], dim=-1)
        distinct, inverse = torch.unique(key, dim=0, return_inverse=True)
        rows = torch.full((len(distinct),), len(key), dtype=torch.long, device=key.device)
        rows = rows.scatter_reduce(0, inverse, torch.arange(len(key), device=key.device), "amin")

        lengths = lengths[rows]
        order = torch.argsort(lengths, descending=True, stable=True)               # distinct histories, longest first
        steps, sorted_rows, batch_sizes = time_major_positions(lengths[order])
        history = order[sorted_rows]                                                # [N]
        position = torch.full(item_seq[rows].shape, -1, dtype=torch.long, device=key.device)
        position[history, steps] = torch.arange(len(steps), device=key.device)
        behaviours = self.embed_behaviours(item_seq[rows[history], steps])         # [N, D]
        states = packed_gru_states(self.interest_extractor, behaviours, batch_sizes)  # [N, H]
        evolution = self.interest_evolution
        return {"rows": rows, "inverse": inverse, "lengths": lengths, "position": position,
                "order": order, "batch_sizes": batch_sizes, "history": history, "steps": steps,
                "behaviours": behaviours, "states": states,
                "profile": self.profile_of(interaction, rows),
                "attention_keys": self.attention.project_keys(states),
                "evolution_inputs": evolution.project_inputs(states) if evolution.projects_inputs else None}

    @staticmethod
    def _as_key(values):
        """A context column as int64 key values that are equal exactly where the values are."""
        return values.double().view(torch.int64) if values.is_floating_point() else values.long()

    def auxiliary_loss(self, interaction, interests):
        """Eq. 6 over the real (t, t+1) pairs of each distinct history."""
        if self.NEG_ITEM_SEQ not in interaction:
            raise KeyError(f"DIEN's auxiliary loss needs '{self.NEG_ITEM_SEQ}' in the batch: create the dataset "
                           "with recbole_dien.create_dataset (or set alpha=0)")
        history, steps = interests["history"], interests["steps"]
        pairs = (steps + 1 < interests["lengths"][history]).nonzero().squeeze(1)   # step t+1 is real
        if not len(pairs):  # only one-behaviour histories: nothing to predict
            return interests["states"].sum() * 0
        hidden = interests["states"].shape[-1]
        w_state, w_item = self.auxiliary_input.weight.split([hidden, self.auxiliary_input.in_features - hidden], 1)
        state_term = F.linear(interests["states"].index_select(0, pairs), w_state, self.auxiliary_input.bias)  # [P, A]
        batch_rows, next_steps = interests["rows"][history[pairs]], steps[pairs] + 1
        clicked = interaction[self.BEHAVIOUR_SEQ][batch_rows, next_steps]
        negative = interaction[self.NEG_ITEM_SEQ][batch_rows, next_steps]
        item_term = self.embed_behaviours(torch.cat([clicked, negative]), lambda e: F.linear(e, w_item))  # [2P, A]
        logits = self.auxiliary_net(state_term.repeat(2, 1) + item_term)
        labels = torch.cat([torch.ones(len(clicked)), torch.zeros(len(clicked))]).to(logits.device)
        # the mean over 2P terms is half the paper's per-pair sum averaged over P; rescale
        return 2 * F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels)

    # --- candidate-dependent part ----------------------------------------------------------------

    def pair_attention(self, interests, candidates, index=None):
        """a_t of eq. 8 for (history, candidate) pairs, on their real steps only.

        ``candidates`` [R, D] (as behaviours: the ``query`` of :meth:`embed_candidates`) and
        ``index`` [R] (the distinct history of each pair; default: one pair per distinct
        history). Returns the pairs' ``order`` [R] (by descending history length)
        and, packed step by step over the pairs in that order, ``steps`` [M], ``pairs`` [M],
        ``positions`` [M] (into the packed behaviours), ``batch_sizes`` and ``attention`` [M].
        """
        index = torch.arange(len(interests["rows"]), device=candidates.device) if index is None else index
        order = torch.argsort(interests["lengths"][index], descending=True, stable=True)
        steps, sorted_pairs, batch_sizes = time_major_positions(interests["lengths"][index[order]])
        pairs = order[sorted_pairs]                                                 # [M]
        positions = interests["position"][index[pairs], steps]                      # [M]
        query = self.query_projection(candidates)                                   # [R, H] (bilinear: [R, D])
        # index_select, not x[index]: its backward is a fast index_add, not an accumulating index_put
        query_terms = self.attention.project_query(query).index_select(0, pairs)   # [M, A]
        key_terms = interests["attention_keys"].index_select(0, positions)          # [M, A]
        if self.attention_type == "bilinear":  # h_t . (W e_a): the projections are all it needs
            scores = self.attention.score_projected(None, None, query_terms, key_terms)                  # [M]
        else:
            scores = self.attention.score_projected(query.index_select(0, pairs),
                                                    interests["states"].index_select(0, positions),
                                                    query_terms, key_terms)                              # [M]
        # without softmax the scores still steer gates, so they are squashed into (0, 1)
        attention = packed_softmax(scores, pairs, len(candidates)) if self.attention_softmax else torch.sigmoid(scores)
        return {"order": order, "steps": steps, "pairs": pairs, "positions": positions,
                "batch_sizes": batch_sizes, "attention": attention}

    def score(self, interests, query, target, index=None):
        """Logits of (history, candidate) pairs: the attention, the evolution and the MLP.

        ``query`` [R, D] and ``target`` [R, E] (the candidates, :meth:`embed_candidates`) and
        ``index`` [R] (the distinct history of each pair; default: one pair per distinct history) -> [R].
        """
        index = torch.arange(len(interests["rows"]), device=target.device) if index is None else index
        packed = self.pair_attention(interests, query, index)
        evolution = self.interest_evolution
        if evolution.projects_inputs:  # AGRU / AUGRU: the packed recurrence, pairs sorted by length
            evolved = evolution.evolve_packed(interests["evolution_inputs"].index_select(0, packed["positions"]),
                                              packed["attention"], packed["batch_sizes"], len(index))
            evolved = evolved.index_select(0, torch.argsort(packed["order"]))                    # [R, H]
        else:  # GRU / AIGRU (ablations): torch's GRU on the pairs' padded states
            evolved = evolution(self.padded(packed, interests["states"].index_select(0, packed["positions"]), len(index)),
                                self.padded(packed, packed["attention"], len(index)), interests["lengths"][index])
        features = [evolved, target, interests["profile"].index_select(0, index)]
        if self.history_sum_features:
            behaviours = interests["behaviours"]                                      # [N, D]
            history_sum = behaviours.new_zeros(len(interests["rows"]), behaviours.shape[-1])
            history_sum = history_sum.index_add(0, interests["history"], behaviours).index_select(0, index)   # [R, D]
            features += [history_sum, query * history_sum]
        return self.prediction(self.mlp(torch.cat(features, dim=-1))).squeeze(-1)

    @staticmethod
    def padded(packed, values, n_pairs):
        """Packed per-step ``values`` [M, ...] of :meth:`pair_attention` as [R, L, ...], zero-padded."""
        length = int(packed["steps"].max()) + 1 if len(packed["steps"]) else 1
        dense = values.new_zeros(n_pairs, length, *values.shape[1:])
        return dense.index_put((packed["pairs"], packed["steps"]), values)

    def attention_weights(self, interaction):
        """The attention of each row's candidate on each interest state: ``{"interest states": [B, L]}``."""
        interests = self.extract_interests(interaction)
        query = self.embed_candidates(interaction[self.ITEM_ID])[0]
        packed = self.pair_attention(interests, query, interests["inverse"])
        weights = query.new_zeros(interaction[self.BEHAVIOUR_SEQ].shape)
        return {"interest states": weights.index_put((packed["pairs"], packed["steps"]), packed["attention"])}

    def dense_logits(self, users, item_seq, lengths, time_seq, candidates):
        """Logits of each user's candidates from plain tensors, padded and masked (fixed shapes, for
        :mod:`recbole_dien.serving.export`): users [B], item_seq [B, L], lengths [B], candidates [B, C]
        -> [B, C]; ``time_seq`` is unused. The attention scores a block of history positions at a time
        (:meth:`~recbole_dien.model.layers.ActivationUnit.score_key_blocks`) and the evolution
        steps all L positions (:meth:`~recbole_dien.model.layers.InterestEvolution.evolve_dense`),
        both arranged for ONNX Runtime. AGRU / AUGRU only. Equals :meth:`forward`
        (tests/serving/test_export.py)."""
        evolution = self.interest_evolution
        if not evolution.projects_inputs:
            raise ValueError(f"export supports gru_type AGRU and AUGRU, not {evolution.gru_type}")
        history = self.item_embedding(item_seq)                                     # [B, L, D]
        states, _ = self.interest_extractor(history)                                # [B, L, H]
        mask = sequence_mask(lengths, item_seq.shape[1]).unsqueeze(1)               # [B, 1, L]
        target = self.item_embedding(candidates)                                    # [B, C, D]
        query = self.query_projection(target)                                       # [B, C, D]
        scores = (self.attention(query, states.unsqueeze(1)) if self.attention_type == "bilinear"
                  else self.attention.score_key_blocks(query, states))               # [B, C, L]
        attention = masked_softmax(scores, mask) if self.attention_softmax else torch.sigmoid(scores) * mask
        state = evolution.evolve_dense(evolution.project_inputs(states), attention, lengths)   # [B, C, H]
        features = [state, target, self.user_embedding(users).unsqueeze(1).expand(*target.shape[:-1], -1)]
        if self.history_sum_features:
            history_sum = (history * mask.transpose(1, 2)).sum(1, keepdim=True)     # [B, 1, D]
            features += [history_sum.expand_as(target), target * history_sum]
        return self.prediction(self.mlp(torch.cat(features, dim=-1))).squeeze(-1)

    def forward(self, interaction, interests=None):
        interests = interests or self.extract_interests(interaction)
        query, target = self.embed_candidates(interaction[self.ITEM_ID])
        return self.score(interests, query, target, interests["inverse"])

    def calculate_loss(self, interaction):
        interests = self.extract_interests(interaction)
        loss = self.loss_fct(self.forward(interaction, interests), interaction[self.LABEL_FIELD])
        if self.alpha > 0:
            loss = loss + self.alpha * self.auxiliary_loss(interaction, interests)
        return loss

    def full_sort_predict(self, interaction):
        """Click probabilities of every item for each user: [B, n_items].

        The extractor runs once per user. Then, for a chunk of C candidates at a time, the
        attention of every candidate on every real interest state is one pass of the activation
        unit ([N, C], its product term one matrix product), and the evolution steps all users'
        states for all C candidates together ([users, C, H]; a user's input projections are
        broadcast over the candidates, users sorted by history length so the active ones shrink).
        No intermediate holds more than ``full_sort_chunk_elements`` numbers."""
        interests = self.extract_interests(interaction)
        n_users, lengths = len(interests["rows"]), interests["lengths"]
        # the packed behaviours are already time-major over the users sorted by history length
        history, states = interests["history"], interests["states"]                 # [N], [N, H]
        keys = interests["attention_keys"]                                           # [N, A]
        inputs = interests["evolution_inputs"]                                       # [N, 3H] (AGRU / AUGRU)
        all_queries, all_targets = self.embed_candidates(torch.arange(self.n_items, device=states.device))
        widest = max(3 * states.shape[-1], self.attention.pair_width)               # per (state, candidate)
        chunk = self.full_sort_chunk(max(len(states), n_users) * widest)
        unsort = torch.argsort(interests["order"])
        logits = []
        for candidates, targets in zip(all_queries.split(chunk), all_targets.split(chunk)):  # [C, D], [C, E]
            query = self.query_projection(candidates)                                # [C, H]
            scores = self.attention.score_every_pair(query, states, self.attention.project_query(query), keys)
            attention = packed_softmax(scores, history, n_users) if self.attention_softmax else torch.sigmoid(scores)
            if inputs is not None:                                                   # AGRU / AUGRU
                evolved = self.interest_evolution.evolve_packed(inputs, attention, interests["batch_sizes"], n_users)
                evolved = evolved.index_select(0, unsort)                            # [U, C, H]
            else:  # GRU / AIGRU (ablations): per (user, candidate) pair on torch's GRU
                pairs = {"pairs": (history.unsqueeze(1) * len(candidates)
                                   + torch.arange(len(candidates), device=states.device)).flatten(),
                         "steps": interests["steps"].repeat_interleave(len(candidates))}
                dense_states = self.padded(pairs, states.repeat_interleave(len(candidates), 0), n_users * len(candidates))
                dense_attention = self.padded(pairs, attention.flatten(), n_users * len(candidates))
                pair_lengths = lengths.repeat_interleave(len(candidates))
                evolved = self.interest_evolution(dense_states, dense_attention, pair_lengths)
                evolved = evolved.view(n_users, len(candidates), -1)                 # [U, C, H]
            shape = evolved.shape[:-1]                                               # [U, C]
            features = [evolved, targets.unsqueeze(0).expand(*shape, -1),
                        interests["profile"].unsqueeze(1).expand(*shape, -1)]
            if self.history_sum_features:
                behaviours = interests["behaviours"]
                history_sum = behaviours.new_zeros(n_users, behaviours.shape[-1]).index_add(
                    0, history, behaviours).unsqueeze(1)                             # [U, 1, D]
                features += [history_sum.expand(*shape, -1), candidates.unsqueeze(0) * history_sum]
            logits.append(self.prediction(self.mlp(torch.cat(features, dim=-1))).squeeze(-1))
        return torch.sigmoid(torch.cat(logits, dim=1)).index_select(0, interests["inverse"])
