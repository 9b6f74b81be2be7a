"""Benchmark suite: models x protocols x seeds on one dataset, each run in its own process.

    recbole-dien benchmark --quick        # 5 models, default protocol, 1 seed, 1 epoch (< 10 min)
    recbole-dien benchmark                # every protocol, 3 seeds, trained to convergence
    recbole-dien benchmark --protocols labeled --models DIN DIEN recbole.DIN --seeds 1 2 3

Runs go one after another (two torch processes on the same cores slow each other several-fold).
Each trains with early stopping on the protocol's validation metric (``--epochs`` at most,
``stopping_step`` 3 by default) and records, in ``<out>/runs.csv``: validation and test metrics,
the validation score and cumulative training seconds after every epoch, train seconds per epoch,
epochs trained and the best one, seconds of one validation pass and of the test pass, trainable
parameters, the process's peak resident memory and the commit measured. A run already in the CSV
(same dataset, protocol, model, seed and settings) is not run again, so an interrupted suite
resumes where it stopped; a run that fails or times out is recorded with its error and the suite
goes on (``--retry-failed`` runs those again). ``<out>/results.md`` holds one table per settings
and protocol (mean +- std over seeds) with the time each model needs to reach RecBole's DIEN's best
validation score, and ``<out>/<dataset>-<protocol>-<settings>-{metrics,time,quality}.png`` the plots.

``recbole-dien benchmark --pause COMMAND ...`` runs a command while the measured run waits
(its timings leave the wait out).

A model is any name ``run_recbole.py`` takes (``DIN`` is this package's, ``recbole.DIN``
RecBole's, ``GRU4Rec`` ...) or a preset from ``PRESETS``.

Modules, each using only those before it: ``harness`` (one measurement in a child process, its
last JSON line; the scripts in ``benchmarks/`` use it too), ``pause``, ``measure`` (one run),
``runs`` (the CSV), ``plan`` (models, protocols, seeds, settings labels), ``report`` (markdown,
time to quality), ``plots``, ``suite`` (running the plan, resuming), ``command`` (the
``recbole-dien benchmark`` command line).
"""
from recbole_dien.benchmark.measure import PRESETS, RESERVED_SETTINGS, measure, resolve
from recbole_dien.benchmark.report import markdown, time_to_quality
from recbole_dien.benchmark.plan import DEFAULT_MODELS, DEFAULT_SEEDS, PROTOCOLS, QUICK_MODELS, plan, settings_label
from recbole_dien.benchmark.suite import run_suite

__all__ = ["DEFAULT_MODELS", "DEFAULT_SEEDS", "PRESETS", "PROTOCOLS", "QUICK_MODELS", "RESERVED_SETTINGS",
           "markdown", "measure", "plan", "resolve", "run_suite", "settings_label", "time_to_quality"]
