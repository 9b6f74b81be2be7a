"""A tiny atomic dataset (RecBole's file format) written per test session, and configs for it."""
import numpy as np
import pytest
import torch

N_USERS, N_ITEMS, PER_USER = 24, 60, 14
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def write_tiny_dataset(root, name="tiny", with_time=True):
    """Users 1..24, items 1..60 with a year (token), genres (token_seq) and a price (float);
    users with age and gender. Each user rates 14 distinct items at increasing times, some of them
    within the same 30 minutes (sessions)."""
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id:token\trating:float" + ("\ttimestamp:float" if with_time else "")
    rows = [header]
    for user in range(1, N_USERS + 1):
        items = rng.choice(np.arange(1, N_ITEMS + 1), size=PER_USER, replace=False)
        gaps = rng.choice([60, 600, 7200, 86400], size=PER_USER)
        times = 1_000_000 + np.cumsum(gaps)
        for item, time in zip(items, times):
            row = f"{user}\t{item}\t{rng.integers(1, 6)}" + (f"\t{time}" if with_time else "")
            rows.append(row)
    (folder / f"{name}.inter").write_text("\n".join(rows) + "\n")
    items = ["item_id:token\tyear:token\tgenre:token_seq\tprice:float"]
    for item in range(1, N_ITEMS + 1):
        genres = " ".join(rng.choice(GENRES, size=rng.integers(1, 4), replace=False))
        items.append(f"{item}\t{1990 + item % 7}\t{genres}\t{rng.uniform(1, 20):.2f}")
    (folder / f"{name}.item").write_text("\n".join(items) + "\n")
    users = ["user_id:token\tage:token\tgender:token"]
    for user in range(1, N_USERS + 1):
        users.append(f"{user}\t{20 + user % 5}\t{'MF'[user % 2]}")
    (folder / f"{name}.user").write_text("\n".join(users) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny_dataset(root, "tiny")
    write_tiny_dataset(root, "notime", with_time=False)
    return str(root)


@pytest.fixture
def tiny_config_dict(tiny_data_path, tmp_path, monkeypatch):
    """Settings for a fast run on the tiny dataset; RecBole's logs and checkpoints go to tmp_path."""
    monkeypatch.chdir(tmp_path)
    return {
        "data_path": tiny_data_path,
        "dataset": "tiny",
        "load_col": {
            "inter": ["user_id", "item_id", "rating", "timestamp"],
            "user": ["user_id", "age", "gender"],
            "item": ["item_id", "year", "genre", "price"],
        },
        "MAX_ITEM_LIST_LENGTH": 8,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni20"},
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "metrics": ["AUC", "LogLoss"],
        "valid_metric": "AUC",
        "epochs": 1,
        "train_batch_size": 64,
        "eval_batch_size": 1024,
        "show_progress": False,
        "checkpoint_dir": str(tmp_path / "saved"),
        "seed": 7,
    }


@pytest.fixture
def tiny_pipeline(tiny_config_dict):
    """(config, train_data, valid_data, test_data) for a model name, on the tiny dataset."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_dien import Config, create_dataset

    def build(model="DIN", **overrides):
        config = Config(model, "tiny", config_dict={**tiny_config_dict, **overrides}, cmd_args=[])
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        return (config, *data_preparation(config, dataset))

    return build


@pytest.fixture
def tiny_model(tiny_pipeline):
    """(model, train_data, first training batch) for a model name on the tiny dataset, with the
    model's weights drawn from seed 0."""
    def build(model_name, **overrides):
        config, train_data, _, _ = tiny_pipeline(model_name, **overrides)
        torch.manual_seed(0)
        return config.model_class(config, train_data._dataset), train_data, first_batch(train_data)
    return build


def first_batch(loader):
    batch = next(iter(loader))
    return batch[0] if isinstance(batch, tuple) else batch


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    np.random.seed(0)


def assert_every_parameter_gets_a_gradient(model, batch):
    model.train()
    model.calculate_loss(batch).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def assert_full_sort_matches_predict(model, users):
    """``full_sort_predict`` row u, column i == ``predict`` of user u with candidate i."""
    model.eval()
    full = model.full_sort_predict(users)
    assert full.shape == (len(users), model.n_items)
    for item in range(1, model.n_items):
        users[model.ITEM_ID] = torch.full((len(users),), item)
        torch.testing.assert_close(full[:, item], model.predict(users), rtol=1e-5, atol=1e-6)
