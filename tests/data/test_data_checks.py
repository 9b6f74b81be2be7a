"""Bad atomic files are named - file, line or column, fix - before RecBole builds a dataset from them."""
import shutil

import numpy as np
import pytest

from recbole_dien import Config, create_dataset, run
from recbole_dien.utils.errors import DatasetError


@pytest.fixture
def broken(tiny_data_path, tiny_config_dict, tmp_path):
    """Copy the tiny dataset, let the test edit one file; the config for the copy."""
    folder = tmp_path / "data" / "tiny"
    shutil.copytree(f"{tiny_data_path}/tiny", folder)

    def edit(suffix, change, **settings):
        path = folder / f"tiny.{suffix}"
        path.write_text(change(path.read_text()))
        config = Config("DIN", "tiny", config_dict={**tiny_config_dict, "data_path": str(tmp_path / "data"),
                                                    **settings}, cmd_args=[])
        return str(path), config

    return edit


def replace_line(number, new):
    """Replace the 1-based line ``number`` of a file's text."""
    def change(text):
        lines = text.split("\n")
        lines[number - 1] = new(lines[number - 1])
        return "\n".join(lines)
    return change


def dataset_error(config):
    with pytest.raises(DatasetError) as error:
        create_dataset(config)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_row_with_too_many_fields_is_named(broken):
    path, config = broken("inter", replace_line(5, lambda line: line + "\t99"))
    message = dataset_error(config)
    assert f"{path}, line 5: 5 fields where the header has 4" in message


def test_a_row_with_too_few_fields_is_named_with_a_count_of_the_others(broken):
    def change(text):
        lines = text.split("\n")
        for number in (7, 9, 11):
            lines[number - 1] = "\t".join(lines[number - 1].split("\t")[:2])
        return "\n".join(lines)

    path, config = broken("inter", change)
    assert f"{path}, line 7: 2 fields where the header has 4 (2 more lines too)" in dataset_error(config)


def test_text_in_a_float_column_is_named_with_its_line(broken):
    path, config = broken("inter", replace_line(12, lambda line: "\t".join(line.split("\t")[:3] + ["yesterday"])))
    message = dataset_error(config)
    assert f"{path}, line 12, column 'timestamp' (float): 'yesterday' is not a number" in message


def test_a_header_only_file_is_named(broken):
    path, config = broken("inter", lambda text: text.split("\n")[0] + "\n")
    assert f"{path} has a header but no rows" in dataset_error(config)


def test_an_empty_file_is_named(broken):
    path, config = broken("item", lambda text: "")
    assert f"{path} is empty" in dataset_error(config)


def test_a_header_without_types_is_named(broken):
    path, config = broken("user", replace_line(1, lambda line: line.replace("age:token", "age")))
    assert f"{path}, line 1 (header): column 'age' has no type" in dataset_error(config)


@pytest.mark.parametrize("value,reason", [("inf", "is not finite"), ("-inf", "is not finite"),
                                          ("nan", "has no value"), ("", "has no value")])
def test_a_float_feature_that_is_not_finite_stops_the_run(broken, value, reason):
    def change(text):
        lines = text.split("\n")
        item, year, genre, _ = lines[3].split("\t")
        lines[3] = "\t".join([item, year, genre, value])
        return "\n".join(lines)

    path, config = broken("item", change)
    message = dataset_error(config)
    assert f"{path}, line 4, column 'price' (float)" in message and reason in message


def test_missing_float_values_can_be_imputed_when_asked(broken, tiny_config_dict):
    def change(text):
        lines = text.split("\n")
        item, year, genre, _ = lines[3].split("\t")
        lines[3] = "\t".join([item, year, genre, ""])
        return "\n".join(lines)

    _, config = broken("item", change, missing_float_values="mean")
    dataset = create_dataset(config)
    prices = dataset.item_feat["price"].to_numpy()
    assert np.isfinite(prices).all()


def test_blank_lines_and_crlf_endings_are_accepted(broken):
    _, config = broken("inter", lambda text: text.replace("\n", "\r\n", 40) + "\n\n")
    assert len(create_dataset(config).inter_feat) == 24 * 14


def test_the_run_stops_before_training(broken, tiny_config_dict, tmp_path):
    broken("inter", replace_line(3, lambda line: line + "\t1"))
    with pytest.raises(DatasetError, match="line 3"):
        run("DIN", "tiny", config_dict={**tiny_config_dict, "data_path": str(tmp_path / "data")}, cmd_args=[])
    assert not list((tmp_path / "saved").glob("*.pth"))


# --- bytes that are not text, rows that do not fit ------------------------------------------------

def write_bytes_at_line(path, number, raw):
    """Put ``raw`` at the start of the 1-based line ``number`` of ``path``; the byte offset of it."""
    data = open(path, "rb").read()
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == 10]
    offset = starts[number - 1]
    open(path, "wb").write(data[:offset] + raw + data[offset:])
    return offset


@pytest.mark.parametrize("line", [1, 9, 300])
def test_bytes_that_are_not_utf8_are_named_with_their_line_and_offset(broken, line):
    path, config = broken("inter", lambda text: text)
    offset = write_bytes_at_line(path, line, b"\xff\xfe")
    message = dataset_error(config)
    assert f"{path}, line {line}, byte offset {offset}: byte 0xff is not utf-8 text" in message
    assert "encoding" in message


def test_a_declared_encoding_is_used(broken):
    path, config = broken("item", lambda text: text, encoding="latin-1")
    write_bytes_at_line(path, 5, "é".encode("latin-1"))  # a latin-1 byte, not UTF-8
    assert len(create_dataset(config).item_feat) == 60 + 1  # [PAD] row


def test_the_error_for_a_malformed_row_names_the_setting_that_skips_it(broken):
    _, config = broken("inter", replace_line(6, lambda line: line + "\t99"))
    assert "set malformed_rows: skip to leave such rows out" in dataset_error(config)


def test_malformed_rows_can_be_left_out_counted_and_logged(broken, caplog):
    # RecBole's own model-test data (tests/test_data/test/test.inter) has one 5-field row under a 4-field header
    def change(text):
        lines = text.split("\n")
        lines[5] += "\t99"                                      # line 6: 5 fields
        lines[9] = "\t".join(lines[9].split("\t")[:2])          # line 10: 2 fields
        return "\n".join(lines)

    path, config = broken("inter", change, malformed_rows="skip")
    dataset = create_dataset(config)
    assert len(dataset.inter_feat) == 24 * 14 - 2
    logged = [record.getMessage() for record in caplog.records if "malformed" in record.getMessage()]
    assert logged == [f"{path}: left out 2 malformed rows (lines 6, 10), as malformed_rows: skip asks"]


def test_skipped_rows_keep_the_line_numbers_of_later_problems(broken):
    def change(text):
        lines = text.split("\n")
        lines[5] += "\t99"
        lines[11] = "\t".join(lines[11].split("\t")[:3] + ["yesterday"])
        return "\n".join(lines)

    path, config = broken("inter", change, malformed_rows="skip")
    assert f"{path}, line 12, column 'timestamp' (float): 'yesterday' is not a number" in dataset_error(config)


def test_malformed_rows_takes_error_or_skip(broken):
    from recbole_dien.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid setting malformed_rows='drop': it must be one of error, skip"):
        broken("inter", lambda text: text, malformed_rows="drop")


@pytest.mark.parametrize("separator", ["\t", "::"])  # pandas' C parser, and RecBole's Python parser
def test_rows_are_left_out_after_blank_lines_too(broken, separator):
    def change(text):
        lines = text.replace("\t", separator).split("\n")
        lines[3] = ""                               # a blank line before the malformed one
        lines[7] += separator + "99"
        return "\n".join(lines)

    _, config = broken("inter", change, malformed_rows="skip", field_separator=separator,
                       load_col={"inter": ["user_id", "item_id", "rating", "timestamp"]})
    assert len(create_dataset(config).inter_feat) == 24 * 14 - 2
