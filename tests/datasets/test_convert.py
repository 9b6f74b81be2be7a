"""The converters' shared framework: raw readers, malformed-line counting, atomic files, the command."""
import gzip
import json
import os
import sys
import types

import numpy as np
import pandas as pd
import pytest

from recbole_dien.datasets import convert
from recbole_dien.utils.errors import DatasetError

LAYOUT = convert.CsvLayout(name="the test layout", columns=["user", "time_stamp", "brand"],
                           integers=("user", "time_stamp"), optional=("brand",), missing=("", "NULL"))


def collect(path, layout, block_bytes=convert.BLOCK_BYTES):
    tally = convert.LineTally(path)
    frames, lines = zip(*convert.read_csv_blocks(path, layout, tally, block_bytes=block_bytes))
    return pd.concat(frames, ignore_index=True), np.concatenate(lines), tally


def test_csv_blocks_count_malformed_lines_with_their_first_line_number(tmp_path):
    path = tmp_path / "log.csv"
    rows = ["user,time_stamp,brand "]                      # the trailing space of a real header
    rows += [f"{i},{1000 + i},{'NULL' if i % 3 == 0 else i % 7}" for i in range(1, 301)]
    rows[40] = "40,1040"                                    # line 41: a field short
    rows[90] = "90,1090,1,9"                                # line 91: a field too many
    rows[120] = "12O,1120,5"                                # line 121: letter O, not a number
    rows[150] = ",1150,5"                                   # line 151: empty user
    rows[200] = ""                                          # a blank line: skipped, not malformed
    path.write_text("\r\n".join(rows) + "\r\n")             # Windows line ends
    # blocks of 256 bytes: lines cross block boundaries and every block is parsed on its own
    frame, lines, tally = collect(str(path), LAYOUT, block_bytes=256)
    assert tally.lines == 299 and tally.malformed_count == 4
    firsts = {reason: problem.first_line for reason, problem in tally.malformed.items()}
    assert firsts == {"2 fields where the test layout has 3": 41, "4 fields where the test layout has 3": 91,
                      "'user' is not a number": 121, "'user' is empty": 151}
    assert len(frame) == 295 and list(frame.columns) == ["user", "time_stamp", "brand"]
    assert frame["user"].dtype.kind in "iu" and frame["time_stamp"].dtype.kind in "iu"
    assert frame["brand"].isna().sum() == sum(1 for i in range(1, 301) if i % 3 == 0 and i not in (40, 90, 120, 150, 200))
    assert lines[0] == 2 and (frame["time_stamp"].to_numpy() - 1000 == lines - 1).all()  # row i is line i + 1
    assert "4 fields" in tally.summary() and "(first: line 91)" in tally.summary()


def test_gzipped_and_plain_files_read_the_same(tmp_path):
    text = "user,time_stamp,brand\n" + "".join(f"{i},{i * 10},b{i}\n" for i in range(50))
    (tmp_path / "a.csv").write_text(text)
    with gzip.open(tmp_path / "b.csv.gz", "wt") as f:
        f.write(text)
    plain, _, _ = collect(str(tmp_path / "a.csv"), LAYOUT, block_bytes=64)
    packed, _, _ = collect(convert.raw_file(str(tmp_path), "b.csv", "the test file"), LAYOUT, block_bytes=64)
    pd.testing.assert_frame_equal(plain, packed)
    assert len(plain) == 50


def test_a_missing_raw_file_names_both_spellings(tmp_path):
    with pytest.raises(DatasetError, match=r"no raw_sample.csv \(nor raw_sample.csv.gz\), Taobao's impressions"):
        convert.raw_file(str(tmp_path), "raw_sample.csv", "Taobao's impressions")


def test_a_header_without_a_column_is_one_line_naming_file_and_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,time,brand\n1,2,3\n")
    with pytest.raises(DatasetError) as error:
        collect(str(path), LAYOUT)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "no column 'time_stamp'" in message


def test_a_headerless_file_of_another_layout_stops_in_one_line(tmp_path):
    layout = convert.CsvLayout(name="UserBehavior.csv", columns=["user_id", "item_id", "timestamp"],
                               integers=("user_id", "item_id", "timestamp"), header=False)
    path = tmp_path / "other.csv"
    path.write_text("".join(f"{i},{i}\n" for i in range(20)))
    with pytest.raises(DatasetError, match=r"not in UserBehavior.csv's layout: 20 of its first 20 lines .*"
                                           r"line 1: 2 fields where UserBehavior.csv has 3"):
        collect(str(path), layout)


HOSTILE = "__import__('os').system('touch {marker}')"


def test_python_literals_are_read_and_code_is_never_run(tmp_path):
    assert convert.python_literal("{'asin': 'B1', 'categories': [['Books', 'Poetry']], 'price': 3.5}") == \
        {"asin": "B1", "categories": [["Books", "Poetry"]], "price": 3.5}
    marker = tmp_path / "ran"
    for line in (HOSTILE.format(marker=marker), "{'a': (lambda: 1)()}", "[" * 5000 + "]" * 5000,
                 "{'a': '" + "x" * 100 + "'}"):
        with pytest.raises(ValueError):
            convert.python_literal(line, max_chars=80 if "xxx" in line else convert.MAX_LITERAL_CHARS)
    assert not marker.exists()


def test_record_lines_count_what_they_cannot_read(tmp_path):
    path = tmp_path / "meta.json.gz"
    marker = tmp_path / "ran"
    lines = [repr({"asin": f"A{i}", "categories": [["Books", f"c{i % 3}"]]}) for i in range(30)]
    lines[4] = HOSTILE.format(marker=marker)                 # line 5
    lines[9] = "['not', 'a', 'record']"                      # line 10
    lines[14] = repr({"title": "no asin"})                   # line 15
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    tally = convert.LineTally(str(path))
    chunks = list(convert.read_record_lines(str(path), "meta", ["asin"], tally, parse=convert.python_literal,
                                            chunk_lines=7, not_parsed="not a Python literal"))
    records = [record for chunk, _ in chunks for record in chunk]
    numbers = np.concatenate([n for _, n in chunks])
    assert len(records) == 27 and records[0]["categories"] == [["Books", "c0"]]
    assert list(numbers[:5]) == [1, 2, 3, 4, 6]
    assert {reason: (p.count, p.first_line) for reason, p in tally.malformed.items()} == {
        "not a Python literal": (1, 5), "not a record (list)": (1, 10), "no field 'asin'": (1, 15)}
    assert not marker.exists()


def test_record_lines_of_another_layout_stop_naming_the_field(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text("".join(json.dumps({"user": i}) + "\n" for i in range(10)))
    with pytest.raises(DatasetError, match=r"reviews.json is not in the review's layout: .*no field 'asin'"):
        list(convert.read_record_lines(str(path), "the review", ["asin"], convert.LineTally(str(path))))


def test_atomic_files_are_whole_or_absent(tmp_path):
    path = str(tmp_path / "x.item")
    with convert.AtomicFileWriter(path, [("item_id", "token"), ("title", "token_seq"), ("price", "float")]) as out:
        out.write({"item_id": ["a", "b"], "title": ["one\ttwo", "three\nfour"], "price": [1.5, np.nan]})
        out.write({"item_id": ["c"], "title": ["five"], "price": [2.0]})
    assert open(path).read() == ("item_id:token\ttitle:token_seq\tprice:float\n"
                                 "a\tone two\t1.5\nb\tthree four\t\nc\tfive\t2.0\n")
    broken = str(tmp_path / "y.inter")
    with pytest.raises(RuntimeError):
        with convert.AtomicFileWriter(broken, [("user_id", "token")]) as out:
            out.write({"user_id": [1]})
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["x.item"]


def test_the_dataset_config_is_commented_yaml(tmp_path):
    from recbole_dien.config.parsing import load_yaml_file

    path = convert.write_dataset_config(str(tmp_path), "d", "line one\nline two",
                                        {"load_col": {"inter": ["user_id", "item_id"]},
                                         "eval_args": {"split": {"LS": "valid_and_test"}, "mode": "uni1"}})
    text = open(path).read()
    assert text.startswith("# line one\n# line two\n")
    assert load_yaml_file(path)["eval_args"] == {"split": {"LS": "valid_and_test"}, "mode": "uni1"}


@pytest.fixture
def fake_converter(monkeypatch):
    module = types.ModuleType("recbole_dien.datasets.fake")
    module.__doc__ = "A fake converter for the tests: writes one atomic file."

    def add_arguments(parser):
        parser.add_argument("--rows", type=int, default=2)

    def run(raw_dir, out_dir, rows):
        folder = convert.dataset_folder(out_dir, "fake")
        with convert.AtomicFileWriter(os.path.join(folder, "fake.inter"), [("user_id", "token")]) as out:
            out.write({"user_id": list(range(rows))})
        return convert.ConversionReport("fake", folder, out_dir, written={"fake.inter": out.rows})

    module.add_arguments, module.convert = add_arguments, run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(convert.CONVERTERS, "fake", (module.__name__, "a fake"))
    monkeypatch.setitem(convert.CONVERTERS, "absent", ("recbole_dien.datasets.absent_converter", "not written"))


def test_the_command_runs_a_converter_and_prints_its_report(fake_converter, tmp_path, capsys):
    assert convert.main(["fake", "--raw", str(tmp_path), "--out", str(tmp_path / "out"), "--rows", "3"]) == 0
    out = capsys.readouterr().out
    assert "fake.inter: 3 rows" in out and f"--data_path={tmp_path / 'out'}" in out
    assert len(open(tmp_path / "out" / "fake" / "fake.inter").readlines()) == 4


def test_a_converter_missing_from_the_installation_is_one_line(fake_converter, tmp_path, capsys):
    assert convert.main(["absent", "--raw", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recbole_dien/datasets/absent_converter.py" in err
    assert convert.main(["nosuch", "--raw", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "use one of alimama, amazon, taobao" in capsys.readouterr().err


def test_a_missing_raw_folder_is_one_line(fake_converter, tmp_path, capsys):
    assert convert.main(["fake", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err
