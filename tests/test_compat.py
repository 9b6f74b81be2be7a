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


# --- numpy 2 and pandas 3: the same dataset on every supported version -------------------------

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


def write_dataset_with_gaps(root):
    """Items with a missing brand (token), price (float) and genres (token_seq), users without an age."""
    folder = root / "gaps"
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rows += [f"{user}\t{item}\t{1000 + 10 * user + item}" for user in (1, 2, 3) for item in (1, 2, 3, 4)]
    (folder / "gaps.inter").write_text("\n".join(rows) + "\n")
    (folder / "gaps.item").write_text("item_id:token\tbrand:token\tprice:float\tgenre:token_seq\n"
                                      "1\tacme\t2.0\ta b c\n2\t\t4.0\tb\n3\tacme\t\t\n4\tzeta\t9.0\tc a\n")
    (folder / "gaps.user").write_text("user_id:token\tage:token\n1\t20\n2\t\n3\t30\n")
    return str(root)


@pytest.fixture
def gaps_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = {"data_path": write_dataset_with_gaps(tmp_path), "load_col": None, "show_progress": False,
                "checkpoint_dir": str(tmp_path / "saved")}
    return Config("DIN", "gaps", config_dict=settings, cmd_args=[])


def item_row(dataset, token):
    return int(dataset.token2id(dataset.iid_field, token))


def test_missing_values_are_imputed_as_recbole_means_them(gaps_dataset):
    dataset = Dataset(gaps_dataset)  # RecBole's own dataset class, through the shims
    items = dataset.item_feat
    brand, price, genre = items["brand"], items["price"], items["genre"]
    # token: [PAD] (0); float: the mean of the others (2, 4, 9); token_seq: empty
    assert brand[item_row(dataset, "2")] == 0 and brand[item_row(dataset, "1")] != 0
    assert price[item_row(dataset, "3")] == pytest.approx(5.0)
    assert price[item_row(dataset, "4")] == pytest.approx(9.0)
    assert dataset.user_feat["age"][int(dataset.token2id("user_id", "2"))] == 0
    genre_lengths = {token: int((genre[item_row(dataset, token)] > 0).sum()) for token in "1234"}
    assert genre_lengths == {"1": 3, "2": 1, "3": 0, "4": 2}  # per-row lengths kept through the remap
    tokens = dataset.field2id_token["genre"]
    assert [tokens[i] for i in genre[item_row(dataset, "4")] if i > 0] == ["c", "a"]


@pytest.mark.skipif(not PANDAS_3, reason="pandas < 3 has no copy-on-write: RecBole's chained fillna still fills")
def test_recboles_chained_fillna_fills_nothing_under_pandas_3(gaps_dataset):
    """What the _fill_nan shim fixes: without it, the missing price stays NaN under pandas 3."""
    dataset = Dataset(gaps_dataset)
    frame = pd.DataFrame({"price": [1.0, None, 3.0]})
    frame["price"].fillna(value=2.0, inplace=True)  # RecBole's call, dataset.py line 650
    assert frame["price"].isna().sum() == 1
    assert not dataset.item_feat["price"].isna().any()


@pytest.mark.skipif(not PANDAS_3, reason="pandas < 3 applies len per row in Series.agg (with a FutureWarning)")
def test_series_agg_len_is_the_column_length_under_pandas_3():
    """What the agg(len) shim fixes: RecBole's split points (dataset.py line 1217) need per-row lengths."""
    from recbole_dien.compat import _agg_len_per_row

    column = pd.Series([[1, 2, 3], [4]])
    assert column.agg(len) == 2
    assert _agg_len_per_row(lambda: column.agg(len).tolist())() == [3, 1]
    assert column.agg(len) == 2  # pandas' own again afterwards


def test_empty_sequence_cells_are_empty_strings_before_recbole_splits_them(tmp_path):
    from recbole_dien.compat import _PandasWithCParser

    path = tmp_path / "x.item"
    path.write_text("item_id:token\tgenre:token_seq\tprice:float\n1\ta b\t\n2\t\t3.5\n")
    frame = _PandasWithCParser(pd).read_csv(path, delimiter="\t", engine="python", dtype={"genre:token_seq": str})
    assert frame["genre:token_seq"].tolist() == ["a b", ""]
    assert frame["price:float"].isna().tolist() == [True, False]  # other columns keep their NaN for _fill_nan
    if PANDAS_3:  # without the shim, RecBole's chained fillna leaves the NaN that str.split then fails on
        plain = pd.read_csv(path, delimiter="\t", dtype={"genre:token_seq": str})
        plain["genre:token_seq"].fillna(value="", inplace=True)
        assert plain["genre:token_seq"].isna().sum() == 1


def test_recboles_numpy_aliases_come_from_names_numpy_1_and_2_share(gaps_dataset):
    import numpy as np
    from recbole.config import Config as RecBoleConfig

    assert (np.float, np.int, np.bool, np.complex, np.object, np.str, np.long, np.unicode) == (
        np.float64, np.int_, np.bool_, np.complex128, np.object_, np.str_, np.int_, np.str_)
    original = RecBoleConfig.compatibility_settings.__wrapped__  # RecBole's own, configurator.py 625-635
    if int(np.__version__.split(".")[0]) >= 2:
        with pytest.raises(AttributeError, match="np.float_"):
            original(gaps_dataset)
    else:
        original(gaps_dataset)
        assert np.float is np.float64


def test_exhaustive_search_tries_every_combination_once(tmp_path):
    """RecBole's exhaustive_search hands hyperopt a RandomState; hyperopt >= 0.2.7 calls
    rng.integers on it, so without the shim the first trial raises AttributeError."""
    pytest.importorskip("hyperopt")
    from recbole.trainer import HyperTuning

    from recbole_dien.quick_start.tuning import build_space_from_file

    space = tmp_path / "grid.hyper"
    space.write_text("learning_rate choice [0.01,0.001]\nembedding_size choice [8,16,32]\n")
    tried = []

    def objective(config_dict, config_file_list, saved=True):
        tried.append((config_dict["learning_rate"], config_dict["embedding_size"]))
        return {"model": "fake", "best_valid_score": len(tried), "valid_score_bigger": True,
                "best_valid_result": {}, "test_result": {}}

    tuner = HyperTuning(objective, space=build_space_from_file(str(space)), algo="exhaustive", max_evals=100)
    tuner.run()
    assert sorted(tried) == sorted((rate, size) for rate in (0.01, 0.001) for size in (8, 16, 32))


def test_loaders_index_a_range_and_draw_recboles_batches_in_the_same_order(tiny_pipeline):
    import recbole.data.dataloader.abstract_dataloader as dataloader_module
    from recbole.utils import init_seed

    from recbole_dien.compat import _RandomOrderInSlices

    config, train, _, _ = tiny_pipeline("DIN")
    assert isinstance(vars(train)["dataset"], range) and type(train.sampler) is _RandomOrderInSlices

    def two_epochs(loader):
        init_seed(config["seed"], config["reproducibility"])  # RecBole's negative sampler draws from numpy
        return [batch for _ in range(2) for batch in loader]

    def rebuilt():
        return type(train)(config, train._dataset, train._sampler, shuffle=True)

    ours = two_epochs(rebuilt())
    shimmed_init, shimmed_list = dataloader_module.AbstractDataLoader.__init__, dataloader_module.list
    dataloader_module.AbstractDataLoader.__init__ = shimmed_init.__wrapped__
    dataloader_module.list = list
    try:
        plain = rebuilt()
        assert isinstance(vars(plain)["dataset"], list) and type(plain.sampler) is torch.utils.data.RandomSampler
        theirs = two_epochs(plain)
    finally:
        dataloader_module.AbstractDataLoader.__init__, dataloader_module.list = shimmed_init, shimmed_list
    assert len(ours) == len(theirs) > 2
    for mine, recboles in zip(ours, theirs):
        assert list(mine.interaction) == list(recboles.interaction)
        for column in recboles.interaction:
            assert torch.equal(mine[column], recboles[column]), column


def test_the_sliced_random_order_is_torchs_and_leaves_the_generator_as_torch_does():
    from torch.utils.data import RandomSampler

    from recbole_dien.compat import _RandomOrderInSlices

    for n, samples, slice_size in [(10, None, 3), (1000, None, 64), (7, 20, 2), (5, 3, 65536), (300000, None, 65536)]:
        theirs_generator, ours_generator = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        ours = _RandomOrderInSlices(range(n), num_samples=samples, generator=ours_generator)
        ours.SLICE = slice_size
        theirs = RandomSampler(range(n), num_samples=samples, generator=theirs_generator)
        assert list(ours) == list(theirs) and list(ours) == list(theirs)   # two epochs
        assert torch.equal(ours_generator.get_state(), theirs_generator.get_state())
