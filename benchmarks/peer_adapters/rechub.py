"""torch-rechub's DIN and DIEN (``torch_rechub.models.ranking``) on the dumped rows (peers' virtualenv).

Features as its DIN/DIEN docstrings ask: the user fields as ``SparseFeature``s (the MLP's
features), the candidate's item fields as target ``SparseFeature``s with ``padding_idx=0``, the
behaviours as ``SequenceFeature``s ``hist_<field>`` (``pooling="concat"``, ``padding_idx=0``,
sharing the target field's embedding) and DIEN's negatives as ``neg_hist_<field>`` likewise. Each
item field gets its own attention (and in DIEN its own GRU and AUGRU): that is how the library
takes several behaviour fields.

The training step is that of its ``CTRTrainer.train_one_epoch`` for one batch: forward, BCE (plus
DIEN's alpha-weighted auxiliary loss, which its forward returns), plus its regularisation loss
(every coefficient 0, as the trainer's default), ``zero_grad``, backward, Adam step. Adam gets no
weight decay (the trainer's default optimiser has 1e-5), like every other library here.
"""
import torch

from peer_adapters.loop import named_history_inputs


class Adapter:
    library = "torch-rechub"

    def __init__(self, model_name, rows, settings, seed):
        from torch_rechub.basic.features import SequenceFeature, SparseFeature
        from torch_rechub.basic.loss_func import RegularizationLoss
        from torch_rechub.models.ranking import DIEN, DIN

        size = settings["embedding_size"]
        self.rows, self.model_name = rows, model_name
        features = [SparseFeature(field, rows.vocabulary[field], embed_dim=size) for field in rows.user_fields]
        targets = [SparseFeature(field, rows.vocabulary[field], embed_dim=size, padding_idx=0)
                   for field in rows.item_fields]

        def sequences(prefix):
            return [SequenceFeature(prefix + field, rows.vocabulary[field], embed_dim=size, pooling="concat",
                                    shared_with=field, padding_idx=0) for field in rows.item_fields]

        mlp = {"dims": list(settings["mlp_hidden_size"])}   # its activation is fixed: its own Dice
        if model_name == "DIN":
            self.model = DIN(features, sequences("hist_"), targets, mlp_params=mlp,
                             attention_mlp_params={"dims": list(settings["attention_mlp_sizes"]),
                                                   "activation": "sigmoid", "use_softmax": False})
        elif model_name == "DIEN":
            self.model = DIEN(features, sequences("hist_"), sequences("neg_hist_"), targets, mlp_params=mlp,
                              alpha=settings["alpha"])
        else:
            raise ValueError(f"torch-rechub has no {model_name}")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings["learning_rate"])
        self.criterion = torch.nn.BCELoss()
        self.regularization = RegularizationLoss()

    def inputs(self, batch):
        return named_history_inputs(self.rows, batch, negatives=self.model_name == "DIEN")

    def train_step(self, x, labels):
        self.model.train()
        if self.model_name == "DIEN":
            prediction, auxiliary = self.model(x)
            loss = self.criterion(prediction, labels) + auxiliary
        else:
            loss = self.criterion(self.model(x), labels)
        loss = loss + self.regularization(self.model)
        self.model.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def predict(self, x):
        self.model.eval()
        with torch.no_grad():
            output = self.model(x)
            return (output[0] if self.model_name == "DIEN" else output).numpy()
