"""What DIN, DIEN and DSIN share."""
import torch
import torch.nn as nn

from recbole_dien.utils.errors import ConfigError, DatasetError
from recbole_dien.model.layers import CandidateAsBehaviour, Dice, FeatureEmbedding
from recbole_dien.config.knobs import model_hyperparameters

# fewest training rows per batch from which BatchNorm / Dice statistics mean anything: with one
# row (a positive and its sampled negative share one history) the top MLP sees each feature
# normalised to +-1 and the model never leaves AUC 0.5
MIN_BATCH_FOR_BATCH_STATISTICS = 16


class AttentionCTRRecommender:
    """Base of the plugin's models: point-wise click-through-rate prediction on a host's
    sequential data.

    Reads the knobs of ``props/<props_name>.yaml`` (the config's values first), builds the item
    embedding (id ⊕ side features) and the user-profile embedding, trains with binary
    cross-entropy on the host's labels and returns click probabilities from ``predict``.
    Subclasses define ``forward(interaction) -> logits`` and ``full_sort_predict`` and call
    :meth:`finish_init` once their layers exist.

    Behaviours are the items of the history (``ITEM_SEQ``), embedded like candidates - unless the
    dataset is impressions with a separate behaviour log (:mod:`recbole_dien.data.impressions`):
    then ``BEHAVIOUR_SEQ`` holds behaviour ids, embedded from the behaviours' own fields
    (``behaviour_embedding``, sharing the item table's embedding of every field of the same name),
    a candidate is compared with them in the behaviours' layout (``candidate_as_behaviour``) and
    enters the top MLP with all its item features, and the impression's context fields (the ad
    slot) join the user profile. :meth:`embed_behaviours`, :meth:`embed_candidates` and
    :meth:`profile_of` serve both kinds of dataset.

    The classes are host-neutral: :mod:`recbole_dien.utils.hosts` builds each on the host's
    ``SequentialRecommender`` with the host's point-wise ``input_type`` (``recbole_dien.DIN`` on
    RecBole's, ``recbole_dien.hopwise.DIN`` on hopwise's); ``host`` is that host.
    """

    props_name = None
    host = None  # set on the class built for a host

    def __init__(self, config, dataset):
        if self.host is None:
            raise TypeError(f"{type(self).__module__}.{type(self).__name__} is the host-neutral model: build "
                            f"recbole_dien.{type(self).__name__} (RecBole) or recbole_dien.hopwise."
                            f"{type(self).__name__} (hopwise)")
        super().__init__(config, dataset)
        self.hyperparameters = hp = model_hyperparameters(config, self.props_name)
        self.LABEL_FIELD = config["LABEL_FIELD"]
        self.full_sort_chunk_elements = hp["full_sort_chunk_elements"]
        self.item_embedding = FeatureEmbedding(dataset, "item", hp["embedding_size"],
                                               token_seq_pooling=hp["pooling_mode"],
                                               unknown_id_dropout=hp["unknown_id_dropout"])
        self.user_embedding = FeatureEmbedding(dataset, "user", hp["embedding_size"],
                                               include_id=hp["user_id_feature"],
                                               token_seq_pooling=hp["pooling_mode"],
                                               unknown_id_dropout=hp["unknown_id_dropout"])
        self.behaviour_log = self._uses_behaviour_log(config, dataset)
        self.BEHAVIOUR_SEQ, self.context_fields = self.ITEM_SEQ, []
        if self.behaviour_log:
            self.BEHAVIOUR_SEQ = dataset.behavior_id_list_field
            self.behaviour_embedding = FeatureEmbedding(dataset, "behavior", hp["embedding_size"],
                                                        token_seq_pooling=hp["pooling_mode"],
                                                        shared_with=self.item_embedding)
            if not self.behaviour_embedding.shared_fields:
                raise DatasetError(
                    f"the behaviour log's fields ({', '.join(self.behaviour_embedding.fields)}) share none with the "
                    f"items ({', '.join(self.item_embedding.fields)}), so attention has nothing to compare a "
                    "candidate with: name the behaviours' columns like the item table's (e.g. cate_id, brand)")
            self.candidate_as_behaviour = CandidateAsBehaviour(self.item_embedding, self.behaviour_embedding)
            self.context_fields = list(dataset.context_fields)
            if self.context_fields:
                self.context_embedding = FeatureEmbedding(dataset, "context", hp["embedding_size"],
                                                          token_seq_pooling=hp["pooling_mode"])
        self.behaviour_size = (self.behaviour_embedding if self.behaviour_log else self.item_embedding).output_size
        self.profile_size = self.user_embedding.output_size + (
            self.context_embedding.output_size if self.context_fields else 0)
        self.loss_fct = nn.BCEWithLogitsLoss()

    @staticmethod
    def _uses_behaviour_log(config, dataset):
        """Whether ``dataset`` is impressions with a behaviour log; one line if the config names a
        behaviour log that the dataset was built without (RecBole's own ``create_dataset``)."""
        if getattr(dataset, "distinct_behaviors", None) is not None:
            return True
        suffix = config["behavior_log_suffix"] if "behavior_log_suffix" in config else None
        if suffix:
            raise DatasetError(
                f"behavior_log_suffix={suffix!r}: the dataset is {type(dataset).__module__}.{type(dataset).__name__}, "
                "which reads no behaviour log (its histories would be the impressions themselves); build it with "
                "recbole_dien.create_dataset")
        return False

    # --- what a behaviour, a candidate and a profile are ---------------------------------------

    def embed_behaviours(self, ids, transform=None):
        """Behaviours (the ids of ``BEHAVIOUR_SEQ``) -> [..., behaviour_size]."""
        if self.behaviour_log:
            return self.behaviour_embedding(ids, transform)
        return self.item_embedding(ids, transform)

    def embed_candidates(self, items):
        """Candidate items [...] -> (``query`` [..., behaviour_size]: the candidate as attention
        compares it with behaviours, ``target`` [..., item width]: all its item features). Without
        a behaviour log the two are one tensor, computed once."""
        target = self.item_embedding(items)
        return (self.candidate_as_behaviour(items) if self.behaviour_log else target), target

    def profile_of(self, interaction, rows=None):
        """The user profile of each row (of the rows ``rows``, if given) -> [B, profile_size]:
        the user's embedding, ⊕ the impression's context fields where the dataset has them."""
        users = interaction[self.USER_ID]
        profile = self.user_embedding(users if rows is None else users[rows])
        if not self.context_fields:
            return profile
        columns = {field: interaction[field] if rows is None else interaction[field][rows]
                   for field in self.context_fields}
        return torch.cat([profile, self.context_embedding.embed_columns(columns)], dim=-1)

    def check_batch_statistics(self, config):
        """Refuse a training batch too small for the model's BatchNorm / Dice layers; call once the
        layers exist."""
        uses = [name for name, module in self.named_modules() if isinstance(module, (nn.BatchNorm1d, Dice))]
        batch = config["train_batch_size"]
        if uses and batch is not None and batch < MIN_BATCH_FOR_BATCH_STATISTICS:
            raise ConfigError(
                f"invalid setting train_batch_size={batch}: {type(self).__name__} normalises with batch statistics "
                f"(BatchNorm / Dice), which fewer than {MIN_BATCH_FOR_BATCH_STATISTICS} rows cannot estimate (the "
                f"model would not learn); use train_batch_size >= {MIN_BATCH_FOR_BATCH_STATISTICS}, or set "
                "mlp_batch_norm=False and mlp_activation=prelu (and no dice activation) for tiny batches")

    def finish_init(self, config):
        """Initialise the weights and check the batch size against the layers."""
        self.apply(self._init_weights)
        self.check_batch_statistics(config)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Embedding, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def full_sort_chunk(self, numbers_per_candidate):
        """How many candidates ``full_sort_predict`` scores at once so that no intermediate holds
        more than ``full_sort_chunk_elements`` numbers (at least one)."""
        return max(1, self.full_sort_chunk_elements // numbers_per_candidate)

    def calculate_loss(self, interaction):
        return self.loss_fct(self.forward(interaction), interaction[self.LABEL_FIELD])

    def predict(self, interaction):
        return torch.sigmoid(self.forward(interaction))
