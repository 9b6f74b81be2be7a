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

with :math:`p_U` the user profile embedding. As in the paper the weights :math:`a` are not
normalised (the sum keeps the strength of interest); ``attention_softmax: true`` gives the
masked softmax of the authors' released code. Padded history positions get weight 0.

Loss: binary cross-entropy, plus optionally the mini-batch aware L2 of section 4.1,

.. math::

    \frac{\lambda}{2} \sum_{j \in B} \frac{\lVert w_j \rVert_2^2}{n_j},

over the embedding rows j used by the mini-batch B, where :math:`n_j` is how often row j occurs
in the training data (``mini_batch_l2`` = λ).
"""
import torch
import torch.nn as nn

from recbole_dien.model.abstract_recommender import AttentionCTRRecommender
from recbole_dien.model.layers import MLP, ActivationUnit, masked_softmax, sequence_mask


class DIN(AttentionCTRRecommender):
    """Deep Interest Network (Zhou et al., KDD 2018). Knobs: ``props/DIN.yaml``."""

    props_name = "DIN"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hp = self.hyperparameters
        self.attention_softmax = hp["attention_softmax"]
        self.mini_batch_l2 = hp["mini_batch_l2"]

        item_size, user_size = self.item_embedding.output_size, self.user_embedding.output_size
        self.attention = ActivationUnit(item_size, hp["attention_mlp_sizes"], hp["attention_activation"])
        self.mlp = MLP([user_size + 2 * item_size] + list(hp["mlp_hidden_size"]), hp["mlp_activation"],
                       hp["dropout_prob"], input_batch_norm=hp["mlp_batch_norm"])
        self.prediction = nn.Linear(self.mlp.output_size, 1)

        self.finish_init(config)
        if self.mini_batch_l2 > 0:
            self._count_occurrences(dataset)

    def _count_occurrences(self, dataset):
        """n_j of the mini-batch aware L2: occurrences of each item / user in the training rows."""
        inter = dataset.inter_feat
        item_seq, lengths = inter[self.ITEM_SEQ], inter[self.ITEM_SEQ_LEN]
        items = torch.cat([item_seq[sequence_mask(lengths, item_seq.shape[1])], inter[self.ITEM_ID]])
        self.item_embedding.set_row_occurrences(torch.bincount(items, minlength=self.item_embedding.num_rows))
        users = torch.bincount(inter[self.USER_ID], minlength=self.user_embedding.num_rows)
        self.user_embedding.set_row_occurrences(users)

    def user_interest_inputs(self, interaction):
        """The candidate-independent part: history embeddings [B, L, D], their mask [B, L] and the
        user profile [B, P]."""
        item_seq = interaction[self.ITEM_SEQ]
        history = self.item_embedding(item_seq)
        mask = sequence_mask(interaction[self.ITEM_SEQ_LEN], item_seq.shape[1])
        profile = self.user_embedding(interaction[self.USER_ID])
        return history, mask, profile

    def score(self, history, mask, profile, target):
        """Logits for every (user, candidate) pair the shapes broadcast to.

        history [B, 1, L, D] or [B, L, D]; mask like history without D; profile [B, (1,) P];
        target [(B|1), (N,) D] -> logits [B, (N)].
        """
        weights = self.attention_weights_of(history, mask, target)                 # [..., L]
        interest = torch.matmul(weights.unsqueeze(-2), history).squeeze(-2)         # [..., D]
        shape = interest.shape[:-1]
        features = torch.cat([profile.expand(*shape, -1), interest, target.expand(*shape, -1)], dim=-1)
        return self.prediction(self.mlp(features)).squeeze(-1)

    def attention_weights_of(self, history, mask, target):
        """a(e_j, v_A) of every behaviour, zero on padding (softmax-normalised if configured)."""
        weights = self.attention(target, history)
        return masked_softmax(weights, mask) if self.attention_softmax else weights * mask

    def attention_weights(self, interaction):
        """The weight of each behaviour for each row's candidate: ``{"behaviours": [B, L]}``."""
        history, mask, _ = self.user_interest_inputs(interaction)
        return {"behaviours": self.attention_weights_of(history, mask, self.item_embedding(interaction[self.ITEM_ID]))}

    def forward(self, interaction):
        history, mask, profile = self.user_interest_inputs(interaction)
        target = self.item_embedding(interaction[self.ITEM_ID])                    # [B, D]
        return self.score(history, mask, profile, target)                          # [B]

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        if self.mini_batch_l2 > 0:
            items = torch.cat([interaction[self.ITEM_SEQ].flatten(), interaction[self.ITEM_ID]])
            penalty = self.item_embedding.minibatch_l2(items)
            penalty = penalty + self.user_embedding.minibatch_l2(interaction[self.USER_ID])
            loss = loss + self.mini_batch_l2 / 2 * penalty
        return loss

    def full_sort_predict(self, interaction):
        """Click probabilities of every item for each user: [B, n_items].

        The history embeddings and profile are computed once per user; candidates are scored in
        chunks so that no intermediate holds more than ``full_sort_chunk_elements`` numbers.
        """
        history, mask, profile = self.user_interest_inputs(interaction)
        batch, length, dim = history.shape
        all_items = self.item_embedding(torch.arange(self.n_items, device=history.device))
        widest = max(dim, self.attention.input_layer.out_features)  # per (user, candidate, position)
        chunk = self.full_sort_chunk(batch * length * widest)
        scores = [
            self.score(history.unsqueeze(1), mask.unsqueeze(1), profile.unsqueeze(1), candidates.unsqueeze(0))
            for candidates in all_items.split(chunk)
        ]
        return torch.sigmoid(torch.cat(scores, dim=1))

