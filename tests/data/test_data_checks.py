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
