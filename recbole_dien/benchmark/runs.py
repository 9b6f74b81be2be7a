"""The suite's record: ``runs.csv``, one row per run (its key, status, measurements)."""
import csv
import json
import math
from pathlib import Path

KEY_FIELDS = ["dataset", "protocol", "model", "seed", "settings"]
RUN_FIELDS = KEY_FIELDS + ["status", "error", "code", "model_class", "probabilistic", "epochs", "best_epoch",
                           "train_s_per_epoch", "train_s", "valid_s", "test_s", "parameters", "peak_rss_mb",
                           "wall_s", "paused_s", "valid_metric", "history"]


def read_runs(path):
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_runs(path, runs):
    """Write atomically (a temporary file renamed over the old one): an interrupted suite never
    leaves a truncated CSV."""
    fields = RUN_FIELDS + sorted({k for run in runs for k in run} - set(RUN_FIELDS))
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(runs)
    tmp.replace(path)


def run_key(run):
    return tuple(str(run[k]) for k in KEY_FIELDS)


def flatten(measurements):
    """Measurements of one run as CSV cells: ``valid:<metric>``, ``test:<metric>``, the per-epoch
    history as JSON."""
    row = {k: v for k, v in measurements.items() if k not in ("valid", "test", "history")}
    if "history" in measurements:
        row["history"] = json.dumps(measurements["history"], separators=(",", ":"))
    for split in ("valid", "test"):
        for metric, value in measurements.get(split, {}).items():
            row[f"{split}:{metric}"] = value
    return row


def history(run):
    """The per-epoch history of a recorded run: [{epoch, train_s, valid_s, valid}], oldest first."""
    text = run.get("history") or ""
    return json.loads(text) if text else []


def number(value):
    """A CSV cell as a float, or None when empty / not a number."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result
