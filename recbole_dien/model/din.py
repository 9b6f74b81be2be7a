r"""DIN - Deep Interest Network.

Reference:
    Guorui Zhou, Xiaoqiang Zhu, Chenru Song, Ying Fan, Han Zhu, Xiao Ma, Yanghui Yan, Junqi Jin,
    Han Li, Kun Gai. "Deep Interest Network for Click-Through Rate Prediction." KDD 2018
    (arXiv:1706.06978).

For a user with behaviours :math:`e_1..e_H` (item id ⊕ item side features) and a candidate
:math:`v_A`:

.. math::

    v_U(A) = \sum_{j=1}^{H} a(e_j, v_A)\, e_j                      \qquad \text{(eq. 3)}

    a(e_j, v_A) = \mathrm{MLP}([v_A, e_j, v_A - e_j, v_A \odot e_j])

    \hat y = \sigma(\mathrm{MLP}_{Dice}([p_U, v_U(A), v_A]))

with :math:`p_U` the user profile embedding. On impressions with a separate behaviour log
(:mod:`recbole_dien.data.impressions`) :math:`e_j` is a behaviour's own fields (category, brand,
behaviour type), :math:`a(e_j, v_A)` compares it with the candidate in that layout (the fields
they share), the MLP's :math:`v_A` is all the ad's features and :math:`p_U` also holds the
impression's context (the ad slot). As in the paper the weights :math:`a` are not
normalised (the sum keeps the strength of interest); ``attention_softmax: true`` gives the
masked softmax of the authors' released code. Only the real behaviours are scored (padding has
no weight and costs nothing).

Loss: binary cross-entropy, plus optionally the mini-batch aware L2 of section 4.1,

.. math::

    \frac{\lambda}{2} \sum_{j \in B} \frac{\lVert w_j \rVert_2^2}{n_j},

over the embedding rows j used by the mini-batch B - the ids of its real behaviours and
candidates and their side features, each row once; never the padding - where :math:`n_j` is how
often row j occurs in the training data (``mini_batch_l2`` = λ).
"""
import torch
import torch.nn as nn

from recbole_dien.data.lean import history_occurrences
from recbole_dien.model.abstract_recommender import AttentionCTRRecommender
from recbole_dien.model.layers import MLP, ActivationUnit, masked_softmax, minibatch_l2, packed_softmax, sequence_mask


class DIN(AttentionCTRRecommender):
    """Deep Interest Network (Zhou et al., KDD 2018). Knobs: ``props/DIN.yaml``."""

    props_name = "DIN"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hp = self.hyperparameters
        self.attention_softmax = hp["attention_softmax"]
        self.mini_batch_l2 = hp["mini_batch_l2"]

        item_size, behaviour_size = self.item_embedding.output_size, self.behaviour_size
        self.attention = ActivationUnit(behaviour_size, hp["attention_mlp_sizes"], hp["attention_activation"])
        self.mlp = MLP([self.profile_size + behaviour_size + item_size] + list(hp["mlp_hidden_size"]),
                       hp["mlp_activation"], hp["dropout_prob"], input_batch_norm=hp["mlp_batch_norm"])
        self.prediction = nn.Linear(self.mlp.output_size, 1)

        self.finish_init(config)
        if self.mini_batch_l2 > 0:
            self._count_occurrences(dataset)

    def _count_occurrences(self, dataset):
        """n_j of the mini-batch aware L2: occurrences of each item / user in the training rows
        (with a behaviour log: of each token, as a candidate's or a behaviour's feature)."""
        inter, rows = dataset.inter_feat, self.item_embedding.num_rows
        users = torch.bincount(inter[self.USER_ID], minlength=self.user_embedding.num_rows)
        self.user_embedding.set_row_occurrences(users)
        if not self.behaviour_log:
            items = history_occurrences(dataset, self.ITEM_ID, rows) + torch.bincount(inter[self.ITEM_ID],
                                                                                       minlength=rows)
            self.item_embedding.set_row_occurrences(items)
            return
        behaviours = self.behaviour_embedding
        item_counts = self.item_embedding.token_occurrences(torch.bincount(inter[self.ITEM_ID], minlength=rows))
        behaviour_counts = behaviours.token_occurrences(
            history_occurrences(dataset, dataset.behavior_id_field, behaviours.num_rows))
        for field in behaviours.shared_fields:  # one table: its tokens occur as either
            if field in item_counts:
                item_counts[field] = behaviour_counts[field] = item_counts[field] + behaviour_counts[field]
        self.item_embedding.set_token_occurrences(item_counts)
        behaviours.set_token_occurrences(behaviour_counts)

    def behaviours_of(self, interaction):
        """The candidate-independent part, on the real behaviours only (packed, N in all; the cost
        follows the behaviours, not MAX_ITEM_LIST_LENGTH): ``rows`` [N] and ``steps`` [N] (each
        behaviour's batch row and position), ``keys`` [N, D] (their embeddings) and
        ``key_projections`` [N, A] (their term of the activation unit's first layer); ``profile``
        [B, P]; ``shape`` (B, L)."""
        item_seq = interaction[self.BEHAVIOUR_SEQ]
        rows, steps = sequence_mask(interaction[self.ITEM_SEQ_LEN], item_seq.shape[1]).nonzero(as_tuple=True)
        keys = self.embed_behaviours(item_seq[rows, steps])                         # [N, D]
        return {"rows": rows, "steps": steps, "keys": keys, "key_projections": self.attention.project_keys(keys),
                "profile": self.profile_of(interaction), "shape": tuple(item_seq.shape)}

    def attention_weights_of(self, behaviours, query, every_pair=False):
        """a(e_j, v_A) of every real behaviour (softmax-normalised per history if configured).

        ``query`` [B, D] (the candidates as behaviours, :meth:`embed_candidates`), one candidate
        per batch row -> [N]; with ``every_pair``, ``query`` [C, D] are candidates for every row -> [N, C].
        """
        keys, rows = behaviours["keys"], behaviours["rows"]
        query_projections = self.attention.project_query(query)
        if every_pair:
            scores = self.attention.score_every_pair(query, keys, query_projections,
                                                     behaviours["key_projections"])                # [N, C]
        else:
            scores = self.attention.score_projected(query.index_select(0, rows), keys,
                                                    query_projections.index_select(0, rows),
                                                    behaviours["key_projections"])                 # [N]
        return packed_softmax(scores, rows, behaviours["shape"][0]) if self.attention_softmax else scores

    def score(self, behaviours, query, target, every_pair=False):
        """Logits of the batch rows with their candidates (``query`` [B, D] and ``target`` [B, E]:
        :meth:`embed_candidates`) -> [B]; with ``every_pair``, of every row with every candidate of
        ``query`` [C, D] and ``target`` [C, E] -> [B, C]."""
        weights = self.attention_weights_of(behaviours, query, every_pair)         # [N(, C)]
        keys, batch = behaviours["keys"], behaviours["shape"][0]
        weighted = weights.unsqueeze(-1) * (keys.unsqueeze(1) if every_pair else keys)   # [N, (C,) D]
        interest = weighted.new_zeros(batch, *weighted.shape[1:]).index_add(0, behaviours["rows"], weighted)
        shape = interest.shape[:-1]                                                 # [B(, C)]
        profile = behaviours["profile"].unsqueeze(1) if every_pair else behaviours["profile"]
        target = target.unsqueeze(0) if every_pair else target
        features = torch.cat([profile.expand(*shape, -1), interest, target.expand(*shape, -1)], dim=-1)
        return self.prediction(self.mlp(features)).squeeze(-1)

    def attention_weights(self, interaction):
        """The weight of each behaviour for each row's candidate: ``{"behaviours": [B, L]}``."""
        behaviours = self.behaviours_of(interaction)
        weights = self.attention_weights_of(behaviours, self.embed_candidates(interaction[self.ITEM_ID])[0])
        dense = weights.new_zeros(behaviours["shape"])
        return {"behaviours": dense.index_put((behaviours["rows"], behaviours["steps"]), weights)}

    def dense_logits(self, users, item_seq, lengths, time_seq, candidates):
        """Logits of each user's candidates from plain tensors, padded and masked (fixed shapes, for
        :mod:`recbole_dien.serving.export`): users [B], item_seq [B, L], lengths [B], candidates [B, C]
        -> [B, C]; ``time_seq`` is unused. Equals :meth:`forward` (tests/serving/test_export.py)."""
        history = self.item_embedding(item_seq)                                     # [B, L, D]
        mask = sequence_mask(lengths, item_seq.shape[1]).unsqueeze(1)               # [B, 1, L]
        target = self.item_embedding(candidates)                                    # [B, C, D]
        weights = self.attention(target, history.unsqueeze(1))                      # [B, C, L]
        weights = masked_softmax(weights, mask) if self.attention_softmax else weights * mask
        interest = torch.matmul(weights, history)                                   # [B, C, D]
        profile = self.user_embedding(users).unsqueeze(1).expand(*interest.shape[:-1], -1)
        return self.prediction(self.mlp(torch.cat([profile, interest, target], dim=-1))).squeeze(-1)

    def forward(self, interaction):
        behaviours = self.behaviours_of(interaction)
        return self.score(behaviours, *self.embed_candidates(interaction[self.ITEM_ID]))   # [B]

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        if self.mini_batch_l2 > 0:
            item_seq = interaction[self.BEHAVIOUR_SEQ]
            real = sequence_mask(interaction[self.ITEM_SEQ_LEN], item_seq.shape[1])   # [B, L]
            if self.behaviour_log:  # the behaviours' rows and the candidates', shared tables once
                penalty = minibatch_l2([(self.behaviour_embedding, item_seq[real]),
                                        (self.item_embedding, interaction[self.ITEM_ID])])
            else:
                items = torch.cat([item_seq[real], interaction[self.ITEM_ID]])        # the ids the batch uses
                penalty = self.item_embedding.minibatch_l2(items)
            penalty = penalty + self.user_embedding.minibatch_l2(interaction[self.USER_ID])
            loss = loss + self.mini_batch_l2 / 2 * penalty
        return loss

    def full_sort_predict(self, interaction):
        """Click probabilities of every item for each user: [B, n_items].

        The behaviours' embeddings and key projections and the profile are computed once per
        user; candidates are scored in chunks so that no intermediate holds more than
        ``full_sort_chunk_elements`` numbers.
        """
        behaviours = self.behaviours_of(interaction)
        device = behaviours["profile"].device
        queries, targets = self.embed_candidates(torch.arange(self.n_items, device=device))
        widest = max(queries.shape[-1], self.attention.input_layer.out_features)    # per (behaviour, candidate)
        chunk = self.full_sort_chunk(max(len(behaviours["rows"]), 1) * widest)
        scores = [self.score(behaviours, query, target, every_pair=True)
                  for query, target in zip(queries.split(chunk), targets.split(chunk))]
        return torch.sigmoid(torch.cat(scores, dim=1))
