"""The plugin's DIN, DIEN and DSIN against the maintained PyTorch libraries that have DIN and DIEN
(DeepCTR-Torch, FuxiCTR, torch-rechub, NextRec), trained and tested on identical rows.

    python benchmarks/peers.py                                    # every library, both modes, 3 seeds
    python benchmarks/peers.py --fraction 0.5 --eval-fraction 0.5 --modes one-epoch   # half the rows, one pass
    python benchmarks/peers.py --fraction 0.02 --eval-fraction 0.05 --seeds 2020 --modes one-epoch  # a smoke test
    python benchmarks/peers.py --report-only                      # the table and the plots from runs.csv

1. The peers get their own virtualenv (``--venv``, created on first use): the CPU torch wheel
   first, then the four libraries at the versions below with torch pinned (NextRec's torchvision
   would otherwise replace it with a CUDA build), and FuxiCTR's DIN and DIEN, which live in its
   model zoo (``model_zoo/LongCTR``, in its source distribution, not in its wheel).
2. RecBole's rows under the plugin's default protocol on ml-100k are dumped once into
   ``--out/rows-ml-100k.npz`` (benchmarks/peer_adapters/rows.py says what it holds): the training
   rows with their histories and DIEN's negative behaviours, each positive followed by the negative
   RecBole's sampler drew, and each user's validation and test target with its 100 sampled items.
   ``--fraction`` keeps that share of the training rows, ``--eval-fraction`` of the users.
3. Each (library, model, mode, seed) is one process (the peers' under the peers' virtualenv), one
   at a time: the same batches in the same order for a seed, each library's own training step,
   Adam at the plugin's learning rate, the sizes of props/ (embedding 18 per field, attention
   80-40, top MLP 200-80, auxiliary loss weight 1, batch 2,048). Modes: ``one-epoch`` (one pass,
   tested after it) and ``converged`` (early stopping on validation AUC, ``--patience`` epochs,
   at most ``--max-epochs``; the best epoch is tested). Training seconds count the training steps
   only (forward, loss, backward, optimizer step); building each library's inputs is left out.
4. Runs are appended to ``--out/runs.csv``; a run already there (same library, model, mode, seed,
   fractions, stopping settings and rows file) is skipped, so an interrupted benchmark resumes.
   ``--out/results.md`` gets the tables (train seconds and test AUC per library and model, mean ±
   std over seeds; the plugin against the fastest peer) and ``--out/peers-<mode>.png`` the plots
   (test AUC against training seconds).

What differs between the libraries' models, besides their code, is in docs/benchmark.md#peers.
"""
import argparse
import csv
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # peer_adapters, also when this file is loaded by path (tests)
    sys.path.insert(0, str(BENCHMARKS))

# the peers' virtualenv: torch as the main one has it (the CPU wheel), then the libraries
PEER_TORCH = "2.13.0"
PEER_VERSIONS = {"deepctr-torch": "0.3.0", "fuxictr": "2.3.10", "torch-rechub": "0.9.0", "nextrec": "0.6.14"}
LIBRARIES = ["recbole-dien", *PEER_VERSIONS]
LIBRARY_NAMES = {"recbole-dien": "recbole-dien", "deepctr-torch": "DeepCTR-Torch", "fuxictr": "FuxiCTR",
                 "torch-rechub": "torch-rechub", "nextrec": "NextRec"}
MODELS = {"DIN": LIBRARIES, "DIEN": LIBRARIES, "DSIN": ["recbole-dien"]}   # no peer has DSIN in PyTorch
MODES = ("one-epoch", "converged")
SEEDS = (2020, 2021, 2022)
DUMP_SEED = 2020
# the plugin's default protocol on ml-100k (dataset_configs/ml-100k.yaml) with the features every
# library can take: token fields, one token per behaviour (genres, a list per item, are left out)
DATASET_SETTINGS = {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"],
                                 "user": ["user_id", "age", "gender", "occupation"],
                                 "item": ["item_id", "release_year"]}}

RUN_FIELDS = ["library", "version", "model", "mode", "seed", "fraction", "eval_fraction", "max_epochs", "patience",
              "rows", "status", "error", "train_s", "train_s_to_best", "epochs", "best_epoch", "valid_auc",
              "test_auc", "test_logloss", "parameters", "train_rows", "test_rows", "peak_gb", "wall_s", "threads",
              "torch", "commit", "date", "history"]
KEY_FIELDS = ["library", "model", "mode", "seed", "fraction", "eval_fraction", "max_epochs", "patience", "rows"]


def load_harness():
    """recbole_dien/benchmark/harness.py, loaded from its file: it is standard library only, and the
    peers' virtualenv has no recbole_dien (whose package imports RecBole)."""
    spec = importlib.util.spec_from_file_location("peer_harness", ROOT / "recbole_dien" / "benchmark" / "harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = load_harness()


# --- the matched settings ------------------------------------------------------------------------

def matched_settings(model):
    """What every library's ``model`` is built and trained with: the plugin's own defaults
    (props/<model>.yaml) for the sizes and the optimiser."""
    import yaml

    props = yaml.safe_load((ROOT / "props" / f"{model}.yaml").read_text(encoding="utf-8"))
    keys = ["learning_rate", "train_batch_size", "embedding_size", "attention_mlp_sizes", "mlp_hidden_size"]
    if model == "DIEN":
        keys += ["alpha", "aux_mlp_sizes"]
    return {key: props[key] for key in keys}


# --- the peers' virtualenv -----------------------------------------------------------------------

def _pip(python, command, *arguments):
    """pip ``command`` in ``python``'s environment; one line if it fails (pip's own output says why)."""
    try:
        subprocess.check_call([str(python), "-m", "pip", command, "--quiet", "--disable-pip-version-check",
                               *arguments])
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"error: pip {command} {' '.join(arguments)} failed (exit {error.returncode}; its output "
                         f"is above); delete {Path(python).parents[1]} to start the peers' virtualenv over") from None


def installed_versions(python):
    """{distribution: version} of ``python``'s environment, for the torch and the peers."""
    names = ["torch", *PEER_VERSIONS]
    script = ("import importlib.metadata as m\n"
              f"for name in {names!r}:\n"
              "    try: print(name, m.version(name))\n"
              "    except m.PackageNotFoundError: print(name, '-')")
    lines = subprocess.check_output([str(python), "-c", script], text=True).split("\n")
    return dict(line.split(" ", 1) for line in lines if line.strip())


def fetch_fuxictr_model_zoo(python, venv):
    """FuxiCTR's DIN and DIEN (``model_zoo/LongCTR/DIN``, ``DIEN``) from its source distribution into
    ``venv/fuxictr_longctr``: its wheel ships the framework without the models."""
    target = venv / "fuxictr_longctr"
    with tempfile.TemporaryDirectory() as folder:
        _pip(python, "download", "--no-deps", "--no-binary", ":all:", f"fuxictr=={PEER_VERSIONS['fuxictr']}",
             "-d", folder)
        (archive,) = Path(folder).glob("fuxictr-*.tar.gz")
        with tarfile.open(archive) as sdist:
            for member in sdist.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 5 and parts[1:3] == ("model_zoo", "LongCTR") and parts[3] in ("DIN", "DIEN") \
                        and member.isfile() and parts[4].endswith(".py"):
                    (target / parts[3]).mkdir(parents=True, exist_ok=True)
                    (target / parts[3] / parts[4]).write_bytes(sdist.extractfile(member).read())
    (target / "__init__.py").write_text('"""FuxiCTR\'s LongCTR DIN and DIEN, from its source distribution."""\n')


def ensure_peer_venv(venv):
    """The peers' virtualenv's python, created and filled on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating the peers' virtualenv in {venv} ...", file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
        _pip(python, "install", f"torch=={PEER_TORCH}")
    versions = installed_versions(python)
    missing = [f"{name}=={version}" for name, version in PEER_VERSIONS.items() if versions.get(name) != version]
    if missing:
        # without the pin, pip takes the newest torchvision NextRec accepts, which wants a newer torch:
        # it would replace the CPU wheel with a CUDA build of several GB
        constraints = venv / "constraints.txt"
        constraints.write_text(f"torch=={PEER_TORCH}\n")
        print(f"installing {' '.join(missing)} into {venv} ...", file=sys.stderr, flush=True)
        _pip(python, "install", *missing, "-c", str(constraints))
        versions = installed_versions(python)
    if not versions.get("torch", "").startswith(PEER_TORCH):
        raise SystemExit(f"error: the peers' virtualenv {venv} has torch {versions.get('torch')}, not {PEER_TORCH}: "
                         f"delete {venv} and run again")
    if not (venv / "fuxictr_longctr" / "DIEN" / "DIEN.py").exists():
        fetch_fuxictr_model_zoo(python, venv)
    return python


# --- the child: one dump or one run --------------------------------------------------------------

def child(spec):
    if spec["job"] == "dump":
        from peer_adapters.dump import dump_rows

        harness.print_result(dump_rows(spec["rows"], spec["dataset"], spec["settings"], spec["seed"], spec["commit"]))
        return
    import torch

    from peer_adapters import ADAPTERS, adapter_class
    from peer_adapters.loop import train_and_test
    from peer_adapters.rows import Rows

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    rows = Rows.load(spec["rows"]).selected(spec["fraction"], spec["eval_fraction"])
    adapter = adapter_class(spec["library"])
    patience = spec["patience"] if spec["mode"] == "converged" else None
    result = train_and_test(adapter, spec["model"], rows, spec["settings"], spec["seed"], spec["max_epochs"], patience,
                            progress=lambda entry: print(json.dumps({"epoch": entry}), file=sys.stderr, flush=True))
    if spec["library"] == "recbole-dien":
        import recbole_dien
        version = recbole_dien.__version__
    else:
        import importlib.metadata
        version = importlib.metadata.version(ADAPTERS[spec["library"]][1])
    harness.print_result({**result, "version": version, "torch": torch.__version__,
                          "threads": torch.get_num_threads()})


# --- runs.csv ------------------------------------------------------------------------------------

def read_runs(path):
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_run(path, run):
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RUN_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({field: run.get(field, "") for field in RUN_FIELDS})


def run_key(run):
    """What makes two runs the same measurement (csv values are strings: compare them as such)."""
    return tuple(str(run[field]) for field in KEY_FIELDS)


def plan(libraries, models, modes, seeds, common):
    """Every (library, model, mode, seed) run asked for, as the rows of runs.csv will key them."""
    runs = []
    for mode in modes:
        for model in models:
            for library in MODELS[model]:
                if library not in libraries:
                    continue
                for seed in seeds:
                    runs.append({"library": library, "model": model, "mode": mode, "seed": seed, **common,
                                 "max_epochs": common["max_epochs"] if mode == "converged" else 1,
                                 "patience": common["patience"] if mode == "converged" else ""})
    return runs


def pending(wanted, recorded, retry_failed=False):
    """The runs of ``wanted`` still to do: those not in ``recorded`` (runs.csv's rows), and with
    ``retry_failed`` those whose latest record is not ``ok``."""
    latest = {run_key(run): run for run in recorded}
    return [run for run in wanted if run_key(run) not in latest
            or (retry_failed and latest[run_key(run)]["status"] != "ok")]


def planned_runs(runs, wanted):
    """The recorded runs of the plan ``wanted`` (the latest where a failed one was run again): a
    report never mixes runs of other fractions, rows or stopping settings."""
    keys = {run_key(run) for run in wanted}
    return list({run_key(run): run for run in runs if run_key(run) in keys}.values())


# --- the report ----------------------------------------------------------------------------------

def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def mean_std(values, digits):
    """'mean ± std' (the sample std over seeds; the mean alone for one value; — for none)."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summarise(runs):
    """{(mode, model): {library: summary}} over the ``ok`` runs, with the failures' errors."""
    groups = {}
    for run in runs:
        entry = groups.setdefault((run["mode"], run["model"]), {}).setdefault(run["library"], {
            "version": run.get("version", ""), "train_s": [], "train_s_to_best": [], "test_auc": [], "valid_auc": [],
            "epochs": [], "best_epoch": [], "errors": []})
        if run["status"] != "ok":
            entry["errors"].append(run.get("error", "") or run["status"])
            continue
        entry["version"] = run.get("version", "") or entry["version"]
        for field in ("train_s", "train_s_to_best", "test_auc", "valid_auc", "epochs", "best_epoch"):
            value = _number(run.get(field))
            if value is not None:
                entry[field].append(value)
    return groups


def markdown(runs, header=""):
    """The tables of results.md: per mode, every library's model (mean ± std over seeds), and the
    plugin against the fastest and the best peer."""
    groups = summarise(runs)
    lines = [header] if header else []
    for mode in MODES:
        models = [model for model in MODELS if (mode, model) in groups]
        if not models:
            continue
        converged = mode == "converged"
        title = "Trained to convergence (early stopping on validation AUC)" if converged else "One epoch"
        to_best = " train s to the best epoch |" if converged else ""
        lines += ["", f"### {title}", "",
                  f"| model | library | seeds | train s |{to_best} test AUC | best valid AUC | epochs (best) |",
                  "|---|---|---|---|---|---|---|" + ("---|" if converged else "")]
        for model in models:
            for library in LIBRARIES:
                entry = groups[(mode, model)].get(library)
                if entry is None:
                    continue
                name = f"{LIBRARY_NAMES[library]} {entry['version']}".strip()
                if not entry["train_s"]:
                    lines.append(f"| {model} | {name} | 0 | failed: {entry['errors'][-1][:120]} | | | |"
                                 + (" |" if converged else ""))
                    continue
                epochs = f"{statistics.mean(entry['epochs']):.1f} ({statistics.mean(entry['best_epoch']):.1f})"
                failed = f" ({len(entry['errors'])} failed)" if entry["errors"] else ""
                best = f" {mean_std(entry['train_s_to_best'], 1)} |" if converged else ""
                lines.append(f"| {model} | {name} | {len(entry['train_s'])}{failed} "
                             f"| {mean_std(entry['train_s'], 1)} |{best} {mean_std(entry['test_auc'], 4)} "
                             f"| {mean_std(entry['valid_auc'], 4)} | {epochs} |")
        lines += ["", "| model | recbole-dien train s (test AUC) | fastest peer | best peer test AUC "
                  "| recbole-dien vs fastest peer |", "|---|---|---|---|---|"]
        for model in models:
            lines.append(comparison(model, groups[(mode, model)]))
    return "\n".join(lines) + "\n"


def comparison(model, entries):
    """One line: the plugin's mean train seconds and test AUC, the fastest peer's and the best peer's."""
    def means(library):
        entry = entries.get(library)
        if not entry or not entry["train_s"]:
            return None
        return statistics.mean(entry["train_s"]), statistics.mean(entry["test_auc"])

    plugin = means("recbole-dien")
    peers = {library: means(library) for library in entries if library != "recbole-dien" and means(library)}
    ours = f"{plugin[0]:.1f} ({plugin[1]:.4f})" if plugin else "—"
    if not peers:
        return f"| {model} | {ours} | — | — | — |"
    fastest = min(peers, key=lambda library: peers[library][0])
    best = max(peers, key=lambda library: peers[library][1])
    versus = "—"
    if plugin:
        ratio = peers[fastest][0] / plugin[0]
        versus = (f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / ratio:.1f}× slower") + \
            f", test AUC {plugin[1] - peers[best][1]:+.4f} vs the best peer"
    return (f"| {model} | {ours} | {LIBRARY_NAMES[fastest]} {peers[fastest][0]:.1f} ({peers[fastest][1]:.4f}) "
            f"| {LIBRARY_NAMES[best]} {peers[best][1]:.4f} | {versus} |")


def plot(runs, out):
    """peers-<mode>.png: test AUC against training seconds, mean and std over seeds, per library and
    model. Returns the files written."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("error: the plots need matplotlib: pip install 'recbole-dien[benchmark]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups, written = summarise(runs), []
    markers = {"DIN": "o", "DIEN": "s", "DSIN": "^"}
    colours = dict(zip(LIBRARIES, ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple"]))
    for mode in MODES:
        if not any(key[0] == mode and any(e["train_s"] for e in entries.values()) for key, entries in groups.items()):
            continue
        figure, axes = plt.subplots(figsize=(9, 4.5))
        for (group_mode, model), entries in groups.items():
            if group_mode != mode:
                continue
            for library, entry in entries.items():
                if not entry["train_s"]:
                    continue
                spread = (lambda values: statistics.stdev(values) if len(values) > 1 else 0.0)
                axes.errorbar(statistics.mean(entry["train_s"]), statistics.mean(entry["test_auc"]),
                              xerr=spread(entry["train_s"]), yerr=spread(entry["test_auc"]),
                              marker=markers[model], color=colours[library], linestyle="none", capsize=3,
                              label=f"{LIBRARY_NAMES[library]} {model}")
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))   # 1, 2, 5, 10, 20, ...
        axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())         # 20, not 2 x 10^1
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.set_xlabel("training seconds (log scale)")
        axes.set_ylabel("test AUC")
        axes.set_title("one epoch" if mode == "one-epoch" else "trained to convergence")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # beside the axes, never on a point
        figure.tight_layout()
        path = out / f"peers-{mode}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def write_report(runs, out, command):
    versions = sorted({f"{LIBRARY_NAMES[r['library']]} {r['version']}" for r in runs if r.get("version")})
    torches = sorted({r["torch"] for r in runs if r.get("torch")})
    header = (f"# The peer benchmark\n\n```bash\n{command}\n```\n\n"
              f"Written {datetime.date.today().isoformat()} from {out / 'runs.csv'}; versions: {', '.join(versions)}; "
              f"torch {', '.join(torches)}; {os.cpu_count()} CPU cores ({platform.machine()}).")
    (out / "results.md").write_text(markdown(runs, header), encoding="utf-8")
    return [out / "results.md", *plot(runs, out)]


# --- the parent ----------------------------------------------------------------------------------

def commit():
    try:
        return subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def dump(path, dataset, settings, timeout):
    """Write the rows file in a child process of the main virtualenv."""
    spec = {"job": "dump", "rows": str(path), "dataset": dataset, "settings": settings, "seed": DUMP_SEED,
            "commit": commit()}
    with tempfile.TemporaryDirectory(prefix="peers-dump-") as work:
        done = harness.run_child(harness.child_command(Path(__file__).resolve(), spec), timeout=timeout, cwd=work)
    if not done.ok:
        raise SystemExit(f"error: dumping the rows failed: {done.error}")
    return done.result


def run_one(run, python, rows, settings, timeout, threads):
    """One run in its own process; the row for runs.csv."""
    import time

    spec = {"job": "train", **run, "rows": str(rows), "settings": settings, "threads": threads,
            "patience": run["patience"] if run["patience"] != "" else None}
    command = [str(python), *harness.child_command(Path(__file__).resolve(), spec)[1:]]
    env = dict(os.environ)
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peers-run-") as work:
        env["NEXTREC_LOG_DIR"] = work  # NextRec writes a session folder; FuxiCTR and RecBole write into the cwd
        done = harness.run_child(command, timeout=timeout, cwd=work, env=env)
    result = {key: value for key, value in done.result.items() if key in RUN_FIELDS}
    if "history" in result:
        result["history"] = json.dumps(result["history"], separators=(",", ":"))
    return {**run, **result, "status": done.status, "error": done.error, "peak_gb": done.peak_gb,
            "wall_s": round(time.perf_counter() - started, 1), "commit": commit(),
            "date": datetime.date.today().isoformat()}


def parse_settings(items):
    import yaml

    settings = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"error: --set {item!r}: write KEY=VALUE (a YAML value), e.g. "
                             "--set MAX_ITEM_LIST_LENGTH=50")
        settings[key] = yaml.safe_load(value)
    return settings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=LIBRARIES)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the training rows (default: all)")
    parser.add_argument("--eval-fraction", type=float, default=1.0,
                        help="share of the users whose validation and test rows are scored (default: all)")
    parser.add_argument("--patience", type=int, default=3, help="converged: epochs without a better validation "
                        "AUC before stopping, as the plugin's stopping_step (default 3)")
    parser.add_argument("--max-epochs", type=int, default=30, help="converged: at most this many epochs (default 30)")
    parser.add_argument("--threads", type=int, help="torch threads of each run (default: torch's own choice)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds one run may take (default 4 h)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the dumped dataset's config (YAML value), over the defaults")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "results" / "peers")
    parser.add_argument("--venv", type=Path, default=BENCHMARKS / ".peers-venv", help="the peers' virtualenv")
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    parser.add_argument("--dump-only", action="store_true", help="write the rows file again and stop")
    parser.add_argument("--report-only", action="store_true", help="write results.md and the plots from runs.csv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    command = "python benchmarks/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = out / f"rows-{args.dataset}.npz"
    common = {"fraction": args.fraction, "eval_fraction": args.eval_fraction, "max_epochs": args.max_epochs,
              "patience": args.patience, "rows": rows.name}
    wanted = plan(args.libraries, args.models, args.modes, args.seeds, common)
    if args.report_only:
        print("\n".join(str(path) for path in write_report(planned_runs(read_runs(runs_path), wanted), out, command)))
        return 0

    if args.dump_only or not rows.exists():
        settings = {**(DATASET_SETTINGS if args.dataset == "ml-100k" else {}), **parse_settings(args.set)}
        print(f"dumping RecBole's rows of {args.dataset} into {rows} ...", file=sys.stderr, flush=True)
        print(json.dumps(dump(rows, args.dataset, settings, args.timeout)), file=sys.stderr, flush=True)
        if args.dump_only:
            return 0
    python = ensure_peer_venv(args.venv.resolve()) if set(args.libraries) - {"recbole-dien"} else None
    todo = pending(wanted, read_runs(runs_path), args.retry_failed)
    print(f"{len(wanted)} runs asked for, {len(wanted) - len(todo)} already in {runs_path}", file=sys.stderr)
    for number, run in enumerate(todo, 1):
        label = f"[{number}/{len(todo)}] {run['library']} {run['model']} {run['mode']} seed {run['seed']}"
        print(f"{label} ...", file=sys.stderr, flush=True)
        interpreter = sys.executable if run["library"] == "recbole-dien" else python
        done = run_one(run, interpreter, rows, matched_settings(run["model"]), args.timeout, args.threads)
        append_run(runs_path, done)
        outcome = (f"train {done['train_s']} s, test AUC {done['test_auc']}" if done["status"] == "ok"
                   else f"{done['status']}: {done['error']}")
        print(f"{label}: {outcome} ({done['wall_s']} s)", file=sys.stderr, flush=True)
    for path in write_report(planned_runs(read_runs(runs_path), wanted), out, command):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
