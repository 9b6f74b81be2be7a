"""What ``keep_freed_memory`` (recbole_dien.trainer.allocator) does to a training step's time, its page
faults and the process's peak memory.

    python benchmarks/freed_memory.py                                   # DIN DIEN DSIN at 50 and 200
    python benchmarks/freed_memory.py --models DIEN --lengths 50 --batches 60

For each model and MAX_ITEM_LIST_LENGTH, on ml-100k under the default protocol, one fresh process
per setting (``keep_freed_memory`` True, the default, and False, glibc's own thresholds; the two
alternate so that drift of the machine affects both): ``--warmup`` training steps, then the mean
seconds and minor page faults of the next ``--batches`` steps (forward, backward, Adam), and the
process's peak resident memory. One process at a time; run nothing else meanwhile
(``recbole-dien benchmark --pause`` pauses a running benchmark suite).
"""
import argparse
import json
import resource
import sys
import time

from recbole_dien.benchmark.harness import child_command, print_result, run_child


def measure(model, length, keep, warmup, batches):
    import model_cost

    model_cost.SETTINGS["keep_freed_memory"] = keep
    config, trainer, train, valid = model_cost.pipeline(model, length)
    steps = model_cost.timed_training_steps(trainer, train, warmup, batches)
    return {"model": model, "length": length, "keep_freed_memory": keep, "batches": len(steps),
            "step_s": sum(step["seconds"] for step in steps) / len(steps),
            "page_faults_per_step": sum(step["page_faults"] for step in steps) / len(steps),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def markdown(rows):
    lines = ["| model | MAX_ITEM_LIST_LENGTH | step s: glibc's thresholds / kept | page faults per step "
             "| peak MB |", "|---|---|---|---|---|"]
    pairs = {}
    for row in rows:
        pairs.setdefault((row["model"], row["length"]), {})[row["keep_freed_memory"]] = row
    for (model, length), pair in pairs.items():
        default, kept = pair.get(False), pair.get(True)
        if not default or not kept:
            continue
        lines.append(f"| {model} | {length} | {default['step_s']:.3f} / {kept['step_s']:.3f} "
                     f"({default['step_s'] / kept['step_s']:.2f}×) "
                     f"| {default['page_faults_per_step']:,.0f} / {kept['page_faults_per_step']:,.0f} "
                     f"| {default['peak_rss_mb']:,.0f} / {kept['peak_rss_mb']:,.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DIN", "DIEN", "DSIN"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 200])
    parser.add_argument("--warmup", type=int, default=10, help="untimed training steps first")
    parser.add_argument("--batches", type=int, default=30, help="timed training steps")
    parser.add_argument("--output", help="also write the measurements here (JSON)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a measurement may take")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.batches < 1:
        parser.error("--warmup must be >= 0 and --batches >= 1")
    if args.child:
        import recbole_dien  # noqa: F401 - the RecBole shims

        print_result(measure(**json.loads(args.child)))
        return
    rows = []
    for model in args.models:
        for length in args.lengths:
            for keep in (False, True):
                spec = {"model": model, "length": length, "keep": keep, "warmup": args.warmup,
                        "batches": args.batches}
                done = run_child(child_command(__file__, spec), timeout=args.timeout)
                if not done.ok:
                    sys.exit(f"{model} at {length}: the measurement {done.status}: {done.error}")
                rows.append(done.result)
                print(json.dumps(done.result), flush=True)
    print(markdown(rows))
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
