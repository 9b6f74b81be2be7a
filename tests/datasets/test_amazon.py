"""The Amazon converter: McAuley's 2014 review and meta layouts, the DIEN paper's category, code never run."""
import gzip
import json

import pandas as pd
import pytest

from recbole_dien.datasets import amazon, convert, synthetic_raw
from recbole_dien.utils.errors import DatasetError


def review(user, asin, time, **extra):
    record = {"reviewerID": user, "asin": asin, "reviewerName": "R", "helpful": [0, 0], "reviewText": "t",
              "overall": 4.0, "summary": "s", "unixReviewTime": time, "reviewTime": "01 1, 2011", **extra}
    return json.dumps(record)


def read(folder, dataset, suffix):
    frame = pd.read_csv(f"{folder}/{dataset}.{suffix}", sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


@pytest.fixture
def raw(tmp_path):
    """Tiny review and meta files with the real files' quirks and a few broken and hostile lines."""
    marker = tmp_path / "ran"
    reviews = [review("U2", "B3", 300), review("U1", "B2", 200), review("U1", "B1", 100),
               review("U1", "B3", 200),                         # same day as B2: the file's order is kept
               "{not json",                                     # line 5
               json.dumps({"reviewerID": "U9", "asin": "B1"}),  # line 6: no unixReviewTime
               review("U9", "B1", "yesterday"),                 # line 7: not a time
               review("U2", "B1", 100), review("U2", "B2", 400), review("U3", "B4", 50)]
    with gzip.open(tmp_path / "reviews_Books_5.json.gz", "wt") as f:
        f.write("\n".join(reviews) + "\n")
    meta = [repr({"asin": "B1", "title": "One", "categories": [["Books", "Poetry", "Haiku"], ["Books", "Deals"]]}),
            repr({"asin": "B2", "title": "Children's", "categories": [["Books"]], "price": 3.5}),
            repr({"asin": "B0", "title": "never reviewed", "categories": [["Books", "X"]]}),
            f"__import__('os').system('touch {marker}')",                              # line 4
            "{'asin': 'B3', 'title': __import__('os').system('touch " + str(marker) + "')}",  # line 5
            repr({"asin": "B3", "title": "Three", "categories": [["Books", "Poetry"]]}),
            repr({"asin": "B3", "title": "again", "categories": [["Books", "Other"]]}),
            repr({"asin": "B4", "title": "no categories"}),
            "{'asin': 'B4', 'x': " + "[" * 30 + "]" * 30 + "}"]                          # line 9: too deep
    (tmp_path / "meta_Books.json").write_text("\n".join(meta) + "\n")
    return tmp_path, marker


def test_reviews_and_meta_are_converted_in_the_papers_layout(raw, tmp_path):
    folder, marker = raw
    report = amazon.convert(str(folder), str(tmp_path / "out"), "Books")
    assert not marker.exists()                                   # no meta line ran as code
    inter = read(report.folder, "amazon-books-5core", "inter")
    assert list(inter.columns) == ["user_id", "item_id", "timestamp"]
    # users in the order they first show up, each one's reviews by time (same-day ones in file order)
    assert inter.values.tolist() == [["U2", "B1", "100"], ["U2", "B3", "300"], ["U2", "B2", "400"],
                                     ["U1", "B1", "100"], ["U1", "B2", "200"], ["U1", "B3", "200"],
                                     ["U3", "B4", "50"]]
    items = dict(read(report.folder, "amazon-books-5core", "item").values.tolist())
    # the last level of the first category path; a duplicate meta line does not override the first
    assert items == {"B1": "Haiku", "B2": "Books", "B3": "Poetry", "B4": amazon.NO_CATEGORY}
    reviews, meta = report.tallies
    assert {r: (p.count, p.first_line) for r, p in reviews.malformed.items()} == {
        "not JSON": (1, 5), "no field 'unixReviewTime'": (1, 6), "'unixReviewTime' is not a whole number": (1, 7)}
    assert {r: (p.count, p.first_line) for r, p in meta.malformed.items()} == {"not a Python literal": (3, 4)}
    text = "\n".join(report.lines())
    assert "3 malformed: not a Python literal (first: line 4)" in text
    assert "1 whose meta line has no category" in text and "1 repeated meta lines" in text
    assert "--model=DIEN --dataset=amazon-books-5core" in text


def test_the_category_rule_is_the_last_level_of_the_first_path():
    assert amazon.first_path_leaf([["Books", "Literature & Fiction", "Poetry"], ["Kindle"]]) == "Poetry"
    assert amazon.first_path_leaf([["Electronics"]]) == "Electronics"
    for nothing in (None, [], [[]], "Books", [[""]], [[3]]):
        assert amazon.first_path_leaf(nothing) is None


def test_a_reviews_file_of_another_layout_stops_naming_file_and_field(tmp_path):
    lines = [json.dumps({"user_id": i, "item_id": "B1", "rating": 5, "timestamp": 1}) for i in range(20)]
    (tmp_path / "reviews_Books_5.json").write_text("\n".join(lines) + "\n")
    (tmp_path / "meta_Books.json").write_text(repr({"asin": "B1"}) + "\n")
    with pytest.raises(DatasetError) as error:
        amazon.convert(str(tmp_path), str(tmp_path / "out"), "Books")
    message = str(error.value)
    assert "\n" not in message and "reviews_Books_5.json" in message and "no field 'reviewerID'" in message


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match=r"no reviews_Electronics_5.json \(nor reviews_Electronics_5.json.gz\)"):
        amazon.convert(str(tmp_path), str(tmp_path / "out"), "Electronics")


def test_synthetic_amazon_files_convert_and_train(tmp_path, monkeypatch):
    from recbole_dien import run

    written = synthetic_raw.generate("amazon", str(tmp_path / "raw"), 4000, category="Electronics", gzipped=True,
                                     categories=12, items_per_category=25, seed=3)
    assert all(path.endswith(".gz") for path in written["files"])
    assert convert.main(["amazon", "--category", "Electronics", "--raw", str(tmp_path / "raw"),
                         "--out", str(tmp_path / "data")]) == 0
    folder = tmp_path / "data" / "amazon-electronics-5core"
    items = read(folder, "amazon-electronics-5core", "item")
    named = items[items["category"] != amazon.NO_CATEGORY]["category"]
    assert named.str.fullmatch(r"Category \d+ & More").all()           # the synthetic first path's leaf
    monkeypatch.chdir(tmp_path)
    result = run("DIN", "amazon-electronics-5core", config_file_list=[str(folder / "amazon-electronics-5core.yaml")],
                 config_dict={"data_path": str(tmp_path / "data"), "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10,
                              "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"),
                              "train_batch_size": 256}, cmd_args=[])
    assert 0.5 < result["test_result"]["auc"] <= 1.0


def k_core(frame, k):
    while True:
        users, items = frame["user_id"].value_counts(), frame["item_id"].value_counts()
        keep = frame["user_id"].map(users).ge(k) & frame["item_id"].map(items).ge(k)
        if keep.all():
            return frame
        frame = frame[keep]


def test_recboles_own_amazon_files_run_with_the_shipped_config(tmp_path, monkeypatch):
    """RecBole's hub files (every rating; categories as the set of all path levels) under
    dataset_configs/amazon-books.yaml: the 5-core filter, whole category names, a trained epoch."""
    from recbole_dien import Config, create_dataset, run

    raw = tmp_path / "raw"
    synthetic_raw.generate("amazon", str(raw), 3000, category="Books", categories=8, items_per_category=30,
                           min_activity=1, mean_activity=8.0, seed=6)
    reviews = pd.read_json(raw / "reviews_Books_5.json", lines=True, dtype={"asin": str})
    ratings = reviews.rename(columns={"reviewerID": "user_id", "asin": "item_id", "overall": "rating",
                                      "unixReviewTime": "timestamp"})[["user_id", "item_id", "rating", "timestamp"]]
    ratings = pd.concat([ratings, ratings.iloc[:1]])                 # a repeated rating
    folder = tmp_path / "data" / "amazon-books"
    folder.mkdir(parents=True)
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    (folder / "amazon-books.inter").write_text(header + ratings.to_csv(sep="\t", header=False, index=False))
    meta = [convert.python_literal(line) for line in (raw / "meta_Books.json").read_text().splitlines()]
    rows = ["item_id:token\tsales_type:token\tsales_rank:float\tcategories:token_seq\ttitle:token\tprice:float\t"
            "brand:token"]
    for m in meta:   # RecBole's conversion: str(set of every level)[1:-1]
        levels = {level for path in m.get("categories", []) for level in path}
        rows.append(f"{m['asin']}\tBooks\t{m['salesRank']['Books']}\t{str(levels)[1:-1] if levels else ''}\t"
                    f"{m['title']}\t{m['price']}\t")
    (folder / "amazon-books.item").write_text("\n".join(rows) + "\n")

    monkeypatch.chdir(tmp_path)
    settings = {"data_path": str(tmp_path / "data"), "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10, "show_progress": False,
                "checkpoint_dir": str(tmp_path / "saved"), "train_batch_size": 256}
    config = Config(model="DIN", dataset="amazon-books", config_dict=settings)
    assert config["test_neg_sample_args"]["sample_num"] == 1 and config["MAX_ITEM_LIST_LENGTH"] == 10
    dataset = create_dataset(config)
    core = k_core(ratings.drop_duplicates(["user_id", "item_id"]), 5)
    assert dataset.user_num - 1 == core["user_id"].nunique() and dataset.inter_num == len(core)
    names = set(dataset.field2id_token["categories"][1:])
    assert "'Books'" in names and any(name.startswith("'Category ") and name.endswith(" & More'") for name in names)
    result = run("DIN", "amazon-books", config_dict=settings, cmd_args=[])
    assert 0.5 < result["test_result"]["auc"] <= 1.0
