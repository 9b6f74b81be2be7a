"""What building the sequential data and training on it cost from 1M to 20M interactions, on the
lean path and on RecBole's own SequentialDataset.

    python benchmarks/scale.py                                  # 1M 5M 20M, DIN DIEN DSIN lean, DIN DIEN RecBole's
    python benchmarks/scale.py --sizes 1000000 --models DIEN --recbole-models DIEN
    python benchmarks/scale.py --lengths 50 100 200 --length-size 1000000   # the history-length sweep only

Logs come from ``recbole-dien synthetic`` (written once into ``--data``). For each size,
path and model, a fresh process builds the dataset and the three loaders through
``recbole_dien.create_dataset`` + RecBole's ``data_preparation`` (timed: ``build_s``; peak resident
memory over the build: ``build_peak_gb``), trains ``--train-batches`` batches after one warm-up
(``train_rows_s``: batch rows - positives and their sampled negatives - per second, batch
building included) and scores ``--valid-batches`` batches of the uni100 validation loader
(``valid_users_s``; ``valid_pass_s`` is the whole pass at that rate, or measured with
``--full-validation``). ml-100k under the project's default protocol is measured the same way as
the reference for training speed.

RecBole's path runs while it fits: the parent watches the child's resident memory and stops it
above ``--memory-limit-gb``, recording where it was; a path that failed at one size is not tried
at larger ones. Results go to ``--out`` (scale.csv, appended and resumable: rows already there are
skipped; scale.md; scale.png). One torch process at a time; nothing else should run meanwhile
(``recbole-dien benchmark --pause`` pauses a benchmark suite for as long as this runs).
"""
import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_cost, also when run from elsewhere

from recbole_dien.benchmark.harness import child_command, print_phase, print_result, run_child  # noqa: E402

FIELDS = ["dataset", "interactions", "path", "model", "length", "status", "build_s", "build_peak_gb", "peak_gb",
          "rows", "train_rows_s", "valid_users_s", "valid_pass_s", "valid_users", "note", "date"]
REFERENCE = "ml-100k"


# --- the child: one (dataset, path, model, length) measurement ---------------------------------

def measure(spec):
    import torch

    from model_cost import build_then_train, peak_gb

    settings = {"lean_sequential_data": spec["path"] == "lean", "MAX_ITEM_LIST_LENGTH": spec["length"]}
    files = []
    if spec["dataset"] != REFERENCE:
        settings["data_path"] = spec["data"]
        files = [os.path.join(spec["data"], spec["dataset"], f"{spec['dataset']}.yaml")]
    measured, _, train_data, valid_data, model = build_then_train(spec["model"], spec["dataset"], settings, files,
                                                                  spec["train_batches"])
    if measured["train_batches"] < spec["train_batches"]:
        raise RuntimeError(f"{measured['train_batches'] + 1} training batches only, fewer than the warm-up and the "
                           f"{spec['train_batches']} to time")

    print_phase("validation")
    model.eval()
    users, total_users, started = 0, len(valid_data.uid_list), time.perf_counter()
    with torch.no_grad():
        for step, (interaction, _, _, _) in enumerate(valid_data):
            model.predict(interaction)
            users += len(torch.unique(interaction[valid_data.uid_field]))
            if not spec["full_validation"] and step + 1 >= spec["valid_batches"]:
                break
    valid_users_s = users / (time.perf_counter() - started)
    return {"build_s": round(measured["build_s"], 1), "build_peak_gb": measured["build_peak_gb"],
            "peak_gb": round(peak_gb(), 2), "rows": len(train_data.dataset) + len(valid_data.dataset),
            "train_rows_s": measured["train_rows_s"],
            "valid_users_s": round(valid_users_s), "valid_pass_s": round(total_users / valid_users_s, 1),
            "valid_users": total_users,
            "note": "valid pass measured" if spec["full_validation"] else f"valid pass from {users} users"}


# --- the parent: plan, run children under a memory watch, record -------------------------------

def measure_in_child(spec, memory_limit_gb, timeout):
    """(status, measurements or {'note': why}) of one measurement in a fresh process; a run stopped at
    the memory limit or the timeout is 'stopped', with the peak it reached."""
    done = run_child(child_command(__file__, spec), timeout, memory_limit_gb, error_chars=200)
    if done.ok:
        return "ok", done.result
    if done.status == "failed":
        return "failed", {"note": done.error}
    return "stopped", {"note": done.error, "peak_gb": done.peak_gb}


def read_rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def size_label(interactions):
    interactions = int(interactions)
    return f"{interactions / 1e6:g}M" if interactions >= 10 ** 6 else f"{interactions / 1e3:g}k"


def plan(args):
    from recbole_dien.datasets.synthetic import size_name

    runs = [(REFERENCE, 100000, "lean", model, 50) for model in args.models]
    for size in args.sizes:
        for path, models in (("lean", args.models), ("recbole", args.recbole_models)):
            runs.extend((size_name(size), size, path, model, 50) for model in models)
    if args.lengths:
        for length in args.lengths:
            for path, models in (("lean", args.models), ("recbole", args.recbole_models)):
                runs.extend((size_name(args.length_size), args.length_size, path, model, length) for model in models)
    return list(dict.fromkeys(runs))


def ensure_data(name, interactions, data):
    from recbole_dien.datasets.synthetic import generate

    if not os.path.exists(os.path.join(data, name, f"{name}.yaml")):
        print(f"writing {name} into {data} ...", flush=True)
        generate(interactions, data)


def report(rows, out):
    """scale.md (tables) and scale.png (memory and build time against interactions, both paths)."""
    done = [row for row in rows if row["status"] == "ok"]
    lines = [f"Measured by `python benchmarks/scale.py` on {platform.node() or 'this machine'} "
             f"({os.cpu_count()} cores); one process at a time.", "",
             "| log | path | model | L | build + data_preparation (s) | peak memory of the build (GB) | "
             "training rows/s | uni100 validation users/s (whole pass, s) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        label = REFERENCE if row["dataset"] == REFERENCE else size_label(row["interactions"])
        if row["status"] == "ok":
            lines.append(f"| {label} | {row['path']} | {row['model']} | {row['length']} | {row['build_s']} | "
                         f"{row['build_peak_gb']} | {int(float(row['train_rows_s'])):,} | "
                         f"{int(float(row['valid_users_s'])):,} ({row['valid_pass_s']}) |")
        else:
            lines.append(f"| {label} | {row['path']} | {row['model']} | {row['length']} | {row['status']}: "
                         f"{row['note']} | {row['peak_gb'] or ''} | | |")
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, (memory, build) = plt.subplots(1, 2, figsize=(10, 4))
    for path, style in (("lean", "-o"), ("recbole", "--s")):
        for model in sorted({row["model"] for row in done}):
            points = sorted((int(row["interactions"]), float(row["build_peak_gb"]), float(row["build_s"]))
                            for row in done if row["path"] == path and row["model"] == model
                            and row["length"] == "50" and row["dataset"] != REFERENCE)
            if points:
                x = [p[0] / 1e6 for p in points]
                line, = memory.plot(x, [p[1] for p in points], style, label=f"{model}, {path}")
                build.plot(x, [p[2] for p in points], style, color=line.get_color())
                stopped = [row for row in rows if row["path"] == path and row["model"] == model
                           and row["length"] == "50" and row["status"] == "stopped"]
                for row in stopped:  # where it was stopped: its memory at the limit
                    where = (int(row["interactions"]) / 1e6, float(row["peak_gb"]))
                    memory.plot(*where, "x", markersize=10, color=line.get_color())
                    memory.annotate(f"stopped ({row['peak_gb']} GB)", where, textcoords="offset points",
                                    xytext=(-80, -4), fontsize=8)
    for axis, title in ((memory, "peak resident memory of the build (GB)"), (build, "build + data_preparation (s)")):
        axis.set_xlabel("interactions (millions)")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3, which="both")
    if done:
        memory.legend(fontsize=8)
    figure.suptitle(f"Sequential data at scale, MAX_ITEM_LIST_LENGTH 50 ({date.today()})", fontsize=11)
    figure.tight_layout()
    figure.savefig(out / "scale.png", dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=int, default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--models", nargs="*", default=["DIN", "DIEN", "DSIN"], help="on the lean path")
    parser.add_argument("--recbole-models", nargs="*", default=["DIN", "DIEN"], help="on RecBole's path")
    parser.add_argument("--lengths", nargs="*", type=int, default=[], help="history-length sweep (e.g. 50 100 200)")
    parser.add_argument("--length-size", type=int, default=1_000_000, help="log size of the length sweep")
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "recbole-dien-scale"))
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--train-batches", type=int, default=20)
    parser.add_argument("--valid-batches", type=int, default=20)
    parser.add_argument("--full-validation", action="store_true")
    parser.add_argument("--memory-limit-gb", type=float, default=18.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_result(measure(json.loads(args.child)))
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "scale.csv"
    rows = read_rows(csv_path)
    recorded = {(row["dataset"], row["path"], row["model"], row["length"]) for row in rows}
    for dataset, size, path, model, length in plan(args):
        if (dataset, path, model, str(length)) in recorded:
            continue
        failed_smaller = [row for row in rows if row["path"] == path and row["model"] == model
                          and row["length"] == str(length) and row["status"] != "ok"
                          and int(row["interactions"]) < size]
        if failed_smaller:
            smaller = size_label(failed_smaller[0]["interactions"])
            print(f"{dataset} {path} {model} L={length}: skipped (stopped at {smaller})")
            continue
        if dataset != REFERENCE:
            ensure_data(dataset, size, args.data)
        spec = {"dataset": dataset, "data": args.data, "path": path, "model": model, "length": length,
                "train_batches": args.train_batches, "valid_batches": args.valid_batches,
                "full_validation": args.full_validation}
        status, measured = measure_in_child(spec, args.memory_limit_gb, args.timeout)
        row = {field: "" for field in FIELDS}
        row.update({"dataset": dataset, "interactions": size, "path": path, "model": model, "length": length,
                    "status": status, "date": str(date.today()), **measured})
        rows.append(row)
        recorded.add((dataset, path, model, str(length)))
        write_rows(csv_path, rows)
        print(f"{dataset} {path} {model} L={length}: {status} "
              + ", ".join(f"{key} {measured[key]}" for key in measured), flush=True)
    report(read_rows(csv_path), out)  # as written: every value a string
    return 0


if __name__ == "__main__":
    sys.exit(main())
