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

Interest evolving layer (section 4.3): attention of the candidate on each interest state,
:math:`a_t = \mathrm{softmax}_t(\mathrm{MLP}([e_a, h_t, e_a - h_t, e_a \odot h_t]))` over the real steps, then
an attention-steered GRU (AUGRU by default, eq. 7-8; see
:class:`~recbole_dien.model.layers.InterestEvolution`) whose state at the last real step is the
evolved interest :math:`h'_T`.

Prediction: :math:`\hat y = \sigma(\mathrm{MLP}_{Dice}([h'_T, e_a, p_U]))`, trained with
:math:`L = L_{target} + \alpha L_{aux}`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dien.model.abstract_recommender import AttentionCTRRecommender
from recbole_dien.model.layers import (MLP, ActivationUnit, InterestEvolution, activation_layer,
                                       masked_softmax, sequence_mask)


class DIEN(AttentionCTRRecommender):
    """Deep Interest Evolution Network (Zhou et al., AAAI 2019). Knobs: ``props/DIEN.yaml``."""

    props_name = "DIEN"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hp = self.hyperparameters
        self.NEG_ITEM_SEQ = config["NEG_PREFIX"] + self.ITEM_SEQ
        self.alpha = hp["alpha"]
        self.attention_softmax = hp["attention_softmax"]
        self.history_sum_features = hp["history_sum_features"]

        item_size, user_size = self.item_embedding.output_size, self.user_embedding.output_size
        hidden = hp["gru_hidden_size"] or item_size

        self.interest_extractor = nn.GRU(item_size, hidden, batch_first=True)
        # the auxiliary net MLP([h_t, e]) -> logit; its first layer W [h; e] = W_h h + W_e e is
        # applied in two parts: W_h h once per step for the clicked and the negative item, W_e e
        # once per distinct item
        aux_sizes = list(hp["aux_mlp_sizes"])
        self.auxiliary_input = nn.Linear(hidden + item_size, aux_sizes[0])
        self.auxiliary_net = nn.Sequential(
            activation_layer(hp["aux_activation"], aux_sizes[0]),
            MLP(aux_sizes, hp["aux_activation"]),
            nn.Linear(aux_sizes[-1], 1),
        )
        # the attention compares the candidate with interest states: same width needed
        self.query_projection = nn.Identity() if hidden == item_size else nn.Linear(item_size, hidden)
        self.attention = ActivationUnit(hidden, hp["attention_mlp_sizes"], hp["attention_activation"])
        self.interest_evolution = InterestEvolution(hidden, hidden, hp["gru_type"], hp["augru_variant"])

        mlp_input = hidden + item_size + user_size + (2 * item_size if self.history_sum_features else 0)
        self.mlp = MLP([mlp_input] + list(hp["mlp_hidden_size"]), hp["mlp_activation"], hp["dropout_prob"],
                       input_batch_norm=hp["mlp_batch_norm"])
        self.prediction = nn.Linear(self.mlp.output_size, 1)
        self.finish_init(config)

    # --- candidate-independent part: once per distinct history ---------------------------------

    def extract_interests(self, interaction):
        """Run the interest extractor once per distinct (user, history) of the batch.

        Returns a dict with, per distinct history: ``rows`` (index of one batch row showing it),
        ``history`` [U, L, D], ``mask`` [U, L], ``lengths`` [U], ``states`` [U, L, H], ``profile``
        [U, P], and the candidate-independent products ``attention_keys`` [U, L, A] and
        ``evolution_inputs`` [U, L, 3H] (AGRU/AUGRU); and ``inverse`` [B], the distinct history of
        each batch row.
        """
        item_seq, lengths, users = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.USER_ID]
        mask = sequence_mask(lengths, item_seq.shape[1])
        key = torch.cat([users.unsqueeze(-1), item_seq * mask], dim=-1)
        distinct, inverse = torch.unique(key, dim=0, return_inverse=True)
        rows = torch.full((len(distinct),), len(key), dtype=torch.long, device=key.device)
        rows = rows.scatter_reduce(0, inverse, torch.arange(len(key), device=key.device), "amin")

        history = self.item_embedding(item_seq[rows])                              # [U, L, D]
        states, _ = self.interest_extractor(history)                               # [U, L, H]
        evolution = self.interest_evolution
        return {"rows": rows, "inverse": inverse, "history": history, "mask": mask[rows],
                "lengths": lengths[rows], "states": states, "profile": self.user_embedding(users[rows]),
                "attention_keys": self.attention.project_keys(states),
                "evolution_inputs": evolution.project_inputs(states) if evolution.projects_inputs else None}

    def auxiliary_loss(self, interaction, interests):
        """Eq. 6 over the real (t, t+1) pairs of each distinct history."""
        if self.NEG_ITEM_SEQ not in interaction:
            raise KeyError(f"DIEN's auxiliary loss needs '{self.NEG_ITEM_SEQ}' in the batch: create the dataset "
                           "with recbole_dien.create_dataset (or set alpha=0)")
        pairs = interests["mask"][:, 1:]                                           # step t+1 is real
        if not pairs.any():  # only one-behaviour histories: nothing to predict
            return interests["states"].sum() * 0
        hidden = interests["states"].shape[-1]
        w_state, w_item = self.auxiliary_input.weight.split([hidden, self.auxiliary_input.in_features - hidden], 1)
        state_term = F.linear(interests["states"][:, :-1][pairs], w_state, self.auxiliary_input.bias)  # [N, A]
        clicked = interaction[self.ITEM_SEQ][interests["rows"]][:, 1:][pairs]
        negative = interaction[self.NEG_ITEM_SEQ][interests["rows"]][:, 1:][pairs]
        item_term = self.item_embedding(torch.cat([clicked, negative]), lambda e: F.linear(e, w_item))  # [2N, A]
        logits = self.auxiliary_net(state_term.repeat(2, 1) + item_term)
        labels = torch.cat([torch.ones(len(clicked)), torch.zeros(len(clicked))]).to(logits.device)
        # the mean over 2N terms is half the paper's per-pair sum averaged over N; rescale
        return 2 * F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels)

    # --- candidate-dependent part ----------------------------------------------------------------

    def score(self, interests, target, index=None):
        """Logits of (history, candidate) pairs: the attention, the evolution and the MLP.

        ``target`` [R, D] and ``index`` [R] (the distinct history of each pair; default: one pair
        per distinct history) -> [R].
        """
        def take(x):
            return x if index is None or x is None else x.index_select(0, index)

        states, lengths = take(interests["states"]), take(interests["lengths"])
        attention = self.attention_weights_of(target, states, take(interests["attention_keys"]),
                                              take(interests["mask"]))                            # [R, L]
        evolved = self.interest_evolution(states, attention, lengths, take(interests["evolution_inputs"]))  # [R, H]
        features = [evolved, target, take(interests["profile"])]
        if self.history_sum_features:
            history_sum = take((interests["history"] * interests["mask"].unsqueeze(-1)).sum(1))
            features += [history_sum, target * history_sum]
        return self.prediction(self.mlp(torch.cat(features, dim=-1))).squeeze(-1)

    def attention_weights_of(self, target, states, keys, mask):
        """a_t of eq. 8 for (history, candidate) pairs: target [R, D], the pairs' interest states
        [R, L, H], their precomputed attention keys and mask [R, L] -> [R, L]."""
        scores = self.attention(self.query_projection(target), states, keys)
        # without softmax the scores still steer gates, so they are squashed into (0, 1)
        return masked_softmax(scores, mask) if self.attention_softmax else torch.sigmoid(scores) * mask

    def attention_weights(self, interaction):
        """The attention of each row's candidate on each interest state: ``{"interest states": [B, L]}``."""
        interests = self.extract_interests(interaction)
        target = self.item_embedding(interaction[self.ITEM_ID])
        rows = interests["inverse"]
        weights = self.attention_weights_of(target, interests["states"][rows], interests["attention_keys"][rows],
                                            interests["mask"][rows])
        return {"interest states": weights}

    def forward(self, interaction, interests=None):
        interests = interests or self.extract_interests(interaction)
        target = self.item_embedding(interaction[self.ITEM_ID])
        return self.score(interests, target, interests["inverse"])

    def calculate_loss(self, interaction):
        interests = self.extract_interests(interaction)
        loss = self.loss_fct(self.forward(interaction, interests), interaction[self.LABEL_FIELD])
        if self.alpha > 0:
            loss = loss + self.alpha * self.auxiliary_loss(interaction, interests)
        return loss

    def full_sort_predict(self, interaction):
        """Click probabilities of every item for each user: [B, n_items]. The extractor runs once
        per user; the evolution, which depends on the candidate, runs on chunks of (user, item)
        pairs holding at most ``full_sort_chunk_elements`` numbers per intermediate."""
        interests = self.extract_interests(interaction)
        batch, length = interaction[self.ITEM_SEQ].shape
        hidden = interests["states"].shape[-1]
        all_items = self.item_embedding(torch.arange(self.n_items, device=interests["states"].device))
        widest = max(3 * hidden, self.attention.input_layer.out_features)           # per (pair, step)
        chunk = self.full_sort_chunk(length * widest)
        logits = []
        for start in range(0, batch * self.n_items, chunk):
            # pair p is (user p // n_items, item p % n_items)
            pairs = torch.arange(start, min(start + chunk, batch * self.n_items), device=all_items.device)
            users = interests["inverse"][pairs // self.n_items]
            logits.append(self.score(interests, all_items[pairs % self.n_items], users))
        return torch.sigmoid(torch.cat(logits)).view(batch, self.n_items)

