"""Synthetic raw files in the public datasets' own layouts, for the converters to read.

    recbole-dien synthetic --layout taobao --interactions 100000000 --out raw/taobao/
    recbole-dien synthetic --layout alimama --interactions 26000000 --behaviours 200000000 --out raw/alimama/
    recbole-dien synthetic --layout amazon --interactions 8898041 --category Books --gzip --out raw/amazon/
    python -m recbole_dien.datasets taobao --raw raw/taobao/ --out data/

The real files cannot be downloaded everywhere; these have their layouts exactly (names, headers,
field order, quirks) and shapes like theirs, so that the converters, the data path and the models
can be exercised and measured at the real sizes:

* ``taobao``: ``UserBehavior.csv``, no header, ``user_id,item_id,category_id,behavior_type,timestamp``;
  pv / cart / fav / buy in the real shares (89.5 / 5.5 / 2.9 / 2.0 %), times inside the 9 days
  2017-11-25 to 2017-12-03 (Asia/Shanghai) but for a share ``--out-of-range`` outside them (the real
  file has some); each user's lines together, in time order; ids scattered over a wide range.
* ``amazon``: ``reviews_<Category>_5.json`` (JSON lines with every field of the 2014 dumps; each
  user at least 5 reviews; whole-day times, 2000 to mid-2014) and ``meta_<Category>.json`` (one
  **Python literal** a line, as the dumps write them: single quotes, double quotes where a title has
  an apostrophe), whose first category path ends with the item's category; a few items without a
  meta line or without categories; ``--gzip`` writes ``.json.gz``.
* ``alimama``: ``raw_sample.csv`` (``user,time_stamp,adgroup_id,pid,nonclk,clk``: impressions of the
  8 days 2017-05-06 to 2017-05-13), ``behavior_log.csv`` (``user,time_stamp,btag,cate,brand``: the
  22 days up to 2017-05-13), ``ad_feature.csv`` (``adgroup_id,cate_id,campaign_id,customer,brand,price``,
  brand ``NULL`` for a share of the ads, as in the real file) and ``user_profile.csv`` (its header
  ends with a space, ``pvalue_level`` and ``new_user_class_level`` have empty cells); some users
  have no profile, some no behaviours; rows are not sorted.

Shapes, all drawn with numpy from ``--seed``, block by block (:data:`BLOCK_ROWS` behaviours at a
time, so a 100M-row file is written in bounded memory; a block's draws depend only on the seed and
the block's index): heavy-tailed users (log-normal activity); items Zipf-like inside categories
that are themselves popularity-skewed; each user has a few interests, switches between them
(``--switch``) and drifts - the first interest fades in favour of a new one as the user's history
goes on - and a share ``--explore`` of behaviours strays to any category; sessions (geometric
lengths, minutes apart inside, spread over the window). In the alimama
layout an impression's click depends on the history: its probability is ``--base-ctr``, raised by
``--history-lift`` when the ad's category is among the categories of the user's last 10 behaviours
strictly before it; half the clicks are also logged as a pv behaviour in the same second (as real
logs do: a history that takes in same-second behaviours leaks the label). Some ads are shown by
targeting (the user's current interest), the rest by popularity.
"""
import gzip
import os

import numpy as np
import pandas as pd

from recbole_dien.utils.errors import RecBoleDienError

BLOCK_ROWS = 2_000_000
SHANGHAI = 8 * 3600                              # UTC+8, no daylight saving

# knobs shared by the layouts, with each layout's defaults (shaped after the real files)
LAYOUTS = {
    "taobao": dict(mean_activity=101.0, activity_sigma=1.0, min_activity=1, categories=9439, items_per_category=441,
                   zipf=1.1, interests_per_user=4, switch=0.2, explore=0.2, session_length=10.0,
                   in_session_gap=40.0, out_of_range=0.0005, seed=2024),
    "amazon": dict(mean_activity=14.7, activity_sigma=0.9, min_activity=5, categories=1600, items_per_category=230,
                   zipf=1.0, interests_per_user=3, switch=0.3, explore=0.2, session_length=2.0,
                   in_session_gap=86400.0, missing_meta=0.02, seed=2024),
    "alimama": dict(mean_activity=23.0, activity_sigma=1.0, min_activity=1, categories=6769, items_per_category=15,
                    zipf=1.1, interests_per_user=3, switch=0.2, explore=0.2, session_length=12.0,
                    in_session_gap=30.0, behaviours=None, ads_per_impression=1 / 31, targeted=0.4, base_ctr=0.03,
                    history_lift=0.12, no_profile=0.07, no_behaviours=0.03, null_brand=0.29, seed=2024),
}
# the real files' sizes (rows of the main file), which the catalogue defaults above describe; a
# smaller file gets a catalogue shrunk with it (categories and items per category each by the
# square root of the fraction), unless --categories / --items-per-category are given
REAL_ROWS = {"taobao": 100_150_807, "amazon": 8_898_041, "alimama": 26_557_961}
TAOBAO_DAYS = (1511539200, 1511539200 + 9 * 86400)        # 2017-11-25 .. 2017-12-03, Asia/Shanghai
ALIMAMA_IMPRESSIONS = (1494000000, 1494000000 + 8 * 86400)  # 2017-05-06 .. 2017-05-13, Asia/Shanghai
ALIMAMA_BEHAVIOURS = (1494000000 - 14 * 86400, 1494000000 + 8 * 86400)  # the 22 days up to 2017-05-13
AMAZON_YEARS = (946684800, 1405987200)                   # 2000-01-01 .. 2014-07-22 UTC
BEHAVIOUR_SHARES = {"pv": 0.895, "cart": 0.055, "fav": 0.029, "buy": 0.021}
PROFILE_HEADER = ("userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                  "occupation,new_user_class_level ")  # the real header ends with a space


def knobs(layout, rows, **overrides):
    """The layout's defaults for a file of ``rows`` rows, with ``overrides`` (None values ignored)."""
    if layout not in LAYOUTS:
        raise RecBoleDienError(f"--layout {layout}: use one of atomic, {', '.join(LAYOUTS)}")
    overrides = {key: value for key, value in overrides.items() if value is not None}
    unknown = set(overrides) - set(LAYOUTS[layout])
    if unknown:
        raise RecBoleDienError(f"--layout {layout} takes no --{sorted(unknown)[0].replace('_', '-')}")
    k = dict(LAYOUTS[layout])
    shrink = min(1.0, rows / REAL_ROWS[layout]) ** 0.5
    k["categories"] = max(4, round(k["categories"] * shrink))
    k["items_per_category"] = max(3, round(k["items_per_category"] * shrink))
    return {**k, **overrides}


# --- what every layout draws ---------------------------------------------------------------------

def activities(rng, interactions, mean, sigma, minimum):
    """Interactions per user: ``minimum`` each plus a log-normal share of the rest (mean about
    ``mean`` in all), summing to exactly ``interactions``."""
    if interactions < minimum:
        raise RecBoleDienError(f"--interactions={interactions}: at least --min-activity={minimum} are needed")
    users = max(1, min(int(interactions / mean), interactions // minimum))
    share = rng.lognormal(0.0, sigma, users)
    counts = minimum + np.floor(share / share.sum() * (interactions - minimum * users)).astype(np.int64)
    counts[rng.choice(users, int(interactions - counts.sum()), replace=False)] += 1  # the rounding remainder
    return counts


class Catalogue:
    """Categories (popularity-skewed) and their items (Zipf-like inside a category); item i belongs
    to category i // items_per_category. Public ids are scattered (a seeded permutation), as real
    anonymised ids look."""

    def __init__(self, rng, categories, items_per_category, zipf):
        self.categories, self.per_category = categories, items_per_category
        weights = 1.0 / np.arange(1, categories + 1) ** 0.7
        self.category_cdf = np.cumsum(weights) / weights.sum()
        rank = np.cumsum(1.0 / np.arange(1, items_per_category + 1) ** zipf)
        self.rank_cdf = rank / rank[-1]
        self.items = categories * items_per_category
        self.item_ids = rng.permutation(self.items * 5 // 4)[:self.items] + 1
        self.category_ids = rng.permutation(categories * 5 // 4)[:categories] + 1

    def category(self, uniform):
        return np.minimum(np.searchsorted(self.category_cdf, uniform), self.categories - 1)

    def item_in(self, rng, category):
        rank = np.minimum(np.searchsorted(self.rank_cdf, rng.random(len(category))), self.per_category - 1)
        return category * self.per_category + rank


def draw_block(rng, counts, catalogue, k, switch_probability, explore):
    """(user, category, item, position in the user's history in [0, 1)) of one block."""
    n_users, n = len(counts), int(counts.sum())
    user = np.repeat(np.arange(n_users), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    first = np.zeros(n, dtype=bool)
    first[starts[counts > 0]] = True
    interests = catalogue.category(rng.random((n_users, k + 1)))
    weights = rng.dirichlet(np.ones(k), n_users).cumsum(1)
    switch = first | (rng.random(n) < switch_probability)
    segment = np.cumsum(switch) - 1
    segment_user = user[switch]
    slot = np.minimum((rng.random(len(segment_user))[:, None] > weights[segment_user]).sum(1), k - 1)
    # drift: the first interest gives way to slot k with the probability of how far into the history we are
    position = (np.arange(n) - starts[user]) / np.maximum(counts[user], 1)
    segment_position = position[switch]
    slot = np.where((slot == 0) & (rng.random(len(slot)) < segment_position), k, slot)
    category = interests[segment_user, slot][segment]
    # a share of behaviours strays from the interests (browsing): any category, by popularity
    stray = rng.random(n) < explore
    category[stray] = catalogue.category(rng.random(int(stray.sum())))
    return user, starts, first, category, catalogue.item_in(rng, category)


def session_times(rng, user, first, window, session_length, in_session_gap, day=False):
    """Times of a block's behaviours (grouped by user): sessions of geometric length whose starts
    are spread uniformly over ``window`` (start, end) and sorted per user, behaviours inside a
    session exponential(``in_session_gap``) apart; clipped to the window, whole days if ``day``."""
    n = len(user)
    new_session = first | (rng.random(n) < 1.0 / session_length)
    session = np.cumsum(new_session) - 1
    session_user = user[new_session]
    start = rng.random(len(session_user)) * (window[1] - window[0])
    start = start[np.lexsort((start, session_user))]  # each user's sessions in time order (users stay grouped)
    gap = rng.exponential(in_session_gap, n)
    gap[new_session] = 0.0
    offset = np.cumsum(gap)
    offset -= offset[np.flatnonzero(new_session)][session]
    times = np.minimum(start[session] + offset, window[1] - window[0] - 1)
    # a session running into the next one's start is cut there: each user's times never go back
    span = float(window[1] - window[0])
    times = np.maximum.accumulate(times + user * span) - user * span + window[0]
    if day:
        times = np.floor(times / 86400) * 86400
    return times.astype(np.int64)


def blocks(rows_per_user):
    """The users of each block of about :data:`BLOCK_ROWS` rows, as (first user, end user) pairs."""
    ends = np.searchsorted(np.cumsum(rows_per_user), np.arange(BLOCK_ROWS, int(rows_per_user.sum()), BLOCK_ROWS),
                           side="right")
    bounds = np.unique(np.concatenate([[0], ends, [len(rows_per_user)]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def block_rng(seed, index):
    """The generator of block ``index``: its draws depend on the seed and the index only."""
    return np.random.default_rng([seed, index + 1])


def write_csv(f, columns, header=None):
    """Rows of ``columns`` (name -> values; None or NaN as an empty cell) as comma-separated text."""
    frame = pd.DataFrame(columns)
    if header:
        f.write(header + "\n")
    frame.to_csv(f, header=False, index=False, lineterminator="\n", na_rep="")


def open_text(path, gzipped=False):
    if gzipped:
        return gzip.open(path + ".gz", "wt", encoding="utf-8", compresslevel=1, newline="\n")
    return open(path, "w", encoding="utf-8", newline="\n")


# --- taobao --------------------------------------------------------------------------------------

def write_taobao(out, interactions, **overrides):
    k = knobs("taobao", interactions, **overrides)
    rng = np.random.default_rng(k["seed"])
    catalogue = Catalogue(rng, k["categories"], k["items_per_category"], k["zipf"])
    counts = activities(rng, interactions, k["mean_activity"], k["activity_sigma"], k["min_activity"])
    user_ids = rng.permutation(len(counts) * 3 // 2)[:len(counts)] + 1
    kinds = np.array(list(BEHAVIOUR_SHARES), dtype=object)
    kind_cdf = np.cumsum(list(BEHAVIOUR_SHARES.values()))
    outside = 0
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "UserBehavior.csv")
    with open_text(path) as f:
        for index, (first_user, end_user) in enumerate(blocks(counts)):
            block = block_rng(k["seed"], index)
            user, _, first, category, item = draw_block(block, counts[first_user:end_user], catalogue,
                                                        k["interests_per_user"], k["switch"], k["explore"])
            times = session_times(block, user, first, TAOBAO_DAYS, k["session_length"], k["in_session_gap"])
            # a share of the lines outside the 9 days: up to 30 days before or after, as stray clocks give
            stray = block.random(len(times)) < k["out_of_range"]
            before = block.random(len(times)) < 0.5
            shift = block.integers(1, 30 * 86400, len(times))
            times = np.where(stray & before, TAOBAO_DAYS[0] - shift, np.where(stray, TAOBAO_DAYS[1] + shift, times))
            outside += int(stray.sum())
            kind = kinds[np.minimum(np.searchsorted(kind_cdf, block.random(len(times))), len(kinds) - 1)]
            write_csv(f, {"user": user_ids[first_user + user], "item": catalogue.item_ids[item],
                          "category": catalogue.category_ids[category], "behavior": kind, "time": times})
    return {"files": [path], "behaviours": int(counts.sum()), "users": len(counts), "items": catalogue.items,
            "outside_the_days": outside}


# --- amazon --------------------------------------------------------------------------------------

def base36(values, width):
    """Upper-case base-36 strings of ``width`` characters (vectorised)."""
    digits = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    values = np.asarray(values, dtype=np.int64)
    chars = digits[(values[:, None] // 36 ** np.arange(width - 1, -1, -1)) % 36]
    return np.array(["".join(row) for row in chars], dtype=object)


def category_name(code):
    return f"Category {code} & More"


def write_amazon(out, interactions, category="Books", gzipped=False, **overrides):
    k = knobs("amazon", interactions, **overrides)
    rng = np.random.default_rng(k["seed"])
    catalogue = Catalogue(rng, k["categories"], k["items_per_category"], k["zipf"])
    counts = activities(rng, interactions, k["mean_activity"], k["activity_sigma"], k["min_activity"])
    reviewers = "A" + base36(rng.integers(0, 36 ** 12, len(counts)), 12)
    if category == "Books":  # books' asins are their ISBN-10s, other goods' start with B
        asins = np.array([f"{i:010d}" for i in rng.permutation(10 ** 6 * 9)[:catalogue.items] + 10 ** 8], dtype=object)
    else:
        asins = "B" + base36(rng.integers(0, 36 ** 9, catalogue.items), 9)
    os.makedirs(out, exist_ok=True)
    reviews = os.path.join(out, f"reviews_{category}_5.json")
    reviewed = np.zeros(catalogue.items, dtype=bool)
    with open_text(reviews, gzipped) as f:
        for index, (first_user, end_user) in enumerate(blocks(counts)):
            block = block_rng(k["seed"], index)
            user, _, first, _, item = draw_block(block, counts[first_user:end_user], catalogue,
                                                 k["interests_per_user"], k["switch"], k["explore"])
            times = session_times(block, user, first, AMAZON_YEARS, k["session_length"], k["in_session_gap"], day=True)
            reviewed[item] = True
            rating = np.minimum(5, np.maximum(1, np.round(block.normal(4.2, 1.0, len(item))))).astype(int)
            votes = block.poisson(1.5, len(item))
            helpful = np.minimum(votes, block.binomial(votes, 0.7))
            dates = pd.to_datetime(times, unit="s").strftime("%m %d, %Y").str.replace(r"^(\d\d) 0", r"\1 ", regex=True)
            lines = [
                f'{{"reviewerID": "{reviewers[first_user + u]}", "asin": "{asins[i]}", "reviewerName": "Reader {u}", '
                f'"helpful": [{h}, {v}], "reviewText": "A review of item {i} by reader {u}.", "overall": {r}.0, '
                f'"summary": "Rated {r}", "unixReviewTime": {t}, "reviewTime": "{d}"}}\n'
                for u, i, h, v, r, t, d in zip((user + first_user).tolist(), item.tolist(), helpful.tolist(),
                                               votes.tolist(), rating.tolist(), times.tolist(), dates.tolist())]
            f.writelines(lines)
    meta = os.path.join(out, f"meta_{category}.json")
    missing = rng.random(catalogue.items) < k["missing_meta"]
    no_categories = rng.random(catalogue.items) < k["missing_meta"]
    price = np.round(rng.lognormal(2.5, 0.8, catalogue.items), 2)
    rank = rng.integers(1, 3_000_000, catalogue.items)
    with open_text(meta, gzipped) as f:
        for item in np.flatnonzero(~missing).tolist():
            code = item // catalogue.per_category
            record = {"asin": asins[item], "title": f"Item {item}'s title" if item % 3 == 0 else f"Item {item}",
                      "price": float(price[item]), "imUrl": f"http://ecx.images-amazon.com/images/I/{asins[item]}.jpg",
                      "related": {"also_bought": [asins[(item + 1) % catalogue.items]]},
                      "salesRank": {category: int(rank[item])}}
            if not no_categories[item]:
                path = [category, f"Group {code % 20}", category_name(code)]
                record["categories"] = [path, [category, "Deals"]] if item % 4 == 0 else [path]
            f.write(repr(record) + "\n")
    suffix = ".gz" if gzipped else ""
    return {"files": [reviews + suffix, meta + suffix], "reviews": int(counts.sum()), "users": len(counts),
            "items": catalogue.items, "reviewed_items": int(reviewed.sum()),
            "items_without_meta": int(missing.sum()), "meta_without_categories": int((no_categories & ~missing).sum())}


# --- alimama -------------------------------------------------------------------------------------

def write_alimama(out, interactions, **overrides):
    """``interactions`` impressions; ``behaviours`` (default 20 a user) behaviour lines."""
    k = knobs("alimama", interactions, **overrides)
    rng = np.random.default_rng(k["seed"])
    catalogue = Catalogue(rng, k["categories"], k["items_per_category"], k["zipf"])
    impressions_per_user = activities(rng, interactions, k["mean_activity"], k["activity_sigma"], k["min_activity"])
    n_users = len(impressions_per_user)
    behaviours = k["behaviours"] if k["behaviours"] is not None else 20 * n_users
    # behaviours per user: heavy-tailed, correlated with the impressions, none for a share of users
    share = impressions_per_user * rng.lognormal(0.0, 0.8, n_users)
    share[rng.random(n_users) < k["no_behaviours"]] = 0.0
    behaviours_per_user = np.floor(share / share.sum() * behaviours).astype(np.int64)
    remainder = behaviours - int(behaviours_per_user.sum())
    if remainder:
        behaviours_per_user[rng.choice(np.flatnonzero(share > 0), remainder, replace=True)] += 1
    # ads: items shown as ads, grouped by category for targeting; campaigns of about 2 ads, customers of 3
    n_ads = max(1, int(interactions * k["ads_per_impression"]))
    ad_item = catalogue.item_in(rng, catalogue.category(rng.random(n_ads)))
    ad_item = ad_item[np.argsort(ad_item // catalogue.per_category, kind="stable")]
    ad_category = ad_item // catalogue.per_category
    category_start = np.searchsorted(ad_category, np.arange(catalogue.categories + 1))
    ad_ids = rng.permutation(n_ads * 2)[:n_ads] + 1
    ad_popularity = np.cumsum(1.0 / np.arange(1, n_ads + 1) ** 0.9)
    ad_popularity /= ad_popularity[-1]
    popular_order = rng.permutation(n_ads)
    user_ids = rng.permutation(n_users * 3 // 2)[:n_users] + 1
    os.makedirs(out, exist_ok=True)
    paths = {name: os.path.join(out, f"{name}.csv") for name in ("raw_sample", "behavior_log", "ad_feature",
                                                                   "user_profile")}
    kinds = np.array(list(BEHAVIOUR_SHARES), dtype=object)
    kind_cdf = np.cumsum(list(BEHAVIOUR_SHARES.values()))
    clicks = same_second = 0
    with open_text(paths["raw_sample"]) as samples, open_text(paths["behavior_log"]) as log:
        samples.write("user,time_stamp,adgroup_id,pid,nonclk,clk\n")
        log.write("user,time_stamp,btag,cate,brand\n")
        for index, (first_user, end_user) in enumerate(blocks(impressions_per_user + behaviours_per_user)):
            block = block_rng(k["seed"], index)
            counts = behaviours_per_user[first_user:end_user]
            user, starts, first, category, item = draw_block(block, counts, catalogue, k["interests_per_user"],
                                                             k["switch"], k["explore"])
            times = session_times(block, user, first, ALIMAMA_BEHAVIOURS, k["session_length"], k["in_session_gap"])
            order = np.lexsort((times, user))
            user, category, item, times = user[order], category[order], item[order], times[order]
            # impressions: uniform over the 8 days; the ad by targeting (the user's latest interest) or popularity
            shown = impressions_per_user[first_user:end_user]
            impression_user = np.repeat(np.arange(len(shown)), shown)
            impression_time = block.integers(*ALIMAMA_IMPRESSIONS, len(impression_user))
            key = user.astype(np.int64) * 2 ** 32 + (times - ALIMAMA_BEHAVIOURS[0])
            before = np.searchsorted(key, impression_user.astype(np.int64) * 2 ** 32
                                     + (impression_time - ALIMAMA_BEHAVIOURS[0]), side="left")
            user_start = starts[impression_user]
            latest = np.where(before > user_start, category[np.maximum(before - 1, 0)], -1)
            targeted = (block.random(len(impression_user)) < k["targeted"]) & (latest >= 0)
            low, high = category_start[np.maximum(latest, 0)], category_start[np.maximum(latest, 0) + 1]
            targeted &= high > low
            by_target = low + np.floor(block.random(len(low)) * np.maximum(high - low, 1)).astype(np.int64)
            by_popularity = popular_order[np.minimum(np.searchsorted(ad_popularity, block.random(len(low))), n_ads - 1)]
            ad = np.where(targeted, by_target, by_popularity)
            # the click: base rate, lifted when the ad's category is among the last 10 behaviours' (strictly before)
            seen = np.zeros(len(ad), dtype=bool)
            for back in range(1, 11):
                position = before - back
                valid = position >= user_start
                seen |= valid & (category[np.maximum(position, 0)] == ad_category[ad])
            clk = (block.random(len(ad)) < k["base_ctr"] + k["history_lift"] * seen).astype(np.int64)
            clicks += int(clk.sum())
            # half the clicks are also logged as a pv of the ad's category and brand in the same second
            echo = (clk == 1) & (block.random(len(clk)) < 0.5)
            same_second += int(echo.sum())
            pid = np.where(block.random(len(ad)) < 0.7, "430548_1007", "430539_1007")
            shuffle = block.permutation(len(ad))
            write_csv(samples, {"user": user_ids[first_user + impression_user[shuffle]],
                                "time_stamp": impression_time[shuffle], "adgroup_id": ad_ids[ad[shuffle]],
                                "pid": pid[shuffle], "nonclk": 1 - clk[shuffle], "clk": clk[shuffle]})
            kind = kinds[np.minimum(np.searchsorted(kind_cdf, block.random(len(item))), len(kinds) - 1)]
            log_user = np.concatenate([user, impression_user[echo]])
            log_time = np.concatenate([times, impression_time[echo]])
            log_item = np.concatenate([item, ad_item[ad[echo]]])
            log_kind = np.concatenate([kind, np.full(int(echo.sum()), "pv", dtype=object)])
            shuffle = block.permutation(len(log_user))
            write_csv(log, {"user": user_ids[first_user + log_user[shuffle]], "time_stamp": log_time[shuffle],
                            "btag": log_kind[shuffle],
                            "cate": catalogue.category_ids[log_item[shuffle] // catalogue.per_category],
                            "brand": catalogue.item_ids[log_item[shuffle]]})
    with open_text(paths["ad_feature"]) as f:
        brand = np.where(rng.random(n_ads) < k["null_brand"], "NULL", catalogue.item_ids[ad_item].astype(str))
        shuffle = rng.permutation(n_ads)
        write_csv(f, {"adgroup_id": ad_ids[shuffle], "cate_id": catalogue.category_ids[ad_category[shuffle]],
                      "campaign_id": (ad_ids // 2 + 7)[shuffle], "customer": (ad_ids // 3 + 11)[shuffle],
                      "brand": brand[shuffle], "price": np.round(rng.lognormal(4.0, 1.2, n_ads), 2)[shuffle]},
                  header="adgroup_id,cate_id,campaign_id,customer,brand,price")
    with open_text(paths["user_profile"]) as f:
        profiled = np.flatnonzero(rng.random(n_users) >= k["no_profile"])
        profiled = profiled[rng.permutation(len(profiled))]
        m = len(profiled)
        pvalue = np.where(rng.random(m) < 0.54, np.nan, rng.integers(1, 4, m))
        city = np.where(rng.random(m) < 0.32, np.nan, rng.integers(1, 5, m))
        write_csv(f, {"userid": user_ids[profiled], "cms_segid": rng.integers(0, 97, m),
                      "cms_group_id": rng.integers(0, 13, m), "final_gender_code": rng.integers(1, 3, m),
                      "age_level": rng.integers(0, 7, m), "pvalue_level": pd.array(pvalue, dtype="Int64"),
                      "shopping_level": rng.integers(1, 4, m), "occupation": (rng.random(m) < 0.06).astype(int),
                      "new_user_class_level": pd.array(city, dtype="Int64")}, header=PROFILE_HEADER)
    return {"files": list(paths.values()), "impressions": int(impressions_per_user.sum()), "users": n_users,
            "behaviours": int(behaviours_per_user.sum()) + same_second, "ads": n_ads, "clicks": clicks,
            "same_second_click_behaviours": same_second, "profiles": len(profiled)}


WRITERS = {"taobao": write_taobao, "amazon": write_amazon, "alimama": write_alimama}


def generate(layout, out, interactions, **options):
    """Write ``layout``'s raw files into the folder ``out``; returns what was written (counts, paths)."""
    if layout not in WRITERS:
        raise RecBoleDienError(f"--layout {layout}: use one of atomic, {', '.join(WRITERS)}")
    if interactions < 1:
        raise RecBoleDienError(f"--interactions={interactions}: at least 1 is needed")
    return WRITERS[layout](out, interactions, **options)
