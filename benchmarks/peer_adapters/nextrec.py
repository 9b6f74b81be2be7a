"""NextRec's DIN and DIEN (``nextrec.models.ranking``) on the dumped rows (peers' virtualenv).

Features as its constructors ask: a ``SparseFeature`` per user field and per item field (the
candidate, ``candidate_feature_name``), a ``SequenceFeature`` ``hist_<field>`` per item field
(``behavior_feature_name``) sharing the item field's embedding (``embedding_name``), padding id
0, and DIEN's negatives as ``neg_hist_<field>`` (``neg_behavior_feature_name``). Each item field
gets its own attention (and in DIEN its own GRU, AUGRU and auxiliary net): that is how the library
takes several behaviour fields; DIEN's GRU width is set to one field's embedding width, so the
candidate needs no projection.

The training step is that of its ``train_epoch`` for one batch: the model with its task head
(``call_model``), ``compute_loss`` (BCE on the head's probability, plus DIEN's auxiliary loss at
``aux_loss_weight``), its regularisation loss (0 here), ``zero_grad``, backward, its gradient
clipping (norm 1.0, its default), Adam step (``compile``'s optimiser).
"""
import torch
import torch.nn as nn

from peer_adapters.loop import named_history_inputs


class Adapter:
    library = "nextrec"

    def __init__(self, model_name, rows, settings, seed):
        from nextrec.basic.features import SequenceFeature, SparseFeature
        from nextrec.models.ranking.dien import DIEN
        from nextrec.models.ranking.din import DIN

        size = settings["embedding_size"]
        self.rows, self.model_name = rows, model_name
        sparse = [SparseFeature(field, rows.vocabulary[field], embedding_dim=size)
                  for field in rows.user_fields + rows.item_fields]

        def sequences(prefix):
            return [SequenceFeature(prefix + field, rows.vocabulary[field], max_len=rows.max_length,
                                    embedding_name=field, embedding_dim=size, padding_idx=0)
                    for field in rows.item_fields]

        # its MLP builds Dice only with the layer width, which the MLP does not pass: PReLU,
        # Dice's special case and the DIN paper's other activation
        common = {"sparse_features": sparse, "target": "label", "device": "cpu", "session_id": f"{model_name}-{seed}",
                  "behavior_feature_name": ["hist_" + field for field in rows.item_fields],
                  "candidate_feature_name": list(rows.item_fields),
                  "mlp_params": {"hidden_dims": list(settings["mlp_hidden_size"]), "activation": "prelu"},
                  "attention_mlp_params": {"hidden_dims": list(settings["attention_mlp_sizes"]),
                                           "activation": "sigmoid"}}
        if model_name == "DIN":
            # without softmax its weights are sigmoid(score): unnormalised, as the plugin's DIN
            self.model = DIN(sequence_features=sequences("hist_"), attention_use_softmax=False, **common)
        elif model_name == "DIEN":
            self.model = DIEN(sequence_features=sequences("hist_") + sequences("neg_hist_"),
                              neg_behavior_feature_name=["neg_hist_" + field for field in rows.item_fields],
                              gru_hidden_size=size, use_negsampling=True, aux_loss_weight=settings["alpha"], **common)
        else:
            raise ValueError(f"NextRec has no {model_name}")
        self.model.compile(optimizer="adam", optimizer_params={"lr": settings["learning_rate"]}, loss="bce")

    def inputs(self, batch):
        return named_history_inputs(self.rows, batch, negatives=self.model_name == "DIEN")

    def train_step(self, x, labels):
        model = self.model
        model.train()
        prediction = model.training_adapter.forward(model, x)
        loss = model.compute_loss(prediction, labels.view(-1, 1)) + model.add_reg_loss()
        model.optimizer_fn.zero_grad()
        loss.backward()
        if model.max_gradient_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), model.max_gradient_norm)
        model.optimizer_fn.step()
        return loss.item()

    def predict(self, x):
        self.model.eval()
        with torch.no_grad():
            return self.model.call_model(x).reshape(-1).numpy()
