"""Taobao's display-ad click data (Tianchi dataset 56, 2017): impressions with a behaviour log.

    python -m recbole_dien.datasets alimama --raw DIR --out data/
    python run_recbole.py --model=DSIN --dataset=alimama --data_path=data/ --config_files=data/alimama/alimama.yaml

The DSIN paper's advertising setting (and the public version of DIN's): 26 million ad impressions
of 8 days, 2017-05-06 to 2017-05-13, each clicked or not, and the users' behaviours on Taobao of
the 22 days up to then. Reads from ``--raw`` (each plain or ``.gz``), in their public layouts:

* ``raw_sample.csv`` - ``user,time_stamp,adgroup_id,pid,nonclk,clk``: one impression a line (``pid``
  the ad slot; ``clk`` 1 = clicked, ``nonclk`` its complement);
* ``behavior_log.csv`` - ``user,time_stamp,btag,cate,brand``: one behaviour a line, ``btag`` one of
  ``pv`` (a page view), ``cart``, ``fav``, ``buy``; about 700 million lines, streamed in blocks and
  never held whole;
* ``ad_feature.csv`` - ``adgroup_id,cate_id,campaign_id,customer,brand,price``; ``brand`` is ``NULL``
  for some ads;
* ``user_profile.csv`` - ``userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,
  shopping_level,occupation,new_user_class_level`` (the header's last name ends with a space);
  cells may be empty, and some users of the impressions have no profile.

None of the files is sorted. A line with the wrong number of fields, an id or time that is not a
whole number, a ``btag`` outside the four, or ``clk``/``nonclk`` that are not one 1 and one 0 is
malformed: counted, with the first one's line number, and left out; a file whose first block is
mostly malformed is not in the layout and stops the conversion, naming it (a missing header
column is named too). Behaviours are kept only where they can enter a history: of a user with
impressions, at a positive time before the last impression's second; ``--btag`` and
``--behaviors-since`` keep fewer (the authors' scripts keep ``pv`` only, from 2017-05-03), and
``--user-fraction`` keeps a share of the users (theirs: 0.25) with all their lines.

Writes ``OUT/<name>/`` (default ``alimama``):

* ``alimama.inter`` - ``user_id``, ``adgroup_id`` (the ad: the item), ``timestamp``, ``pid``,
  ``label`` (``clk``), sorted by user and time;
* ``alimama.behavior`` - ``user_id``, ``timestamp``, ``btag``, ``cate_id``, ``brand``: the behaviour
  log, in file order (the dataset sorts it); ``cate`` is written as ``cate_id``, so that a
  behaviour's category and an ad's are one field with one token space, like ``brand``;
* ``alimama.item`` - ``adgroup_id``, ``cate_id``, ``campaign_id``, ``customer``, ``brand``, ``price``
  and ``log_price`` (ln(1 + price): prices span six orders of magnitude), of the ads shown;
* ``alimama.user`` - ``user_id`` and the eight profile fields, of the users with impressions;
* ``alimama.yaml`` - the protocol (:data:`PROTOCOL`).

A missing value (``NULL`` brand, empty profile cell) is written empty: RecBole's padding token,
the same "unknown" in every file.
"""
import os

import numpy as np
import pandas as pd

from recbole_dien.config.time_split import instant
from recbole_dien.datasets import convert as conversion
from recbole_dien.utils.errors import ConfigError, DatasetError

BTAGS = ("pv", "cart", "fav", "buy")
PROFILE = ["cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level", "shopping_level",
           "occupation", "new_user_class_level"]
TIME_ZONE = "Asia/Shanghai"     # the log's own (dated 2017-05-06 to 05-13; 05-06 00:00 there is unix 1494000000)
VALID_FROM = "2017-05-12 20:00"
TEST_FROM = "2017-05-13"
WRITE_ROWS = 1 << 20

RAW_SAMPLE = conversion.CsvLayout(name="Alimama's raw_sample.csv",
                                  columns=["user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk"],
                                  integers=("user", "time_stamp", "adgroup_id", "nonclk", "clk"))
BEHAVIOR_LOG = conversion.CsvLayout(name="Alimama's behavior_log.csv",
                                    columns=["user", "time_stamp", "btag", "cate", "brand"],
                                    integers=("user", "time_stamp", "cate"), optional=("brand",),
                                    missing=("", "NULL"))
AD_FEATURE = conversion.CsvLayout(name="Alimama's ad_feature.csv",
                                  columns=["adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price"],
                                  integers=("adgroup_id", "cate_id", "campaign_id", "customer"), numeric=("price",),
                                  optional=("brand",), missing=("", "NULL"))
USER_PROFILE = conversion.CsvLayout(name="Alimama's user_profile.csv", columns=["userid"] + PROFILE,
                                    integers=("userid",), optional=tuple(PROFILE), missing=("", "NULL"))

PROTOCOL = """{dataset}: Taobao's display-ad click data (Tianchi dataset 56: raw_sample, behavior_log,
ad_feature, user_profile), converted by python -m recbole_dien.datasets alimama.
The DSIN paper's setting. Rows are the ad impressions with their click label (clk); a row's
history is the user's behaviours (page views, carts, favourites, buys: {dataset}.behavior) strictly
before the impression's second - a click is often logged as a behaviour in its own second, which
would leak the label - the {length} most recent of them, for DSIN the 5 most recent 30-minute
sessions of 10. Behaviours are their category, brand and type; the category and brand share their
token ids with the ads', and attention compares those two. Ad features: id, category, campaign,
customer, brand, ln(1 + price); the impression's slot (pid) is its context; user features: the
profile (empty where unknown). Split by absolute time in {zone} (the log's own time zone: its
days start at midnight there, 2017-05-06 00:00 = unix 1494000000): training before {valid},
validation from {valid} to {test}, test from {test} (the 8th day; the DSIN paper trains on the
first 7 days and tests on the 8th). AUC, LabeledGAUC and LogLoss over the labeled impressions;
no sampled negatives."""


def add_arguments(parser):
    parser.add_argument("--name", default="alimama", help="dataset name (default: alimama)")
    parser.add_argument("--btag", nargs="+", choices=BTAGS, default=list(BTAGS),
                        help="behaviour types to keep (default: all four; the authors' scripts keep pv)")
    parser.add_argument("--behaviors-since", default=None, metavar="DATE",
                        help=f"keep behaviours from this date or time on ({TIME_ZONE}; e.g. 2017-05-03, as the "
                             "authors' DSIN script)")
    parser.add_argument("--user-fraction", type=float, default=1.0, metavar="F",
                        help="keep this share of the users (a fixed hash of the user id), all their lines "
                             "(default: 1; the authors' scripts: 0.25)")
    parser.add_argument("--valid-from", default=VALID_FROM, metavar="TIME",
                        help=f"where validation starts ({TIME_ZONE}; default {VALID_FROM}: the last 4 hours of day 7)")
    parser.add_argument("--test-from", default=TEST_FROM, metavar="TIME",
                        help=f"where the test starts ({TIME_ZONE}; default {TEST_FROM}: day 8)")


def kept_users(users, fraction):
    """Whether each user id is kept under ``--user-fraction``: a fixed multiplicative hash of the
    id, so that every file keeps the same users without a table of them."""
    if fraction >= 1:
        return np.ones(len(users), dtype=bool)
    hashed = (users.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return hashed < np.uint64(int(fraction * 2 ** 32))


def _narrow(values):
    info = np.iinfo(np.int32)
    if len(values) == 0 or (values.min() >= info.min and values.max() <= info.max):
        return values.astype(np.int32)
    return values.astype(np.int64)


class Codes:
    """Text tokens (the ad slot ``pid``) as small integer codes, the same across blocks."""

    def __init__(self):
        self.names = []

    def encode(self, values):
        new = pd.unique(values[~pd.Index(values).isin(self.names)])
        self.names += [name for name in new if isinstance(name, str)]
        return pd.Index(self.names).get_indexer(values).astype(np.int16)


def read_impressions(path, tally, user_fraction):
    """The impressions as arrays in file order: user, time, ad, slot code, click; and the slots' names."""
    columns = {name: [] for name in ("user", "time", "ad", "pid", "clk")}
    slots = Codes()
    for frame, lines in conversion.read_csv_blocks(path, RAW_SAMPLE, tally):
        clk, nonclk = frame["clk"].to_numpy(), frame["nonclk"].to_numpy()
        wrong = ~(((clk == 1) & (nonclk == 0)) | ((clk == 0) & (nonclk == 1)))
        tally.add_malformed("clk and nonclk are not one 1 and one 0", lines[wrong])
        user = frame["user"].to_numpy()
        sampled = kept_users(user, user_fraction)
        tally.add_dropped("user not in --user-fraction", lines[~wrong & ~sampled])
        keep = ~wrong & sampled
        if not keep.any():
            continue
        columns["user"].append(_narrow(user[keep]))
        columns["time"].append(_narrow(frame["time_stamp"].to_numpy()[keep]))
        columns["ad"].append(_narrow(frame["adgroup_id"].to_numpy()[keep]))
        columns["pid"].append(slots.encode(frame["pid"].to_numpy()[keep]))
        columns["clk"].append(clk[keep].astype(np.int8))
    if not columns["user"]:
        raise DatasetError(f"{path}: no impression is left: every line is malformed (or no user is kept)")
    impressions = {name: np.concatenate(columns.pop(name)) for name in list(columns)}
    return impressions, np.array(slots.names, dtype=object)


def user_lookup(users):
    """A boolean table over user ids: True for the users of ``users``."""
    table = np.zeros(int(users.max()) + 2, dtype=bool)
    table[users] = True
    return table


def convert_behaviours(path, tally, out_path, shown_users, last_impression, btags, since):
    """Stream the behaviour log into ``out_path``, keeping what can enter a history; per-type counts."""
    lookup = user_lookup(shown_users)
    kept_types = np.isin(np.array(BTAGS, dtype=object), btags)
    counts = np.zeros(len(BTAGS), dtype=np.int64)
    fields = [("user_id", "token"), ("timestamp", "float"), ("btag", "token"), ("cate_id", "token"), ("brand", "token")]
    with conversion.AtomicFileWriter(out_path, fields) as out:
        for frame, lines in conversion.read_csv_blocks(path, BEHAVIOR_LOG, tally):
            kind = pd.Categorical(frame["btag"], categories=BTAGS).codes
            unknown = kind < 0
            tally.add_malformed(f"btag is not one of {', '.join(BTAGS)}", lines[unknown])
            user, time = frame["user"].to_numpy(), frame["time_stamp"].to_numpy()
            shown = np.zeros(len(user), dtype=bool)
            inside = (user >= 0) & (user < len(lookup))
            shown[inside] = lookup[user[inside]]
            rules = [("user has no impression (or is not in --user-fraction)", ~shown),
                     ("time_stamp is not a positive unix time", time <= 0),
                     ("at or after the last impression's second: in no history", time >= last_impression),
                     ("btag not kept (--btag)", ~kept_types[np.maximum(kind, 0)])]
            if since is not None:
                rules.append(("before --behaviors-since", time < since))
            keep = ~unknown
            for reason, dropped in rules:
                tally.add_dropped(reason, lines[keep & dropped])
                keep &= ~dropped
            if not keep.any():
                continue
            counts += np.bincount(kind[keep], minlength=len(BTAGS))
            out.write({"user_id": user[keep], "timestamp": time[keep],
                       "btag": np.array(BTAGS, dtype=object)[kind[keep]], "cate_id": frame["cate"].to_numpy()[keep],
                       "brand": frame["brand"].to_numpy()[keep]})
    return out.rows, counts


def first_rows(frame, key, lines, tally, what):
    """``frame`` without the later lines of a repeated ``key`` (dropped, counted)."""
    repeated = frame[key].duplicated().to_numpy()
    tally.add_dropped(f"{what} repeated (the first line is kept)", lines[repeated])
    return frame[~repeated]


def read_table(path, layout, tally, key, wanted, what):
    """The rows of a small table (ads, profiles) whose ``key`` is in ``wanted`` (sorted ids), first line per key."""
    frames, numbers = [], []
    for frame, lines in conversion.read_csv_blocks(path, layout, tally):
        shown = np.isin(frame[key].to_numpy(), wanted)
        tally.add_dropped(f"{what} without impressions", lines[~shown])
        frames.append(frame[shown])
        numbers.append(lines[shown])
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=layout.columns)
    lines = np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64)
    return first_rows(frame, key, lines, tally, what)


def _instant(text, option):
    """A command-line time in the log's time zone -> unix seconds; one line naming the option."""
    try:
        return instant(text, TIME_ZONE, option)
    except ConfigError as error:
        raise DatasetError(str(error)) from None


def dataset_settings(name, valid_from, test_from, length=50):
    """The settings of ``<name>.yaml``."""
    return {
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "adgroup_id", "TIME_FIELD": "timestamp", "LABEL_FIELD": "label",
        "behavior_log_suffix": "behavior",
        "load_col": {"inter": ["user_id", "adgroup_id", "timestamp", "pid", "label"],
                     "item": ["adgroup_id", "cate_id", "campaign_id", "customer", "brand", "log_price"],
                     "user": ["user_id"] + PROFILE,
                     "behavior": ["user_id", "timestamp", "btag", "cate_id", "brand"]},
        "MAX_ITEM_LIST_LENGTH": length,
        "filter_inter_by_user_or_item": False,   # users without a profile and ads without features keep their rows
        "normalize_all": False,
        "time_split": {"time_zone": TIME_ZONE, "valid": valid_from, "test": test_from},
        "eval_args": {"order": "TO", "group_by": "user", "mode": "labeled"},
        "train_neg_sample_args": None,
        "metrics": ["AUC", "LabeledGAUC", "LogLoss"],
        "valid_metric": "AUC",
    }


def convert(raw_dir, out_dir, name="alimama", btag=BTAGS, behaviors_since=None, user_fraction=1.0,
            valid_from=VALID_FROM, test_from=TEST_FROM):
    timer = conversion.Timer()
    if not 0 < user_fraction <= 1:
        raise DatasetError(f"--user-fraction {user_fraction}: a share of the users, above 0 and at most 1")
    if not _instant(valid_from, "--valid-from") < _instant(test_from, "--test-from"):
        raise DatasetError(f"--valid-from {valid_from!r} must come before --test-from {test_from!r}")
    since = _instant(behaviors_since, "--behaviors-since") if behaviors_since is not None else None
    what = "of Taobao's display-ad click data (Tianchi dataset 56)"
    paths = {raw: conversion.raw_file(raw_dir, f"{raw}.csv", what)
             for raw in ("raw_sample", "behavior_log", "ad_feature", "user_profile")}
    tallies = {raw: conversion.LineTally(path) for raw, path in paths.items()}
    folder = conversion.dataset_folder(out_dir, name)
    report = conversion.ConversionReport(name, folder, out_dir, model="DSIN", tallies=list(tallies.values()))

    impressions, slots = read_impressions(paths["raw_sample"], tallies["raw_sample"], user_fraction)
    users, ads = np.unique(impressions["user"]), np.unique(impressions["ad"])
    order = np.lexsort((impressions["time"], impressions["user"]))  # stable: ties keep the file's order
    with conversion.AtomicFileWriter(os.path.join(folder, f"{name}.inter"),
                                     [("user_id", "token"), ("adgroup_id", "token"), ("timestamp", "float"),
                                      ("pid", "token"), ("label", "float")]) as out:
        for start in range(0, len(order), WRITE_ROWS):
            rows = order[start:start + WRITE_ROWS]
            out.write({"user_id": impressions["user"][rows], "adgroup_id": impressions["ad"][rows],
                       "timestamp": impressions["time"][rows], "pid": slots[impressions["pid"][rows]],
                       "label": impressions["clk"][rows]})
    report.written[f"{name}.inter"] = out.rows
    clicks, last_impression = int(impressions["clk"].sum()), int(impressions["time"].max())
    first_impression, impression_count = int(impressions["time"].min()), len(order)
    del impressions, order

    behaviours, per_type = convert_behaviours(paths["behavior_log"], tallies["behavior_log"],
                                              os.path.join(folder, f"{name}.behavior"), users, last_impression,
                                              list(btag), since)
    report.written[f"{name}.behavior"] = behaviours

    ad_table = read_table(paths["ad_feature"], AD_FEATURE, tallies["ad_feature"], "adgroup_id", ads, "ad")
    price = ad_table["price"].to_numpy(dtype=np.float64)
    with conversion.AtomicFileWriter(os.path.join(folder, f"{name}.item"),
                                     [("adgroup_id", "token"), ("cate_id", "token"), ("campaign_id", "token"),
                                      ("customer", "token"), ("brand", "token"), ("price", "float"),
                                      ("log_price", "float")]) as out:
        out.write({"adgroup_id": ad_table["adgroup_id"], "cate_id": ad_table["cate_id"],
                   "campaign_id": ad_table["campaign_id"], "customer": ad_table["customer"],
                   "brand": ad_table["brand"], "price": price,
                   "log_price": np.round(np.log1p(np.maximum(price, 0)), 6)})  # a negative price: as 0
    report.written[f"{name}.item"] = out.rows

    profiles = read_table(paths["user_profile"], USER_PROFILE, tallies["user_profile"], "userid", users, "profile")
    with conversion.AtomicFileWriter(os.path.join(folder, f"{name}.user"),
                                     [("user_id", "token")] + [(field, "token") for field in PROFILE]) as out:
        out.write({"user_id": profiles["userid"], **{field: profiles[field] for field in PROFILE}})
    report.written[f"{name}.user"] = out.rows

    length = 50
    comment = PROTOCOL.format(dataset=name, length=length, zone=TIME_ZONE, valid=valid_from, test=test_from)
    conversion.write_dataset_config(folder, name, comment, dataset_settings(name, valid_from, test_from, length))

    report.notes.append(f"{impression_count:,} impressions of {len(users):,} users and {len(ads):,} ads, "
                        f"{clicks:,} clicked ({clicks / impression_count:.2%}), unix {first_impression} to "
                        f"{last_impression}")
    report.notes.append("behaviours kept: " + ", ".join(f"{kind} {count:,}" for kind, count in zip(BTAGS, per_type)))
    without_features = len(ads) - len(ad_table)
    if without_features:
        report.notes.append(f"{without_features:,} ads shown have no ad_feature line: their features are unknown")
    without_profile = len(users) - len(profiles)
    if without_profile:
        report.notes.append(f"{without_profile:,} users with impressions have no profile: their profile is unknown")
    report.seconds = timer.seconds()
    return report
