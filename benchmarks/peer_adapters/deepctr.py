"""DeepCTR-Torch's DIN and DIEN (``deepctr_torch.models``) on the dumped rows (peers' virtualenv).

Features as its examples declare them: a ``SparseFeat`` per user field and per item field (the
candidate), a ``VarLenSparseFeat`` ``hist_<field>`` per item field sharing the item field's
embedding, with the history length in ``seq_length``; DIEN's negative behaviours as
``neg_hist_<field>``. The model takes one float matrix, the columns in its ``feature_index`` order.

The training step is that of its ``BaseModel.fit`` for one batch - forward (which also computes
DIEN's auxiliary loss into ``aux_loss``), the loss plus ``get_regularization_loss()`` plus
``aux_loss``, backward, Adam step - except that the BCE is the batch mean where ``fit`` sums it
over the batch: summed, the auxiliary loss (a mean) would weigh 1/2,048 of what alpha says.
"""
import numpy as np
import torch
import torch.nn.functional as F


class Adapter:
    library = "deepctr-torch"

    def __init__(self, model_name, rows, settings, seed):
        from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat
        from deepctr_torch.models import DIEN, DIN

        size, length = settings["embedding_size"], rows.max_length
        self.rows, self.model_name = rows, model_name
        columns = [SparseFeat(field, rows.vocabulary[field], embedding_dim=size) for field in rows.user_fields]
        columns += [SparseFeat(field, rows.vocabulary[field], embedding_dim=size) for field in rows.item_fields]
        prefixes = ["hist_"] + (["neg_hist_"] if model_name == "DIEN" else [])
        columns += [VarLenSparseFeat(SparseFeat(prefix + field, rows.vocabulary[field], embedding_dim=size,
                                                embedding_name=field), maxlen=length, length_name="seq_length")
                    for prefix in prefixes for field in rows.item_fields]
        common = {"dnn_hidden_units": tuple(settings["mlp_hidden_size"]),
                  # its DNN builds Dice for 3-D inputs only (dice_dim=3): the top MLP's 2-D input fails
                  # there, so PReLU, Dice's special case and the DIN paper's other activation
                  "dnn_activation": "prelu", "l2_reg_embedding": 0.0, "l2_reg_dnn": 0.0, "dnn_dropout": 0.0,
                  "seed": seed, "device": "cpu"}
        if model_name == "DIN":
            self.model = DIN(columns, list(rows.item_fields), dnn_use_bn=False,
                             att_hidden_size=tuple(settings["attention_mlp_sizes"]), att_activation="sigmoid",
                             att_weight_normalization=False, **common)
        elif model_name == "DIEN":
            self.model = DIEN(columns, list(rows.item_fields), gru_type="AUGRU", use_negsampling=True,
                              alpha=settings["alpha"], use_bn=False,
                              att_hidden_units=tuple(settings["attention_mlp_sizes"]), att_activation="sigmoid",
                              att_weight_normalization=True, **common)
        else:
            raise ValueError(f"DeepCTR-Torch has no {model_name} in PyTorch")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings["learning_rate"])

    def inputs(self, batch):
        values = {"seq_length": batch["length"]}
        values.update(batch["user"])
        values.update(batch["target"])
        values.update({"hist_" + field: batch["history"][field] for field in self.rows.item_fields})
        values.update({"neg_hist_" + field: batch["negative"][field] for field in self.rows.item_fields})
        x = np.zeros((len(batch["label"]), max(end for _, end in self.model.feature_index.values())), np.float32)
        for name, (start, end) in self.model.feature_index.items():
            x[:, start:end] = values[name].reshape(len(x), end - start)
        return torch.from_numpy(x)

    def train_step(self, x, labels):
        self.model.train()
        prediction = self.model(x).squeeze(-1)
        self.optimizer.zero_grad()
        loss = F.binary_cross_entropy(prediction, labels) + self.model.get_regularization_loss() + self.model.aux_loss
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def predict(self, x):
        self.model.eval()
        with torch.no_grad():
            return self.model(x).squeeze(-1).numpy()
