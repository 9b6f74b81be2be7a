"""Benchmark suite: models x protocols x seeds on one dataset, each run in its own process.

    python -m recbole_dien.benchmark --quick        # 5 models, default protocol, 1 seed, 1 epoch (< 10 min)
    python -m recbole_dien.benchmark                # every protocol, 3 seeds, 2 epochs (about 5 hours)
    python -m recbole_dien.benchmark --protocols labeled --models DIN DIEN recbole.DIN --seeds 1 2 3

Runs go one after another (two torch processes on the same cores slow each other several-fold).
Each records, in ``<out>/runs.csv``: validation and test metrics, train seconds per epoch, epochs
trained (early stopping may end a run before ``--epochs``) and the best one, seconds of one
validation pass and of the test pass, trainable parameters and the process's peak resident
memory. A run already in the CSV (same dataset, protocol, model, seed and settings) is not run
again, so an interrupted suite resumes where it stopped; a run that fails or times out is
recorded with its error and the suite goes on (``--retry-failed`` runs those again).
``<out>/results.md`` holds one table per settings and protocol (mean +- std over seeds) and
``<out>/<dataset>-<protocol>-<settings>-{metrics,time}.png`` the plots.

A model is any name ``run_recbole.py`` takes (``DIN`` is this package's, ``recbole.DIN``
RecBole's, ``GRU4Rec`` ...) or a preset from ``PRESETS``.
"""
import argparse
import csv
import hashlib
import json
import math
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from statistics import mean, stdev

DEFAULT_MODELS = ["DIN", "DIEN", "DSIN", "recbole.DIN", "recbole.DIEN", "GRU4Rec", "SASRec", "NARM", "STAMP"]
PROTOCOLS = ["default", "fullsort", "labeled"]
DEFAULT_SEEDS = [2020, 2021, 2022]

# RecBole's DIN and DIEN have no full_sort_predict, so RecBole's trainer scores every (user, item)
# pair through predict: on ml-100k 16x the rows of a uni100 pass, so (from their measured uni100
# passes, 34 s and 83 s) about 9 and 22 minutes per evaluation pass on 2 cores. Left out of
# full-sort runs unless named.
SLOW_IN_FULL_SORT = {"recbole.DIN", "recbole.DIEN"}
# --quick: the plugin's models, RecBole's DIN and GRU4Rec (about 8.5 minutes). RecBole's DIEN
# alone takes about 10 minutes per epoch on 2 cores, and RecBole's next-item models re-encode the
# history for each of the 101 candidates of a uni100 pass (SASRec: about 5 minutes a run).
QUICK_MODELS = ["DIN", "DIEN", "DSIN", "recbole.DIN", "GRU4Rec"]

# Plugin models at the hyper-parameters of RecBole's built-in of the same name (its
# properties/model/<Model>.yaml): one embedding width and one MLP shape for every tower.
RECBOLE_SIZES = {"embedding_size": 10, "attention_mlp_sizes": [256, 256, 256], "mlp_hidden_size": [256, 256, 256]}
PRESETS = {
    "DIN@recbole-hparams": ("DIN", RECBOLE_SIZES),
    # RecBole's DIEN also reuses the 256-256-256 MLP, without non-linearity, as its auxiliary net
    "DIEN@recbole-hparams": ("DIEN", {**RECBOLE_SIZES, "aux_mlp_sizes": [256, 256, 256], "aux_activation": "none"}),
}

# set by the runner for each run, not through --set (checkpoints go to a temporary folder, deleted
# after the test); the value says which argument to use instead
RESERVED_SETTINGS = {"epochs": "--epochs", "seed": "--seeds", "protocol": "--protocols",
                     "checkpoint_dir": "nothing: each run uses a temporary folder"}
KEY_FIELDS = ["dataset", "protocol", "model", "seed", "settings"]
RUN_FIELDS = KEY_FIELDS + ["status", "error", "model_class", "probabilistic", "epochs", "best_epoch",
                           "train_s_per_epoch", "valid_s", "test_s", "parameters", "peak_rss_mb", "wall_s"]
TIMING_COLUMNS = [("epochs", "epochs", "{:.1f}"), ("train_s_per_epoch", "train s/epoch", "{:.1f}"),
                  ("valid_s", "valid pass s", "{:.1f}"), ("parameters", "parameters", "{:,.0f}"),
                  ("peak_rss_mb", "peak RSS MB", "{:.0f}")]


def resolve(entry):
    """(model name, preset settings) of a model entry."""
    return PRESETS.get(entry, (entry, {}))


def measure(entry, dataset, protocol="default", seed=2020, epochs=1, overrides=None, config_files=None):
    """Train (early stopping on validation), test, and return the measurements of one run."""
    from recbole.data import data_preparation
    from recbole.utils import get_trainer, init_logger, init_seed

    from recbole_dien import Config, create_dataset

    model_name, preset = resolve(entry)
    reserved = set(RESERVED_SETTINGS) & set(overrides or {})
    if reserved:
        raise ValueError(f"set {', '.join(sorted(reserved))} through the runner's own arguments, not as settings")
    checkpoint_dir = tempfile.mkdtemp(prefix="recbole-dien-bench-")
    settings = {**preset, **(overrides or {}), "epochs": epochs, "seed": seed, "protocol": protocol,
                "checkpoint_dir": checkpoint_dir}
    settings.setdefault("show_progress", False)
    try:
        config = Config(model_name, dataset, config_file_list=config_files, config_dict=settings, cmd_args=[])
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        data = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, data)
        init_seed(config["seed"], config["reproducibility"])
        model = config.model_class(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

        seconds = {"train": [], "valid": []}

        def timed(kind, method):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                result = method(*args, **kwargs)
                seconds[kind].append(time.perf_counter() - start)
                return result
            return wrapper

        trainer._train_epoch = timed("train", trainer._train_epoch)
        trainer._valid_epoch = timed("valid", trainer._valid_epoch)
        _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
        start = time.perf_counter()
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
        test_seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return {
        "model_class": f"{config.model_class.__module__}.{config.model_class.__name__}",
        # next-item models (cross-entropy / BPR) score with unbounded logits: LogLoss means nothing for them
        "probabilistic": config["loss_type"] not in ("CE", "BPR") if "loss_type" in config else True,
        "epochs": len(seconds["train"]),
        # as RecBole counts it: the last validation that tied or beat the best is the saved model
        "best_epoch": (len(seconds["valid"]) - trainer.cur_step) * trainer.eval_step if seconds["valid"] else "",
        "train_s_per_epoch": sum(seconds["train"]) / len(seconds["train"]),
        "valid_s": sum(seconds["valid"]) / max(len(seconds["valid"]), 1),
        "test_s": test_seconds,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # RecBole's ranking metrics come back as numpy scalars
        "valid": {metric: float(value) for metric, value in best_valid.items()},
        "test": {metric: float(value) for metric, value in test.items()},
    }


# ---------------------------------------------------------------------------- the suite

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


def read_runs(path):
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_runs(path, runs):
    fields = RUN_FIELDS + sorted({k for run in runs for k in run} - set(RUN_FIELDS))
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(runs)
    tmp.replace(path)


def run_key(run):
    return tuple(str(run[k]) for k in KEY_FIELDS)


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


def flatten(measurements):
    row = {k: v for k, v in measurements.items() if k not in ("valid", "test")}
    for split in ("valid", "test"):
        for metric, value in measurements.get(split, {}).items():
            row[f"{split}:{metric}"] = value
    return row


def run_suite(models, protocols, seeds, epochs, dataset, out_dir, overrides=None, config_files=None,
              timeout=None, quick=False, retry_failed=False, log=print):
    """Run every planned run (see ``plan``) not yet in ``<out_dir>/runs.csv`` (with
    ``retry_failed``, also those recorded as failed or timed out, whose rows are replaced); write
    the CSV, the markdown of every setting recorded for the dataset and the plots of this one."""
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
        spec = {"entry": model, "dataset": dataset, "protocol": protocol, "seed": seed, "epochs": epochs,
                "overrides": overrides, "config_files": config_files}
        run_start = time.perf_counter()
        status, error, measurements = run_in_child(spec, timeout)
        wall = time.perf_counter() - run_start
        row = {"dataset": dataset, "protocol": protocol, "model": model, "seed": seed, "settings": settings,
               "status": status, "error": error, "wall_s": round(wall, 1), **flatten(measurements)}
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


# ---------------------------------------------------------------------------- report

def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _mean_std(values, fmt, spread=True):
    values = [v for v in map(_number, values) if v is not None]
    if not values:
        return "—"
    if len(values) == 1 or not spread:
        return fmt.format(values[0]) if len(set(values)) == 1 else fmt.format(mean(values))
    return f"{fmt.format(mean(values))} ± {fmt.format(stdev(values))}"


def metric_columns(runs):
    return sorted({k[5:] for run in runs for k, v in run.items() if k.startswith("test:") and v not in ("", None)},
                  key=_metric_order)


def _metric_order(metric):
    order = ["auc", "gauc", "labeledgauc", "logloss", "hit@10", "ndcg@10", "mrr@10"]
    return (order.index(metric) if metric in order else len(order), metric)


def summarize(runs):
    """Per (settings, protocol) in first-seen order, per model (the default models in their order,
    then the others as first seen): the model's runs."""
    table = OrderedDict()
    for run in runs:
        table.setdefault((run["settings"], run["protocol"]), OrderedDict()).setdefault(run["model"], []).append(run)

    def model_order(model):
        return DEFAULT_MODELS.index(model) if model in DEFAULT_MODELS else len(DEFAULT_MODELS)

    return OrderedDict((group, OrderedDict(sorted(by_model.items(), key=lambda item: model_order(item[0]))))
                       for group, by_model in table.items())


def markdown(runs, dataset):
    """One table per (settings, protocol) of ``runs``."""
    lines = []
    for (settings, protocol), by_model in summarize(runs).items():
        protocol_runs = [r for rs in by_model.values() for r in rs]
        metrics = metric_columns(protocol_runs)
        lines += [f"### {dataset}, protocol `{protocol}` ({settings})", "",
                  "| model | seeds | " + " | ".join(f"test {m}" for m in metrics) + " | "
                  + " | ".join(label for _, label, _ in TIMING_COLUMNS) + " |",
                  "|---" * (2 + len(metrics) + len(TIMING_COLUMNS)) + "|"]
        for model, model_runs in by_model.items():
            ok = [r for r in model_runs if r["status"] == "ok"]
            failed = [r for r in model_runs if r["status"] != "ok"]
            if not ok:
                reason = failed[-1]["error"].replace("|", "/")
                empty = " |" * (len(metrics) + len(TIMING_COLUMNS))
                lines.append(f"| `{model}` | {failed[-1]['status']}: {reason} |{empty}")
                continue
            cells = []
            for metric in metrics:
                if metric == "logloss" and not all(r.get("probabilistic") in ("True", True) for r in ok):
                    cells.append("n/a")  # unbounded logits, not probabilities
                else:
                    cells.append(_mean_std([r.get(f"test:{metric}") for r in ok], "{:.4f}"))
            # a model's parameter count does not vary over seeds
            cells += [_mean_std([r.get(field) for r in ok], fmt, spread=field != "parameters")
                      for field, _, fmt in TIMING_COLUMNS]
            seeds = f"{len(ok)}" + (f" ({len(failed)} {failed[-1]['status']})" if failed else "")
            lines.append(f"| `{model}` | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Mean ± standard deviation over seeds; `n/a`: the model scores with unbounded logits "
                 "(cross-entropy over all items), so LogLoss does not apply.")
    return "\n".join(lines) + "\n"


def plot(runs, out_dir, dataset):
    """Per protocol: test metrics (bars, error bars = std over seeds) and train seconds per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    paths = []
    for (settings, protocol), by_model in summarize(runs).items():
        ok = OrderedDict((m, [r for r in rs if r["status"] == "ok"]) for m, rs in by_model.items())
        ok = OrderedDict((m, rs) for m, rs in ok.items() if rs)
        if not ok:
            continue
        models = list(ok)
        metrics = [m for m in metric_columns([r for rs in ok.values() for r in rs]) if m != "logloss"]

        def stats(field):
            values = [[v for v in map(_number, (r.get(field) for r in ok[m])) if v is not None] for m in models]
            return ([mean(v) if v else math.nan for v in values], [stdev(v) if len(v) > 1 else 0.0 for v in values])

        name = f"{dataset}-{protocol}-{settings_slug(settings)}"

        # one panel per metric, each on its own scale; AUC-like metrics from 0.5 (a random ranking)
        fig, axes = plt.subplots(1, len(metrics), figsize=(max(6, 0.75 * len(models)) * len(metrics), 4),
                                 squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            means, stds = stats(f"test:{metric}")
            bars = ax.bar(range(len(models)), means, yerr=stds, capsize=3, color="tab:blue")
            ax.bar_label(bars, labels=["" if math.isnan(m) else f"{m:.3f}" for m in means], fontsize=7, padding=2)
            drawn = [(m, d) for m, d in zip(means, stds) if not math.isnan(m)]
            if "auc" in metric and drawn and min(m for m, _ in drawn) > 0.5:
                ax.set_ylim(0.5, min(1.0, max(m + d for m, d in drawn) + 0.05))
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=30, ha="right")
            ax.set_title(f"test {metric}")
        fig.suptitle(f"{dataset}, protocol {protocol} ({settings}): mean ± std over seeds")
        fig.tight_layout()
        paths.append(out_dir / f"{name}-metrics.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(models)), 4))
        means, stds = stats("train_s_per_epoch")
        bars = ax.bar(range(len(models)), means, yerr=stds, capsize=3, color="tab:gray")
        ax.bar_label(bars, labels=["" if math.isnan(m) else f"{m:.0f} s" for m in means], fontsize=7, padding=2)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right")
        ax.set_ylabel("train seconds per epoch (log scale)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{dataset}, protocol {protocol} ({settings}): training time per epoch")
        fig.tight_layout()
        paths.append(out_dir / f"{name}-time.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write_report(runs, out_dir, dataset):
    (Path(out_dir) / "results.md").write_text(markdown(runs, dataset), encoding="utf-8")
    plot(runs, Path(out_dir), dataset)


# ---------------------------------------------------------------------------- command line

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_dien.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help=f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--protocols", nargs="+", help=f"default: {' '.join(PROTOCOLS)} (--quick: default)")
    parser.add_argument("--seeds", nargs="+", type=int,
                        help=f"default: {' '.join(map(str, DEFAULT_SEEDS))} (--quick: {DEFAULT_SEEDS[0]})")
    parser.add_argument("--epochs", type=int, help="at most this many epochs per run, early stopping on "
                        "validation after 2 epochs without improvement (default 2; --quick: 1)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--out", default="benchmarks/results", help="folder of runs.csv, results.md, *.png")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run (YAML value), e.g. --set train_batch_size=1024")
    parser.add_argument("--config_files", nargs="+", help="YAML files for every run")
    parser.add_argument("--timeout", type=float, help="seconds after which a run is stopped and recorded as timeout")
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed or timeout")
    parser.add_argument("--quick", action="store_true", help="default protocol, 1 seed, 1 epoch, and unless "
                        f"--models is given: {' '.join(QUICK_MODELS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        measurements = measure(spec["entry"], spec["dataset"], spec["protocol"], spec["seed"], spec["epochs"],
                               spec["overrides"], spec["config_files"])
        print(json.dumps(measurements), flush=True)
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("the benchmark draws its plots with matplotlib: pip install 'recbole-dien[benchmark]'", file=sys.stderr)
        return 2
    import yaml

    overrides = {"stopping_step": 2}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key in RESERVED_SETTINGS:
            reason = f"set by the runner; use {RESERVED_SETTINGS[key]}" if sep else "expected KEY=VALUE"
            print(f"--set {item}: {reason}", file=sys.stderr)
            return 2
        overrides[key] = yaml.safe_load(value)
    run_suite(
        models=args.models,
        protocols=args.protocols or (["default"] if args.quick else PROTOCOLS),
        seeds=args.seeds or (DEFAULT_SEEDS[:1] if args.quick else DEFAULT_SEEDS),
        epochs=args.epochs or (1 if args.quick else 2),
        dataset=args.dataset, out_dir=args.out, overrides=overrides, config_files=args.config_files,
        timeout=args.timeout, quick=args.quick, retry_failed=args.retry_failed,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {Path(args.out) / 'runs.csv'}, {Path(args.out) / 'results.md'} and the plots", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
