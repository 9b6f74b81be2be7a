"""Top-K recommendations from a trained checkpoint.

    recbole-dien recommend saved/DIEN-<date>.pth --users 1 7 42 --topk 10
    recbole-dien recommend saved/DIN-<date>.pth --all-users --topk 20 --output recommendations.csv
    recbole-dien recommend saved/DIN-<date>.pth --users new-user --history-items 242 302 377 --topk 10

For each user (tokens as in the dataset's files) the model scores every item with
``full_sort_predict``, batched over users, and the ``--topk`` best are printed (or written as CSV:
user, rank, item, score). The user's history is the whole log - the behaviours the test target was
scored with, and the test target itself (``--history test`` keeps the test row as it is, the input
RecBole's ``case_study.full_sort_topk`` uses). Items the user already interacted with anywhere in
the log are left out unless ``--include-seen``; so is the padding item.

A user given a history (``--history-items`` oldest first, ``--history-times`` their timestamps where the
model uses time; from Python ``histories`` and ``times``, per user) is scored from that history
instead, with the model's serving path (:class:`recbole_dien.serving.Scorer` on the model itself):
a user not in the dataset is scored from the history alone (the default profile), history items
not in the dataset are dropped, and the history's items are the ones left out as seen.

From Python: :func:`recommend` (a checkpoint path, or the tuple ``load_data_and_model`` returns).
"""
import argparse
import csv

import numpy as np
import torch

from recbole_dien.data.lean import first_history_values
from recbole_dien.utils.errors import RecBoleDienError, report

HISTORIES = ("latest", "test")


def user_ids(dataset, tokens):
    """Internal ids of user tokens, one line for an unknown one."""
    ids = []
    for token in tokens:
        try:
            ids.append(int(dataset.token2id(dataset.uid_field, str(token))))
        except ValueError:
            raise RecBoleDienError(f"user '{token}' is not in the dataset {dataset.dataset_name}; give its history "
                                   "(--history-items) to score a new user") from None
    return torch.tensor(ids, dtype=torch.long)


def test_rows(test_split, users):
    """The test row of each user id (its last), or one line naming a user without one."""
    uid_field = test_split.uid_field
    owners = test_split.inter_feat[uid_field]
    if len(owners) == 0:
        raise RecBoleDienError("the test split has no rows: nothing to recommend from")
    # the last row of each user (a labeled split holds several)
    row_of_user = torch.full((int(owners.max()) + 1,), -1, dtype=torch.long).scatter_reduce(
        0, owners, torch.arange(len(owners)), "amax")
    rows = row_of_user[users.clamp(max=len(row_of_user) - 1)]
    rows[users >= len(row_of_user)] = -1
    if (rows < 0).any():
        user = users[(rows < 0).nonzero()[0, 0]]
        raise RecBoleDienError(f"user '{test_split.id2token(uid_field, user)}' has no test row (too few interactions "
                               "to be kept by the dataset's filters and split)")
    return rows


def with_latest_behaviour(rows, config):
    """Each row's history extended by its own target: the last behaviours of the user's whole log
    that fit the row's lists (``MAX_ITEM_LIST_LENGTH``; DSIN's dataset: K x T, from which the
    model cuts its sessions again), for every list field the row holds (item ids, timestamps, ...)."""
    suffix, length_field = config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    cap = rows[config["ITEM_ID_FIELD"] + suffix].shape[1]
    lengths = rows[length_field]
    full = lengths >= cap
    at = torch.where(full, cap - 1, lengths)
    index = torch.arange(len(lengths))
    for field in list(rows.interaction):
        base = field[:-len(suffix)]
        if not field.endswith(suffix) or base not in rows.interaction or rows[field].dim() != 2:
            continue
        sequence = rows[field].clone()
        sequence[full] = sequence[full].roll(-1, dims=1)  # at the cap the oldest behaviour leaves
        sequence[index, at] = rows[base].to(sequence.dtype)
        rows.interaction[field] = sequence
    rows.interaction[length_field] = (lengths + 1).clamp(max=cap)
    return rows


def seen_items(dataset, users):
    """[len(users), n_items] bool: the items each user interacted with anywhere in the log."""
    inter = dataset.inter_feat
    position = torch.full((dataset.user_num,), -1, dtype=torch.long)
    position[users] = torch.arange(len(users))
    # the rows' targets, and their first behaviours: a user's first interaction is never a target
    owner = position[inter[dataset.uid_field]].repeat(2)
    items = torch.cat([inter[dataset.iid_field], first_history_values(dataset, dataset.iid_field)])
    mine = owner >= 0
    seen = torch.zeros(len(users), dataset.item_num, dtype=torch.bool)
    seen[owner[mine], items[mine]] = True
    return seen


def recommend_from_histories(loaded, users, histories, times, topk, exclude_seen):
    """Top-``topk`` items of users scored from the histories given (item tokens oldest first, and
    their times), through the serving path; a user the dataset does not hold is scored from the
    history alone."""
    from recbole_dien.serving.export import ServingModule, serving_metadata
    from recbole_dien.serving.scorer import Request, Scorer, ScoringError

    config, model, dataset = loaded[:3]
    module = ServingModule(model, dataset)
    scorer = Scorer.from_program(module, serving_metadata(module, dataset, "eager"))
    items = [str(token) for token in dataset.field2id_token[dataset.iid_field][1:]]   # ids 1..n-1
    results = []
    for user in users:
        request = Request(user=user, history=histories[user], times=(times or {}).get(user), candidates=items)
        try:
            scores = scorer.score([request]).probabilities[0]
        except ScoringError as error:
            raise RecBoleDienError(f"user '{user}': {error}") from None
        if exclude_seen:
            seen = [scorer.items.id_map[str(item)] - 1 for item in histories[user] if str(item) in scorer.items.id_map]
            scores[seen] = -np.inf
        values, best = torch.topk(scores, min(topk, len(items)))
        kept = [(items[i], value) for i, value in zip(best.tolist(), values.tolist()) if value > -np.inf]
        results.append((str(user), [item for item, _ in kept], [value for _, value in kept]))
    return results


@torch.no_grad()
def recommend(checkpoint, users=None, topk=10, exclude_seen=True, history="latest", batch_size=None,
              histories=None, times=None):
    """Top-``topk`` items for each user: a list of ``(user token, [item tokens], [scores])``.

    ``checkpoint``: a path, or ``load_data_and_model``'s tuple (loaded once, reused). ``users``:
    user tokens; ``None`` for every user with a test row. See the module docstring for
    ``history`` and ``exclude_seen``. ``batch_size``: users scored at once (default: the run's
    ``eval_batch_size``, as RecBole's full-sort evaluation batches them). ``histories``
    {user token: [item tokens, oldest first]} (and ``times`` {user token: [timestamps]}): the
    history to score those of ``users`` with, instead of their log; the users need not be in the
    dataset.
    """
    from recbole_dien.quick_start import load_data_and_model

    if history not in HISTORIES:
        raise RecBoleDienError(f"history must be one of {', '.join(HISTORIES)}, not '{history}'")
    if not isinstance(topk, int) or topk < 1:
        raise RecBoleDienError(f"topk must be an int >= 1, not {topk!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise RecBoleDienError(f"batch size must be an int >= 1, not {batch_size!r}")
    histories = {str(user): list(items) for user, items in (histories or {}).items()}
    times = {str(user): list(stamps) for user, stamps in (times or {}).items()}
    if histories and users is None:
        raise RecBoleDienError("histories are given per user: name the users to score (users=...)")
    if set(times) - set(histories):
        raise RecBoleDienError(f"times given for user '{sorted(set(times) - set(histories))[0]}' without a history")
    loaded = load_data_and_model(checkpoint) if isinstance(checkpoint, str) else checkpoint
    if histories:
        given = [str(user) for user in users if str(user) in histories]
        from_log = [user for user in users if str(user) not in histories]
        scored = dict((user, (user, items, scores)) for user, items, scores in
                      recommend_from_histories(loaded, given, histories, times, topk, exclude_seen))
        if from_log:
            for result in recommend(loaded, from_log, topk, exclude_seen, history, batch_size):
                scored[result[0]] = result
        return [scored[str(user)] for user in users]
    config, model, dataset, _, _, test_data = loaded
    test_split = test_data._dataset
    if users is None:
        ids = torch.unique(test_split.inter_feat[test_split.uid_field])
    else:
        ids = user_ids(dataset, users)
    rows = test_rows(test_split, ids)
    topk = min(topk, dataset.item_num - 1)
    batch_size = batch_size or config["eval_batch_size"]
    model.eval()
    results = []
    for start in range(0, len(ids), batch_size):
        batch_users = ids[start:start + batch_size]
        interaction = test_split[rows[start:start + batch_size]]
        if history == "latest":
            interaction = with_latest_behaviour(interaction, config)
        scores = model.full_sort_predict(interaction.to(config["device"])).view(len(batch_users), -1).cpu()
        scores[:, 0] = -np.inf
        if exclude_seen:
            scores[seen_items(dataset, batch_users)] = -np.inf
        values, items = torch.topk(scores, topk, dim=1)
        tokens = dataset.id2token(dataset.iid_field, items.numpy())
        user_tokens = dataset.id2token(dataset.uid_field, batch_users.numpy())
        for user, item_row, value_row in zip(user_tokens, tokens, values.tolist()):
            kept = [(item, value) for item, value in zip(item_row, value_row) if value > -np.inf]
            results.append((str(user), [str(item) for item, _ in kept], [value for _, value in kept]))
    return results


def main(argv=None, prog="recbole-dien recommend"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint written by run_recbole.py (saved/<Model>-<date>.pth)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", nargs="+", help="user tokens")
    who.add_argument("--all-users", action="store_true", help="every user with a test row")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--include-seen", action="store_true", help="also recommend items the user interacted with")
    parser.add_argument("--history", choices=HISTORIES, default="latest",
                        help="latest: the whole log (default); test: the test row as RecBole's case study uses it")
    parser.add_argument("--batch-size", type=int, default=None, help="users scored at once (default: eval_batch_size)")
    parser.add_argument("--history-items", nargs="+", metavar="ITEM",
                        help="score the one user of --users from these items (oldest first) instead of its log; "
                             "the user need not be in the dataset")
    parser.add_argument("--history-times", nargs="+", type=float, metavar="TIME",
                        help="with --history-items: their timestamps (needed where the model uses time, DSIN)")
    parser.add_argument("--output", help="write CSV (user, rank, item, score) here instead of printing")
    args = parser.parse_args(argv)
    if args.history_items and (args.all_users or len(args.users) != 1):
        parser.error("--history-items is one user's history: give exactly one --users token with it")
    if args.history_times and not args.history_items:
        parser.error("--history-times goes with --history-items")
    histories = {args.users[0]: args.history_items} if args.history_items else None
    times = {args.users[0]: args.history_times} if args.history_times else None
    try:
        results = recommend(args.checkpoint, None if args.all_users else args.users, args.topk,
                            not args.include_seen, args.history, args.batch_size, histories, times)
    except RecBoleDienError as error:
        return report(parser, error)
    if args.output:
        with open(args.output, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user", "rank", "item", "score"])
            for user, items, scores in results:
                writer.writerows([user, rank, item, f"{score:.6f}"] for rank, (item, score) in
                                 enumerate(zip(items, scores), 1))
        print(f"wrote {len(results)} users' top {args.topk} to {args.output}")
    else:
        for user, items, _ in results:
            print(f"{user}: {' '.join(items)}")
    return 0

