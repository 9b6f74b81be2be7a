"""The alimama converter: Taobao's display-ad files in their public layouts, with their quirks."""
import math

import pandas as pd
import pytest

from recbole_dien.datasets import alimama, convert, synthetic_raw
from recbole_dien.utils.errors import DatasetError

PROFILE_HEADER = ("userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                  "occupation,new_user_class_level ")   # the public header's last name ends with a space

RAW = {
    "raw_sample.csv": [
        "user,time_stamp,adgroup_id,pid,nonclk,clk",
        "3,1494600000,11,430548_1007,1,0",
        "1,1494050000,10,430548_1007,0,1",       # user 1's click; the log has a pv in the same second
        "1,1494640000,12,430539_1007,1,0",       # ad 12 has no ad_feature line
        "2,1494100000,10,430539_1007,1,0",
        "2,1494650000,11,430548_1007,0,1",       # the last impression
        "4,1494300000,12,430548_1007,1,1",       # line 7: clk and nonclk both 1
        "5,abc,12,430548_1007,1,0",              # line 8: not a time
        "3,1494200000,10",                       # line 9: three fields
        "6,1494300000,13,430548_1007,1,0",       # user 6: no behaviour at all
    ],
    "behavior_log.csv": [
        "user,time_stamp,btag,cate,brand",
        "1,1494049999,pv,100,NULL",              # one second before user 1's click: enters its history
        "1,1494050000,pv,101,200",               # the click's own second: kept in the log, never in its history
        "1,1494600000,cart,100,201",
        "2,1494090000,fav,102,202",
        "9,1494000000,pv,100,200",               # line 6: user 9 has no impression
        "2,0,pv,100,200",                        # line 7: time 0
        "2,1494650000,pv,100,200",               # line 8: at the last impression's second
        "2,1494090001,look,100,200",             # line 9: no such btag
        "3,1493000000,buy,102,203",
    ],
    "ad_feature.csv": [
        "adgroup_id,cate_id,campaign_id,customer,brand,price",
        "10,100,1,1,NULL,12.5",
        "11,101,2,1,200,100",
        "14,102,3,2,201,7",                      # line 4: never shown
        "13,102,3,2,201,1e6",
        "11,101,9,9,209,1",                      # line 6: ad 11 again
    ],
    "user_profile.csv": [
        PROFILE_HEADER,
        "1,0,5,2,5,,3,0,3",                      # empty pvalue_level
        "2,3,2,1,2,1,3,0,",                      # empty new_user_class_level
        "8,0,1,1,1,1,1,0,1",                     # line 4: no impression
        "6,1,1,1,1,1,1,0,1",
    ],
}


def write_raw(folder, files=RAW):
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def read(folder, name, suffix):
    frame = pd.read_csv(f"{folder}/{name}.{suffix}", sep="\t", dtype=str, keep_default_na=False)
    header = list(frame.columns)
    frame.columns = [c.split(":")[0] for c in header]
    return frame, header


def problems(table):
    return {reason: (problem.count, problem.first_line) for reason, problem in table.items()}


def test_the_four_files_convert_with_their_quirks(tmp_path):
    report = alimama.convert(str(write_raw(tmp_path / "raw")), str(tmp_path / "out"))
    inter, header = read(report.folder, "alimama", "inter")
    assert header == ["user_id:token", "adgroup_id:token", "timestamp:float", "pid:token", "label:float"]
    assert inter.values.tolist() == [  # sorted by user and time; label = clk
        ["1", "10", "1494050000", "430548_1007", "1"], ["1", "12", "1494640000", "430539_1007", "0"],
        ["2", "10", "1494100000", "430539_1007", "0"], ["2", "11", "1494650000", "430548_1007", "1"],
        ["3", "11", "1494600000", "430548_1007", "0"], ["6", "13", "1494300000", "430548_1007", "0"]]
    log, header = read(report.folder, "alimama", "behavior")
    assert header == ["user_id:token", "timestamp:float", "btag:token", "cate_id:token", "brand:token"]
    assert log.values.tolist() == [  # file order; cate is cate_id, NULL brand empty
        ["1", "1494049999", "pv", "100", ""], ["1", "1494050000", "pv", "101", "200"],
        ["1", "1494600000", "cart", "100", "201"], ["2", "1494090000", "fav", "102", "202"],
        ["3", "1493000000", "buy", "102", "203"]]
    items, header = read(report.folder, "alimama", "item")
    assert header[:6] == ["adgroup_id:token", "cate_id:token", "campaign_id:token", "customer:token", "brand:token",
                          "price:float"] and header[6] == "log_price:float"
    assert items[["adgroup_id", "cate_id", "campaign_id", "brand"]].values.tolist() == [
        ["10", "100", "1", ""], ["11", "101", "2", "200"], ["13", "102", "3", "201"]]
    assert math.isclose(float(items["log_price"][2]), math.log1p(1e6), rel_tol=1e-6)
    users, _ = read(report.folder, "alimama", "user")
    assert users.values.tolist() == [["1", "0", "5", "2", "5", "", "3", "0", "3"],
                                     ["2", "3", "2", "1", "2", "1", "3", "0", ""],
                                     ["6", "1", "1", "1", "1", "1", "1", "0", "1"]]
    tallies = {t.path.rsplit("/", 1)[1]: t for t in report.tallies}
    assert problems(tallies["raw_sample.csv"].malformed) == {
        "clk and nonclk are not one 1 and one 0": (1, 7), "'time_stamp' is not a number": (1, 8),
        "3 fields where Alimama's raw_sample.csv has 6": (1, 9)}
    assert problems(tallies["behavior_log.csv"].malformed) == {"btag is not one of pv, cart, fav, buy": (1, 9)}
    assert problems(tallies["behavior_log.csv"].dropped) == {
        "user has no impression (or is not in --user-fraction)": (1, 6),
        "time_stamp is not a positive unix time": (1, 7),
        "at or after the last impression's second: in no history": (1, 8)}
    assert problems(tallies["ad_feature.csv"].dropped) == {"ad without impressions": (1, 4),
                                                           "ad repeated (the first line is kept)": (1, 6)}
    assert problems(tallies["user_profile.csv"].dropped) == {"profile without impressions": (1, 4)}
    text = "\n".join(report.lines())
    assert "1 ads shown have no ad_feature line" in text and "1 users with impressions have no profile" in text
    assert "python run_recbole.py --model=DSIN --dataset=alimama" in text


def test_the_options_keep_fewer_behaviours_and_users(tmp_path):
    raw = write_raw(tmp_path / "raw")
    report = alimama.convert(str(raw), str(tmp_path / "out"), btag=["pv"], behaviors_since="2017-05-06")
    log, _ = read(report.folder, "alimama", "behavior")
    assert log["btag"].tolist() == ["pv", "pv"]                   # the cart, fav and 2017-04 buy are left out
    assert alimama.kept_users(pd.Series(range(1, 100001)).to_numpy(), 0.25).mean() == pytest.approx(0.25, abs=0.01)
    half = alimama.convert(str(raw), str(tmp_path / "half"), user_fraction=0.5)
    inter, _ = read(half.folder, "alimama", "inter")
    kept = set(inter["user_id"])
    assert kept < {"1", "2", "3", "6"} and set(read(half.folder, "alimama", "behavior")[0]["user_id"]) <= kept


def test_the_dataset_config_splits_by_time_in_shanghai(tmp_path):
    from recbole_dien.config.parsing import load_yaml_file
    from recbole_dien.config.time_split import boundaries

    report = alimama.convert(str(write_raw(tmp_path / "raw")), str(tmp_path / "out"))
    settings = load_yaml_file(report.config_file)
    assert settings["time_split"] == {"time_zone": "Asia/Shanghai", "valid": "2017-05-12 20:00", "test": "2017-05-13"}
    assert boundaries(settings["time_split"]) == (1494590400, 1494604800)   # 20:00 and 24:00 of day 7 at +08:00
    assert settings["behavior_log_suffix"] == "behavior" and settings["eval_args"]["mode"] == "labeled"
    assert settings["train_neg_sample_args"] is None and settings["filter_inter_by_user_or_item"] is False


@pytest.mark.parametrize("name, lines, words", [
    ("user_profile.csv", ["user,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                          "occupation,new_user_class_level", "1,0,5,2,5,,3,0,3"], "header has no column 'userid'"),
    ("behavior_log.csv", ["user,time_stamp,btag,category,brand", "1,1494049999,pv,100,NULL"],
     "header has no column 'cate'"),
    ("raw_sample.csv", ["user,time_stamp,adgroup_id,pid,nonclk,clk"] + [f"{i},x,1,p,1,0" for i in range(9)],
     "is not in Alimama's raw_sample.csv's layout"),
])
def test_a_file_not_in_its_layout_stops_in_one_line_naming_it(tmp_path, name, lines, words):
    raw = write_raw(tmp_path / "raw", {**RAW, name: lines})
    with pytest.raises(DatasetError, match=words) as error:
        alimama.convert(str(raw), str(tmp_path / "out"))
    assert "\n" not in str(error.value) and name in str(error.value)


def test_a_missing_file_and_wrong_options_are_one_line(tmp_path):
    raw = write_raw(tmp_path / "raw", {k: v for k, v in RAW.items() if k != "ad_feature.csv"})
    with pytest.raises(DatasetError, match="no ad_feature.csv"):
        alimama.convert(str(raw), str(tmp_path / "out"))
    with pytest.raises(DatasetError, match="--valid-from .* must come before --test-from"):
        alimama.convert(str(write_raw(tmp_path / "raw")), str(tmp_path / "out"), valid_from="2017-05-14")
    with pytest.raises(DatasetError, match="^--behaviors-since='May' is not an ISO 8601"):
        alimama.convert(str(tmp_path / "raw"), str(tmp_path / "out"), behaviors_since="May")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Synthetic raw files in the four layouts (with the same-second click echoes of the real log),
    converted through the command."""
    root = tmp_path_factory.mktemp("alimama")
    written = synthetic_raw.generate("alimama", str(root / "raw"), 3000, behaviours=15000, seed=3)
    assert written["same_second_click_behaviours"] > 0
    assert convert.main(["alimama", "--raw", str(root / "raw"), "--out", str(root / "data")]) == 0
    return root


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_the_converted_dataset_trains_each_model(converted, tmp_path, monkeypatch, model):
    from recbole_dien import run

    monkeypatch.chdir(tmp_path)
    result = run(model, "alimama", config_file_list=[str(converted / "data" / "alimama" / "alimama.yaml")],
                 config_dict={"data_path": str(converted / "data"), "epochs": 1, "show_progress": False,
                              "checkpoint_dir": str(tmp_path / "saved"), "train_batch_size": 256}, cmd_args=[])
    for metric in ("auc", "labeledgauc", "logloss"):
        assert math.isfinite(result["test_result"][metric])
