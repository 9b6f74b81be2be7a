"""McAuley's 2014 Amazon review dumps of one category, as the DIN and DIEN papers used them.

    python -m recbole_dien.datasets amazon --category Books --raw DIR --out data/
    python run_recbole.py --model=DIEN --dataset=amazon-books-5core --data_path=data/ --config_files=data/amazon-books-5core/amazon-books-5core.yaml

Reads, from ``--raw`` (each plain or ``.gz``):

* ``reviews_<Category>_5.json``: the 5-core reviews (every user and item has at least 5), one JSON
  object a line: ``reviewerID``, ``asin``, ``reviewerName``, ``helpful``, ``reviewText``,
  ``overall``, ``summary``, ``unixReviewTime`` (seconds; the dumps give whole days), ``reviewTime``.
  ``reviewerID``, ``asin`` and ``unixReviewTime`` are read; a line without them is malformed.
* ``meta_<Category>.json``: one item a line, written as a **Python literal**, not JSON
  (``{'asin': '0000031852', 'title': ..., 'categories': [['Books', 'Literature & Fiction']], ...}``).
  The authors' preprocessing calls ``eval`` on these lines; here they are read with
  :func:`recbole_dien.datasets.convert.python_literal`, which only accepts literals, bounded in
  length and nesting: a line that holds code is malformed and never runs. Only the lines of items
  that some review names are parsed (the meta file lists many more items).

Writes ``OUT/amazon-<category>-5core/`` (the category in lower case; RecBole's own name for its
converted files of every rating is ``amazon-<category>``, run with ``dataset_configs/amazon-books.yaml``
and ``amazon-electronics.yaml``):

* ``.inter``: ``user_id`` (reviewerID), ``item_id`` (asin), ``timestamp``; every review is a
  behaviour, grouped by user (in the order users first show up), each user's by time and then by
  the review's line in the file (reviews of one day keep the file's order, and a stable sort by
  time keeps it too);
* ``.item``: ``item_id``, ``category``: the DIEN paper's category, the **last level of the first
  category path** (``[['Books', 'Literature & Fiction', 'Poetry'], ...]`` -> ``Poetry``); ``[none]``
  for an item whose meta line has no category or is missing (counted in the report);
* ``<dataset>.yaml``: the papers' protocol (see :data:`PROTOCOL`).
"""
import os
import re

import numpy as np

from recbole_dien.datasets import convert as conversion
from recbole_dien.utils.errors import DatasetError

NO_CATEGORY = "[none]"
REVIEW_FIELDS = ("reviewerID", "asin", "unixReviewTime")
WRITE_ROWS = 1 << 20
# the asin of a meta line, found before the line is parsed (both quote styles: the 2014 dumps
# write Python literals, re-exported copies JSON)
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]*)['"]""")

PROTOCOL = """{dataset}: McAuley's 2014 Amazon {category} reviews (5-core), converted by
python -m recbole_dien.datasets amazon --category {category}.
The DIN / DIEN papers' protocol: each user's reviews are behaviours in time order, and each one
after the first is a target whose history is the reviews before it. Each user's last review is the
test target, the one before it the validation target (the papers train on it; here it stops
training early), the rest are training targets. Every target is scored against one item drawn
uniformly from the items the user never reviewed (uni1, as the papers' one negative per positive);
training draws one such negative per target. AUC over all the pairs (the papers' metric), and
LogLoss. Histories hold the 100 most recent reviews (the DIEN authors' maximum). Features: item id
and its category (the last level of the item's first category path), as in the papers."""

SETTINGS = conversion.last_target_protocol(
    {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "category"]}, history_length=100)


def add_arguments(parser):
    parser.add_argument("--category", required=True,
                        help="the category in the files' names: Books, Electronics, Cell_Phones_and_Accessories, ...")
    parser.add_argument("--name", help="dataset name (default: amazon-<category in lower case>-5core)")


def dataset_name(category):
    return f"amazon-{category.lower()}-5core"


def first_path_leaf(categories):
    """The DIEN paper's item category: the last level of the first category path, or None."""
    if isinstance(categories, (list, tuple)) and categories:
        path = categories[0]
        if isinstance(path, (list, tuple)) and path and isinstance(path[-1], str) and path[-1].strip():
            return path[-1].strip()
    return None


class TokenCodes:
    """Tokens (reviewerIDs, asins) numbered in order of first appearance, so that the log is kept
    as integer arrays; the tokens themselves are written back at the end."""

    def __init__(self):
        self.codes = {}

    def encode(self, tokens):
        codes = self.codes
        return np.fromiter((codes.setdefault(token, len(codes)) for token in tokens), dtype=np.int64,
                           count=len(tokens))

    def tokens(self):
        return np.array(list(self.codes), dtype=object)


def read_reviews(path, tally):
    """(user codes, item codes, times, line numbers) of every readable review, and the token tables."""
    users, items = TokenCodes(), TokenCodes()
    parts = []
    for records, lines in conversion.read_record_lines(path, "McAuley's 2014 review (JSON lines)", REVIEW_FIELDS,
                                                    tally, not_parsed="not JSON"):
        times = np.empty(len(records), dtype=np.int64)
        good = np.ones(len(records), dtype=bool)
        for i, record in enumerate(records):
            value = record["unixReviewTime"]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                times[i] = int(value)
            elif isinstance(value, str) and value.strip().isdigit():
                times[i] = int(value)
            else:
                good[i] = False
        if not good.all():
            tally.add_malformed("'unixReviewTime' is not a whole number", lines[~good])
        kept = [record for record, ok in zip(records, good) if ok]
        user = users.encode([str(record["reviewerID"]) for record in kept])
        item = items.encode([str(record["asin"]) for record in kept])
        parts.append((user, item, times[good], lines[good]))
    if not parts:
        raise DatasetError(f"{path}: none of its {tally.lines:,} lines is a readable review")
    user, item, times, lines = (np.concatenate(column) for column in zip(*parts))
    return user, item, times, lines, users, items


def read_categories(path, items, tally):
    """Each reviewed item's category (array aligned with the item codes; None where none is known),
    and how many reviewed items had a meta line without a category."""
    wanted = items.codes
    category = np.full(len(wanted), None, dtype=object)
    seen = np.zeros(len(wanted), dtype=bool)
    duplicates = 0

    def keep(line):
        found = _ASIN.search(line)
        # a line with no asin at all is parsed, so that it is counted: malformed, or without an asin
        return found is None or found.group(1) in wanted

    for records, lines in conversion.read_record_lines(path, "McAuley's 2014 meta (Python-literal lines)", ("asin",),
                                                    tally, parse=conversion.python_literal,
                                                    not_parsed="not a Python literal", keep=keep):
        for record in records:
            code = wanted.get(str(record["asin"]))
            if code is None:
                continue
            if seen[code]:
                duplicates += 1
                continue
            seen[code] = True
            category[code] = first_path_leaf(record.get("categories"))
    without = int((seen & (category == None)).sum())  # noqa: E711 - an object array's element-wise test
    return category, int((~seen).sum()), without, duplicates


def convert(raw_dir, out_dir, category, name=None):
    timer = conversion.Timer()
    dataset = name or dataset_name(category)
    reviews_path = conversion.raw_file(raw_dir, f"reviews_{category}_5.json",
                                           f"McAuley's 2014 5-core reviews of {category} (JSON lines)")
    meta_path = conversion.raw_file(raw_dir, f"meta_{category}.json",
                                        f"McAuley's 2014 item metadata of {category} (Python-literal lines)")
    reviews, meta = conversion.LineTally(reviews_path), conversion.LineTally(meta_path)
    user, item, times, lines, users, items = read_reviews(reviews_path, reviews)
    categories, no_meta, no_category, duplicates = read_categories(meta_path, items, meta)

    folder = conversion.dataset_folder(out_dir, dataset)
    order = np.lexsort((lines, times, user))
    user_tokens, item_tokens = users.tokens(), items.tokens()
    with conversion.AtomicFileWriter(os.path.join(folder, f"{dataset}.inter"),
                                         [("user_id", "token"), ("item_id", "token"), ("timestamp", "float")]) as out:
        for start in range(0, len(order), WRITE_ROWS):
            rows = order[start:start + WRITE_ROWS]
            out.write({"user_id": user_tokens[user[rows]], "item_id": item_tokens[item[rows]],
                       "timestamp": times[rows]})
    inter_rows = out.rows
    known = np.where(categories == None, NO_CATEGORY, categories)  # noqa: E711
    with conversion.AtomicFileWriter(os.path.join(folder, f"{dataset}.item"),
                                         [("item_id", "token"), ("category", "token")]) as out:
        out.write({"item_id": item_tokens, "category": known})
    conversion.write_dataset_config(folder, dataset, PROTOCOL.format(dataset=dataset, category=category), SETTINGS)

    report = conversion.ConversionReport(dataset, folder, out_dir, model="DIEN", tallies=[reviews, meta])
    report.written = {f"{dataset}.inter": inter_rows, f"{dataset}.item": out.rows}
    report.notes.append(f"{len(user_tokens):,} users, {len(item_tokens):,} items, "
                        f"{len(set(known.tolist())):,} categories")
    if no_meta or no_category:
        report.notes.append(f"category {NO_CATEGORY}: {no_meta:,} reviewed items without a meta line, "
                            f"{no_category:,} whose meta line has no category")
    if duplicates:
        report.notes.append(f"{duplicates:,} repeated meta lines of an item: the first one kept")
    report.seconds = timer.seconds()
    return report

