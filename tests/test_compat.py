"""RecBole shims (recbole_dien.compat) that change how RecBole reads data: the result must not change."""
import pandas as pd
import pytest
import recbole.data.dataset.dataset as dataset_module
import torch
from recbole.data.dataset import Dataset

from recbole_dien import Config
from recbole_dien.compat import _PandasWithCParser


def read_everything(config, parser_shim):
    """A RecBole Dataset of every column of every atomic file, as Interactions."""
    saved = dataset_module.pd
    dataset_module.pd = _PandasWithCParser(pd) if parser_shim else pd
    try:
        dataset = Dataset(config)
    finally:
        dataset_module.pd = saved
    dataset._change_feat_format()
    return dataset


@pytest.mark.parametrize("name", ["ml-100k", "tiny"])
def test_the_c_parser_reads_every_value_as_recboles_python_parser(name, tiny_config_dict):
    settings = {**tiny_config_dict, "load_col": None} if name == "tiny" else {"load_col": None}
    config = Config("DIN", name, config_dict=settings, cmd_args=[])
    assert isinstance(dataset_module.pd, _PandasWithCParser)  # applied on import
    shimmed, plain = read_everything(config, True), read_everything(config, False)
    assert shimmed.field2type == plain.field2type and shimmed.field2seqlen == plain.field2seqlen
    for field, tokens in plain.field2id_token.items():
        assert list(shimmed.field2id_token[field]) == list(tokens), field
    for feat in ("inter_feat", "user_feat", "item_feat"):
        ours, theirs = getattr(shimmed, feat), getattr(plain, feat)
        assert list(ours.interaction) == list(theirs.interaction), feat
        for column in theirs.interaction:
            assert torch.equal(ours[column], theirs[column]), (feat, column)
    assert len(plain.field2type) >= 4


def test_other_separators_keep_recboles_parser(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a::b\n1::2\n")
    frame = _PandasWithCParser(pd).read_csv(path, delimiter="::", engine="python")
    assert frame.values.tolist() == [[1, 2]]


def test_one_character_separators_reach_pandas_as_the_c_parser():
    calls = []

    class Spy:
        @staticmethod
        def read_csv(*args, **kwargs):
            calls.append(kwargs)

    _PandasWithCParser(Spy).read_csv("x", delimiter="\t", engine="python")
    assert calls == [{"delimiter": "\t", "engine": "c", "float_precision": "round_trip"}]
