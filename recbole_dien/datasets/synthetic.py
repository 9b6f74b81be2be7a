"""Synthetic click logs shaped like real ones, as RecBole atomic files.

    recbole-dien synthetic --interactions 20000000 --out data/
    python run_recbole.py --model=DIEN --dataset=synthetic-20m --data_path=data/ --config_files=data/synthetic-20m/synthetic-20m.yaml

Writes ``<out>/<name>/<name>.inter`` (user_id, item_id, timestamp), ``.item`` (item_id,
category, brand, price) and ``.user`` (user_id, age, gender), and ``<name>.yaml``, the project's
default protocol for it (leave-one-out by time, uni100, AUC). The name defaults to
``synthetic-<size>`` (``synthetic-20m``). Everything is drawn with numpy from ``--seed``, vectorised
(no Python loop over users or rows):

* **users**: heavy-tailed activity - interactions per user are log-normal
  (``--activity-sigma``) around ``--mean-activity``, at least ``--min-activity``, summing to exactly
  ``--interactions``;
* **items**: ``--categories`` categories of equal size; inside one, popularity is Zipf-like
  (probability of the item of popularity rank r proportional to 1 / r^``--zipf``); each item has a
  brand (one of 50 per category) and a log-normal price;
* **interests**: each user has ``--interests-per-user`` categories with Dirichlet weights and, at
  each behaviour, stays in the current one or switches (probability ``--switch``) to a draw from
  those weights;
* **sessions**: a session ends after each behaviour with probability 1 / ``--session-length``;
  behaviours inside a session are exponential(``--in-session-gap`` seconds) apart, sessions are
  log-normal around ``--between-sessions`` seconds apart (hours to days); each user starts at a
  random time in the year before 2024-01-01.

From Python: :func:`generate` (returns the folder and the counts).

``--layout alimama|amazon|taobao`` writes raw files in that public dataset's layout instead, for
``recbole-dien convert`` (``--out`` is then the folder of the raw files; the knobs keep their
names, with each layout's own defaults; :mod:`recbole_dien.datasets.synthetic_raw`).
"""
import argparse
import os
import time

import numpy as np

from recbole_dien.datasets import synthetic_raw
from recbole_dien.datasets.synthetic_raw import activities
from recbole_dien.utils.errors import RecBoleDienError, report

DEFAULTS = dict(mean_activity=60.0, activity_sigma=1.0, min_activity=5, categories=40, items_per_category=500,
                zipf=1.1, interests_per_user=3, switch=0.15, session_length=6.0, in_session_gap=60.0,
                between_sessions=2 * 86400.0, seed=2024)
_START = 1704067200 - 365 * 86400  # the year before 2024-01-01, in seconds


def size_name(interactions):
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if interactions >= unit and interactions % unit == 0:
            return f"synthetic-{interactions // unit}{suffix}"
    return f"synthetic-{interactions}"


def draw_log(interactions, seed=DEFAULTS["seed"], **knobs):
    """The log as arrays: (user [N], item [N], timestamp [N]) sorted by user then time, and the
    item table (category [I], brand [I], price [I]) and user table (age [U], gender [U])."""
    k = {**DEFAULTS, **knobs}
    rng = np.random.default_rng(seed)
    counts = activities(rng, interactions, k["mean_activity"], k["activity_sigma"], k["min_activity"])
    n_users, n_categories, per_category = len(counts), k["categories"], k["items_per_category"]
    user = np.repeat(np.arange(n_users), counts)
    first = np.zeros(interactions, dtype=bool)
    first[np.concatenate([[0], np.cumsum(counts)[:-1]])] = True

    # interests: each user's categories (by a popularity skew over categories) and their weights
    category_weights = 1.0 / np.arange(1, n_categories + 1) ** 0.7
    category_weights /= category_weights.sum()
    # k categories per user without replacement, weighted by popularity (Gumbel top-k)
    keys = np.log(category_weights) + rng.gumbel(size=(n_users, n_categories))
    interests = np.argsort(-keys, axis=1)[:, :k["interests_per_user"]]
    weights = rng.dirichlet(np.ones(k["interests_per_user"]), n_users).cumsum(1)
    switch = first | (rng.random(interactions) < k["switch"])
    segment = np.cumsum(switch) - 1
    segment_user = user[switch]
    choice = (rng.random(len(segment_user))[:, None] > weights[segment_user]).sum(1)
    category = interests[segment_user, np.minimum(choice, k["interests_per_user"] - 1)][segment]

    # the item inside the category: Zipf-like popularity over its items
    cdf = np.cumsum(1.0 / np.arange(1, per_category + 1) ** k["zipf"])
    cdf /= cdf[-1]
    rank = np.minimum(np.searchsorted(cdf, rng.random(interactions)), per_category - 1)
    item = category * per_category + rank

    # time: sessions of geometric length, exponential gaps inside, log-normal gaps between
    new_session = first | (rng.random(interactions) < 1.0 / k["session_length"])
    gaps = np.where(new_session, rng.lognormal(np.log(k["between_sessions"]), 1.0, interactions),
                    rng.exponential(k["in_session_gap"], interactions))
    gaps[first] = rng.uniform(0, 365 * 86400, n_users)
    clock = np.cumsum(gaps)
    start = np.repeat(clock[first] - gaps[first], counts)
    timestamp = np.floor(_START + clock - start).astype(np.int64)

    n_items = n_categories * per_category
    items = {"category": np.arange(n_items) // per_category,
             "brand": (np.arange(n_items) // per_category) * 50 + rng.integers(0, 50, n_items),
             "price": np.round(rng.lognormal(3.0, 0.8, n_items), 2)}
    users = {"age": rng.integers(18, 70, n_users) // 10 * 10, "gender": rng.integers(0, 2, n_users)}
    return (user, item, timestamp), items, users


def _write(path, header, columns):
    """One atomic file: a header line and tab-separated columns (numbers written by numpy)."""
    with open(path, "w") as f:
        f.write("\t".join(header) + "\n")
        block = 1 << 20
        for start in range(0, len(columns[0]), block):
            part = [np.asarray(c[start:start + block]) for c in columns]
            text = [p.astype(str) if p.dtype.kind != "f" else np.char.mod("%.2f", p) for p in part]
            rows = text[0]
            for column in text[1:]:
                rows = np.char.add(np.char.add(rows, "\t"), column)
            f.write("\n".join(rows.tolist()) + "\n")


PROTOCOL = """# {name}: a synthetic click log written by recbole-dien synthetic
# ({interactions} interactions, {users} users, {items} items, seed {seed}), under the project's
# default protocol: each user's behaviours by time, leave-one-out, targets against 100 items
# the user never clicked (uni100, drawn as RecBole's repeatable sampler draws them), AUC and LogLoss.
load_col:
  inter: [user_id, item_id, timestamp]
  user: [user_id, age, gender]
  item: [item_id, category, brand, price]
MAX_ITEM_LIST_LENGTH: 50
normalize_all: False
eval_args:
  split: {{'LS': 'valid_and_test'}}
  order: TO
  group_by: user
  mode: uni100
train_neg_sample_args:
  distribution: uniform
  sample_num: 1
metrics: ['AUC', 'LogLoss']
valid_metric: AUC
repeatable: True
"""


def generate(interactions, out, name=None, seed=DEFAULTS["seed"], **knobs):
    """Write the atomic files and the protocol YAML; returns (folder, counts dict)."""
    name = name or size_name(interactions)
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    (user, item, timestamp), items, users = draw_log(interactions, seed, **knobs)
    _write(os.path.join(folder, f"{name}.inter"), ["user_id:token", "item_id:token", "timestamp:float"],
           [user + 1, item + 1, timestamp])
    _write(os.path.join(folder, f"{name}.item"), ["item_id:token", "category:token", "brand:token", "price:float"],
           [np.arange(1, len(items["category"]) + 1), items["category"], items["brand"], items["price"]])
    _write(os.path.join(folder, f"{name}.user"), ["user_id:token", "age:token", "gender:token"],
           [np.arange(1, len(users["age"]) + 1), users["age"], np.array(["F", "M"])[users["gender"]]])
    counts = {"interactions": int(len(user)), "users": int(len(users["age"])), "items": int(len(items["category"]))}
    with open(os.path.join(folder, f"{name}.yaml"), "w") as f:
        f.write(PROTOCOL.format(name=name, seed=seed, **counts))
    return folder, counts


def main(argv=None, prog="recbole-dien synthetic"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, required=True,
                        help="rows: interactions (atomic, taobao), reviews (amazon), impressions (alimama)")
    parser.add_argument("--out", required=True, help="atomic: the data_path folder, the dataset goes to "
                                                     "<out>/<name>/; a raw layout: the folder of the raw files")
    parser.add_argument("--layout", default="atomic", choices=["atomic", *synthetic_raw.LAYOUTS],
                        help="atomic: RecBole atomic files and a dataset config (default); alimama, amazon, "
                             "taobao: raw files in that public dataset's layout, for `recbole-dien convert` "
                             "(see recbole_dien/datasets/synthetic_raw.py)")
    parser.add_argument("--name", help="atomic: dataset name (default: synthetic-<size>)")
    parser.add_argument("--category", help="amazon: the category in the files' names (default Books)")
    parser.add_argument("--gzip", action="store_true", help="amazon: write .json.gz files")
    # every knob of every layout; a layout's own defaults apply where one is not given
    knob_types = {**{knob: type(value) for knob, value in DEFAULTS.items()}}
    for layout_knobs in synthetic_raw.LAYOUTS.values():
        for knob, value in layout_knobs.items():
            knob_types.setdefault(knob, int if value is None else type(value))
    for knob, kind in knob_types.items():
        where = "" if knob in DEFAULTS else " (" + ", ".join(
            name for name, layout_knobs in synthetic_raw.LAYOUTS.items() if knob in layout_knobs) + ")"
        parser.add_argument(f"--{knob.replace('_', '-')}", type=kind, default=None,
                            help=f"default {DEFAULTS.get(knob, 'per layout')}{where}")
    args = vars(parser.parse_args(argv))
    interactions, out, name, layout = args.pop("interactions"), args.pop("out"), args.pop("name"), args.pop("layout")
    category, gzipped = args.pop("category"), args.pop("gzip")
    given = {knob: value for knob, value in args.items() if value is not None}
    start = time.perf_counter()
    try:
        if layout == "atomic":
            extra = sorted(set(given) - set(DEFAULTS)) or (["category"] if category else []) or (
                ["gzip"] if gzipped else [])
            if extra:
                raise RecBoleDienError(f"--{extra[0].replace('_', '-')} is for a raw --layout, not atomic files")
            folder, counts = generate(interactions, out, name, **{**DEFAULTS, **given})
        else:
            if layout != "amazon" and (category or gzipped):
                raise RecBoleDienError(f"--{'category' if category else 'gzip'} is for --layout amazon")
            if layout == "amazon":
                given.update(category=category or "Books", gzipped=gzipped)
            written = synthetic_raw.generate(layout, out, interactions, **given)
    except RecBoleDienError as error:
        return report(parser, error)
    seconds = time.perf_counter() - start
    if layout == "atomic":
        print(f"wrote {folder}: {counts['interactions']:,} interactions, {counts['users']:,} users, "
              f"{counts['items']:,} items in {seconds:.1f} s")
    else:
        counts = ", ".join(f"{value:,} {key.replace('_', ' ')}" for key, value in written.items() if key != "files")
        print(f"wrote {', '.join(written['files'])} ({layout} layout): {counts} in {seconds:.1f} s")
    return 0
