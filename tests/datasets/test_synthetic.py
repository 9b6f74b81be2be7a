"""The synthetic log generator: exact size, real-log shape, RecBole files a run trains on."""
import pandas as pd
import pytest

from recbole_dien.datasets import synthetic


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    folder, counts = synthetic.generate(6000, str(out), seed=7, categories=12, items_per_category=40)
    return out, folder, counts


def read(folder, suffix):
    frame = pd.read_csv(f"{folder}/synthetic-6k.{suffix}", sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def test_sizes_names_and_headers(generated):
    _, folder, counts = generated
    inter, items, users = read(folder, "inter"), read(folder, "item"), read(folder, "user")
    assert counts == {"interactions": 6000, "users": len(users), "items": 480}
    assert len(inter) == 6000 and len(items) == 480 and inter["user_id"].nunique() == len(users)
    assert list(inter.columns) == ["user_id", "item_id", "timestamp"]
    assert list(items.columns) == ["item_id", "category", "brand", "price"]
    assert synthetic.size_name(20_000_000) == "synthetic-20m" and synthetic.size_name(1234) == "synthetic-1234"


def test_the_log_has_the_shape_of_a_click_log(generated):
    _, folder, _ = generated
    inter, items = read(folder, "inter"), read(folder, "item")
    per_user = inter.groupby("user_id").size()
    assert per_user.min() >= 5 and per_user.max() >= 4 * per_user.median()          # heavy-tailed activity
    gaps = inter.groupby("user_id")["timestamp"].diff().dropna()
    assert (gaps >= 0).all()                                                          # each user's log in time order
    assert 0.6 < (gaps < 1800).mean() < 0.95 and (gaps > 86400).any()                 # sessions, days apart
    popularity = inter["item_id"].value_counts()
    assert popularity.iloc[:len(popularity) // 10].sum() > 0.3 * len(inter)          # Zipf-like items
    categories = inter.merge(items, on="item_id").groupby("user_id")["category"].nunique()
    assert categories.max() <= 3 and categories.median() >= 2                         # a few interests per user


def test_the_same_seed_gives_the_same_files(generated, tmp_path):
    out, folder, _ = generated
    again, _ = synthetic.generate(6000, str(tmp_path), seed=7, categories=12, items_per_category=40)
    other, _ = synthetic.generate(6000, str(tmp_path / "other"), seed=8, categories=12, items_per_category=40)
    same = open(f"{folder}/synthetic-6k.inter").read()
    assert open(f"{again}/synthetic-6k.inter").read() == same
    assert open(f"{other}/synthetic-6k.inter").read() != same


@pytest.mark.parametrize("model", ["DIN", "DSIN"])
def test_a_model_trains_on_it_with_the_written_protocol(generated, tmp_path, monkeypatch, model):
    from recbole_dien import run

    out, folder, _ = generated
    monkeypatch.chdir(tmp_path)
    result = run(model, "synthetic-6k", config_file_list=[f"{folder}/synthetic-6k.yaml"],
                 config_dict={"data_path": str(out), "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10, "show_progress": False,
                              "checkpoint_dir": str(tmp_path / "saved"), "train_batch_size": 256},
                 cmd_args=[])
    assert 0.5 < result["test_result"]["auc"] <= 1.0


def test_too_few_interactions_is_one_line(tmp_path, capsys):
    assert synthetic.main(["--interactions", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--interactions=3" in err
