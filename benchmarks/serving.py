"""Serving cost of DIN, DIEN and DSIN: eager ``predict`` against the exported program.

    python benchmarks/serving.py                 # DIN DIEN DSIN on ml-100k, histories of 50
    python benchmarks/serving.py --models DIEN --output benchmarks/results/serving.json

Per model (weights as initialised: the cost does not depend on them): the median seconds of
scoring one user's 100 candidates (latency, over 30 calls after 3 warm-ups), and the seconds of
scoring 1,000 users x 100 candidates in batches of 100 users (throughput), with ``model.predict``
on RecBole ``Interaction`` rows and with the ``torch.export`` program of
:mod:`recbole_dien.serving.export` on plain tensors. One process, nothing else running.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_cost import pipeline  # noqa: E402


def rows_for(interaction, model, candidates):
    """Each user row repeated once per candidate, the candidate as its item: [U * C] rows."""
    users, count = candidates.shape
    rows = interaction.repeat_interleave(count)
    rows.update(type(rows)({model.ITEM_ID: candidates.reshape(-1)}))
    return rows


def timed(function, repeats=1):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def measure(model_name, users=1000, candidates=100, batch_users=100):
    from recbole_dien.serving import export

    config, trainer, _, valid = pipeline(model_name, 50)
    model = trainer.model.eval()
    program = export.export_model(model, config).module()
    rows = valid._dataset[torch.arange(users) % len(valid._dataset)]  # ml-100k: 943 users, some twice
    items = torch.randint(1, model.n_items, (users, candidates), generator=torch.Generator().manual_seed(0))
    time_field = getattr(model, "TIME_SEQ", None)

    def eager(u):
        return model.predict(rows_for(rows[u], model, items[u]))

    def exported(u):
        part = rows[u]
        times = part[time_field].float() if time_field else torch.zeros(part[model.ITEM_SEQ].shape)
        return program(part[model.USER_ID], part[model.ITEM_SEQ], part[model.ITEM_SEQ_LEN], times, items[u])

    one = torch.arange(1)
    batches = [torch.arange(s, s + batch_users) for s in range(0, users, batch_users)]
    result = {"model": model_name}
    for name, function in (("eager", eager), ("exported", exported)):
        timed(lambda: function(one), 3)
        result[f"{name}_latency_ms"] = 1000 * statistics.median(timed(lambda: function(one), 30))
        result[f"{name}_throughput_s"] = sum(timed(lambda: [function(b) for b in batches]))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DIN", "DIEN", "DSIN"])
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    import recbole_dien  # noqa: F401 - the RecBole shims

    results = []
    for model in args.models:
        results.append(measure(model))
        print(json.dumps(results[-1]), flush=True)
    print("| model | latency, 1 user x 100 candidates: eager / exported | 1,000 users x 100 candidates: eager / exported |")
    print("|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['eager_latency_ms']:.1f} ms / {r['exported_latency_ms']:.1f} ms "
              f"| {r['eager_throughput_s']:.2f} s / {r['exported_throughput_s']:.2f} s |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
