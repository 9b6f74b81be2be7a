"""Running a suite: the planned runs one after another, each in its own process, resumable."""
import json
import subprocess
import sys
import time
from pathlib import Path

from recbole_dien.benchmark.harness import run_child
from recbole_dien.benchmark.plan import plan, settings_label, settings_slug
from recbole_dien.benchmark.plots import plot
from recbole_dien.benchmark.report import markdown
from recbole_dien.benchmark.runs import flatten, read_runs, run_key, write_runs


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


def run_in_child(spec, timeout):
    """Run one measurement in a fresh process (``recbole-dien benchmark --child``); (status, error, measurements)."""
    done = run_child([sys.executable, "-m", "recbole_dien", "benchmark", "--child", json.dumps(spec)], timeout)
    return done.status, done.error, done.result


def write_report(runs, out_dir, dataset):
    """``<out_dir>/results.md`` and the plots of ``runs``; the plots' paths."""
    (Path(out_dir) / "results.md").write_text(markdown(runs, dataset), encoding="utf-8")
    return plot(runs, Path(out_dir), dataset)


def run_suite(models, protocols, seeds, epochs, dataset, out_dir, overrides=None, config_files=None,
              timeout=None, quick=False, retry_failed=False, log=print):
    """Run every planned run (see ``plan``) not yet in ``<out_dir>/runs.csv`` (with
    ``retry_failed``, also those recorded as failed or timed out, whose rows are replaced); write
    the CSV after each run, then the report and plots of every setting recorded for the dataset."""
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
