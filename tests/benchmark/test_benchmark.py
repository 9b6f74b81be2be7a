"""The benchmark runner: real child runs on tiny data, resume, failures, the report."""
import csv
import json
import sys

import pytest
import yaml

from recbole_dien import benchmark
from recbole_dien.benchmark import command as cli
from recbole_dien.benchmark import pause, suite

TINY_MODEL_SIZES = {"embedding_size": 4, "attention_mlp_sizes": [8], "mlp_hidden_size": [8]}


@pytest.fixture
def tiny_suite(tiny_config_dict, tmp_path):
    """Arguments of run_suite for the tiny dataset: its settings go to the child runs as a YAML file."""
    settings = {k: v for k, v in tiny_config_dict.items() if k not in ("epochs", "seed", "dataset")}
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    return {"dataset": "tiny", "protocols": ["default"], "epochs": 1, "out_dir": tmp_path / "results",
            "config_files": [str(config_file)], "overrides": TINY_MODEL_SIZES, "log": lambda line: None}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_suite_writes_csv_markdown_and_plots_and_reports_a_failing_model(tiny_suite):
    runs = benchmark.run_suite(models=["DIN", "DSIN", "NoSuchModel"], seeds=[1], **{**tiny_suite, "epochs": 2})
    out = tiny_suite["out_dir"]

    rows = read_csv(out / "runs.csv")
    assert [(r["model"], r["seed"], r["status"]) for r in rows] == [
        ("DIN", "1", "ok"), ("DSIN", "1", "ok"), ("NoSuchModel", "1", "failed")]
    assert [r["model"] for r in runs] == ["DIN", "DSIN", "NoSuchModel"]
    assert rows[0]["settings"].startswith("epochs=2;") and ";config=tiny.yaml@" in rows[0]["settings"]
    for row in rows[:2]:
        assert 0.0 <= float(row["test:auc"]) <= 1.0 and float(row["valid:auc"]) >= 0.0
        assert float(row["test:logloss"]) > 0.0
        assert row["epochs"] == "2" and row["best_epoch"] in ("1", "2")
        assert float(row["train_s_per_epoch"]) > 0 and float(row["valid_s"]) > 0 and float(row["test_s"]) > 0
        assert int(row["parameters"]) > 0 and float(row["peak_rss_mb"]) > 100
        assert float(row["paused_s"]) == 0.0 and row["valid_metric"] == "auc"
        # one entry per validated epoch: cumulative training seconds and the validation score
        history = json.loads(row["history"])
        assert [h["epoch"] for h in history] == [1, 2]
        assert 0 < history[0]["train_s"] < history[1]["train_s"]
        assert history[1]["train_s"] == pytest.approx(float(row["train_s"]), abs=1e-2)
        assert max(h["valid"] for h in history) == pytest.approx(float(row["valid:auc"]), abs=1e-4)
    assert rows[0]["model_class"] == "recbole_dien.model.din.DIN"
    assert "unknown model 'NoSuchModel'" in rows[2]["error"]

    report = (out / "results.md").read_text()
    assert "### tiny, protocol `default` (epochs=2;" in report
    assert "| `DIN` | 1 | " in report and "| `DSIN` | 1 | " in report
    assert "| `NoSuchModel` | failed: " in report
    plots = sorted(p.name for p in out.glob("*.png"))
    assert [name.rsplit("-", 1)[1] for name in plots] == ["metrics.png", "quality.png", "time.png"]
    assert all(name.startswith("tiny-default-epochs2_") for name in plots)
    for name in plots:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_full_sort_measurements_are_plain_json(tiny_config_dict, tmp_path):
    full_sort = {"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
                 "metrics": ["Hit", "NDCG", "GAUC"], "topk": [5], "valid_metric": "NDCG@5"}
    settings = {**{k: v for k, v in tiny_config_dict.items() if k not in ("epochs", "seed", "checkpoint_dir")},
                **full_sort, **TINY_MODEL_SIZES}
    result = benchmark.measure("DSIN", "tiny", overrides=settings)
    assert set(result["test"]) == {"hit@5", "ndcg@5", "gauc"}
    assert json.loads(json.dumps(result))["test"] == result["test"]  # numpy scalars would not serialise


def fake_child(calls, fail=()):
    def run_in_child(spec, timeout):
        calls.append((spec["protocol"], spec["entry"], spec["seed"]))
        if spec["entry"] in fail:
            return "failed", "RuntimeError: boom", {}
        return "ok", "", {"model_class": "x.Y", "probabilistic": True, "epochs": 1, "best_epoch": 1,
                          "train_s_per_epoch": 2.0 + spec["seed"], "valid_s": 1.0, "test_s": 1.0,
                          "parameters": 10, "peak_rss_mb": 500.0,
                          "valid": {"auc": 0.5}, "test": {"auc": 0.6 + spec["seed"] / 100, "logloss": 0.4}}
    return run_in_child


def test_resume_skips_recorded_runs_failed_ones_included(tiny_suite, monkeypatch):
    calls = []
    monkeypatch.setattr(suite, "run_in_child", fake_child(calls, fail={"B"}))
    benchmark.run_suite(models=["A", "B"], seeds=[1, 2], **tiny_suite)
    assert calls == [("default", "A", 1), ("default", "A", 2), ("default", "B", 1), ("default", "B", 2)]

    calls.clear()
    runs = benchmark.run_suite(models=["A", "B"], seeds=[1, 2, 3], **tiny_suite)
    assert calls == [("default", "A", 3), ("default", "B", 3)]
    assert len(runs) == 6

    calls.clear()  # other settings are other runs
    benchmark.run_suite(models=["A"], seeds=[1], **{**tiny_suite, "epochs": 2})
    assert calls == [("default", "A", 1)]
    report = (tiny_suite["out_dir"] / "results.md").read_text()
    assert report.count("### tiny, protocol `default` (epochs=") == 2  # one table per settings

    calls.clear()  # an edited config file is another setting
    config_file = tiny_suite["config_files"][0]
    with open(config_file, "a") as f:
        f.write("train_batch_size: 32\n")
    benchmark.run_suite(models=["A"], seeds=[1], **tiny_suite)
    assert calls == [("default", "A", 1)]


def test_retry_failed_runs_only_the_failed_ones_again(tiny_suite, monkeypatch):
    calls = []
    monkeypatch.setattr(suite, "run_in_child", fake_child(calls, fail={"B"}))
    benchmark.run_suite(models=["A", "B"], seeds=[1], **tiny_suite)
    calls.clear()
    monkeypatch.setattr(suite, "run_in_child", fake_child(calls))
    runs = benchmark.run_suite(models=["A", "B"], seeds=[1], retry_failed=True, **tiny_suite)
    assert calls == [("default", "B", 1)]
    assert [(r["model"], r["status"]) for r in runs] == [("A", "ok"), ("B", "ok")]


def test_markdown_gives_mean_and_std_over_seeds_and_marks_non_probabilistic_logloss():
    def row(model, seed, auc, probabilistic=True, status="ok"):
        return {"settings": "epochs=1", "protocol": "default", "model": model, "seed": seed, "status": status,
                "error": "",
                "probabilistic": str(probabilistic), "test:auc": auc, "test:logloss": 0.5, "epochs": 1,
                "train_s_per_epoch": 10.0, "valid_s": 2.0, "parameters": 1000, "peak_rss_mb": 900}

    runs = [row("A", 1, 0.80), row("A", 2, 0.82), row("A", 3, 0.84), row("GRU4Rec", 1, 0.7, probabilistic=False),
            {**row("C", 1, ""), "status": "timeout", "error": "no result within 5 s"}, row("C", 2, 0.9)]
    table = benchmark.markdown(runs, "ml-100k")
    assert "### ml-100k, protocol `default` (epochs=1)" in table
    assert "| `A` | 3 | 0.8200 ± 0.0200 | 0.5000 ± 0.0000 | 1.0 ± 0.0 | — | 10.0 ± 0.0 |" in table
    assert "| `GRU4Rec` | 1 | 0.7000 | n/a |" in table
    assert "| `C` | 1 (1 timeout) | 0.9000 |" in table


def test_plan_leaves_slow_built_ins_out_of_full_sort_and_quick_unless_named():
    default = benchmark.plan(None, ["default", "fullsort"], [1])
    assert ("default", "recbole.DIEN", 1) in default and ("fullsort", "DIEN", 1) in default
    assert ("fullsort", "recbole.DIN", 1) not in default and ("fullsort", "recbole.DIEN", 1) not in default
    quick = benchmark.plan(None, ["default"], [1], quick=True)
    assert [model for _, model, _ in quick] == ["DIN", "DIEN", "DSIN", "recbole.DIN", "GRU4Rec"]
    named = benchmark.plan(["recbole.DIEN"], ["fullsort"], [1, 2], quick=True)
    assert named == [("fullsort", "recbole.DIEN", 1), ("fullsort", "recbole.DIEN", 2)]


def test_command_line_rejects_malformed_and_runner_owned_settings(capsys):
    assert cli.main(["--set", "epochs", "--out", "unused"]) == 2
    assert capsys.readouterr().err == "recbole-dien benchmark: error: --set epochs: expected KEY=VALUE\n"
    assert cli.main(["--set", "seed=3", "--out", "unused"]) == 2
    assert capsys.readouterr().err == "recbole-dien benchmark: error: --set seed=3: set by the runner; use --seeds\n"
    with pytest.raises(ValueError, match="set epochs through the runner's own arguments"):
        benchmark.measure("DIN", "tiny", overrides={"epochs": 3})


def test_command_line_without_matplotlib_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("recbole-dien benchmark: error: the benchmark's plotting needs "
                                               "matplotlib: pip install 'recbole-dien[benchmark]'")
    assert not any(tmp_path.iterdir())  # nothing ran


def history_run(model, seed, curve, settings="epochs=30"):
    """A recorded run whose validation scores after each epoch are ``curve`` (10 s of training per epoch)."""
    history = [{"epoch": i + 1, "train_s": 10.0 * (i + 1), "valid_s": 1.0 * (i + 1), "valid": v}
               for i, v in enumerate(curve)]
    return {"settings": settings, "protocol": "default", "model": model, "seed": seed, "status": "ok", "error": "",
            "valid_metric": "auc", "valid:auc": max(curve), "test:auc": max(curve), "history": json.dumps(history)}


def test_time_to_quality_is_the_first_epoch_reaching_the_reference_best():
    runs = [history_run("recbole.DIEN", 1, [0.80, 0.84, 0.86, 0.85]),
            history_run("DIEN", 1, [0.85, 0.87]), history_run("DIEN", 2, [0.83, 0.86, 0.88]),
            history_run("GRU4Rec", 1, [0.70, 0.75])]
    by_model = benchmark.report.summarize(runs)[("epochs=30", "default")]
    metric, target, results = benchmark.time_to_quality(by_model)
    assert (metric, target) == ("auc", 0.86)
    assert results["recbole.DIEN"] == {"reached": 1, "seeds": 1, "train_s": [30.0], "epochs": [3]}
    assert results["DIEN"] == {"reached": 2, "seeds": 2, "train_s": [20.0, 20.0], "epochs": [2, 2]}
    assert results["GRU4Rec"]["reached"] == 0
    table = benchmark.markdown(runs, "ml-100k")
    assert "first reaches `recbole.DIEN`'s best (0.8600" in table
    assert "| `DIEN` | 2 of 2 | 20 s ± 0 s | 2.0 | 0.67× |" in table
    assert "| `GRU4Rec` | 0 of 1 | never | — | — |" in table


def test_no_time_to_quality_without_the_reference_model():
    runs = [history_run("DIEN", 1, [0.85, 0.87])]
    assert benchmark.time_to_quality(benchmark.report.summarize(runs)[("epochs=30", "default")]) is None
    assert "Time to quality" not in benchmark.markdown(runs, "ml-100k")


def test_a_held_run_pauses_between_batches_and_leaves_the_pause_out_of_its_clock(tmp_path):
    import os
    import subprocess
    import time

    clock = pause.PausableClock(tmp_path)

    class Loader:
        def __iter__(self):
            return iter([0, 1, 2])

    batches = pause.pausing(Loader(), clock)
    seen = []
    iterator = iter(batches)
    seen.append(next(iterator))
    # another process holds: hold() returns only after the run acknowledged the pause, then runs the command
    holder = subprocess.Popen([sys.executable, "-m", "recbole_dien", "benchmark", "--pause", sys.executable, "-c",
                               "import time; time.sleep(0.6)"], env={**os.environ, pause.HOLD_DIR_VARIABLE: str(tmp_path)},
                              stderr=subprocess.DEVNULL)
    while not list(tmp_path.glob("hold-*")):
        time.sleep(0.01)
    start_clock, start_wall = clock.now(), time.perf_counter()
    seen += list(iterator)  # waits at the next batch until the hold is gone
    measured, wall = clock.now() - start_clock, time.perf_counter() - start_wall
    assert holder.wait(timeout=60) == 0
    assert seen == [0, 1, 2]
    assert clock.paused >= 0.5
    assert measured == pytest.approx(wall - clock.paused, abs=1e-3) and measured < 0.3
    clock.close()
    assert not list(tmp_path.iterdir())  # no hold, acknowledgement or running file is left behind


def test_a_run_started_under_a_hold_does_not_wait_for_its_own_ancestor(tmp_path):
    import os

    (tmp_path / f"hold-{os.getppid()}").touch()  # e.g. pytest run through `python -m ...pause`
    clock = pause.PausableClock(tmp_path)
    clock.wait_while_held()
    assert clock.paused == 0.0
    assert os.getpid() in pause.ancestors() and os.getppid() in pause.ancestors()
    clock.close()


def test_hold_of_a_dead_holder_is_ignored(tmp_path):
    (tmp_path / "hold-999999999").touch()  # no such process
    clock = pause.PausableClock(tmp_path)
    clock.wait_while_held()
    assert clock.paused == 0.0 and not (tmp_path / "hold-999999999").exists()
    clock.close()


def test_a_run_killed_mid_way_resumes_from_its_work_folder(tiny_suite, tmp_path):
    import signal
    import subprocess

    from tests.trainer.test_resume import killing_script

    spec = {"entry": "DIN", "dataset": "tiny", "protocol": "default", "seed": 1, "epochs": 3,
            "overrides": {**TINY_MODEL_SIZES, "stopping_step": 3}, "config_files": tiny_suite["config_files"]}
    work = tmp_path / "work"
    script = tmp_path / "killing_child.py"
    script.write_text(killing_script("from recbole_dien.benchmark import command as cli\n"
                                     "sys.exit(cli.main(sys.argv[1:]))", epoch=1))
    killed = subprocess.run([sys.executable, str(script), "--child", json.dumps({**spec, "work_dir": str(work)})],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(list(work.glob("*.pth"))) == 1  # the checkpoint after epoch 1 survived

    resumed = benchmark.measure(**spec, work_dir=str(work))
    whole = benchmark.measure(**spec, work_dir=str(tmp_path / "whole"))
    assert resumed["resumed"] and not whole["resumed"]
    assert resumed["valid"] == whole["valid"] and resumed["test"] == whole["test"]
    assert [h["epoch"] for h in resumed["history"]] == [h["epoch"] for h in whole["history"]] == [1, 2, 3]
    assert [h["valid"] for h in resumed["history"]] == [h["valid"] for h in whole["history"]]
    assert resumed["epochs"] == 3 and resumed["prior_wall_s"] > 0
    assert not work.exists() and not (tmp_path / "whole").exists()  # removed once the run has ended
