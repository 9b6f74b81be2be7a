"""The plugin's DIEN against hopwise's own DIEN, both inside hopwise, same protocol and seed.

    python benchmarks/hosts.py                      # one epoch on ml-100k (ships inside hopwise)
    python benchmarks/hosts.py --epochs=2 --output=benchmarks/results/hosts.json

Needs a virtualenv with hopwise (``pip install -e ".[hopwise]"``). Each entry runs in its own
process (:mod:`recbole_dien.benchmark.harness`), one after the other: ``DIEN`` is the plugin's
model (``recbole_dien.hopwise.DIEN``: its props, its DIENDataset on the lean path), ``hopwise.DIEN``
hopwise's (its DIEN.yaml, its DIENDataset). Both get the plugin's ``Config`` on hopwise's, so the
dataset's protocol (``dataset_configs/<dataset>.yaml``: leave-one-out by time, each target against
100 items the user never rated) and every other setting are the same, and hopwise's data
preparation, dataloaders and ``Trainer``. Reported per entry: training seconds per epoch (no
validation in them), seconds of one validation pass and of the test pass, valid and test AUC
and log loss after the last epoch, trainable parameters, the process's peak resident memory.
"""
import argparse
import json
import sys
import tempfile
import time

from recbole_dien.benchmark.harness import print_phase, print_result, run_child

ENTRIES = ("DIEN", "hopwise.DIEN")


def measure_entry(entry, dataset, epochs, settings):
    """Train ``entry`` for ``epochs`` in hopwise, validate and test; print one JSON line."""
    import recbole_dien.hopwise as plugin
    from hopwise.data import data_preparation
    from hopwise.utils import get_trainer, init_seed

    with tempfile.TemporaryDirectory(prefix="recbole-dien-hosts-") as folder:
        settings = {"show_progress": False, "checkpoint_dir": folder, **settings, "epochs": epochs}
        config = plugin.Config(entry, dataset, config_dict=settings, cmd_args=[])
        init_seed(config["seed"], config["reproducibility"])
        print_phase("data")
        started = time.perf_counter()
        train_data, valid_data, test_data = data_preparation(config, plugin.create_dataset(config))
        build_s = time.perf_counter() - started
        init_seed(config["seed"], config["reproducibility"])
        model = config.model_class(config, train_data.dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        train_s = []
        for epoch in range(epochs):
            print_phase(f"train epoch {epoch}")
            started = time.perf_counter()
            trainer._train_epoch(train_data, epoch, show_progress=False)
            train_s.append(time.perf_counter() - started)
        print_phase("valid")
        started = time.perf_counter()
        valid = trainer.evaluate(valid_data, load_best_model=False)
        valid_s = time.perf_counter() - started
        print_phase("test")
        started = time.perf_counter()
        test = trainer.evaluate(test_data, load_best_model=False)
        test_s = time.perf_counter() - started
    print_result({"entry": entry, "model_class": f"{type(model).__module__}.{type(model).__name__}",
                  "dataset_class": f"{type(train_data.dataset).__module__}.{type(train_data.dataset).__name__}",
                  "epochs": epochs, "train_batches": len(train_data), "build_s": round(build_s, 2),
                  "train_s_per_epoch": round(sum(train_s) / epochs, 2), "valid_s": round(valid_s, 2),
                  "test_s": round(test_s, 2), "valid": {k: float(v) for k, v in valid.items()},
                  "test": {k: float(v) for k, v in test.items()},
                  "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                  "embedding_size": config["embedding_size"]})


def markdown(rows):
    lines = ["| model (in hopwise) | epochs | train s/epoch | valid pass s | test pass s | valid AUC | test AUC "
             "| test logloss | parameters | peak RSS GB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['entry']} | failed: {r['error']} |" + " |" * 8)
            continue
        lines.append(f"| `{r['entry']}` | {r['epochs']} | {r['train_s_per_epoch']:.1f} | {r['valid_s']:.1f} "
                     f"| {r['test_s']:.1f} | {r['valid']['auc']:.4f} | {r['test']['auc']:.4f} "
                     f"| {r['test']['logloss']:.4f} | {r['parameters']:,} | {r['peak_gb']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="*", default=list(ENTRIES), help=f"models (default: {' '.join(ENTRIES)})")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--config-file", help="a YAML file of settings applied to every entry")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one entry may take")
    parser.add_argument("--output", help="also write the rows as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import yaml

    settings = {}
    if args.config_file:
        with open(args.config_file, encoding="utf-8") as f:
            settings = yaml.safe_load(f) or {}
    if args.child:
        measure_entry(args.child, args.dataset, args.epochs, settings)
        return 0

    rows = []
    for entry in args.entries:
        print(f"[{len(rows) + 1}/{len(args.entries)}] {entry} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, f"--child={entry}", f"--dataset={args.dataset}",
                   f"--epochs={args.epochs}", *([f"--config-file={args.config_file}"] if args.config_file else [])]
        done = run_child(command, timeout=args.timeout, error_chars=200)
        rows.append({**done.result, "peak_gb": done.peak_gb} if done.ok else {"entry": entry, "error": done.error})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(markdown(rows))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"command": " ".join(["python", "benchmarks/hosts.py", *(argv or sys.argv[1:])]),
                       "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
