"""Time plugin models against RecBole's built-ins on one dataset, same split and seed.

    python benchmarks/speed.py --epochs=1 DIN recbole.DIN
    python benchmarks/speed.py --epochs=2 DIEN recbole.DIEN DIEN@recbole-hparams

Each entry runs in its own process, one after the other (two torch processes on the same cores
slow each other several-fold), and reports: train seconds per epoch, seconds of one validation
pass and of the test pass, best valid and test metrics, parameters, and the process's peak
resident memory. The table is printed as markdown (and written to --output if given).

An entry is a model name as ``run_recbole.py`` takes it, or a preset from
``recbole_dien.benchmark.PRESETS``. The measurements are those of ``recbole_dien.benchmark``
(``recbole-dien benchmark`` runs whole suites: protocols, seeds, plots).
"""
import argparse
import json
import sys

from recbole_dien.benchmark import measure
from recbole_dien.benchmark.harness import print_result, run_child


def measure_entry(entry, dataset, epochs, overrides):
    """Train and test one entry in this process; print one JSON line of measurements."""
    seed, protocol = overrides.pop("seed", 2020), overrides.pop("protocol", "default")
    print_result({"entry": entry, **measure(entry, dataset, protocol, seed, epochs, overrides)})


def markdown(rows, metric):
    lines = [
        f"| model | class | epochs | train s/epoch | valid pass s | test pass s | best valid {metric} "
        f"| test {metric} | test logloss | parameters | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['entry']} | failed: {r['error']} |" + " |" * 9)
            continue
        lines.append(
            f"| {r['entry']} | `{r['model_class']}` | {r['epochs']} | {r['train_s_per_epoch']:.1f} "
            f"| {r['valid_s']:.1f} | {r['test_s']:.1f} | {r['valid'].get(metric, float('nan')):.4f} "
            f"| {r['test'].get(metric, float('nan')):.4f} | {r['test'].get('logloss', float('nan')):.4f} "
            f"| {r['parameters']:,} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="+", help="model names or presets")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="setting applied to every entry (YAML value)")
    parser.add_argument("--output", help="also write the markdown table here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import yaml

    overrides = {"show_progress": False}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    if args.child:
        measure_entry(args.entries[0], args.dataset, args.epochs, overrides)
        return

    rows = []
    for entry in args.entries:
        print(f"[{len(rows) + 1}/{len(args.entries)}] {entry} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--child", f"--dataset={args.dataset}", f"--epochs={args.epochs}",
                   *[f"--set={item}" for item in args.set], entry]
        done = run_child(command, error_chars=200)
        rows.append(done.result if done.ok else {"entry": entry, "error": done.error})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = markdown(rows, "auc")
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
