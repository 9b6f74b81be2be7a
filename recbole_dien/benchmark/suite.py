"""Planning and running a suite: models x protocols x seeds, one child process per run, resumable."""
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from recbole_dien.benchmark.runs import flatten, read_runs, run_key, write_runs

DEFAULT_MODELS = ["DIN", "DIEN", "DSIN", "recbole.DIN", "recbole.DIEN", "GRU4Rec", "SASRec", "NARM", "STAMP"]
PROTOCOLS = ["default", "fullsort", "labeled"]
DEFAULT_SEEDS = [2020, 2021, 2022]

# RecBole's DIN and DIEN have no full_sort_predict, so RecBole's trainer scores every (user, item)
# pair through predict: on ml-100k 16x the rows of a uni100 pass; measured on 2 cores (2026-12-01),
# 224 s and 692 s per evaluation pass (docs/benchmark.md). Left out of full-sort runs unless named.
SLOW_IN_FULL_SORT = {"recbole.DIN", "recbole.DIEN"}
# --quick: the plugin's models, RecBole's DIN and GRU4Rec (about 8.5 minutes). RecBole's DIEN
# alone takes about 10 minutes per epoch on 2 cores, and RecBole's next-item models re-encode the
# history for each of the 101 candidates of a uni100 pass (SASRec: about 5 minutes a run).
QUICK_MODELS = ["DIN", "DIEN", "DSIN", "recbole.DIN", "GRU4Rec"]


def settings_label(epochs, overrides, config_files):
    """The settings of a run that decide whether a recorded run can stand for it (a config file
    by name and a digest of its content)."""
    parts = [f"epochs={epochs}"] + [f"{k}={json.dumps(overrides[k])}" for k in sorted(overrides)]
    for path in config_files or []:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
        parts.append(f"config={Path(path).name}@{digest}")
    return ";".join(parts)


def settings_slug(settings):
    """``settings`` as a file-name part: epochs=1;stopping_step=2 -> epochs1_stopping_step2."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "", settings.replace(";", "_").replace("=", ""))[:80]


def code_version():
    """The commit of the code being measured (``-dirty`` with uncommitted changes), or '' outside git."""
    package_dir = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=package_dir, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "recbole_dien",
                                "props", "dataset_configs"], cwd=package_dir, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit + ("-dirty" if dirty else "")


def plan(models, protocols, seeds, quick=False):
    """The (protocol, model, seed) runs of a suite, in order. ``models=None``: the default list,
    without the runs too slow for the protocol (or for --quick)."""
    runs = []
    for protocol in protocols:
        for model in models or (QUICK_MODELS if quick else DEFAULT_MODELS):
            if models is None and protocol == "fullsort" and model in SLOW_IN_FULL_SORT:
                continue
            runs.extend((protocol, model, seed) for seed in seeds)
    return runs


def run_in_child(spec, timeout):
    """Run one measurement in a fresh process; (status, error, measurements)."""
    command = [sys.executable, "-m", "recbole_dien.benchmark", "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result within {timeout:.0f} s", {}
    results = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not results:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return "failed", (lines[-1] if lines else f"exit code {done.returncode}")[:300], {}
    return "ok", "", json.loads(results[-1])


def run_suite(models, protocols, seeds, epochs, dataset, out_dir, overrides=None, config_files=None,
              timeout=None, quick=False, retry_failed=False, log=print):
    """Run every planned run (see ``plan``) not yet in ``<out_dir>/runs.csv`` (with
    ``retry_failed``, also those recorded as failed or timed out, whose rows are replaced); write
    the CSV after each run, then the report and plots of every setting recorded for the dataset."""
    from recbole_dien.benchmark.report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "runs.csv"
    overrides = dict(overrides or {})
    settings = settings_label(epochs, overrides, config_files)
    runs = read_runs(csv_path)
    if retry_failed:
        runs = [run for run in runs
                if run["status"] == "ok" or run["settings"] != settings or run["dataset"] != dataset]
    recorded = {run_key(run) for run in runs}
    planned = plan(models, protocols, seeds, quick)
    todo = [(p, m, s) for p, m, s in planned if (dataset, p, m, str(s), settings) not in recorded]
    log(f"{len(planned)} runs planned, {len(planned) - len(todo)} already in {csv_path}, "
        f"{len(todo)} to run ({settings})")
    started = time.perf_counter()
    for done_count, (protocol, model, seed) in enumerate(todo):
        code = code_version()
        # a run killed mid-way (e.g. a session that ended) resumes from its work folder's checkpoint
        # (per commit: a run resumes only under the code that started it)
        work_dir = out_dir / "partial" / settings_slug(f"{code}_{dataset}_{protocol}_{model}_{seed}_{settings}")
        spec = {"entry": model, "dataset": dataset, "protocol": protocol, "seed": seed, "epochs": epochs,
                "overrides": overrides, "config_files": config_files, "work_dir": str(work_dir)}
        run_start = time.perf_counter()
        status, error, measurements = run_in_child(spec, timeout)
        prior_wall, prior_paused = measurements.pop("prior_wall_s", 0.0), measurements.pop("prior_paused_s", 0.0)
        wall = time.perf_counter() - run_start - (measurements.get("paused_s", 0.0) - prior_paused) + prior_wall
        row = {"dataset": dataset, "protocol": protocol, "model": model, "seed": seed, "settings": settings,
               "status": status, "error": error, "code": code, "wall_s": round(wall, 1), **flatten(measurements)}
        runs.append(row)
        write_runs(csv_path, runs)
        elapsed = time.perf_counter() - started
        eta = elapsed / (done_count + 1) * (len(todo) - done_count - 1)
        summary = ", ".join(f"{k[5:]} {v:.4f}" for k, v in row.items() if k.startswith("test:")) or error
        log(f"[{done_count + 1}/{len(todo)}] {protocol} {model} seed {seed}: {status} in {wall:.0f} s "
            f"({summary}); about {eta / 60:.0f} min left")
    runs = [run for run in read_runs(csv_path) if run["dataset"] == dataset]
    write_report(runs, out_dir, dataset)
    return [run for run in runs if run["settings"] == settings]
