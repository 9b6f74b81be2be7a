"""benchmarks/hosts.py at a tiny size: the plugin's DIEN and hopwise's own, each in its own process
inside hopwise, under one protocol; the table."""
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hopwise", reason="hopwise is not installed (pip install 'recbole-dien[hopwise]')")

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("hosts_benchmark", ROOT / "benchmarks" / "hosts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_dien_train_in_hopwise_under_one_protocol(tiny_config_dict, tmp_path, capsys):
    settings = tmp_path / "tiny.yaml"
    settings.write_text(yaml.safe_dump(tiny_config_dict))
    out = tmp_path / "hosts.json"
    assert load_script().main(["--dataset=tiny", f"--config-file={settings}", "--timeout=600",
                               f"--output={out}"]) == 0
    ours, theirs = json.loads(out.read_text())["rows"]
    assert ours["model_class"] == "recbole_dien.model.dien.DIEN" and ours["embedding_size"] == 18
    assert ours["dataset_class"] == "recbole_dien.data.dataset.DIENDataset"
    assert theirs["model_class"] == "hopwise.model.sequential_recommender.dien.DIEN"
    assert theirs["dataset_class"].startswith("hopwise.data.dataset") and theirs["embedding_size"] == 10
    for row in (ours, theirs):
        assert row["epochs"] == 1 and row["train_s_per_epoch"] > 0 and 0 <= row["test"]["auc"] <= 1
        assert row["train_batches"] == ours["train_batches"] and row["peak_gb"] > 0
    assert "| `hopwise.DIEN` | 1 |" in capsys.readouterr().out
