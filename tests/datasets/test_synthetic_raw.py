"""Synthetic raw files: the public layouts exactly, their quirks, real-log shapes, bounded blocks."""
import ast
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from recbole_dien.datasets import synthetic, synthetic_raw


@pytest.fixture(scope="module")
def alimama(tmp_path_factory):
    out = tmp_path_factory.mktemp("alimama")
    written = synthetic_raw.generate("alimama", str(out), 30000, behaviours=60000, seed=11)
    return out, written


def test_alimama_files_have_the_public_headers_and_quirks(alimama):
    out, written = alimama
    first_lines = {name: open(out / f"{name}.csv").readline().rstrip("\n")
                   for name in ("raw_sample", "behavior_log", "ad_feature", "user_profile")}
    assert first_lines == {
        "raw_sample": "user,time_stamp,adgroup_id,pid,nonclk,clk",
        "behavior_log": "user,time_stamp,btag,cate,brand",
        "ad_feature": "adgroup_id,cate_id,campaign_id,customer,brand,price",
        "user_profile": "userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                        "occupation,new_user_class_level "}               # the trailing space of the real header
    samples = pd.read_csv(out / "raw_sample.csv")
    log = pd.read_csv(out / "behavior_log.csv")
    ads = pd.read_csv(out / "ad_feature.csv", keep_default_na=False, dtype={"brand": str})
    profile = pd.read_csv(out / "user_profile.csv", keep_default_na=False, dtype=str)
    assert len(samples) == written["impressions"] == 30000 and len(log) == written["behaviours"]
    assert (samples["nonclk"] == 1 - samples["clk"]).all() and set(samples["pid"]) == {"430548_1007", "430539_1007"}
    assert samples["time_stamp"].between(1494000000, 1494000000 + 8 * 86400 - 1).all()
    assert log["time_stamp"].between(1494000000 - 14 * 86400, 1494000000 + 8 * 86400 - 1).all()
    assert set(log["btag"]) == {"pv", "cart", "fav", "buy"}
    assert 0.2 < (ads["brand"] == "NULL").mean() < 0.4                      # NULL brands
    assert (profile["pvalue_level"] == "").any() and (profile["new_user_class_level "] == "").any()
    users = set(samples["user"])
    assert users - set(profile["userid"].astype(int)) and users - set(log["user"])  # no profile / no behaviours
    assert not samples["user"].is_monotonic_increasing and not samples["time_stamp"].is_monotonic_increasing
    assert set(samples["adgroup_id"]) <= set(ads["adgroup_id"])


def test_alimama_clicks_depend_on_the_history_strictly_before(alimama):
    out, written = alimama
    samples = pd.read_csv(out / "raw_sample.csv")
    log = pd.read_csv(out / "behavior_log.csv").sort_values(["user", "time_stamp"], kind="stable")
    ads = pd.read_csv(out / "ad_feature.csv", usecols=["adgroup_id", "cate_id"])
    samples = samples.merge(ads, on="adgroup_id")
    # is the ad's category among the user's behaviours of the 3 days strictly before the impression?
    joined = samples.reset_index().merge(log, on="user", suffixes=("", "_behaviour"))
    earlier = joined[(joined["time_stamp_behaviour"] < joined["time_stamp"])
                     & (joined["time_stamp_behaviour"] >= joined["time_stamp"] - 3 * 86400)]
    matched = set(earlier.loc[earlier["cate"] == earlier["cate_id"], "index"])
    seen = samples.index.isin(matched)
    assert samples["clk"][seen].mean() > 2 * samples["clk"][~seen].mean()
    # half the clicks are also a pv of the ad's category in the same second
    same = samples[samples["clk"] == 1].merge(log, left_on=["user", "time_stamp", "cate_id"],
                                              right_on=["user", "time_stamp", "cate"])
    assert written["same_second_click_behaviours"] > 0 and len(same) >= written["same_second_click_behaviours"]


def test_taobao_file_is_headerless_with_some_times_outside_the_days(tmp_path):
    written = synthetic_raw.generate("taobao", str(tmp_path), 50000, out_of_range=0.01, seed=2)
    frame = pd.read_csv(tmp_path / "UserBehavior.csv", header=None,
                        names=["user", "item", "category", "behavior", "time"])
    assert len(frame) == 50000 and frame["user"].dtype.kind == "i"           # line 1 is a row, not a header
    inside = frame["time"].between(1511539200, 1511539200 + 9 * 86400 - 1)
    assert (~inside).sum() == written["outside_the_days"] and 0.005 < (~inside).mean() < 0.02
    shares = frame["behavior"].value_counts(normalize=True)
    assert 0.85 < shares["pv"] < 0.93 and set(shares.index) == {"pv", "cart", "fav", "buy"}
    per_user = frame.groupby("user").size()
    assert per_user.max() > 4 * per_user.median()                            # heavy-tailed users
    popularity = frame["item"].value_counts()
    assert popularity.iloc[:len(popularity) // 10].sum() > 0.3 * len(frame)  # Zipf-like items
    assert frame.groupby("item")["category"].nunique().max() == 1            # an item has one category
    gaps = frame[inside].groupby("user")["time"].diff().dropna()
    assert (gaps >= 0).all() and 0.4 < (gaps < 600).mean() < 0.98 and (gaps > 6 * 3600).any()  # sessions


def test_amazon_files_are_json_reviews_and_python_literal_meta(tmp_path):
    written = synthetic_raw.generate("amazon", str(tmp_path), 3000, category="Books", gzipped=True, seed=4)
    with gzip.open(tmp_path / "reviews_Books_5.json.gz", "rt") as f:
        reviews = [json.loads(line) for line in f]
    assert len(reviews) == 3000 and list(reviews[0]) == ["reviewerID", "asin", "reviewerName", "helpful",
                                                         "reviewText", "overall", "summary", "unixReviewTime",
                                                         "reviewTime"]
    per_user = pd.Series([r["reviewerID"] for r in reviews]).value_counts()
    assert per_user.min() >= 5                                                # the 5-core
    assert all(r["unixReviewTime"] % 86400 == 0 for r in reviews)            # whole days
    with gzip.open(tmp_path / "meta_Books.json.gz", "rt") as f:
        lines = f.read().splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])                                                  # not JSON ...
    meta = [ast.literal_eval(line) for line in lines]                         # ... but Python literals
    assert any('"' in line for line in lines)                                 # titles with an apostrophe
    assert len(meta) == written["items"] - written["items_without_meta"]
    assert sum("categories" not in m for m in meta) == written["meta_without_categories"]
    assert all(m["categories"][0][-1].startswith("Category ") for m in meta if "categories" in m)


def test_blocks_bound_the_rows_drawn_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_raw, "BLOCK_ROWS", 1000)
    synthetic_raw.generate("taobao", str(tmp_path), 8000, seed=2)
    frame = pd.read_csv(tmp_path / "UserBehavior.csv", header=None, names=["user", "item", "category", "kind", "t"])
    runs = (frame["user"] != frame["user"].shift()).sum()
    assert len(frame) == 8000 and runs == frame["user"].nunique()           # each user's lines together
    assert len(synthetic_raw.blocks(np.full(100, 50))) == 5


def test_the_same_seed_gives_the_same_files(tmp_path):
    for folder in ("a", "b"):
        synthetic_raw.generate("alimama", str(tmp_path / folder), 2000, seed=9)
    for name in ("raw_sample", "behavior_log", "ad_feature", "user_profile"):
        assert (tmp_path / "a" / f"{name}.csv").read_bytes() == (tmp_path / "b" / f"{name}.csv").read_bytes()


def test_the_command_writes_a_layout_and_refuses_knobs_of_another(tmp_path, capsys):
    assert synthetic.main(["--layout", "taobao", "--interactions", "500", "--out", str(tmp_path)]) == 0
    assert "UserBehavior.csv (taobao layout): 500 behaviours" in capsys.readouterr().out
    assert synthetic.main(["--layout", "taobao", "--interactions", "500", "--behaviours", "9",
                           "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("--layout taobao takes no --behaviours")
    assert synthetic.main(["--interactions", "500", "--gzip", "--out", str(tmp_path)]) == 2
    assert "--gzip is for a raw --layout" in capsys.readouterr().err
