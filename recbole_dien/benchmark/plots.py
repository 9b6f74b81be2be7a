"""The suite's plots, per (settings, protocol): test metrics, training time per epoch, and
validation quality against training time."""
import math
from statistics import mean, stdev

from recbole_dien.benchmark.report import (REFERENCE_MODEL, metric_columns, successful, summarize,
                                           time_to_quality)
from recbole_dien.benchmark.runs import history, number
from recbole_dien.benchmark.plan import settings_slug


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _stats(runs_by_model, field):
    values = [[v for v in map(number, (r.get(field) for r in runs)) if v is not None]
              for runs in runs_by_model.values()]
    return [mean(v) if v else math.nan for v in values], [stdev(v) if len(v) > 1 else 0.0 for v in values]


def metrics_figure(ok, title):
    """One panel per test metric, each on its own scale; AUC-like metrics from 0.5 (a random ranking)."""
    plt = _pyplot()
    models = list(ok)
    metrics = [m for m in metric_columns([r for rs in ok.values() for r in rs]) if m != "logloss"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(6, 0.75 * len(models)) * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        means, stds = _stats(ok, f"test:{metric}")
        bars = ax.bar(range(len(models)), means, yerr=stds, capsize=3, color="tab:blue")
        ax.bar_label(bars, labels=["" if math.isnan(m) else f"{m:.3f}" for m in means], fontsize=7, padding=2)
        drawn = [(m, d) for m, d in zip(means, stds) if not math.isnan(m)]
        if "auc" in metric and drawn and min(m for m, _ in drawn) > 0.5:
            ax.set_ylim(0.5, min(1.0, max(m + d for m, d in drawn) + 0.05))
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right")
        ax.set_title(f"test {metric}")
    fig.suptitle(f"{title}: mean ± std over seeds")
    fig.tight_layout()
    return fig


def time_figure(ok, title):
    import matplotlib.ticker

    plt = _pyplot()
    models = list(ok)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(models)), 4))
    means, stds = _stats(ok, "train_s_per_epoch")
    bars = ax.bar(range(len(models)), means, yerr=stds, capsize=3, color="tab:gray")
    ax.bar_label(bars, labels=["" if math.isnan(m) else f"{m:.0f} s" for m in means], fontsize=7, padding=2)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=30, ha="right")
    ax.set_ylabel("train seconds per epoch (log scale)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(f"{title}: training time per epoch")
    fig.tight_layout()
    return fig


def quality_figure(ok, by_model, title):
    """Validation metric against cumulative training seconds: a thin line per seed, a thick one
    per model through the epochs every seed reached (mean time, mean score); the dashed line is
    the reference model's best validation score. None when no run recorded a history."""
    with_history = {model: [r for r in runs if history(r)] for model, runs in ok.items()}
    with_history = {model: runs for model, runs in with_history.items() if runs}
    if not with_history:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = next(iter(with_history.values()))[0]["valid_metric"]
    for index, (model, runs) in enumerate(with_history.items()):
        color = colors[index % len(colors)]
        curves = [history(r) for r in runs]
        for curve in curves:
            ax.plot([h["train_s"] for h in curve], [h["valid"] for h in curve], color=color, alpha=0.3, lw=0.8)
        common = min(len(c) for c in curves)
        ax.plot([mean(c[i]["train_s"] for c in curves) for i in range(common)],
                [mean(c[i]["valid"] for c in curves) for i in range(common)],
                color=color, lw=2, marker="o", ms=3, label=f"{model} ({len(runs)} seed{'s' * (len(runs) > 1)})")
    found = time_to_quality(by_model)
    if found is not None:
        ax.axhline(found[1], color="black", ls="--", lw=1, label=f"{REFERENCE_MODEL} best ({found[1]:.4f})")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    # plain seconds at 1-2-5 steps: matplotlib's default log labels (2x10^1, 3x10^1, ...) collide
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda seconds, _: f"{seconds:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("cumulative training seconds (log scale; validation passes not counted)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{title}: time to quality")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot(runs, out_dir, dataset):
    """Write ``<dataset>-<protocol>-<settings>-{metrics,time,quality}.png`` for every group; their paths."""
    plt = _pyplot()
    paths = []
    for (settings, protocol), by_model in summarize(runs).items():
        ok = successful(by_model)
        if not ok:
            continue
        title = f"{dataset}, protocol {protocol} ({settings})"
        name = f"{dataset}-{protocol}-{settings_slug(settings)}"
        figures = {"metrics": metrics_figure(ok, title), "time": time_figure(ok, title),
                   "quality": quality_figure(ok, by_model, title)}
        for kind, fig in figures.items():
            if fig is None:
                continue
            paths.append(out_dir / f"{name}-{kind}.png")
            fig.savefig(paths[-1], dpi=110)
            plt.close(fig)
    return paths
