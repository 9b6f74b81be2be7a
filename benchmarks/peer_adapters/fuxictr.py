"""FuxiCTR's DIN and DIEN on the dumped rows (peers' virtualenv).

FuxiCTR 2.3's wheel is the framework; its DIN and DIEN are in its model zoo
(``model_zoo/LongCTR/DIN``, ``DIEN``), which benchmarks/peers.py copies from its source
distribution into ``<venv>/fuxictr_longctr``. Those models take what its ``LongCTRDataLoader``
gives: ``(batch_dict, item_dict, mask)`` - the user fields and the label by name, every item field
of the behaviours followed by the candidate flattened to [B * (L + 1)], and the behaviours' mask
[B, L] - and a ``FeatureMap`` whose item fields have ``source: item``. Behaviours here are
left-aligned (oldest first, padding after), what DIEN's ``pack_padded_sequence`` reads.

DIEN is built with ``attention_type: din_attention`` (DIN's unit on the interest states; its
default is the bilinear form) and ``use_attention_softmax: True``; this DIEN has no auxiliary loss.
The training step is the models' own ``train_step`` (forward, BCE on its sigmoid output plus its
regularisation, 0 here, backward, gradient clipping at its ``fit``'s default norm 10, Adam step,
``zero_grad``).
"""
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

MAX_GRADIENT_NORM = 10.0   # BaseModel.fit's default


def model_zoo():
    """The folder benchmarks/peers.py copied FuxiCTR's LongCTR DIN and DIEN into (in this venv)."""
    folder = Path(sys.prefix) / "fuxictr_longctr"
    if not (folder / "DIEN" / "DIEN.py").exists():
        raise FileNotFoundError(f"FuxiCTR's model zoo is not in {folder}: run benchmarks/peers.py, which copies it "
                                "there from FuxiCTR's source distribution")
    return folder


class Adapter:
    library = "fuxictr"

    def __init__(self, model_name, rows, settings, seed):
        from fuxictr.features import FeatureMap

        sys.path.insert(0, str(model_zoo().parent))
        from fuxictr_longctr.DIEN import DIEN
        from fuxictr_longctr.DIN import DIN

        size = settings["embedding_size"]
        self.rows, self.model_name = rows, model_name
        # its data_dir and model_root: paths it reads pretrained embeddings from and writes checkpoints
        # to in its own fit, neither of which happens here (the run's folder, a temporary one)
        feature_map = FeatureMap("peers", ".")
        feature_map.default_emb_dim = size
        feature_map.labels = ["label"]
        feature_map.features = OrderedDict(
            [(field, {"type": "categorical", "source": "user", "vocab_size": rows.vocabulary[field], "padding_idx": 0})
             for field in rows.user_fields]
            + [(field, {"type": "categorical", "source": "item", "vocab_size": rows.vocabulary[field],
                        "padding_idx": 0}) for field in rows.item_fields])
        feature_map.num_fields = feature_map.get_num_fields()
        feature_map.set_column_index()
        common = {"gpu": -1, "learning_rate": settings["learning_rate"], "embedding_dim": size,
                  "dnn_hidden_units": list(settings["mlp_hidden_size"]), "dnn_activations": "Dice", "net_dropout": 0,
                  "optimizer": "adam", "loss": "binary_crossentropy", "verbose": 0, "model_root": ".",
                  "metrics": ["AUC"], "embedding_regularizer": None, "net_regularizer": None}
        if model_name == "DIN":
            self.model = DIN(feature_map, attention_hidden_units=list(settings["attention_mlp_sizes"]),
                             attention_hidden_activations="sigmoid", din_use_softmax=False, batch_norm=False,
                             **common)
        elif model_name == "DIEN":
            self.model = DIEN(feature_map, gru_type="AUGRU", attention_type="din_attention",
                              attention_hidden_units=list(settings["attention_mlp_sizes"]),
                              attention_activation="sigmoid", use_attention_softmax=True, **common)
        else:
            raise ValueError(f"FuxiCTR has no {model_name}")
        self.model._max_gradient_norm = MAX_GRADIENT_NORM
        self.model._batch_index = 0

    def inputs(self, batch):
        count, length = len(batch["label"]), self.rows.max_length
        batch_dict = {field: torch.from_numpy(batch["user"][field]) for field in self.rows.user_fields}
        batch_dict["label"] = torch.from_numpy(batch["label"])
        item_dict = {field: torch.from_numpy(np.concatenate([batch["history"][field], batch["target"][field][:, None]],
                                                            axis=1).reshape(count * (length + 1)))
                     for field in self.rows.item_fields}
        mask = torch.from_numpy((np.arange(length) < batch["length"][:, None]).astype(np.float32))
        return batch_dict, item_dict, mask

    def train_step(self, inputs, labels):
        self.model.train()
        return self.model.train_step(inputs).item()

    def predict(self, inputs):
        self.model.eval()
        with torch.no_grad():
            return self.model.forward(inputs)["y_pred"].reshape(-1).numpy()
