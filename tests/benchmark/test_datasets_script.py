"""benchmarks/datasets.py at a tiny size: every step in its own process, the results file, the table."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("datasets_benchmark", ROOT / "benchmarks" / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_taobao_log_is_generated_converted_built_and_trained(tmp_path, capsys):
    script = load_script()
    out = tmp_path / "datasets.json"
    assert script.main(["--layouts", "taobao", "--taobao-rows", "3000", "--models", "DIN", "--train-batches", "1",
                        "--batch-size", "64", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    (log,) = results["logs"]
    assert log["layout"] == "taobao" and log["rows"] == 3000 and list(log["steps"]) == ["generate", "convert", "DIN"]
    generate, converted, din = (log["steps"][step] for step in ("generate", "convert", "DIN"))
    assert all(step["status"] == "ok" for step in (generate, converted, din))
    assert generate["behaviours"] == 3000 and generate["raw_mb"] > 0 and generate["peak_gb"] > 0
    kept = converted["written"]["taobao.inter"]
    assert kept == 3000 - converted["raw"]["UserBehavior.csv"]["dropped"].get(
        "timestamp outside 2017-11-25 to 2017-12-03 (Asia/Shanghai)", {"count": 0})["count"]
    assert din["train_rows_s"] > 0 and din["build_s"] > 0 and din["build_peak_gb"] <= din["peak_gb"]
    assert not (tmp_path / "work" / "taobao").exists()                      # removed unless --keep
    printed = capsys.readouterr().out
    assert "| taobao (3,000 rows) | DIN: build; training | ok |" in printed


def test_the_table_replaces_the_marked_part_of_a_page(tmp_path):
    script = load_script()
    results = {"command": "python benchmarks/datasets.py --scale 0.001", "date": "2026-12-04",
               "machine": {"cores": 2, "memory_gb": 23.5}, "memory_limit_gb": 16.0,
               "logs": [{"layout": "alimama", "rows": 26558, "behaviours": 100000, "steps": {
                   "generate": {"status": "ok", "seconds": 1.5, "peak_gb": 0.3, "raw_mb": 4.2},
                   "convert": {"status": "memory", "wall_s": 9.0, "watched_peak_gb": 16.2,
                               "error": "resident memory passed 16 GB after 9 s, during start"},
                   "DIN": {"status": "ok", "wall_s": 30.0, "watched_peak_gb": 1.25, "build_s": 12.5,
                           "build_peak_gb": 0.75, "train_rows_s": 8062, "train_batches": 20, "peak_gb": 1.2,
                           "training_rows": 22681, "history_length": 50}}}]}
    text = script.table(results)
    assert "| alimama (26,558 rows, 100,000 behaviours) | generate | ok | 1.5 | 0.3 | | raw files 4.2 MB |" in text
    assert "| convert | memory: resident memory passed 16 GB" in text
    assert ("| DIN: build; training | ok | 12.5 | 0.75 built; 1.25 whole step | 8,062 | 22,681 training rows, "
            "history 50, 20 batches timed |") in text
    page = tmp_path / "datasets.md"
    page.write_text(f"# Datasets\n\nbefore\n{script.MARKER_START}\nold table\n{script.MARKER_END}\nafter\n")
    script.write_doc(page, text)
    written = page.read_text()
    assert "old table" not in written and text in written and written.endswith("after\n")
    assert written.startswith("# Datasets\n\nbefore\n")
