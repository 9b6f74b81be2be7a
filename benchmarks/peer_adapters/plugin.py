"""recbole-dien's DIN, DIEN and DSIN on the dumped rows (main virtualenv).

The model is built as the plugin builds it for a run (``recbole_dien.Config`` with the rows'
own config, ``create_dataset``, the training split) and trained as RecBole's trainer trains it:
Adam over every parameter, ``calculate_loss`` (BCE, and DIEN's auxiliary loss), backward, step;
no gradient clipping (RecBole's ``clip_grad_norm`` is off by default). ``keep_freed_memory`` is
applied as the plugin's trainer applies it when it is built. A batch is RecBole's
``Interaction`` with the fields the models read: the user, the candidate, the label, the history
(``item_id_list``, ``item_length``) and DIEN's negatives, or DSIN's session input with its times.
"""
import numpy as np
import torch

from peer_adapters.rows import RowsError


class Adapter:
    library = "recbole-dien"

    def __init__(self, model_name, rows, settings, seed):
        import recbole_dien
        from recbole_dien import Config, create_dataset
        from recbole_dien.trainer.allocator import keep_freed_memory

        self.version = recbole_dien.__version__
        overrides = {key: settings[key] for key in ("learning_rate", "train_batch_size", "embedding_size")}
        config = Config(model_name, rows.meta["dataset"], cmd_args=[],
                        config_dict={**rows.meta["config"], **overrides, "seed": seed, "show_progress": False})
        dataset = create_dataset(config)
        train_split = dataset.build()[0]
        self._check_same_ids(dataset, rows)
        torch.manual_seed(seed)  # the weights do not depend on how much randomness building the data took
        self.model = config.model_class(config, train_split)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config["learning_rate"],
                                          weight_decay=config["weight_decay"] or 0.0)
        keep_freed_memory()
        self.model_name = model_name
        self.fields = {"user": dataset.uid_field, "item": dataset.iid_field, "label": config["LABEL_FIELD"],
                       "length": config["ITEM_LIST_LENGTH_FIELD"],
                       "items": dataset.iid_field + config["LIST_SUFFIX"],
                       "negatives": config["NEG_PREFIX"] + dataset.iid_field + config["LIST_SUFFIX"],
                       "times": dataset.time_field + config["LIST_SUFFIX"]}
        from recbole.data.interaction import Interaction
        self.Interaction = Interaction

    @staticmethod
    def _check_same_ids(dataset, rows):
        """The rows are ids of the dataset they were dumped from: the run's must have the same tables."""
        same = dataset.item_num == rows.vocabulary[rows.item_fields[0]]
        for field in rows.item_fields[1:]:
            same = same and np.array_equal(dataset.item_feat[field].numpy(), rows.arrays[f"item_{field}"])
        for field in rows.user_fields:
            same = same and np.array_equal(dataset.user_feat[field].numpy(), rows.arrays[f"user_{field}"])
        if not same:
            raise RowsError(f"the {rows.meta['dataset']} this run builds has other ids than the rows file's: the "
                            "dataset or its config changed since the dump; write the rows again with --dump-only")

    def inputs(self, batch):
        f = self.fields
        columns = {f["user"]: batch["user_id"], f["item"]: batch["target"][f["item"]], f["label"]: batch["label"]}
        if self.model_name == "DSIN":  # its own window: the sessions of the whole history, exact times
            columns.update({f["items"]: batch["dsin"]["item_id"], f["times"]: batch["dsin"]["time"],
                            f["length"]: batch["dsin"]["length"]})
        else:
            columns.update({f["items"]: batch["history"][f["item"]], f["length"]: batch["length"],
                            f["negatives"]: batch["negative"][f["item"]]})
        return self.Interaction({name: torch.from_numpy(value) for name, value in columns.items()})

    def train_step(self, interaction, labels):
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.model.calculate_loss(interaction)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def predict(self, interaction):
        self.model.eval()
        with torch.no_grad():
            return self.model.predict(interaction).numpy()
