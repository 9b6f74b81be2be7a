"""Serving cost of DIN, DIEN and DSIN: eager ``predict``, the ``torch.export`` program and ONNX
Runtime, each also with int8 linear layers.

    python benchmarks/serving.py --output benchmarks/results/serving.json     # everything: 18 measurements
    python benchmarks/serving.py --models DIEN --backends eager onnx onnx-int8
    python benchmarks/serving.py --requests 20 --users 40 --candidates 10     # a quick check that it runs

Per model (ml-100k, histories of 50; weights as initialised: the cost does not depend on them) and
backend, in a fresh process each (:mod:`recbole_dien.benchmark.harness`):

* latency: one user's ``--candidates`` (100) candidates per request, ``--requests`` (1,000)
  requests after 20 warm-up ones, each a different user; p50 and p99 in milliseconds;
* throughput: ``--users`` (1,000) users x 100 candidates in batches of ``--batch-users`` (100)
  users, one warm-up pass then ``--passes`` (5) timed ones; the median pass's seconds, and (user,
  candidate) pairs per second (each pass's seconds are kept: on this shared machine a single
  pass has varied by a quarter between runs, and a first pass pays the runtimes' allocations).

Backends: ``eager`` is ``model.predict`` on RecBole ``Interaction`` rows (each user's row repeated
once per candidate); ``torch-export`` and ``onnx`` are the programs ``recbole-dien export`` writes,
called through :class:`recbole_dien.serving.Scorer` on the dataset's ids (``score_ids``: the input
checks and the request's feature rows included); ``-int8`` quantises the linear layers
(:mod:`recbole_dien.serving.quantize`: torch's ``quantize_dynamic`` for ``eager-int8``, the
``torch._int_mm`` layer for ``torch-export-int8``, ONNX Runtime's own for ``onnx-int8``). ml-100k has 943
users, so some are scored twice. torch and ONNX Runtime use ``--threads`` threads (default: torch's
default, the machine's cores). Run nothing else meanwhile.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_cost import pipeline  # noqa: E402

from recbole_dien.benchmark.harness import child_command, print_phase, print_result, run_child  # noqa: E402

BACKENDS = ("eager", "eager-int8", "torch-export", "torch-export-int8", "onnx", "onnx-int8")
WARMUP = 20


def rows_for(interaction, model, candidates):
    """Each user row repeated once per candidate, the candidate as its item: [U * C] rows."""
    users, count = candidates.shape
    rows = interaction.repeat_interleave(count)
    rows.update(type(rows)({model.ITEM_ID: candidates.reshape(-1)}))
    return rows


def scorer_function(model, dataset, backend, threads, folder, pairs_per_call=None):
    """score(rows, candidates) for a program backend: the Scorer on the rows' ids."""
    from recbole_dien.serving import Scorer, export, quantize
    from recbole_dien.serving.scorer import _onnx_program

    module = export.ServingModule(model, dataset)
    metadata = export.serving_metadata(module, dataset, backend)
    if backend.startswith("torch-export"):
        module = export.int8_module(module) if backend.endswith("int8") else module
        program = export.export_program(module).module()
    else:
        path = Path(folder) / "model.onnx"
        export.export_onnx(export.export_program(module), module, path)
        if backend.endswith("int8"):
            quantize.quantize_onnx(path, Path(folder) / "model-int8.onnx")
            path = Path(folder) / "model-int8.onnx"
        program = _onnx_program(path, metadata["inputs"], threads)
    scorer = Scorer.from_program(program, metadata, pairs_per_call)
    time_field = getattr(model, "TIME_SEQ", None)

    def score(rows, candidates):
        times = rows[time_field] if time_field else None
        return scorer.score_ids(rows[model.USER_ID], rows[model.ITEM_SEQ], rows[model.ITEM_SEQ_LEN], times, candidates)

    return score


def eager_function(model, backend, rows):
    from recbole_dien.serving import quantize

    if backend == "eager-int8":
        model = quantize.quantize_eager(model, (rows[:8],))

    def score(part, candidates):
        return model.predict(rows_for(part, model, candidates)).view(candidates.shape)

    return score


@torch.no_grad()
def measure(model, backend, requests=1000, users=1000, candidates=100, batch_users=100, length=50, threads=None,
            pairs_per_call=None, passes=5):
    """One (model, backend): latency percentiles and throughput (see the module docstring)."""
    import recbole_dien  # noqa: F401 - the RecBole shims

    if threads:
        torch.set_num_threads(threads)
    print_phase("data")
    config, trainer, _, valid = pipeline(model, length)
    net = trainer.model.eval()
    dataset = valid._dataset
    rows = dataset[torch.arange(max(users, requests + WARMUP)) % len(dataset)]
    items = torch.randint(1, net.n_items, (len(rows), candidates), generator=torch.Generator().manual_seed(0))
    print_phase("build")
    with tempfile.TemporaryDirectory() as folder:
        if backend.startswith("eager"):
            score = eager_function(net, backend, rows)
        else:
            score = scorer_function(net, dataset, backend, threads, folder, pairs_per_call)
        print_phase("latency")
        latencies = []
        for request in range(requests + WARMUP):
            one = torch.tensor([request])
            start = time.perf_counter()
            score(rows[one], items[one])
            if request >= WARMUP:
                latencies.append(time.perf_counter() - start)
        print_phase("throughput")
        pass_seconds = []
        for timed in range(passes + 1):                                  # pass 0 warms up
            start = time.perf_counter()
            for first in range(0, users, batch_users):
                batch = torch.arange(first, min(first + batch_users, users))
                score(rows[batch], items[batch])
            if timed:
                pass_seconds.append(time.perf_counter() - start)
        seconds = statistics.median(pass_seconds)
    percentiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"model": model, "backend": backend, "requests": requests, "candidates": candidates, "users": users,
            "batch_users": batch_users, "threads": torch.get_num_threads(),
            "pairs_per_call": None if backend.startswith("eager") else pairs_per_call,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * percentiles[98],
            "throughput_s": seconds, "pass_s": pass_seconds, "pairs_per_s": users * candidates / seconds}


def onnxruntime_version():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def table(results):
    lines = ["| model | backend | p50 ms | p99 ms | 1,000 users x 100: s (median pass) | pairs/s |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['error']} | | | |")
            continue
        lines.append(f"| {r['model']} | {r['backend']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                     f"| {r['throughput_s']:.2f} | {r['pairs_per_s']:,.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DIN", "DIEN", "DSIN"])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--requests", type=int, default=1000, help="latency: requests of one user (default 1000)")
    parser.add_argument("--users", type=int, default=1000, help="throughput: users (default 1000)")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per user (default 100)")
    parser.add_argument("--batch-users", type=int, default=100, help="throughput: users per call (default 100)")
    parser.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's default)")
    parser.add_argument("--pairs-per-call", type=int, help="programs: (user, candidate) pairs per call of the "
                        "program (default: the Scorer's)")
    parser.add_argument("--passes", type=int, default=5, help="throughput: timed passes after a warm-up one; "
                        "the median counts (default 5)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error(f"--passes must be at least 1, not {args.passes}")
    if args.child:
        print_result(measure(**json.loads(args.child)))
        return 0
    results = []
    for model in args.models:
        for backend in args.backends:
            spec = {"model": model, "backend": backend, "requests": args.requests, "users": args.users,
                    "candidates": args.candidates, "batch_users": args.batch_users, "threads": args.threads,
                    "pairs_per_call": args.pairs_per_call, "passes": args.passes}
            done = run_child(child_command(__file__, spec), timeout=args.timeout)
            results.append(done.result if done.ok else {"model": model, "backend": backend, "error": done.error})
            print(json.dumps(results[-1]), flush=True)
    print(table(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "onnxruntime": onnxruntime_version(),
                       "command": " ".join(sys.argv), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
