"""The lean sequential data path (recbole_dien.data.lean) against RecBole's own SequentialDataset:
same rows, same splits, every batch tensor of the train, valid and test loaders equal."""
from unittest import mock

import pytest
import torch
from recbole.data import data_preparation
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_dien import Config, create_dataset
from recbole_dien.data.lean import HISTORY_START, LeanSequentialDataset, history_occurrences
from recbole_dien.data.negatives import _sample_log_block, sample_log_negatives
from recbole_dien.utils.errors import ConfigError
from recbole_dien.utils.hosts import RECBOLE

PROTOCOLS = {
    "uni100": {"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                             "mode": "uni100"}},
    "fullsort": {"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                               "mode": "full"}, "metrics": ["Hit", "NDCG"], "valid_metric": "NDCG@10"},
    "labeled": {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user",
                              "mode": "labeled"}, "train_neg_sample_args": None, "threshold": {"rating": 4},
                "metrics": ["AUC"]},
    # RecBole's time-based split loops over the groups itself (GroupedIndex iterates like its lists)
    "time-split": {"eval_args": {"split": {"TS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user",
                                 "mode": "uni100"}},
}


def pipeline(model, dataset, settings, lean):
    config = Config(model, dataset, config_dict={**settings, "lean_sequential_data": lean}, cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    return data, data_preparation(config, data)


def every_batch(loaders):
    """All batches of the loaders, in order, each a list of (name, tensor); the random state the
    loaders draw negatives from is reset first, so two pipelines' loaders draw the same."""
    init_seed(loaders[0].config["seed"], True)
    batches = []
    for loader in loaders:
        for batch in loader:
            parts = batch if isinstance(batch, tuple) else (batch,)
            flat = []
            for i, part in enumerate(parts):
                if isinstance(part, Interaction):
                    flat.extend(sorted((f"{i}:{key}", value) for key, value in part.interaction.items()))
                elif part is not None:
                    flat.append((f"{i}", torch.as_tensor(part)))
            batches.append(flat)
    return batches


def assert_same_batches(model, dataset, settings):
    lean_data, lean_loaders = pipeline(model, dataset, settings, lean=True)
    dense_data, dense_loaders = pipeline(model, dataset, settings, lean=False)
    assert isinstance(lean_data, LeanSequentialDataset) and lean_data.is_lean
    assert not getattr(dense_data, "is_lean", False) and isinstance(dense_data, SequentialDataset)
    for lean_split, dense_split in zip(lean_loaders, dense_loaders):
        assert len(lean_split.dataset) == len(dense_split.dataset)
    lean, dense = every_batch(lean_loaders), every_batch(dense_loaders)
    assert len(lean) == len(dense) > 0
    for lean_batch, dense_batch in zip(lean, dense):
        assert [name for name, _ in lean_batch] == [name for name, _ in dense_batch]
        for (name, a), (_, b) in zip(lean_batch, dense_batch):
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert torch.equal(a, b), name
    return lean_data, dense_data


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("model", ["DIN", "DIEN"])
def test_every_batch_equals_recboles_on_tiny_data(tiny_config_dict, protocol, model):
    assert_same_batches(model, "tiny", {**tiny_config_dict, **PROTOCOLS[protocol]})


def test_short_histories(tiny_config_dict):
    # MAX_ITEM_LIST_LENGTH 3 < most histories (cut windows), 1 (a single behaviour)
    for length in (3, 1):
        assert_same_batches("DSIN", "tiny", {**tiny_config_dict, **PROTOCOLS["uni100"], "MAX_ITEM_LIST_LENGTH": length})


@pytest.fixture
def few_interactions(tiny_config_dict, tmp_path):
    """Users with 1 to 12 interactions: users without rows, groups of one and two rows (fewer
    than leave-one-out's two held-out rows), ratio splits of tiny groups."""
    folder = tmp_path / "few" / "few"
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for user in range(1, 25):
        for step in range(user % 12 + 1):
            lines.append(f"{user}\t{(user * 7 + step * 3) % 40 + 1}\t{(user + step) % 5 + 1}\t{1000 + 60 * step}")
    (folder / "few.inter").write_text("\n".join(lines) + "\n")
    return {**tiny_config_dict, "data_path": str(tmp_path / "few"), "load_col": {"inter": ["user_id", "item_id",
                                                                                       "rating", "timestamp"]}}


@pytest.mark.parametrize("protocol", ["uni100", "labeled", "time-split"])
def test_users_with_few_interactions(few_interactions, protocol):
    settings = {**few_interactions, **PROTOCOLS[protocol], "MAX_ITEM_LIST_LENGTH": 4}
    settings["eval_args"] = {**settings["eval_args"], "mode": settings["eval_args"]["mode"].replace("uni100", "uni20")}
    assert_same_batches("DIEN", "few", settings)


@pytest.mark.parametrize("protocol", ["default", "fullsort", "labeled"])
def test_every_batch_equals_recboles_on_ml_100k(protocol):
    settings = {"protocol": protocol, "show_progress": False, "MAX_ITEM_LIST_LENGTH": 20,
                "train_batch_size": 4096, "eval_batch_size": 8192}
    lean, dense = assert_same_batches("DIN", "ml-100k", settings)
    # memory: the rows hold no list column, the log each interaction once
    assert dense.inter_feat["item_id_list"].shape == (len(dense), 20)
    assert all(value.dim() == 1 for value in lean.inter_feat.interaction.values())
    users_with_rows = len(torch.unique(lean.inter_feat["user_id"]))
    assert len(lean.history_log) == len(lean.inter_feat) + users_with_rows == 100000


def test_recbole_models_can_ask_for_the_lean_path(tiny_config_dict):
    settings = {**tiny_config_dict, **PROTOCOLS["fullsort"], "train_neg_sample_args": None, "loss_type": "CE"}
    lean, _ = assert_same_batches("GRU4Rec", "tiny", settings)
    assert type(lean) is RECBOLE.dataset(LeanSequentialDataset)  # the host-neutral class built on RecBole's
    config = Config("GRU4Rec", "tiny", config_dict=settings, cmd_args=[])
    assert type(create_dataset(config)) is SequentialDataset  # RecBole's models keep RecBole's path by default


def test_single_rows_and_columns_read_like_recboles(tiny_config_dict):
    settings = {**tiny_config_dict, **PROTOCOLS["uni100"]}
    lean, _ = pipeline("DIN", "tiny", settings, lean=True)
    dense, _ = pipeline("DIN", "tiny", settings, lean=False)
    row, dense_row = lean[5], dense[5]
    assert set(row) == set(dense_row) and all(torch.equal(row[k], dense_row[k]) for k in row)
    assert torch.equal(lean["item_id_list"], dense.inter_feat["item_id_list"])
    assert torch.equal(lean["item_length"], dense.inter_feat["item_length"])
    assert (lean.inter_matrix() != dense.inter_matrix()).nnz == 0
    assert torch.equal(history_occurrences(lean, "item_id", 61), history_occurrences(dense, "item_id", 61))


def test_histories_gathered_from_a_hand_made_log():
    """Rows of a log of users 1 (times 1..4) and 2 (times 1..2) with L = 2, checked by hand."""
    dataset = RECBOLE.dataset(LeanSequentialDataset).__new__(RECBOLE.dataset(LeanSequentialDataset))
    dataset.max_item_list_len, dataset.item_list_length_field = 2, "item_length"
    dataset.list_sources = {"item_id_list": "item_id"}
    dataset.history_log = Interaction({"item_id": torch.tensor([11, 12, 13, 14, 21, 22])})
    rows = Interaction({"item_id": torch.tensor([12, 13, 14, 22]), "item_length": torch.tensor([1, 2, 2, 1]),
                        HISTORY_START: torch.tensor([0, 0, 1, 4])})
    gathered = dataset.gather_histories(rows)
    assert gathered["item_id_list"].tolist() == [[11, 0], [11, 12], [12, 13], [21, 0]]
    assert HISTORY_START not in gathered


# --- DIEN's negatives -------------------------------------------------------------------------

@pytest.mark.parametrize("block_positions", [2 ** 22, 7, 1])
def test_log_negatives_avoid_the_positive_and_every_rows_visible_history(block_positions):
    torch.manual_seed(0)
    users = torch.repeat_interleave(torch.arange(1, 41), torch.randint(1, 30, (40,)))
    items = torch.randint(1, 15, (len(users),))
    window = 5
    negatives = sample_log_negatives(users, items, n_items=40, window=window, block_positions=block_positions)
    for p in range(len(users)):
        assert 0 < negatives[p] < 40
        # every behaviour of the user at the `window` positions ending at p (what any row shows up to p)
        start = p
        while start > 0 and users[start - 1] == users[p] and p - start + 1 < window:
            start -= 1
        assert negatives[p] not in items[start:p + 1].tolist()


def test_log_negatives_are_drawn_in_blocks_of_whole_users():
    users = torch.repeat_interleave(torch.arange(1, 6), torch.tensor([3, 9, 2, 4, 6]))   # starts 0 3 12 14 18
    items = torch.arange(1, len(users) + 1) % 7 + 1
    blocks = []

    def record(block_users, *args):
        blocks.append(block_users.tolist())
        return torch.ones_like(args[0])

    with mock.patch("recbole_dien.data.negatives._sample_log_block", side_effect=record):
        sample_log_negatives(users, items, n_items=9, window=3, block_positions=5)
    # cuts at the last user start at or before 5, 10, 15, 20: 3, 14, 18 (users 2 and 3 share a block)
    assert [len(block) for block in blocks] == [3, 11, 4, 6]
    assert sorted(user for block in blocks for user in set(block)) == [1, 2, 3, 4, 5]   # no user is split
    # a log within one block is drawn in one piece: the same draws as before blocks existed
    generator = torch.Generator().manual_seed(3)
    one_piece = sample_log_negatives(users, items, n_items=9, window=3, generator=generator)
    reference = _sample_log_block(users, items, 9, 3, "history", torch.Generator().manual_seed(3), 100)
    assert torch.equal(one_piece, reference)


def test_positive_only_log_negatives_may_repeat_earlier_items():
    users = torch.ones(400, dtype=torch.long)
    items = torch.tensor([1, 2, 3, 4, 5, 6] * 66 + [1, 2, 3, 4])
    negatives = sample_log_negatives(users, items, n_items=8, window=50, exclude="positive",
                                     generator=torch.Generator().manual_seed(0))
    assert torch.all(negatives != items) and (negatives < 6).any()


def test_dien_negatives_are_the_same_on_both_paths_and_keep_their_guarantees(tiny_config_dict):
    lean, _ = assert_same_batches("DIEN", "tiny", {**tiny_config_dict, **PROTOCOLS["uni100"]})
    rows = lean[torch.arange(len(lean))]
    items, negatives = rows["item_id_list"], rows["neg_item_id_list"]
    real = torch.arange(items.shape[1]) < rows["item_length"].unsqueeze(1)
    assert torch.all((negatives > 0) == real)
    for r in range(len(rows)):
        for k in range(int(rows["item_length"][r])):
            assert negatives[r, k] not in items[r, :k + 1].tolist()
    assert "neg_item_id" not in rows  # only the aligned list is a model input


def test_dien_resampled_negatives_on_the_lean_path(tiny_config_dict):
    settings = {**tiny_config_dict, **PROTOCOLS["uni100"], "neg_resample_each_epoch": True}
    data, (train, valid, _) = pipeline("DIEN", "tiny", settings, lean=True)
    split = train.dataset
    first, second = split[torch.arange(40)], split[torch.arange(40)]
    assert not torch.equal(first["neg_item_id_list"], second["neg_item_id_list"])
    real = torch.arange(first["item_id_list"].shape[1]) < first["item_length"].unsqueeze(1)
    assert not torch.any((first["neg_item_id_list"] == first["item_id_list"]) & real)
    assert torch.equal(valid.dataset[torch.arange(5)]["neg_item_id_list"],
                       valid.dataset[torch.arange(5)]["neg_item_id_list"])


def test_fearec_is_refused_on_the_lean_path(tiny_config_dict):
    config = Config("FEARec", "tiny", config_dict={**tiny_config_dict, **PROTOCOLS["fullsort"],
                                                    "train_neg_sample_args": None, "loss_type": "CE",
                                                    "lean_sequential_data": True}, cmd_args=[])
    with pytest.raises(ConfigError, match="lean_sequential_data: FEARec reads its histories from dataset.inter_feat"):
        create_dataset(config)


def test_zero_dimensional_and_string_indices(tiny_config_dict):
    settings = {**tiny_config_dict, **PROTOCOLS["uni100"], "neg_resample_each_epoch": True}
    lean, (train, _, _) = pipeline("DIEN", "tiny", settings, lean=True)
    dense, _ = pipeline("DIEN", "tiny", {**settings, "neg_resample_each_epoch": False}, lean=False)
    row = train.dataset[torch.tensor(3)]
    assert row["item_id_list"].shape == (8,) and row["neg_item_id_list"].shape == (8,)
    assert torch.equal(row["item_id_list"], train.dataset[3]["item_id_list"])
    assert torch.equal(lean["timestamp_list"], dense.inter_feat["timestamp_list"])


def test_dsin_sessions_of_a_hand_made_log():
    from recbole_dien.data.dataset import log_sessions, session_positions

    # user 1 at 0, 5 | 100, 101, 102 | 300; user 2 at 0 | 50, 51 (session_gap 10)
    users = torch.tensor([1, 1, 1, 1, 1, 1, 2, 2, 2])
    times = torch.tensor([0, 5, 100, 101, 102, 300, 0, 50, 51], dtype=torch.float64)
    sessions = log_sessions(users, times, 10)
    assert sessions["session"].tolist() == [0, 0, 1, 1, 1, 2, 3, 4, 4]
    assert sessions["first"].tolist() == [0, 2, 5, 6, 7] and sessions["last"].tolist() == [1, 4, 5, 6, 8]
    assert sessions["users_first"].tolist() == [0, 0, 0, 3, 3]
    # K = 2 sessions of T = 2 behaviours, histories ending at these positions
    positions, real, lengths = session_positions(sessions, torch.tensor([5, 4, 3, 1, 6, 8]), 2, 2)
    assert lengths.tolist() == [3, 4, 4, 2, 1, 3]
    assert (positions * real).tolist() == [[3, 4, 5, 0],   # {101, 102} of the middle session, {300}
                                           [0, 1, 3, 4],   # {0, 5}, {101, 102}
                                           [0, 1, 2, 3],   # {0, 5}, {100, 101}: the newest cut where the history ends
                                           [0, 1, 0, 0],   # one session: no older one of the user
                                           [6, 0, 0, 0],   # user 2's first: user 1's sessions are not his
                                           [6, 7, 8, 0]]
    assert torch.equal(real, torch.arange(4) < lengths.unsqueeze(1))


def test_dsin_rows_hold_no_history_and_batches_hold_k_sessions_of_t(tiny_config_dict):
    from recbole_dien.data.dataset import DSINDataset

    settings = {**tiny_config_dict, **PROTOCOLS["uni100"], "max_sessions": 3, "max_session_length": 2}
    data, (train, _, _) = pipeline("DSIN", "tiny", settings, lean=True)
    assert type(data) is RECBOLE.dataset(DSINDataset) and all(value.dim() == 1 for value in data.inter_feat.interaction.values())
    rows = train.dataset[torch.arange(len(train.dataset))]
    assert rows["item_id_list"].shape == rows["timestamp_list"].shape == (len(rows), 6)
    assert rows["timestamp_list"].dtype == torch.float64
    assert 0 < rows["item_length"].min() and rows["item_length"].max() == 6
    dense, _ = pipeline("DSIN", "tiny", settings, lean=False)
    assert not dense.is_lean and dense.inter_feat["item_id_list"].shape[1] == 6
