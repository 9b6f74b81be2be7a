"""The batches and first scores of a tiny run, built by either host's side of the plugin, as plain
tensors: the hopwise tests compare hopwise's with RecBole's, computed in a RecBole virtualenv.

``python -m tests.hopwise.batches HOST MODEL DATA_PATH OUT`` writes them to OUT (``torch.save``)."""
import sys

import torch

TRAIN_BATCHES = 3


def settings(data_path, checkpoint_dir):
    """The tiny run of tests/conftest.py's ``tiny_config_dict``."""
    return {
        "data_path": data_path, "dataset": "tiny",
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "user": ["user_id", "age", "gender"],
                     "item": ["item_id", "year", "genre", "price"]},
        "MAX_ITEM_LIST_LENGTH": 8,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni20"},
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC", "epochs": 1, "train_batch_size": 64,
        "eval_batch_size": 1024, "show_progress": False, "checkpoint_dir": checkpoint_dir, "seed": 7,
    }


def batches(host, model, data_path, checkpoint_dir):
    """{"train": [the first train batches], "valid": [the first valid batch], "test": [...],
    "scores": the model's click probabilities of the first train batch, its weights from the run's
    seed}: every batch a {field: tensor} dict."""
    if host == "hopwise":
        import recbole_dien.hopwise as side
        from hopwise.data import data_preparation
        from hopwise.utils import init_seed
    else:
        import recbole_dien as side
        from recbole.data import data_preparation
        from recbole.utils import init_seed
    config = side.Config(model, "tiny", config_dict=settings(data_path, checkpoint_dir), cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    dataset = side.create_dataset(config)
    train, valid, test = data_preparation(config, dataset)

    def plain(batch):
        interaction = batch[0] if isinstance(batch, tuple) else batch
        return {field: value.clone() for field, value in interaction.interaction.items()}

    found = {"train": [], "valid": [plain(next(iter(valid)))], "test": [plain(next(iter(test)))]}
    for batch in train:
        found["train"].append(plain(batch))
        if len(found["train"]) == TRAIN_BATCHES:
            break
    init_seed(config["seed"], config["reproducibility"])
    network = config.model_class(config, train._dataset).eval()
    with torch.no_grad():  # the plugin's datasets name their host's Interaction
        found["scores"] = network.predict(train._dataset.Interaction(found["train"][0]))
    found["parameters"] = {name: value.detach().clone() for name, value in network.state_dict().items()}
    return found


if __name__ == "__main__":
    host_name, model_name, data, out = sys.argv[1:5]
    torch.save(batches(host_name, model_name, data, out + ".saved"), out)
