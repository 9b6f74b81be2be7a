"""benchmarks/peers.py and its parts (benchmarks/peer_adapters) without the peers' virtualenv: the
rows file and its dump from RecBole's pipeline, the training loop, the plugin's adapter, runs.csv
and the report. The peers' adapters need their libraries and run in benchmarks/peers.py only."""
import csv
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("peers_benchmark", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # also puts benchmarks/ on sys.path, for peer_adapters
    return module


peers = load_script()
from peer_adapters import loop  # noqa: E402
from peer_adapters.rows import Rows, RowsError, auc  # noqa: E402


def brute_force_auc(labels, scores):
    pairs = [(p, n) for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auc_is_the_share_of_positive_negative_pairs_in_order_with_ties_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=200)
    scores = rng.integers(0, 12, size=200).astype(float)   # many ties
    assert auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.2]) == 1.0 and auc([1, 0], [0.3, 0.3]) == 0.5
    assert np.isnan(auc([1, 1], [0.2, 0.4]))


def synthetic_rows(train_histories=10, users=6, length=4):
    """Rows in the dump's layout: each training history one positive and one negative row, each
    user's evaluation history one positive and two negatives; the item's year is item % 3 + 1."""
    rng = np.random.default_rng(1)
    user_order = rng.permutation(users)   # evaluation history u - 1 is user u's, in validation and test
    arrays = {"item_year": np.array([0] + [item % 3 + 1 for item in range(1, 30)]),
              "user_age": np.arange(users + 1) % 4}
    for split, histories in (("train", train_histories), ("valid", users), ("test", users)):
        lengths = rng.integers(1, length + 1, size=histories)
        real = np.arange(length) < lengths[:, None]
        hist = np.where(real, rng.integers(1, 30, size=(histories, length)), 0)
        times = np.where(real, np.cumsum(rng.integers(1, 100, size=(histories, length)), axis=1), 0).astype(float)
        per = 2 if split == "train" else 3
        history = np.repeat(np.arange(histories), per) if split != "train" else np.tile(np.arange(histories), 2)
        labels = np.tile([1.0, 0.0, 0.0], histories) if split != "train" else np.repeat([1.0, 0.0], histories)
        arrays.update({
            f"{split}_user": (np.arange(histories) % users + 1)[history],
            f"{split}_item": rng.integers(1, 30, len(history)),
            f"{split}_label": labels.astype(np.float32), f"{split}_history": history,
            f"{split}_hist_item": hist, f"{split}_hist_length": lengths, f"{split}_hist_negative": np.where(real, 7, 0),
            f"{split}_dsin_item": hist, f"{split}_dsin_time": times, f"{split}_dsin_length": lengths,
            f"{split}_order": rng.permutation(histories) if split == "train" else user_order})
    meta = {"dataset": "synthetic", "config": {}, "item_fields": ["item_id", "year"], "user_fields": ["age"],
            "vocabulary": {"item_id": 30, "year": 4, "age": 4}, "max_length": length, "dsin_width": length}
    return Rows(arrays, meta)


def test_a_batch_brings_every_field_of_the_candidate_the_behaviours_and_the_profile():
    rows = synthetic_rows()
    batch = rows.batch("train", np.array([0, 10]), dsin=True)
    history = rows.arrays["train_hist_item"][0]
    assert batch["label"].tolist() == [1.0, 0.0] and batch["user_id"].dtype == np.int64
    np.testing.assert_array_equal(batch["history"]["item_id"][0], history)
    np.testing.assert_array_equal(batch["history"]["item_id"][1], history)   # the negative row shares it
    np.testing.assert_array_equal(batch["history"]["year"][0], np.where(history > 0, history % 3 + 1, 0))
    assert batch["target"]["year"].tolist() == (batch["target"]["item_id"] % 3 + 1).tolist()
    assert batch["user"]["age"].tolist() == (batch["user_id"] % 4).tolist()
    assert batch["dsin"]["time"].dtype == np.float64 and batch["dsin"]["item_id"].shape == (2, 4)


def test_a_fraction_keeps_whole_pairs_and_the_same_users_for_validation_and_test(tmp_path):
    rows = synthetic_rows()
    path = tmp_path / "rows.npz"
    rows.save(path)
    loaded = Rows.load(path)
    assert loaded.meta["item_fields"] == ["item_id", "year"] and loaded.size("train") == 20
    half = loaded.selected(0.5, 0.5)
    kept = half.arrays["train_history"]
    assert half.size("train") == 10 and sorted(kept[half.arrays["train_label"] == 1]) == sorted(
        kept[half.arrays["train_label"] == 0])                           # each positive with its negative
    assert set(kept) == set(rows.arrays["train_order"][:5])
    assert set(half.arrays["valid_user"]) == set(half.arrays["test_user"]) and len(set(half.arrays["valid_user"])) == 3
    assert loaded.selected(1, 1).size("test") == rows.size("test")
    with pytest.raises(RowsError, match="fraction"):
        loaded.selected(0, 1)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(RowsError, match="--dump-only"):
        Rows.load(tmp_path / "bad.npz")


def test_an_epoch_covers_every_row_once_in_a_seeded_order_without_a_tiny_last_batch():
    parts = loop.batches(4100, 2048, torch.Generator().manual_seed(3))
    assert [len(part) for part in parts] == [2048, 2052]                  # 4 leftover rows join the batch before
    assert sorted(np.concatenate(parts)) == list(range(4100))
    again = loop.batches(4100, 2048, torch.Generator().manual_seed(3))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert [len(part) for part in loop.batches(5000, 2048, torch.Generator())] == [2048, 2048, 904]


def test_early_stopping_follows_recboles_rule():
    best, bad, improved, stop = loop.early_stopping(0.7, None, 0, 2)
    assert (best, bad, improved, stop) == (0.7, 0, True, False)
    assert loop.early_stopping(0.7, 0.7, 1, 2) == (0.7, 0, True, False)        # a tie is the new best
    assert loop.early_stopping(0.6, 0.7, 1, 2) == (0.7, 2, False, False)
    assert loop.early_stopping(0.6, 0.7, 2, 2) == (0.7, 3, False, True)        # more than patience bad epochs


class ScriptedAdapter:
    """Scores rows by w * (label-correlated feature); its training step sets w from a script, so
    the validation AUC of each epoch is known: good, better, then wrong."""
    script = [1.0, 2.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]

    def __init__(self, model_name, rows, settings, seed):
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.steps = 0
        self.batches_per_epoch = len(loop.batches(rows.size("train"), settings["train_batch_size"], torch.Generator()))

    def inputs(self, batch):
        return torch.from_numpy(batch["label"] + 0.001 * batch["target"]["item_id"])   # positives score higher

    def train_step(self, inputs, labels):
        with torch.no_grad():
            self.model.weight.fill_(self.script[self.steps // self.batches_per_epoch])
        self.steps += 1
        return 0.5

    def predict(self, inputs):
        return (self.model.weight.item() * inputs).numpy()


def test_a_converged_run_stops_after_patience_and_tests_its_best_epoch():
    rows = synthetic_rows(train_histories=40)
    result = loop.train_and_test(ScriptedAdapter, "DIN", rows, {"train_batch_size": 32}, seed=1, max_epochs=8,
                                 patience=2)
    aucs = [epoch["valid_auc"] for epoch in result["history"]]
    assert result["epochs"] == 5 and result["best_epoch"] == 2            # epochs 3-5 worse: stopped after 3 > 2
    assert aucs[0] == aucs[1] > 0.5 > aucs[2]
    assert result["test_auc"] > 0.5                                        # the best epoch's weight, not the last
    assert result["train_s_to_best"] <= result["train_s"] and result["parameters"] == 1
    one = loop.train_and_test(ScriptedAdapter, "DIN", rows, {"train_batch_size": 32}, seed=1, max_epochs=1)
    assert one["epochs"] == one["best_epoch"] == 1


def test_every_library_gets_the_plugins_sizes_and_learning_rates():
    din, dien = peers.matched_settings("DIN"), peers.matched_settings("DIEN")
    assert din["embedding_size"] == dien["embedding_size"] == 18
    assert din["train_batch_size"] == dien["train_batch_size"] == 2048
    assert din["attention_mlp_sizes"] == [80, 40] and din["mlp_hidden_size"] == [200, 80]
    assert dien["alpha"] == 1.0 and "alpha" not in din and peers.matched_settings("DSIN")["learning_rate"] == 0.001


def test_the_plan_has_dsin_for_the_plugin_only_and_one_epoch_without_stopping():
    common = {"fraction": 0.5, "eval_fraction": 0.5, "max_epochs": 30, "patience": 3, "rows": "rows-ml-100k.npz"}
    runs = peers.plan(peers.LIBRARIES, ["DIN", "DSIN"], list(peers.MODES), [2020, 2021], common)
    assert len(runs) == 2 * (5 + 1) * 2
    assert {run["library"] for run in runs if run["model"] == "DSIN"} == {"recbole-dien"}
    one = next(run for run in runs if run["mode"] == "one-epoch")
    converged = next(run for run in runs if run["mode"] == "converged")
    assert (one["max_epochs"], one["patience"]) == (1, "")
    assert (converged["max_epochs"], converged["patience"]) == (30, 3)


def finished(run, train_s, test_auc, **extra):
    return {**run, "status": "ok", "version": "1", "train_s": train_s, "train_s_to_best": train_s,
            "test_auc": test_auc, "valid_auc": test_auc, "epochs": 1, "best_epoch": 1, "history": "[]", **extra}


def test_runs_csv_resumes_and_the_report_compares_the_plugin_with_the_fastest_peer(tmp_path):
    common = {"fraction": 1.0, "eval_fraction": 1.0, "max_epochs": 30, "patience": 3, "rows": "rows-ml-100k.npz"}
    wanted = peers.plan(["recbole-dien", "deepctr-torch", "nextrec"], ["DIN"], ["one-epoch"], [2020, 2021], common)
    times = {"recbole-dien": (8.0, 10.0), "deepctr-torch": (20.0, 22.0), "nextrec": (30.0, 30.0)}
    aucs = {"recbole-dien": (0.80, 0.81), "deepctr-torch": (0.76, 0.77), "nextrec": (0.82, 0.80)}
    path = tmp_path / "runs.csv"
    for run in wanted:
        index = run["seed"] - 2020
        peers.append_run(path, finished(run, times[run["library"]][index], aucs[run["library"]][index]))
    peers.append_run(path, finished({**wanted[0], "fraction": 0.5}, 1.0, 0.99))   # another setting: not reported
    recorded = peers.read_runs(path)
    assert peers.pending(wanted, recorded) == []                                  # a resumed benchmark skips them
    assert peers.pending(wanted, recorded[:2]) == wanted[2:]
    with path.open() as f:
        assert next(csv.reader(f)) == peers.RUN_FIELDS
    table = peers.markdown(peers.planned_runs(recorded, wanted))
    assert "| DIN | recbole-dien 1 | 2 | 9.0 ± 1.4 | 0.8050 ± 0.0071 |" in table
    assert ("| DIN | 9.0 (0.8050) | DeepCTR-Torch 21.0 (0.7650) | NextRec 0.8100 "
            "| 2.3× faster, test AUC -0.0050 vs the best peer |") in table
    assert "0.99" not in table


def test_a_run_retried_after_a_failure_is_reported_by_its_latest_record(tmp_path):
    common = {"fraction": 1.0, "eval_fraction": 1.0, "max_epochs": 30, "patience": 3, "rows": "r.npz"}
    (run,) = peers.plan(["nextrec"], ["DIEN"], ["converged"], [2020], common)
    path = tmp_path / "runs.csv"
    peers.append_run(path, {**run, "status": "timeout", "error": "no result within 10 s"})
    assert "failed: no result within 10 s" in peers.markdown(peers.planned_runs(peers.read_runs(path), [run]))
    assert peers.pending([run], peers.read_runs(path)) == []
    assert peers.pending([run], peers.read_runs(path), retry_failed=True) == [run]
    peers.append_run(path, finished(run, 96.9, 0.8124))
    (latest,) = peers.planned_runs(peers.read_runs(path), [run])
    assert latest["status"] == "ok" and "| DIEN | NextRec 1 | 1 | 96.9 | 96.9 | 0.8124 |" in peers.markdown([latest])


@pytest.fixture
def tiny_rows(tiny_config_dict, tmp_path):
    """The tiny dataset's rows, dumped from RecBole's pipeline (token fields only)."""
    from peer_adapters.dump import dump_rows

    settings = {key: value for key, value in tiny_config_dict.items() if key not in ("seed", "epochs")}
    settings["load_col"] = {**settings["load_col"], "item": ["item_id", "year"]}
    summary = dump_rows(tmp_path / "rows.npz", "tiny", settings, seed=7)
    return Rows.load(tmp_path / "rows.npz"), summary, settings


def test_the_dump_holds_recboles_rows_with_their_negatives_and_dsins_sessions(tiny_rows, tiny_pipeline):
    rows, summary, settings = tiny_rows
    a = rows.arrays
    positives = summary["histories"]["train"]
    assert summary["rows"]["train"] == 2 * positives and rows.meta["item_fields"] == ["item_id", "year"]
    np.testing.assert_array_equal(a["train_label"], np.repeat([1.0, 0.0], positives))
    np.testing.assert_array_equal(a["train_history"][:positives], a["train_history"][positives:])
    assert not np.any(a["train_item"][:positives] == a["train_item"][positives:])
    # the positives' histories are those RecBole's training loader gives the plugin's DIEN
    config, train_data, valid_data, _ = tiny_pipeline("DIEN", load_col=settings["load_col"])
    table = train_data._dataset[np.arange(positives)]
    np.testing.assert_array_equal(a["train_hist_item"], table["item_id_list"].numpy())
    np.testing.assert_array_equal(a["train_hist_negative"], table["neg_item_id_list"].numpy())
    np.testing.assert_array_equal(a["train_item"][:positives], table["item_id"].numpy())
    valid_table = valid_data._dataset[np.arange(len(valid_data._dataset))]
    history_of_user = dict(zip(valid_table["user_id"].tolist(), valid_table["item_id_list"].numpy()))
    for row in np.flatnonzero(a["valid_label"] == 1):                     # each user's validation target
        np.testing.assert_array_equal(a["valid_hist_item"][a["valid_history"][row]],
                                      history_of_user[int(a["valid_user"][row])])
    real = np.arange(rows.max_length) < a["train_hist_length"][:, None]
    assert not np.any((a["train_hist_negative"] == a["train_hist_item"]) & real)
    # each user's target then its 20 sampled items, the same users in validation and test
    assert summary["rows"]["valid"] == 21 * summary["histories"]["valid"] and a["valid_label"].sum() == 24
    assert set(a["valid_user"]) == set(a["test_user"])
    dsin_real = np.arange(rows.dsin_width) < a["train_dsin_length"][:, None]
    assert np.all(np.diff(a["train_dsin_time"], axis=1)[dsin_real[:, 1:]] >= 0)       # chronological
    assert np.all(a["train_dsin_length"] >= 1) and np.all(a["train_dsin_item"][~dsin_real] == 0)


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_the_plugins_models_train_and_test_on_the_dumped_rows(tiny_rows, model):
    from peer_adapters import adapter_class

    rows = tiny_rows[0]
    settings = {**peers.matched_settings(model), "train_batch_size": 64}
    result = loop.train_and_test(adapter_class("recbole-dien"), model, rows, settings, seed=3, max_epochs=1)
    assert result["epochs"] == 1 and 0 < result["test_auc"] < 1 and np.isfinite(result["test_logloss"])
    assert result["parameters"] > 0 and result["train_s"] > 0 and result["test_rows"] == rows.size("test")


def test_rows_of_another_dataset_are_refused_in_one_line(tiny_rows):
    from peer_adapters import adapter_class

    rows = tiny_rows[0]
    other = Rows({**rows.arrays, "item_year": rows.arrays["item_year"][::-1].copy()}, rows.meta)
    with pytest.raises(RowsError, match="other ids than the rows file's"):
        adapter_class("recbole-dien")("DIN", other, {**peers.matched_settings("DIN"), "train_batch_size": 64}, 3)
