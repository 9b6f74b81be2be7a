import pytest
import torch

from recbole_dien.utils.errors import DatasetError
from recbole_dien.model.dsin import split_sessions
from tests.conftest import assert_every_parameter_gets_a_gradient, assert_full_sort_matches_predict


def grid(times, length=None, gap=10, K=5, T=10):
    times = torch.tensor([times], dtype=torch.double)
    lengths = torch.tensor([length if length is not None else times.shape[1]])
    result = split_sessions(times, lengths, gap, K, T)
    return {key: value[0].tolist() for key, value in result.items()}


def test_sessions_split_where_the_gap_exceeds_session_gap():
    g = grid([0, 5, 15, 100, 104, 300])
    # gaps: 5, 10 (not > 10), 85, 4, 196 -> sessions {0,5,15} {100,104} {300}
    assert g["slot"] == [0, 0, 0, 1, 1, 2]
    assert g["position"] == [0, 1, 2, 0, 1, 0]
    assert g["count"] == 3
    assert g["recency"] == [2, 1, 0, -1, -1]


def test_equal_timestamps_stay_in_one_session():
    g = grid([7, 7, 7, 7])
    assert g["slot"] == [0, 0, 0, 0] and g["position"] == [0, 1, 2, 3] and g["count"] == 1


def test_only_the_most_recent_K_sessions_and_T_behaviours_are_kept():
    g = grid([0, 100, 200, 201, 202, 203, 300], K=2, T=3)
    # sessions {0} {100} {200..203} {300}: keep the last two; of {200..203} its last three
    assert g["slot"] == [-1, -1, -1, 0, 0, 0, 1]
    assert g["position"][3:] == [0, 1, 2, 0]
    assert g["count"] == 2 and g["recency"] == [1, 0]


def test_one_behaviour_and_padding():
    g = grid([50, 0, 0], length=1)
    assert g["slot"] == [0, -1, -1] and g["count"] == 1 and g["recency"][:2] == [0, -1]


def test_empty_history_has_no_session():
    g = grid([0, 0], length=0)
    assert g["slot"] == [-1, -1] and g["count"] == 0 and set(g["recency"]) == {-1}


@pytest.fixture
def dsin_setup(tiny_model):
    sessions = {"session_gap": 3600, "max_sessions": 3, "max_session_length": 4}
    return lambda **overrides: tiny_model("DSIN", **{**sessions, **overrides})


def test_protocol_is_stated_by_the_model_props(tiny_data_path):
    # RecBole would give an unknown model name full-sort ranking defaults
    from recbole_dien import Config

    plain = Config("DSIN", "tiny", config_dict={"data_path": tiny_data_path}, cmd_args=[])
    assert plain["metrics"] == ["AUC", "LogLoss"] and plain["valid_metric"] == "AUC"
    assert plain["train_neg_sample_args"]["distribution"] == "uniform"


def test_session_grid_places_items_with_bias_indices(dsin_setup):
    model, _, batch = dsin_setup()
    items, behaviour_mask, recency, session_mask, count = model.session_grid(batch)
    assert items.shape == (len(batch), 3, 4)
    assert torch.equal(items > 0, behaviour_mask)
    assert torch.equal(session_mask.sum(1), count)
    # the most recent session has recency 0 and holds the last behaviour of the history
    row = int(torch.argmax(batch[model.ITEM_SEQ_LEN]))
    last_item = batch[model.ITEM_SEQ][row, batch[model.ITEM_SEQ_LEN][row] - 1]
    newest = int((recency[row] == 0).nonzero())
    assert last_item in items[row, newest].tolist()


def test_shapes_and_probabilities(dsin_setup):
    model, _, batch = dsin_setup()
    model.eval()
    p = model.predict(batch)
    assert p.shape == (len(batch),) and torch.all((p > 0) & (p < 1))


@pytest.mark.parametrize("attention", ["bilinear", "mlp"])
def test_padding_changes_nothing(dsin_setup, attention):
    model, _, batch = dsin_setup(session_attention=attention)
    model.eval()
    before = model.predict(batch)
    seq, times = batch[model.ITEM_SEQ].clone(), batch[model.TIME_SEQ].clone()
    padded = torch.arange(seq.shape[1]) >= batch[model.ITEM_SEQ_LEN].unsqueeze(-1)
    assert padded.any()
    batch[model.ITEM_SEQ] = torch.where(padded, torch.randint_like(seq, 1, model.n_items), seq)
    batch[model.TIME_SEQ] = torch.where(padded, torch.rand_like(times) * 1e7, times)
    torch.testing.assert_close(model.predict(batch), before)


def test_behaviours_outside_the_kept_sessions_change_nothing(dsin_setup):
    model, _, batch = dsin_setup()
    model.eval()
    before = model.predict(batch)
    grid = split_sessions(batch[model.TIME_SEQ].double(), batch[model.ITEM_SEQ_LEN], model.session_gap,
                          model.max_sessions, model.max_session_length)
    dropped = (grid["slot"] < 0) & (torch.arange(batch[model.ITEM_SEQ].shape[1]) < batch[model.ITEM_SEQ_LEN][:, None])
    assert dropped.any(), "the tiny data should overflow K sessions or T behaviours somewhere"
    seq = batch[model.ITEM_SEQ]
    batch[model.ITEM_SEQ] = torch.where(dropped, torch.randint_like(seq, 1, model.n_items), seq)
    torch.testing.assert_close(model.predict(batch), before)


def test_full_sort_predict_equals_predict_item_by_item(dsin_setup):
    model, _, batch = dsin_setup(full_sort_chunk_elements=3000)
    assert_full_sort_matches_predict(model, batch[:4])


@pytest.mark.parametrize("attention,merge", [("bilinear", "concat"), ("mlp", "sum")])
def test_gradients_reach_every_parameter(dsin_setup, attention, merge):
    model, _, batch = dsin_setup(session_attention=attention, bilstm_merge=merge)
    assert_every_parameter_gets_a_gradient(model, batch)


def test_time_field_not_loaded_is_a_clear_error(tiny_data_path, tmp_path, monkeypatch):
    from recbole_dien import Config, create_dataset

    monkeypatch.chdir(tmp_path)
    not_loaded = {"data_path": tiny_data_path, "load_col": {"inter": ["user_id", "item_id"]}}
    with pytest.raises(DatasetError, match=r"column 'timestamp' \(TIME_FIELD\).*add it to load_col"):
        create_dataset(Config("DSIN", "tiny", config_dict=not_loaded, cmd_args=[]))
    with pytest.raises(DatasetError, match="no column 'timestamp' \\(TIME_FIELD\\)"):
        create_dataset(Config("DSIN", "notime", config_dict={"data_path": tiny_data_path}, cmd_args=[]))


def test_bias_encoding_adds_session_position_and_unit_terms(dsin_setup):
    model, _, _ = dsin_setup()
    for parameter in (model.session_bias, model.position_bias, model.unit_bias):
        torch.nn.init.normal_(parameter)
    recency = torch.tensor([[2, 1, 0], [0, -1, -1]])
    encoded = model.bias_encoding(torch.zeros(2, 3, 4, model.unit_bias.shape[0]), recency)
    b, k, t, c = 0, 1, 3, 5
    expected = model.session_bias[recency[b, k], 0, 0] + model.position_bias[t, 0] + model.unit_bias[c]
    torch.testing.assert_close(encoded[b, k, t, c], expected)
    assert model.session_bias.shape == (3, 1, 1) and model.position_bias.shape == (4, 1)


def test_empty_sessions_are_excluded_downstream(dsin_setup):
    model, _, batch = dsin_setup()
    model.eval()
    sessions = model.session_interests(batch)
    empty = ~sessions["mask"]
    assert empty.any() and sessions["mask"].any(1).all()
    assert torch.all(sessions["interests"][empty] == 0) and torch.all(sessions["states"][empty] == 0)
    target = model.item_embedding(batch[model.ITEM_ID])
    for scores in model.attention_scores(sessions, target):
        from recbole_dien.model.layers import masked_softmax
        assert torch.all(masked_softmax(scores, sessions["mask"])[empty] == 0)


def test_without_the_normalisation_shim_normalised_timestamps_are_a_clear_error(tiny_model, monkeypatch):
    from recbole.data.dataset import Dataset

    # as if recbole_dien.compat had not wrapped RecBole's _normalize (the model cannot recover then)
    monkeypatch.setattr(Dataset, "_normalize", Dataset._normalize.__wrapped__)
    with pytest.raises(DatasetError, match="normalises the time field 'timestamp'.*set normalize_all: False"):
        tiny_model("DSIN", normalize_all=True)


def test_ml_100k_protocol_keeps_timestamps_in_seconds():
    from recbole_dien import Config

    for protocol in ("default", "fullsort", "labeled"):
        config = Config("DSIN", "ml-100k", config_dict={"protocol": protocol}, cmd_args=[])
        assert config["normalize_all"] is False and not config["normalize_field"]


def test_histories_of_one_behaviour_train_and_predict(tiny_config_dict):
    from recbole_dien import run

    result = run("DSIN", "tiny", config_dict={**tiny_config_dict, "MAX_ITEM_LIST_LENGTH": 1}, cmd_args=[])
    assert 0.0 <= result["test_result"]["auc"] <= 1.0


@pytest.mark.parametrize("normalise", [{"normalize_all": True}, {"normalize_field": ["timestamp"]}])
def test_normalising_the_time_field_changes_neither_sessions_nor_scores(tiny_model, normalise):
    load_col = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "year", "genre"]}
    plain, _, plain_batch = tiny_model("DSIN", load_col=load_col, normalize_all=False)
    normalised, _, batch = tiny_model("DSIN", load_col=load_col, **normalise)
    assert batch["timestamp_list"].max() > 1e6  # still seconds
    assert torch.equal(batch["timestamp_list"], plain_batch["timestamp_list"])
    for got, want in zip(normalised.session_grid(batch), plain.session_grid(plain_batch)):
        assert torch.equal(got, want)
    normalised.eval(), plain.eval()
    assert torch.equal(normalised.predict(batch), plain.predict(plain_batch))


def test_dsin_runs_in_recboles_own_pipeline_on_its_own_ml_100k_yaml(tmp_path, monkeypatch):
    # RecBole's Config (its ml-100k.yaml: normalize_all True), create_dataset, data_preparation, Trainer
    from recbole.config import Config as RecBoleConfig
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    from recbole_dien import DSIN

    monkeypatch.chdir(tmp_path)
    config = RecBoleConfig(model=DSIN, dataset="ml-100k", config_dict={
        "epochs": 1, "show_progress": False, "checkpoint_dir": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 20,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni100"},
        "metrics": ["AUC"], "valid_metric": "AUC"})
    assert config["normalize_all"] is True
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    assert train_data._dataset.inter_feat["timestamp"].min() > 8e8  # seconds, not min-max normalised
    model = DSIN(config, train_data._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    assert 0.75 < trainer.evaluate(test_data, load_best_model=True, show_progress=False)["auc"] < 1.0
