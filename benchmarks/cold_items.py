"""Items never seen in training: which unknown-item vector scores them best.

    python benchmarks/cold_items.py --output benchmarks/results/cold_items.json
    python benchmarks/cold_items.py --models DIN DIEN --dropouts 0 0.05 0.1 --seeds 2020 2021

A random ``--held-out`` share (10%) of ml-100k's rated items is removed from the data entirely (its
ratings and its row of ``ml-100k.item``), and each model is trained on the rest under the labelled
CTR protocol (``dataset_configs/ml-100k-labeled.yaml``: rating >= 4 is a click, each user's rows
80/10/10 by time) for ``--epochs`` epochs, with ``unknown_id_dropout`` 0 and each of ``--dropouts``.

The cold rows: of each user's full log ordered by time, the last 10% of the ratings (at least one)
whose item is held out, labelled as the protocol labels them, each with the user's earlier ratings
as its history. They are scored through :class:`recbole_dien.serving.Scorer` from raw tokens, as a
serving request would be: the held-out candidate from its side features (release year, genres),
its id part the unknown-item vector, held-out items of the history dropped. Per trained model the
AUC of the cold rows with the ``mean`` vector (the mean id embedding) and, where the model trained
one (``unknown_id_dropout`` > 0), the ``learned`` vector; and the model's test AUC on its own
split (the items it knows), to show what the dropout costs them. One process per trained model.
"""
import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recbole_dien.benchmark.harness import child_command, print_phase, print_result, run_child  # noqa: E402

DATASET = "ml-100k-cold"
CLICK_RATING = 4  # dataset_configs/ml-100k-labeled.yaml: threshold {rating: 4}


def source_folder():
    import recbole

    return Path(recbole.__file__).parent / "dataset_example" / "ml-100k"


def read_atomic(path):
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = lines[0].split("\t")
    return header, [line.split("\t") for line in lines[1:] if line]


def write_cold_dataset(folder, held_out_share, seed):
    """ml-100k without a random ``held_out_share`` of its rated items, in ``folder/ml-100k-cold``;
    returns the held-out item tokens."""
    source = source_folder()
    inter_header, inter = read_atomic(source / "ml-100k.inter")
    item_header, items = read_atomic(source / "ml-100k.item")
    rated = sorted({row[1] for row in inter}, key=int)
    held_out = set(random.Random(seed).sample(rated, round(held_out_share * len(rated))))
    target = Path(folder) / DATASET
    target.mkdir(parents=True, exist_ok=True)
    for name, header, rows in (("inter", inter_header, inter), ("item", item_header, items)):
        kept = [row for row in rows if row[inter_header.index("item_id:token") if name == "inter" else 0] not in held_out]
        text = "\n".join(["\t".join(header)] + ["\t".join(row) for row in kept]) + "\n"
        (target / f"{DATASET}.{name}").write_text(text, encoding="utf-8")
    (target / f"{DATASET}.user").write_text((source / "ml-100k.user").read_text(encoding="utf-8"), encoding="utf-8")
    return sorted(held_out, key=int)


def cold_requests(held_out, test_share=0.1):
    """The cold rows as raw requests, with their labels (see the module docstring)."""
    from recbole_dien.serving import Request

    source = source_folder()
    _, inter = read_atomic(source / "ml-100k.inter")
    item_header, items = read_atomic(source / "ml-100k.item")
    year, genres = item_header.index("release_year:token"), item_header.index("class:token_seq")
    features = {row[0]: {"release_year": row[year], "class": row[genres].split()} for row in items}
    log = defaultdict(list)
    for user, item, rating, timestamp in inter:
        log[user].append((float(timestamp), item, float(rating)))
    held = set(held_out)
    requests, labels = [], []
    for user, rows in log.items():
        rows.sort(key=lambda row: row[0])  # stable: ties keep the file's order
        first_test = len(rows) - max(1, int(test_share * len(rows)))
        for position in range(max(first_test, 1), len(rows)):
            timestamp, item, rating = rows[position]
            if item not in held:
                continue
            history = rows[:position]
            requests.append(Request(user=user, history=[h[1] for h in history], times=[h[0] for h in history],
                                    candidates=[item], item_features={item: features[item]}))
            labels.append(1.0 if rating >= CLICK_RATING else 0.0)
    return requests, labels


def measure(model, dropout, seed, epochs, data_path, held_out):
    """Train one model on the cold dataset; the AUCs of the cold rows and its own test AUC."""
    import glob

    import torch

    from recbole_dien import load_data_and_model, run
    from recbole_dien.serving import Scorer, export
    from recbole_dien.utils.resources import dataset_config_file

    with tempfile.TemporaryDirectory() as saved:
        print_phase("train")
        settings = {"data_path": data_path, "epochs": epochs, "unknown_id_dropout": dropout, "seed": seed,
                    "show_progress": False, "state": "WARNING", "checkpoint_dir": saved}
        files = [str(dataset_config_file("ml-100k")), str(dataset_config_file("ml-100k", "labeled"))]
        result = run(model, DATASET, config_file_list=files, config_dict=settings, cmd_args=[])
        (checkpoint,) = glob.glob(f"{saved}/{model}-*.pth")
        print_phase("score")
        _, net, dataset, _, _, _ = load_data_and_model(checkpoint)
    requests, labels = cold_requests(held_out)
    labels = torch.tensor(labels)
    measured = {"model": model, "unknown_id_dropout": dropout, "seed": seed, "epochs": epochs,
                "test_auc_known_items": float(result["test_result"]["auc"]), "cold_rows": len(requests),
                "cold_clicks": int(labels.sum())}
    for vector in (["mean", "learned"] if dropout > 0 else ["mean"]):
        module = export.ServingModule(net, dataset, vector)
        scorer = Scorer.from_program(module, export.serving_metadata(module, dataset, "eager"))
        scores = torch.cat([scorer.score(requests[s:s + 256]).probabilities[:, 0] for s in range(0, len(requests), 256)])
        measured[f"cold_auc_{vector}"] = export.auc(scores, labels)
    return measured


def table(results):
    lines = ["| model | unknown_id_dropout | seed | cold AUC, mean vector | cold AUC, learned vector | "
             "test AUC (known items) |", "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['unknown_id_dropout']} | {r['seed']} | {r['error']} | | |")
            continue
        learned = f"{r['cold_auc_learned']:.4f}" if "cold_auc_learned" in r else "-"
        lines.append(f"| {r['model']} | {r['unknown_id_dropout']} | {r['seed']} | {r['cold_auc_mean']:.4f} | "
                     f"{learned} | {r['test_auc_known_items']:.4f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DIN"])
    parser.add_argument("--dropouts", nargs="+", type=float, default=[0.1],
                        help="unknown_id_dropout values to train besides 0 (default 0.1)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--held-out", type=float, default=0.1, help="share of the rated items held out (default 0.1)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per trained model")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_result(measure(**json.loads(args.child)))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as data_path:
        for seed in args.seeds:
            held_out = write_cold_dataset(data_path, args.held_out, seed)
            for model in args.models:
                for dropout in [0.0] + [d for d in args.dropouts if d > 0]:
                    spec = {"model": model, "dropout": dropout, "seed": seed, "epochs": args.epochs,
                            "data_path": data_path, "held_out": held_out}
                    done = run_child(child_command(__file__, spec), timeout=args.timeout)
                    results.append(done.result if done.ok else
                                   {"model": model, "unknown_id_dropout": dropout, "seed": seed, "error": done.error})
                    print(json.dumps(results[-1]), flush=True)
    print(table(results))
    ok = [r for r in results if "error" not in r]
    for key in ("cold_auc_mean", "cold_auc_learned", "test_auc_known_items"):
        values = [r[key] for r in ok if key in r and r["unknown_id_dropout"] > 0]
        if len(values) > 1:
            print(f"mean over the dropout runs, {key}: {statistics.mean(values):.4f}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "held_out": args.held_out,
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
