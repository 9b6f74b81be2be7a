"""What a suite runs: the default models, protocols and seeds, the plan of (protocol, model, seed)
runs, and the label of the settings that decides whether a recorded run can stand for a new one."""
import hashlib
import json
import re
from pathlib import Path

DEFAULT_MODELS = ["DIN", "DIEN", "DSIN", "recbole.DIN", "recbole.DIEN", "GRU4Rec", "SASRec", "NARM", "STAMP"]
PROTOCOLS = ["default", "fullsort", "labeled"]
DEFAULT_SEEDS = [2020, 2021, 2022]

# RecBole's DIN and DIEN have no full_sort_predict, so RecBole's trainer scores every (user, item)
# pair through predict: on ml-100k 16x the rows of a uni100 pass; measured on 2 cores (2026-12-01),
# 224 s and 692 s per evaluation pass (docs/benchmark.md). Left out of full-sort runs unless named.
SLOW_IN_FULL_SORT = {"recbole.DIN", "recbole.DIEN"}
# --quick: the plugin's models, RecBole's DIN and GRU4Rec (about 8.5 minutes). RecBole's DIEN
# alone takes about 10 minutes per epoch on 2 cores, and RecBole's next-item models re-encode the
# history for each of the 101 candidates of a uni100 pass (SASRec: about 5 minutes a run).
QUICK_MODELS = ["DIN", "DIEN", "DSIN", "recbole.DIN", "GRU4Rec"]


def settings_label(epochs, overrides, config_files):
    """The settings of a run that decide whether a recorded run can stand for it (a config file
    by name and a digest of its content)."""
    parts = [f"epochs={epochs}"] + [f"{k}={json.dumps(overrides[k])}" for k in sorted(overrides)]
    for path in config_files or []:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
        parts.append(f"config={Path(path).name}@{digest}")
    return ";".join(parts)


def settings_slug(settings):
    """``settings`` as a file-name part: epochs=1;stopping_step=2 -> epochs1_stopping_step2."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "", settings.replace(";", "_").replace("=", ""))[:80]


def plan(models, protocols, seeds, quick=False):
    """The (protocol, model, seed) runs of a suite, in order. ``models=None``: the default list,
    without the runs too slow for the protocol (or for --quick)."""
    runs = []
    for protocol in protocols:
        for model in models or (QUICK_MODELS if quick else DEFAULT_MODELS):
            if models is None and protocol == "fullsort" and model in SLOW_IN_FULL_SORT:
                continue
            runs.extend((protocol, model, seed) for seed in seeds)
    return runs
