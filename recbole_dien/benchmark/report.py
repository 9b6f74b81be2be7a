"""The suite's report: ``results.md``'s tables (mean +- std over seeds, time to quality)."""
from collections import OrderedDict
from statistics import mean, stdev

from recbole_dien.benchmark.runs import history, number
from recbole_dien.benchmark.plan import DEFAULT_MODELS

TIMING_COLUMNS = [("epochs", "epochs", "{:.1f}"), ("best_epoch", "best epoch", "{:.1f}"),
                  ("train_s_per_epoch", "train s/epoch", "{:.1f}"), ("valid_s", "valid pass s", "{:.1f}"),
                  ("parameters", "parameters", "{:,.0f}"), ("peak_rss_mb", "peak RSS MB", "{:.0f}")]
# the model whose best validation score the others race to (the headline)
REFERENCE_MODEL = "recbole.DIEN"
SMALLER_IS_BETTER = ("logloss",)


def mean_std(values, fmt, spread=True):
    values = [v for v in map(number, values) if v is not None]
    if not values:
        return "—"
    if len(values) == 1 or not spread:
        return fmt.format(values[0]) if len(set(values)) == 1 else fmt.format(mean(values))
    return f"{fmt.format(mean(values))} ± {fmt.format(stdev(values))}"


def metric_order(metric):
    order = ["auc", "gauc", "labeledgauc", "logloss", "hit@10", "ndcg@10", "mrr@10"]
    return (order.index(metric) if metric in order else len(order), metric)


def metric_columns(runs):
    return sorted({k[5:] for run in runs for k, v in run.items() if k.startswith("test:") and v not in ("", None)},
                  key=metric_order)


def summarize(runs):
    """Per (settings, protocol) in first-seen order, per model (the default models in their order,
    then the others as first seen): the model's runs."""
    table = OrderedDict()
    for run in runs:
        table.setdefault((run["settings"], run["protocol"]), OrderedDict()).setdefault(run["model"], []).append(run)

    def model_order(model):
        return DEFAULT_MODELS.index(model) if model in DEFAULT_MODELS else len(DEFAULT_MODELS)

    return OrderedDict((group, OrderedDict(sorted(by_model.items(), key=lambda item: model_order(item[0]))))
                       for group, by_model in table.items())


def successful(by_model):
    """The models with at least one successful run, and those runs."""
    ok = OrderedDict((model, [r for r in runs if r["status"] == "ok"]) for model, runs in by_model.items())
    return OrderedDict((model, runs) for model, runs in ok.items() if runs)


def _better_or_equal(value, target, metric):
    return value <= target if metric in SMALLER_IS_BETTER else value >= target


def time_to_quality(by_model, reference=REFERENCE_MODEL):
    """How long each model trains until its validation score first reaches the reference model's
    best one (mean over the reference's seeds).

    Returns (metric, target, {model: {"reached": k, "seeds": n, "train_s": [..], "epochs": [..]}}),
    or None when the reference has no successful run with a recorded history.
    """
    ok = successful(by_model)
    reference_runs = [r for r in ok.get(reference, []) if history(r)]
    if not reference_runs:
        return None
    metric = reference_runs[0]["valid_metric"]
    target = mean(number(r[f"valid:{metric}"]) for r in reference_runs)
    results = OrderedDict()
    for model, runs in ok.items():
        runs = [r for r in runs if history(r)]
        if not runs:
            continue
        reached = []
        for run in runs:
            first = next((h for h in history(run) if _better_or_equal(h["valid"], target, metric)), None)
            if first is not None:
                reached.append(first)
        results[model] = {"reached": len(reached), "seeds": len(runs),
                          "train_s": [h["train_s"] for h in reached], "epochs": [h["epoch"] for h in reached]}
    return metric, target, results


def _seconds(value):
    return f"{value / 60:.1f} min" if value >= 600 else f"{value:.0f} s"


def time_to_quality_markdown(by_model, reference=REFERENCE_MODEL):
    found = time_to_quality(by_model, reference)
    if found is None:
        return []
    metric, target, results = found
    reference_time = results.get(reference, {}).get("train_s")
    lines = [f"Time to quality: training seconds until the validation {metric} first reaches `{reference}`'s best "
             f"({target:.4f}; validation passes not counted).", "",
             "| model | seeds that reach it | training time to reach it | epochs | vs `" + reference + "` |",
             "|---|---|---|---|---|"]
    for model, result in results.items():
        if not result["reached"]:
            lines.append(f"| `{model}` | 0 of {result['seeds']} | never | — | — |")
            continue
        seconds = mean(result["train_s"])
        ratio = f"{seconds / mean(reference_time):.2f}×" if reference_time else "—"
        spread = f" ± {_seconds(stdev(result['train_s']))}" if len(result["train_s"]) > 1 else ""
        lines.append(f"| `{model}` | {result['reached']} of {result['seeds']} | {_seconds(seconds)}{spread} "
                     f"| {mean(result['epochs']):.1f} | {ratio} |")
    return lines + [""]


def markdown(runs, dataset):
    """One table per (settings, protocol) of ``runs``, and the time-to-quality table where the
    runs recorded their per-epoch history."""
    lines = []
    for (settings, protocol), by_model in summarize(runs).items():
        protocol_runs = [r for rs in by_model.values() for r in rs]
        metrics = metric_columns(protocol_runs)
        lines += [f"### {dataset}, protocol `{protocol}` ({settings})", "",
                  "| model | seeds | " + " | ".join(f"test {m}" for m in metrics) + " | "
                  + " | ".join(label for _, label, _ in TIMING_COLUMNS) + " |",
                  "|---" * (2 + len(metrics) + len(TIMING_COLUMNS)) + "|"]
        for model, model_runs in by_model.items():
            ok = [r for r in model_runs if r["status"] == "ok"]
            failed = [r for r in model_runs if r["status"] != "ok"]
            if not ok:
                reason = failed[-1]["error"].replace("|", "/")
                empty = " |" * (len(metrics) + len(TIMING_COLUMNS))
                lines.append(f"| `{model}` | {failed[-1]['status']}: {reason} |{empty}")
                continue
            cells = []
            for metric in metrics:
                if metric == "logloss" and not all(r.get("probabilistic") in ("True", True) for r in ok):
                    cells.append("n/a")  # unbounded logits, not probabilities
                else:
                    cells.append(mean_std([r.get(f"test:{metric}") for r in ok], "{:.4f}"))
            # a model's parameter count does not vary over seeds
            cells += [mean_std([r.get(field) for r in ok], fmt, spread=field != "parameters")
                      for field, _, fmt in TIMING_COLUMNS]
            seeds = f"{len(ok)}" + (f" ({len(failed)} {failed[-1]['status']})" if failed else "")
            lines.append(f"| `{model}` | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += time_to_quality_markdown(by_model)
    lines.append("Mean ± standard deviation over seeds; `n/a`: the model scores with unbounded logits "
                 "(cross-entropy over all items), so LogLoss does not apply.")
    return "\n".join(lines) + "\n"

