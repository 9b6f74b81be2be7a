import numpy as np
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
    *_, count = model.session_grid(batch)
    full = count == model.max_sessions
    assert full.any() and not full.all(), "the tiny data should have rows with K sessions and rows with fewer"
    # one behaviour ten gaps before each history: a new oldest session, dropped where K are kept already
    lengths, seq, times = batch[model.ITEM_SEQ_LEN], batch[model.ITEM_SEQ], batch[model.TIME_SEQ]
    older = times[:, :1] - 10 * model.session_gap
    batch[model.ITEM_SEQ] = torch.cat([torch.randint(1, model.n_items, (len(batch), 1)), seq], 1)
    batch[model.TIME_SEQ] = torch.cat([older, times], 1)
    batch[model.ITEM_SEQ_LEN] = lengths + 1
    after = model.predict(batch)
    torch.testing.assert_close(after[full], before[full])
    assert not torch.allclose(after[~full], before[~full])


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

    # one session of one behaviour: DSIN's histories hold K x T behaviours, whatever MAX_ITEM_LIST_LENGTH
    settings = {**tiny_config_dict, "max_sessions": 1, "max_session_length": 1}
    result = run("DSIN", "tiny", config_dict=settings, cmd_args=[])
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


# --- sessions on real logs: exact timestamps, the user's whole history ---------------------------

SESSION_GAP = 1800
# gaps at and around session_gap (<= 1800 stays in the session), short ones and long ones; sessions
# of about 7 behaviours, so that 5 of them reach back past 20
GAPS, GAP_WEIGHTS = [60, 1799, 1800, 1750, 1801, 1850, 7200], [.35, .2, .2, .1, .05, .05, .05]


def write_session_log(folder, base, n_users=12, per_user=45):
    """Users 1..n with ``per_user`` interactions each from unix time ``base``, the same gaps and
    items whatever ``base``. Returns {user token: [(time, item token), ...]}, as integers."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    log, lines = {}, ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(1, n_users + 1):
        times = base + np.cumsum(rng.choice(GAPS, size=per_user, p=GAP_WEIGHTS))
        items = rng.integers(1, 81, size=per_user)
        log[str(user)] = [(int(t), str(i)) for t, i in zip(times, items)]
        lines += [f"{user}\t{i}\t{t}" for t, i in log[str(user)]]
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")
    return log


@pytest.fixture(scope="module")
def session_logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    return str(root), {"early": write_session_log(root / "early", 1_000_000),
                       "late": write_session_log(root / "late", 1_700_000_000)}


@pytest.fixture
def session_model(tiny_config_dict, session_logs):
    """DSIN on one of the session logs: (model in eval mode with weights from seed 0, every
    training row, the integer log, the dataset's id -> token maps)."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_dien import Config, create_dataset

    root, logs = session_logs

    def build(name, **overrides):
        settings = {**tiny_config_dict, "data_path": root, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                    "session_gap": SESSION_GAP, "MAX_ITEM_LIST_LENGTH": 20, **overrides}
        config = Config("DSIN", name, config_dict=settings, cmd_args=[])
        init_seed(config["seed"], config["reproducibility"])
        dataset = data_preparation(config, create_dataset(config))[0]._dataset
        torch.manual_seed(0)
        model = config.model_class(config, dataset).eval()
        return model, dataset[torch.arange(len(dataset))], logs[name], dataset.field2id_token
    return build


def reference_grid(model, rows, log, tokens):
    """Each row's K most recent sessions (oldest first), each its T most recent item tokens, cut
    from the user's whole integer log before the target."""
    grids = []
    for user, target_time in zip(rows[model.USER_ID].tolist(), rows["timestamp"].tolist()):
        history = [(t, i) for t, i in log[tokens["user_id"][user]] if t < target_time]
        sessions = []
        for k, (time, item) in enumerate(history):
            if k == 0 or time - history[k - 1][0] > SESSION_GAP:
                sessions.append([])
            sessions[-1].append(item)
        grids.append([session[-model.max_session_length:] for session in sessions[-model.max_sessions:]])
    return grids


def model_grid(model, rows, tokens):
    """The model's session grid of each row as item tokens, oldest kept session first."""
    items, behaviour_mask, _, session_mask, _ = model.session_grid(rows)
    return [[[tokens["item_id"][i] for i in items[r, k][behaviour_mask[r, k]].tolist()]
             for k in range(items.shape[1]) if session_mask[r, k]] for r in range(len(items))]


@pytest.mark.parametrize("name", ["early", "late"])
def test_sessions_are_cut_as_the_integer_timestamps_say(session_model, name):
    # at unix times ~1.7e9 float32 rounds to 128 s: gaps of 1799, 1800 and 1801 s would be misjudged
    # (MAX_ITEM_LIST_LENGTH 200 holds every history: only the timestamps are in question here)
    model, rows, log, tokens = session_model(name, MAX_ITEM_LIST_LENGTH=200)
    assert rows["timestamp"].dtype == rows[model.TIME_SEQ].dtype == torch.float64
    gaps = {b[0] - a[0] for user in log.values() for a, b in zip(user, user[1:])}
    assert {SESSION_GAP - 1, SESSION_GAP, SESSION_GAP + 1} <= gaps
    assert model_grid(model, rows, tokens) == reference_grid(model, rows, log, tokens)


@pytest.mark.parametrize("lean", [True, False])
def test_predictions_do_not_move_when_every_timestamp_is_shifted_by_1_7e9(session_model, lean):
    early, early_rows, _, _ = session_model("early", lean_sequential_data=lean)
    late, late_rows, _, _ = session_model("late", lean_sequential_data=lean)
    assert torch.equal(late_rows["timestamp"] - early_rows["timestamp"], torch.full((len(late_rows),), 1.7e9 - 1e6,
                                                                                 dtype=torch.float64))
    for got, want in zip(late.session_grid(late_rows), early.session_grid(early_rows)):
        assert torch.equal(got, want)
    assert torch.equal(late.predict(late_rows), early.predict(early_rows))


def test_sessions_come_from_the_whole_history_whatever_max_item_list_length(session_model):
    model, rows, log, tokens = session_model("late", MAX_ITEM_LIST_LENGTH=20)
    long_model, long_rows, _, _ = session_model("late", MAX_ITEM_LIST_LENGTH=200)
    reference = reference_grid(model, rows, log, tokens)
    assert any(sum(map(len, grid)) > 20 for grid in reference), "the K sessions should reach back past 20"
    assert model_grid(model, rows, tokens) == reference
    assert torch.equal(model.predict(rows), long_model.predict(long_rows))
    # and the model's own cut of each user's whole history gives the same predictions
    whole = [[(t, i) for t, i in log[tokens["user_id"][u]] if t < target]
             for u, target in zip(rows[model.USER_ID].tolist(), rows["timestamp"].tolist())]
    width = max(map(len, whole))
    token_ids = {token: i for i, token in enumerate(tokens["item_id"])}
    rows[model.ITEM_SEQ] = torch.tensor([[token_ids[i] for _, i in h] + [0] * (width - len(h)) for h in whole])
    rows[model.TIME_SEQ] = torch.tensor([[float(t) for t, _ in h] + [0.0] * (width - len(h)) for h in whole],
                                        dtype=torch.float64)
    rows[model.ITEM_SEQ_LEN] = torch.tensor(list(map(len, whole)))
    torch.testing.assert_close(model.predict(rows), long_model.predict(long_rows), rtol=1e-6, atol=1e-7)


def test_recboles_own_dataset_is_named_in_one_warning(tiny_config_dict, caplog):
    from recbole.config import Config as RecBoleConfig
    from recbole.data import create_dataset, data_preparation

    from recbole_dien import DSIN

    config = RecBoleConfig(model=DSIN, dataset="tiny", config_dict=tiny_config_dict)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    assert train_data._dataset.inter_feat["timestamp"].dtype == torch.float64  # exact on RecBole's path too
    with caplog.at_level("WARNING"):
        DSIN(config, train_data._dataset)
    (warning,) = [r.getMessage() for r in caplog.records if "DSINDataset" in r.getMessage()]
    assert "last MAX_ITEM_LIST_LENGTH behaviours" in warning and "recbole_dien.create_dataset" in warning


def test_a_model_with_other_sessions_than_its_dataset_is_a_clear_error(tiny_pipeline):
    from recbole_dien.utils.errors import ConfigError

    config, train_data, _, _ = tiny_pipeline("DSIN")
    config["session_gap"] = 60
    with pytest.raises(ConfigError, match=r"the dataset was built with \(1800, 5, 10\).*from one config"):
        config.model_class(config, train_data._dataset)


def test_models_that_do_not_cut_sessions_keep_recboles_float32_times(tiny_model):
    _, _, batch = tiny_model("DIN")
    assert batch["timestamp"].dtype == batch["timestamp_list"].dtype == torch.float32
