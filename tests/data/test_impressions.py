"""Impressions with a separate behaviour log (recbole_dien/data/impressions.py), on tiny files written here."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import assert_every_parameter_gets_a_gradient, first_batch

T0 = 1494000000            # 2017-05-06 00:00:00 Asia/Shanghai: float32 rounds times here to 128 s
DAY = 86400
BTAGS = ["pv", "cart", "fav", "buy"]
SPECIAL_TIME = T0 + 3 * DAY + 5000   # user 1's probe impression


def write_impressions(root, name="imp"):
    """Impressions of 8 days (2 ad slots, click labels), a behaviour log with its own fields (btag,
    cate_id, brand; cate_id and brand also ad features) of the 5 days before and the 8 days, not
    sorted; users without behaviours (7, 14) or without profile (odd users), ads with an unknown brand.
    User 1 has behaviours 1 s before, at, and 1 s after the probe impression (one a click echo)."""
    rng = np.random.default_rng(4)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    users, ads = 16, 12
    ad_cate = {ad: f"c{rng.integers(1, 6)}" for ad in range(1, ads + 1)}
    ad_brand = {ad: ("" if ad % 5 == 0 else f"b{rng.integers(1, 8)}") for ad in range(1, ads + 1)}
    items = ["adgroup_id:token\tcate_id:token\tbrand:token\tprice:float"]
    items += [f"{ad}\t{ad_cate[ad]}\t{ad_brand[ad]}\t{rng.uniform(1, 9):.2f}" for ad in range(1, ads + 1)]
    inter, log = [], []
    for user in range(1, users + 1):
        for _ in range(24):
            ad = int(rng.integers(1, ads + 1))
            time = T0 + int(rng.integers(0, 8 * DAY))
            inter.append((user, ad, time, rng.choice(["slot_a", "slot_b"]), int(rng.random() < 0.35)))
        if user in (7, 14):
            continue
        start = T0 - 5 * DAY + int(rng.integers(0, DAY))
        for gap in rng.choice([20, 400, 2500, 9000], size=60):
            start += int(gap)
            log.append((user, start, rng.choice(BTAGS), f"c{rng.integers(1, 6)}", f"b{rng.integers(1, 8)}"))
    inter.append((1, 3, SPECIAL_TIME, "slot_a", 1))
    log += [(1, SPECIAL_TIME - 1, "cart", "c1", "b1"), (1, SPECIAL_TIME, "pv", ad_cate[3], ad_brand[3] or "b9"),
            (1, SPECIAL_TIME + 1, "fav", "c2", "b2")]
    rng.shuffle(inter)
    rng.shuffle(log)
    lines = ["user_id:token\tadgroup_id:token\ttimestamp:float\tpid:token\tlabel:float"]
    lines += ["\t".join(map(str, row)) for row in inter]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    lines = ["user_id:token\ttimestamp:float\tbtag:token\tcate_id:token\tbrand:token"]
    lines += ["\t".join(map(str, row)) for row in log]
    (folder / f"{name}.behavior").write_text("\n".join(lines) + "\n")
    (folder / f"{name}.item").write_text("\n".join(items) + "\n")
    profiles = ["user_id:token\tage_level:token"] + [f"{u}\t{u % 3}" for u in range(2, users + 1, 2)]
    (folder / f"{name}.user").write_text("\n".join(profiles) + "\n")
    return root


@pytest.fixture(scope="session")
def impressions_path(tmp_path_factory):
    return str(write_impressions(tmp_path_factory.mktemp("impressions")))


@pytest.fixture
def settings(impressions_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return {
        "data_path": impressions_path, "ITEM_ID_FIELD": "adgroup_id", "behavior_log_suffix": "behavior",
        "load_col": {"inter": ["user_id", "adgroup_id", "timestamp", "pid", "label"],
                     "item": ["adgroup_id", "cate_id", "brand", "price"], "user": ["user_id", "age_level"],
                     "behavior": ["user_id", "timestamp", "btag", "cate_id", "brand"]},
        "filter_inter_by_user_or_item": False, "normalize_all": False,
        "time_split": {"time_zone": "Asia/Shanghai", "valid": "2017-05-12 12:00", "test": "2017-05-13"},
        "eval_args": {"order": "TO", "mode": "labeled"}, "train_neg_sample_args": None,
        "metrics": ["AUC", "LabeledGAUC", "LogLoss"], "valid_metric": "AUC", "MAX_ITEM_LIST_LENGTH": 6,
        "epochs": 1, "train_batch_size": 32, "eval_batch_size": 256, "show_progress": False, "seed": 3,
        "checkpoint_dir": str(tmp_path / "saved"),
    }


def build(model, settings, **overrides):
    from recbole_dien import Config, create_dataset

    config = Config(model, "imp", config_dict={**settings, **overrides}, cmd_args=[])
    return config, create_dataset(config)


def splits(model, settings, **overrides):
    from recbole.data import data_preparation

    config, dataset = build(model, settings, **overrides)
    return config, dataset, data_preparation(config, dataset)


def raw_frames(path):
    log = pd.read_csv(f"{path}/imp/imp.behavior", sep="\t", dtype=str, keep_default_na=False)
    log.columns = [c.split(":")[0] for c in log.columns]
    log["timestamp"] = log["timestamp"].astype(np.int64)
    log["line"] = np.arange(len(log))
    inter = pd.read_csv(f"{path}/imp/imp.inter", sep="\t", dtype=str)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    inter["timestamp"] = inter["timestamp"].astype(np.int64)
    return inter, log.sort_values(["user_id", "timestamp", "line"], kind="stable")


def decoded_histories(dataset, rows):
    """Each row's history as (btag, cate_id, brand, time) tuples, read through the behaviour ids."""
    table = dataset.distinct_behaviors
    histories = []
    for r in range(len(rows)):
        length = int(rows[dataset.item_list_length_field][r])
        ids = rows[dataset.behavior_id_list_field][r, :length]
        times = rows[f"{dataset.time_field}_list"][r, :length]
        histories.append([tuple(str(dataset.id2token(field, int(table[field][i]))) for field in ("btag", "cate_id", "brand"))
                          + (int(t),) for i, t in zip(ids, times)])
    return histories


def row_keys(dataset, rows):
    return [(str(dataset.id2token("user_id", int(u))), int(t))
            for u, t in zip(rows[dataset.uid_field], rows[dataset.time_field])]


def reference_histories(log, user, time, length):
    mine = log[(log.user_id == user) & (log.timestamp < time)]
    return [tuple(r) for r in mine[["btag", "cate_id", "brand", "timestamp"]].itertuples(index=False)][-length:]


def reference_sessions(log, user, time, gap, sessions, per_session):
    mine = log[log.user_id == user]
    behaviours = [tuple(r) for r in mine[["btag", "cate_id", "brand", "timestamp"]].itertuples(index=False)]
    cut, current = [], []
    for b in behaviours:  # sessions of the user's whole log; the one holding `time` ends before it
        if current and b[3] - current[-1][3] > gap:
            cut.append(current)
            current = []
        current.append(b)
    if current:
        cut.append(current)
    before = [[b for b in s if b[3] < time] for s in cut]
    before = [s for s in before if s][-sessions:]
    return [b for s in before for b in s[-per_session:]]


def test_history_holds_the_behaviours_strictly_before_the_impression(settings):
    _, dataset = build("DIN", settings)
    dataset._change_feat_format()
    probe = ((dataset.inter_feat[dataset.time_field] == SPECIAL_TIME)
             & (dataset.inter_feat[dataset.uid_field] == int(dataset.token2id("user_id", "1")))).nonzero().squeeze(1)
    history = decoded_histories(dataset, dataset[probe])[0]
    # one second before enters (the most recent), the same second and later never do
    assert history[-1] == ("cart", "c1", "b1", SPECIAL_TIME - 1)
    assert all(t < SPECIAL_TIME for *_, t in history) and len(history) == 6


def test_times_are_exact_float64_for_every_model(settings):
    _, dataset = build("DIN", settings)
    dataset._change_feat_format()
    assert dataset.history_log[dataset.time_field].dtype == torch.float64
    assert dataset.inter_feat[dataset.time_field].dtype == torch.float64
    assert set(dataset.history_log[dataset.time_field].long().tolist()) >= {SPECIAL_TIME - 1, SPECIAL_TIME + 1}


def test_behaviour_fields_share_token_ids_with_the_ads(settings):
    _, dataset = build("DIN", settings)
    dataset._change_feat_format()
    items, behaviours = dataset.get_item_feature(), dataset.get_behavior_feature()
    for field in ("cate_id", "brand"):
        tokens = dataset.field2id_token[field]
        # one vocabulary: an ad's c3 and a behaviour's c3 are the same id
        shared = set(tokens[items[field][1:]]) & set(tokens[behaviours[field][1:]])
        assert shared and all(dataset.token2id(field, token) in set(items[field].tolist()) for token in shared)
    assert "btag" in dataset.field2id_token and dataset.num("btag") == len(BTAGS) + 1  # remapped too


def test_lean_histories_match_a_slow_reference_on_both_paths(settings, impressions_path):
    inter, log = raw_frames(impressions_path)
    for lean in (None, False):
        _, dataset = build("DIN", settings, lean_sequential_data=lean)
        dataset._change_feat_format()
        rows = dataset[torch.arange(len(dataset.inter_feat))] if lean is None else dataset.inter_feat
        assert dataset.is_lean == (lean is None) and len(rows) == len(inter)  # every impression is a row
        for (user, time), history in zip(row_keys(dataset, rows), decoded_histories(dataset, rows)):
            assert history == reference_histories(log, user, time, 6)


def test_dsin_sessions_come_from_the_whole_behaviour_log(settings, impressions_path):
    _, log = raw_frames(impressions_path)
    for lean in (None, False):
        _, dataset = build("DSIN", settings, lean_sequential_data=lean, session_gap=1800, max_sessions=3,
                           max_session_length=4)
        dataset._change_feat_format()
        rows = dataset[torch.arange(len(dataset.inter_feat))] if lean is None else dataset.inter_feat
        lengths = rows[dataset.item_list_length_field]
        assert (lengths == 0).any() and (lengths > 6).any()  # users without behaviours; more than L
        for (user, time), history in zip(row_keys(dataset, rows), decoded_histories(dataset, rows)):
            assert history == reference_sessions(log, user, time, 1800, 3, 4)


def test_time_split_cuts_at_instants_in_the_stated_time_zone(settings):
    from recbole_dien.config.time_split import boundaries

    _, dataset, (train, valid, test) = splits("DIN", settings)
    valid_start, test_start = boundaries(settings["time_split"])
    assert test_start == 1494604800  # 2017-05-13 00:00:00 +08:00
    times = [split._dataset.inter_feat[dataset.time_field] for split in (train, valid, test)]
    assert times[0].max() < valid_start <= times[1].min() and times[1].max() < test_start <= times[2].min()
    assert sum(len(t) for t in times) == len(dataset.inter_feat)
    # the same wall-clock boundaries in UTC are 8 hours later: other rows
    _, _, (_, _, utc_test) = splits("DIN", settings, time_split={**settings["time_split"], "time_zone": "UTC"})
    assert utc_test._dataset.inter_feat[dataset.time_field].min() >= test_start + 8 * 3600


def test_a_split_without_rows_is_one_line(settings):
    from recbole_dien.utils.errors import DatasetError

    with pytest.raises(DatasetError, match="leaves no test impressions") as error:
        splits("DIN", settings, time_split={"time_zone": "Asia/Shanghai", "valid": "2017-05-13", "test": "2017-06-01"})
    assert "\n" not in str(error.value)


def test_dien_negatives_are_other_behaviours_never_the_positive_nor_seen_before(settings):
    _, dataset, (train, _, _) = splits("DIEN", settings)
    rows = train._dataset[torch.arange(len(train._dataset.inter_feat))]
    positives, negatives = rows[dataset.behavior_id_list_field], rows["neg_" + dataset.behavior_id_list_field]
    real = torch.arange(positives.shape[1]) < rows[dataset.item_list_length_field].unsqueeze(1)
    assert ((negatives > 0) & (negatives < dataset.behavior_num))[real].all() and (negatives[~real] == 0).all()
    for r in range(len(rows)):
        for k in range(int(real[r].sum())):
            assert int(negatives[r, k]) not in positives[r, :k + 1].tolist()


@pytest.mark.parametrize("model, overrides", [("DIN", {"mini_batch_l2": 0.01}), ("DIEN", {}),
                                              ("DIEN", {"neg_resample_each_epoch": True}), ("DSIN", {})])
def test_each_model_trains_one_epoch_and_scores_every_row(settings, model, overrides):
    from recbole_dien import run

    result = run(model, "imp", config_dict={**settings, **overrides})
    for metric in ("auc", "labeledgauc", "logloss"):
        assert math.isfinite(result["test_result"][metric])


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_models_compare_the_shared_fields_and_learn_from_every_part(settings, model):
    config, dataset, (train, _, _) = splits(model, settings)
    torch.manual_seed(0)
    network = config.model_class(config, train._dataset)
    assert network.behaviour_embedding.fields == ["btag", "cate_id", "brand"]
    assert network.behaviour_embedding.shared_fields == ["cate_id", "brand"]
    for field in ("cate_id", "brand"):  # one table: a behaviour's category is the ad's
        assert network.behaviour_embedding.embeddings[field] is network.item_embedding.embeddings[field]
    batch = first_batch(train)
    # the candidate in the behaviours' layout: the btag slot is learned, cate_id and brand are the ad's
    query = network.candidate_as_behaviour(batch[network.ITEM_ID])
    size = network.behaviour_embedding.embedding_size
    ad_cate = network.item_embedding.column("cate_id")[batch[network.ITEM_ID]]
    torch.testing.assert_close(query[:, size:2 * size], network.item_embedding.embeddings["cate_id"](ad_cate))
    torch.testing.assert_close(query[:, :size], network.candidate_as_behaviour.behaviour_only["btag"].expand(len(batch), -1))
    assert network.context_fields == ["pid"]
    assert_every_parameter_gets_a_gradient(network, batch)
    network.eval()
    assert torch.isfinite(network.predict(batch)).all()


def test_rows_without_behaviours_score_from_profile_and_ad(settings):
    config, dataset, (train, _, _) = splits("DIN", settings)
    network = config.model_class(config, train._dataset).eval()
    rows = train._dataset[torch.arange(len(train._dataset.inter_feat))]
    empty = rows[network.ITEM_SEQ_LEN] == 0
    assert empty.any()
    scores = network.predict(rows)
    assert torch.isfinite(scores).all()
    # an empty history gives a zero interest: the score is the MLP's on [profile, 0, ad]
    behaviours = network.behaviours_of(rows[empty.nonzero().squeeze(1)])
    assert len(behaviours["rows"]) == 0


def test_mini_batch_l2_counts_a_shared_row_once(settings):
    config, dataset, (train, _, _) = splits("DIN", settings, mini_batch_l2=0.1)
    network = config.model_class(config, train._dataset).eval()
    batch = first_batch(train)
    with_penalty = network.calculate_loss(batch)
    network.mini_batch_l2 = 0.0
    without = network.calculate_loss(batch)
    # the reference: every table row the batch's real behaviours and ads use, once, / its occurrences
    every = train._dataset[torch.arange(len(train._dataset.inter_feat))]

    def used(rows):
        real = torch.arange(rows[network.BEHAVIOUR_SEQ].shape[1]) < rows[network.ITEM_SEQ_LEN].unsqueeze(1)
        behaviours, ads = rows[network.BEHAVIOUR_SEQ][real], rows[network.ITEM_ID]
        tokens = {"adgroup_id": ads.tolist(), "price": []}
        for field in ("cate_id", "brand"):
            tokens[field] = (network.item_embedding.column(field)[ads].tolist()
                             + network.behaviour_embedding.column(field)[behaviours].tolist())
        tokens["btag"] = network.behaviour_embedding.column("btag")[behaviours].tolist()
        return tokens

    in_batch, in_training = used(batch), used(every)
    tables = {**network.item_embedding.embeddings, "btag": network.behaviour_embedding.embeddings["btag"]}
    penalty = 0.0
    for field, tokens in in_batch.items():
        if field == "price":
            continue
        weight = tables[field].weight
        counts = pd.Series(in_training[field]).value_counts()
        penalty += sum(weight[t].pow(2).sum() / counts[t] for t in set(tokens))
    users = batch[network.USER_ID]
    for field in network.user_embedding.token_fields:
        column = network.user_embedding.column(field)
        counts = pd.Series(column[every[network.USER_ID]].tolist()).value_counts()
        weight = network.user_embedding.embeddings[field].weight
        penalty += sum(weight[t].pow(2).sum() / counts[t] for t in set(column[users].tolist()))
    torch.testing.assert_close(with_penalty - without, 0.1 / 2 * penalty, rtol=1e-4, atol=1e-6)


def test_recboles_own_models_are_refused_in_one_line(settings):
    from recbole_dien.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="RecBole's models read histories from the .inter rows") as error:
        build("GRU4Rec", settings)
    assert "\n" not in str(error.value) and "DIN, DIEN or DSIN" in str(error.value)


def test_a_dataset_built_without_the_log_is_refused_by_the_models(settings):
    from recbole.data import create_dataset as recbole_create_dataset
    from recbole.data import data_preparation

    from recbole_dien import Config
    from recbole_dien.utils.errors import DatasetError

    plain = {**settings, "time_split": None, "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO",
                                                          "mode": "labeled"}}
    config = Config("DIN", "imp", config_dict=plain, cmd_args=[])
    config["time_split"] = None
    train, _, _ = data_preparation(config, recbole_create_dataset(config))
    with pytest.raises(DatasetError, match="reads no behaviour log.*recbole_dien.create_dataset"):
        config.model_class(config, train._dataset)


def test_time_split_needs_a_behaviour_log(settings):
    from recbole_dien import Config
    from recbole_dien.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="needs their behaviour log"):
        Config("DIN", "imp", config_dict={**settings, "behavior_log_suffix": None}, cmd_args=[])


@pytest.mark.parametrize("change, words", [
    ({"behavior_log_suffix": "clicks"}, "has no behaviour log .*imp.clicks"),
    ({"load_col": {"inter": ["user_id", "adgroup_id", "timestamp", "label"]}}, "load_col has no 'behavior' entry"),
    ({"load_col": {"inter": ["user_id", "adgroup_id", "timestamp", "label"], "behavior": ["user_id", "btag"]}},
     "needs column 'timestamp' \\(TIME_FIELD.*is not loaded"),
    ({"load_col": {"inter": ["user_id", "adgroup_id", "timestamp", "label"],
                   "behavior": ["user_id", "timestamp"]}}, "loads no behaviour field"),
])
def test_a_wrong_behaviour_log_setting_is_one_line(settings, change, words):
    from recbole_dien.utils.errors import DatasetError

    with pytest.raises(DatasetError, match=words) as error:
        build("DIN", settings, **change)
    assert "\n" not in str(error.value)


def test_serving_refuses_a_model_trained_on_a_behaviour_log_in_one_line(settings):
    from recbole_dien.serving.export import ServingModule
    from recbole_dien.utils.errors import RecBoleDienError

    config, dataset, (train, _, _) = splits("DIN", settings)
    with pytest.raises(RecBoleDienError, match="histories of item ids only, so such a model is not served yet"):
        ServingModule(config.model_class(config, train._dataset), train._dataset)
