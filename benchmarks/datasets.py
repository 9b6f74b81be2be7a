"""What the papers' datasets cost at their real sizes, on synthetic raw files in their public layouts.

    python benchmarks/datasets.py                         # alimama (26.6M impressions) and taobao (100M rows)
    python benchmarks/datasets.py --scale 0.001           # the same at 1/1000, in minutes
    python benchmarks/datasets.py --layouts taobao --models DIEN --behaviours 300000000
    python benchmarks/datasets.py --table                 # the Markdown table of the last results
    python benchmarks/datasets.py --table --results a.json b.json --write-doc docs/datasets.md

For each layout, one fresh process per step (``recbole_dien.benchmark.harness``: its wall time,
its peak resident memory, stopped above ``--memory-limit-gb``):

1. ``generate``: synthetic raw files in the layout (``recbole-dien synthetic --layout``), into
   ``--work``/<layout>/raw: alimama's four CSVs with ``--impressions`` impressions and
   ``--behaviours`` behaviours (the real behavior_log has about 700M; as many as fit), or taobao's
   UserBehavior.csv with ``--taobao-rows`` rows;
2. ``convert``: the converter (``python -m recbole_dien.datasets <layout>``) into ``--work``/<layout>/data;
3. per model of ``--models``: the dataset built as a run builds it (``recbole_dien.create_dataset``
   and RecBole's ``data_preparation`` under the converted dataset's own config; ``build_s``, and the
   peak resident memory at the end of the build, ``build_peak_gb``), then ``--train-batches``
   training batches after one warm-up (``train_rows_s``: batch rows per second, batch building
   included).

A step that fails or is stopped skips the steps that need it. Results: ``--out`` (JSON, rewritten
after every step; the command, date, machine and every figure). ``--table`` prints them as the
Markdown table docs/datasets.md holds (``--write-doc FILE`` replaces the table between its
``<!-- datasets-benchmark -->`` markers). Nothing else should run meanwhile.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_cost, also when run from elsewhere

from model_cost import peak_gb  # noqa: E402

from recbole_dien.benchmark.harness import child_command, print_result, run_child  # noqa: E402

REAL = {"impressions": 26_557_961, "behaviours": 100_000_000, "taobao_rows": 100_150_807}
LAYOUTS = ("alimama", "taobao")
MARKER_START, MARKER_END = "<!-- datasets-benchmark:start -->", "<!-- datasets-benchmark:end -->"


def folder_mb(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20


# --- the child: one step ---------------------------------------------------------------------------

def generate_step(spec):
    from recbole_dien.datasets import synthetic_raw

    start = time.perf_counter()
    options = {"behaviours": spec["behaviours"]} if spec["layout"] == "alimama" else {}
    written = synthetic_raw.generate(spec["layout"], spec["raw"], spec["rows"], seed=spec["seed"], **options)
    return {"seconds": round(time.perf_counter() - start, 1), "peak_gb": round(peak_gb(), 2),
            "raw_mb": round(folder_mb(spec["raw"]), 1),
            **{key: value for key, value in written.items() if key != "files"}}


def convert_step(spec):
    from recbole_dien.datasets import convert

    start = time.perf_counter()
    report = convert.convert(spec["layout"], spec["raw"], spec["data"])
    return {"seconds": round(time.perf_counter() - start, 1), "peak_gb": round(peak_gb(), 2),
            "dataset": report.dataset, "config_file": report.config_file,
            "atomic_mb": round(folder_mb(report.folder), 1), "written": report.written, "notes": report.notes,
            "raw": report.as_dict()["raw"]}


def train_step(spec):
    from model_cost import build_then_train

    settings = {"data_path": spec["data"], "train_batch_size": spec["batch_size"]}
    measured, config, train_data, _, _ = build_then_train(spec["model"], spec["dataset"], settings,
                                                          [spec["config_file"]], spec["train_batches"])
    return {**measured, "peak_gb": round(peak_gb(), 2), "training_rows": len(train_data.dataset),
            "history_length": config["MAX_ITEM_LIST_LENGTH"]}


STEPS = {"generate": generate_step, "convert": convert_step, "train": train_step}


# --- the parent ------------------------------------------------------------------------------------

def plan(args):
    """(layout, rows, behaviours) of each log to measure."""
    scaled = {key: max(1, round(value * args.scale)) for key, value in
              {"impressions": args.impressions, "behaviours": args.behaviours, "taobao_rows": args.taobao_rows}.items()}
    logs = []
    for layout in args.layouts:
        if layout == "alimama":
            logs.append(("alimama", scaled["impressions"], scaled["behaviours"]))
        else:
            logs.append(("taobao", scaled["taobao_rows"], None))
    return logs


def run_step(spec, args):
    """The step's record: status, wall seconds, the harness's peak memory, and what the child measured."""
    started = time.perf_counter()
    done = run_child(child_command(__file__, spec), timeout=args.timeout, memory_limit_gb=args.memory_limit_gb)
    record = {"status": done.status, "wall_s": round(time.perf_counter() - started, 1), "watched_peak_gb": done.peak_gb}
    if done.ok:
        record.update(done.result)
    else:
        record["error"] = done.error
    return record


def measure(args):
    results = {"command": "python benchmarks/datasets.py " + " ".join(args.argv), "date": str(date.today()),
               "machine": {"node": platform.node(), "cores": os.cpu_count(),
                           "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
                           "python": platform.python_version()},
               "memory_limit_gb": args.memory_limit_gb, "logs": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for layout, rows, behaviours in plan(args):
        work = Path(args.work) / layout
        raw, data = work / "raw", work / "data"
        for folder in (raw, data):
            shutil.rmtree(folder, ignore_errors=True)
        log = {"layout": layout, "rows": rows, "behaviours": behaviours, "steps": {}}
        results["logs"].append(log)
        base = {"layout": layout, "raw": str(raw), "data": str(data)}
        steps = [("generate", {**base, "step": "generate", "rows": rows, "behaviours": behaviours, "seed": args.seed}),
                 ("convert", {**base, "step": "convert"})]
        for name, spec in steps:
            log["steps"][name] = run_step(spec, args)
            out.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{layout} {name}: {summary(log['steps'][name])}", flush=True)
            if log["steps"][name]["status"] != "ok":
                break
        else:
            converted = log["steps"]["convert"]
            if args.remove_raw:
                shutil.rmtree(raw, ignore_errors=True)
            for model in args.models:
                spec = {**base, "step": "train", "model": model, "dataset": converted["dataset"],
                        "config_file": converted["config_file"], "train_batches": args.train_batches,
                        "batch_size": args.batch_size}
                log["steps"][model] = run_step(spec, args)
                out.write_text(json.dumps(results, indent=1) + "\n")
                print(f"{layout} {model}: {summary(log['steps'][model])}", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


def summary(record):
    if record["status"] != "ok":
        return f"{record['status']}: {record.get('error', '')}"
    keys = ("seconds", "peak_gb", "build_s", "build_peak_gb", "train_rows_s", "raw_mb", "atomic_mb")
    return ", ".join(f"{key} {record[key]}" for key in keys if key in record)


def table(results):
    """The Markdown table of a results file: one row per log and step."""
    lines = [f"Measured {results['date']} with `{results['command']}` on {results['machine']['cores']} cores, "
             f"{results['machine']['memory_gb']} GB; each step a fresh process, stopped above "
             f"{results['memory_limit_gb']:g} GB.", "",
             "| log | step | status | seconds | peak memory (GB) | training rows/s | sizes |",
             "|---|---|---|---|---|---|---|"]
    for log in results["logs"]:
        rows = f"{log['rows']:,} rows" + (f", {log['behaviours']:,} behaviours" if log["behaviours"] else "")
        for step, record in log["steps"].items():
            if record["status"] != "ok":
                lines.append(f"| {log['layout']} ({rows}) | {step} | {record['status']}: {record.get('error', '')} "
                             f"| {record['wall_s']} | {record['watched_peak_gb']} | | |")
                continue
            if step in ("generate", "convert"):
                size = (f"raw files {record['raw_mb']:,} MB" if step == "generate"
                        else f"atomic files {record['atomic_mb']:,} MB")
                lines.append(f"| {log['layout']} ({rows}) | {step} | ok | {record['seconds']} | {record['peak_gb']} "
                             f"| | {size} |")
            else:
                lines.append(f"| {log['layout']} ({rows}) | {step}: build; training | ok | {record['build_s']} | "
                             f"{record['build_peak_gb']} built; "
                             f"{max(record['peak_gb'], record['watched_peak_gb'])} whole step | "
                             f"{record['train_rows_s']:,} | "
                             f"{record['training_rows']:,} training rows, history {record['history_length']}, "
                             f"{record['train_batches']} batches timed |")
    return "\n".join(lines) + "\n"


def write_doc(path, text):
    """Replace the table between the markers of ``path`` with ``text``."""
    document = Path(path).read_text(encoding="utf-8")
    if MARKER_START not in document or MARKER_END not in document:
        raise SystemExit(f"{path}: no {MARKER_START} ... {MARKER_END} markers around the table to replace")
    before, rest = document.split(MARKER_START, 1)
    _, after = rest.split(MARKER_END, 1)
    Path(path).write_text(f"{before}{MARKER_START}\n{text}{MARKER_END}{after}", encoding="utf-8")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="*", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--impressions", type=int, default=REAL["impressions"], help="alimama's raw_sample rows")
    parser.add_argument("--behaviours", type=int, default=REAL["behaviours"], help="alimama's behavior_log rows")
    parser.add_argument("--taobao-rows", type=int, default=REAL["taobao_rows"], help="UserBehavior.csv rows")
    parser.add_argument("--scale", type=float, default=1.0, help="every size times this (e.g. 0.001)")
    parser.add_argument("--models", nargs="*", default=["DIN", "DIEN", "DSIN"])
    parser.add_argument("--train-batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--work", default="data/benchmark-datasets", help="where raw and converted files go")
    parser.add_argument("--keep", action="store_true", help="keep the files of --work afterwards")
    parser.add_argument("--remove-raw", action="store_true", help="delete the raw files once converted (disk)")
    parser.add_argument("--out", default="benchmarks/results/datasets.json")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per step")
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    parser.add_argument("--results", nargs="+", help="with --table: these results files' tables, one after the "
                        "other (default: --out)")
    parser.add_argument("--write-doc", help="with --table: replace the table in this Markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print_result(STEPS[spec["step"]](spec))
        return 0
    if args.table:
        text = "\n".join(table(json.loads(Path(path).read_text())) for path in args.results or [args.out])
        if args.write_doc:
            write_doc(args.write_doc, text)
        print(text, end="")
        return 0
    args.argv = argv
    measure(args)
    print(table(json.loads(Path(args.out).read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
