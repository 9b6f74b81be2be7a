"""What DIN, DIEN and DSIN share."""
import torch
import torch.nn as nn

from recbole_dien.utils.errors import ConfigError
from recbole_dien.model.layers import Dice, FeatureEmbedding
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
        self.loss_fct = nn.BCEWithLogitsLoss()

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
