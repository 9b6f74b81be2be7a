"""The Taobao converter: UserBehavior.csv without a header, the 9 days, categories as an item feature."""
import gzip

import pandas as pd
import pytest

from recbole_dien.datasets import convert, synthetic_raw, taobao
from recbole_dien.utils.errors import DatasetError

DAY = taobao.FIRST_SECOND


def read(folder, dataset, suffix):
    frame = pd.read_csv(f"{folder}/{dataset}.{suffix}", sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def write(path, lines):
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


LINES = [
    f"7,100,5,pv,{DAY + 50}",
    f"3,101,6,buy,{DAY + 10}",
    f"7,102,5,cart,{DAY + 20}",
    f"7,103,5,pv,{DAY - 1}",                 # line 4: the second before 2017-11-25 (Asia/Shanghai)
    f"3,100,9,fav,{DAY + 10}",               # same second as line 2: the file's order is kept; item 100's
    "3,104,6,pv",                            # line 6: a field short           second category, not kept
    f"3,105,6,click,{DAY + 30}",             # line 7: no such behaviour type
    f"x3,105,6,pv,{DAY + 30}",               # line 8: not a number
    f"3,106,6,pv,{taobao.END_SECOND}",       # line 9: the first second after 2017-12-03
    f"3,107,6,pv,{taobao.END_SECOND - 1}",   # the last second of the 9 days: kept
    "3,108,6,pv,0",                          # line 11: 1970
]


@pytest.mark.parametrize("name", ["UserBehavior.csv", "UserBehavior.csv.gz"])
def test_behaviours_are_kept_sorted_and_the_rest_counted(tmp_path, name):
    write(tmp_path / name, LINES)
    report = taobao.convert(str(tmp_path), str(tmp_path / "out"))
    inter = read(report.folder, "taobao", "inter")
    assert list(inter.columns) == ["user_id", "item_id", "behavior_type", "timestamp"]
    assert inter[["user_id", "item_id", "behavior_type"]].values.tolist() == [
        ["3", "101", "buy"], ["3", "100", "fav"], ["3", "107", "pv"],
        ["7", "102", "cart"], ["7", "100", "pv"]]
    items = dict(read(report.folder, "taobao", "item").values.tolist())
    assert items == {"100": "5", "101": "6", "102": "5", "107": "6"}   # item 100: its first line's category
    (tally,) = report.tallies
    assert tally.lines == 11
    assert {r: (p.count, p.first_line) for r, p in tally.malformed.items()} == {
        "4 fields where Taobao's UserBehavior.csv has 5": (1, 6),
        "behavior_type is not one of pv, buy, cart, fav": (1, 7), "'user_id' is not a number": (1, 8)}
    assert {r: (p.count, p.first_line) for r, p in tally.dropped.items()} == {
        f"timestamp outside {taobao.WINDOW}": (3, 4)}
    text = "\n".join(report.lines())
    assert "3 dropped: timestamp outside 2017-11-25 to 2017-12-03 (Asia/Shanghai) (first: line 4)" in text
    assert "1 items show up with more than one category" in text


def test_the_window_is_the_nine_days_in_shanghai_time():
    from datetime import datetime, timedelta, timezone

    shanghai = timezone(timedelta(hours=8))
    assert datetime.fromtimestamp(taobao.FIRST_SECOND, shanghai) == datetime(2017, 11, 25, tzinfo=shanghai)
    assert datetime.fromtimestamp(taobao.END_SECOND - 1, shanghai) == datetime(2017, 12, 3, 23, 59, 59,
                                                                                tzinfo=shanghai)


def test_a_file_in_another_layout_stops_in_one_line(tmp_path):
    write(tmp_path / "UserBehavior.csv", ["user,time_stamp,adgroup_id,pid,nonclk,clk"]
          + [f"{i},1494000000,{i},430548_1007,1,0" for i in range(30)])
    with pytest.raises(DatasetError) as error:
        taobao.convert(str(tmp_path), str(tmp_path / "out"))
    message = str(error.value)
    assert "\n" not in message and "UserBehavior.csv is not in Taobao's UserBehavior.csv's layout" in message
    assert "line 1: 6 fields where Taobao's UserBehavior.csv has 5" in message


def test_synthetic_taobao_files_convert_and_train(tmp_path, monkeypatch):
    from recbole_dien import run

    written = synthetic_raw.generate("taobao", str(tmp_path / "raw"), 6000, categories=10, items_per_category=30,
                                     out_of_range=0.01, seed=5)
    assert convert.main(["taobao", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "data")]) == 0
    inter = read(tmp_path / "data" / "taobao", "taobao", "inter")
    assert len(inter) == 6000 - written["outside_the_days"] and written["outside_the_days"] > 0
    monkeypatch.chdir(tmp_path)
    result = run("DIN", "taobao", config_file_list=[str(tmp_path / "data" / "taobao" / "taobao.yaml")],
                 config_dict={"data_path": str(tmp_path / "data"), "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10,
                              "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"),
                              "train_batch_size": 256}, cmd_args=[])
    assert 0.5 < result["test_result"]["auc"] <= 1.0
