"""Time plugin models against RecBole's built-ins on one dataset, same split and seed.

    python benchmarks/speed.py --epochs=1 DIN recbole.DIN
    python benchmarks/speed.py --epochs=2 DIEN recbole.DIEN DIEN@recbole-hparams

Each entry runs in its own process, one after the other (two torch processes on the same cores
slow each other several-fold), and reports: train seconds per epoch, seconds of one validation
pass and of the test pass, best valid and test metrics, parameters, and the process's peak
resident memory. The table is printed as markdown (and written to --output if given).

An entry is a model name as ``run_recbole.py`` takes it, or a preset from PRESETS.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

# Plugin models at the hyper-parameters of RecBole's built-in of the same name (its
# properties/model/<Model>.yaml): one embedding width and one MLP shape for every tower.
RECBOLE_SIZES = {"embedding_size": 10, "attention_mlp_sizes": [256, 256, 256], "mlp_hidden_size": [256, 256, 256]}
PRESETS = {
    "DIN@recbole-hparams": ("DIN", RECBOLE_SIZES),
    # RecBole's DIEN also reuses the 256-256-256 MLP, without non-linearity, as its auxiliary net
    "DIEN@recbole-hparams": ("DIEN", {**RECBOLE_SIZES, "aux_mlp_sizes": [256, 256, 256], "aux_activation": "none"}),
}


def resolve(entry):
    return PRESETS.get(entry, (entry, {}))


def run_child(entry, dataset, epochs, overrides):
    """Train and test one entry in this process; print one JSON line of measurements."""
    from recbole.data import data_preparation
    from recbole.utils import get_trainer, init_logger, init_seed

    from recbole_dien import Config, create_dataset

    model_name, preset = resolve(entry)
    config = Config(model_name, dataset, config_dict={**preset, **overrides, "epochs": epochs}, cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    data = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    timings = {"train": [], "valid": []}

    def timed(kind, method):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = method(*args, **kwargs)
            timings[kind].append(time.perf_counter() - start)
            return result
        return wrapper

    trainer._train_epoch = timed("train", trainer._train_epoch)
    trainer._valid_epoch = timed("valid", trainer._valid_epoch)
    _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
    start = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    test_seconds = time.perf_counter() - start
    print(json.dumps({
        "entry": entry,
        "model_class": f"{config.model_class.__module__}.{config.model_class.__name__}",
        "epochs": len(timings["train"]),
        "train_s_per_epoch": sum(timings["train"]) / len(timings["train"]),
        "valid_s": sum(timings["valid"]) / max(len(timings["valid"]), 1),
        "test_s": test_seconds,
        "best_valid": dict(best_valid),
        "test": dict(test),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


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
            f"| {r['valid_s']:.1f} | {r['test_s']:.1f} | {r['best_valid'].get(metric, float('nan')):.4f} "
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
        run_child(args.entries[0], args.dataset, args.epochs, overrides)
        return

    rows = []
    for entry in args.entries:
        print(f"[{len(rows) + 1}/{len(args.entries)}] {entry} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--child", f"--dataset={args.dataset}", f"--epochs={args.epochs}",
                   *[f"--set={item}" for item in args.set], entry]
        done = subprocess.run(command, capture_output=True, text=True, cwd=os.getcwd())
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            rows.append({"entry": entry, "error": (done.stderr.strip().splitlines() or ["?"])[-1][:200]})
        else:
            rows.append(json.loads(lines[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = markdown(rows, "auc")
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
