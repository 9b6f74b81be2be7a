"""DIEN's negative behaviours: for each step of a history, an item the user did not click there.

Two samplers with the same guarantees: :func:`sample_log_negatives` draws one negative per
interaction of a log sorted by (user, time), stored flat next to the log (the dataset's fixed
negatives, gathered into rows like any other history column); :func:`sample_negative_sequences`
draws for each row of a batch (fresh negatives every time a row is loaded).
"""
import itertools

import torch

from recbole_dien.data.lean import user_starts
from recbole_dien.model.layers import sequence_mask

NEGATIVE_EXCLUSIONS = ("history", "positive")


def sample_negative_sequences(item_seq, lengths, n_items, exclude="history", generator=None, chunk_rows=8192,
                              max_rounds=100):
    """One negative item per real position of each behaviour sequence: [R, L] (0 at padding).

    The negative at step k is never the positive ``item_seq[r, k]``; with ``exclude='history'`` it
    is also none of the behaviours the row shows up to that step, ``item_seq[r, :k+1]``. Items are
    drawn uniformly from 1..n_items-1 and redrawn where they break the rule (vectorised). Where a
    history covers nearly the whole catalogue, after ``max_rounds`` draws only the positive is
    excluded.
    """
    _check(n_items, exclude)
    negatives = torch.zeros_like(item_seq)
    for start in range(0, len(item_seq), chunk_rows):
        seq, length = item_seq[start:start + chunk_rows], lengths[start:start + chunk_rows]
        real = sequence_mask(length, seq.shape[1])
        if exclude == "history":
            # visible[k, j]: position j is part of the history at step k (j <= k)
            visible = torch.ones(seq.shape[1], seq.shape[1], dtype=torch.bool, device=seq.device).tril()
        chunk = torch.zeros_like(seq)
        pending = real.clone()
        for round_ in itertools.count():
            if not pending.any():
                break
            draw = torch.randint(1, n_items, seq.shape, generator=generator, device=seq.device)
            if exclude == "history" and round_ < max_rounds:
                clash = ((draw.unsqueeze(-1) == seq.unsqueeze(-2)) & visible).any(-1)
            else:
                clash = draw == seq
            accept = pending & ~clash
            chunk = torch.where(accept, draw, chunk)
            pending &= ~accept
        negatives[start:start + chunk_rows] = chunk
    return negatives


def _check(n_items, exclude):
    if n_items < 3:
        raise ValueError("negative sampling needs at least two items besides the padding id")
    if exclude not in NEGATIVE_EXCLUSIONS:
        raise ValueError(f"negative exclusion must be one of {', '.join(NEGATIVE_EXCLUSIONS)}, not '{exclude}'")


def sample_log_negatives(users, items, n_items, window, exclude="history", generator=None, max_rounds=100,
                         block_positions=2 ** 22):
    """One negative item per interaction of a log sorted by (user, time): [N].

    The negative at position p is never ``items[p]``; with ``exclude='history'`` it is also none of
    the user's items at the ``window`` positions ending at p - every behaviour any sequential row
    (whose history holds at most ``window`` of them) shows up to that step. Draws are uniform over
    1..n_items-1, redrawn where they break the rule; the check is a binary search over the log's
    sorted (user, item, position) keys, so time grows with N, not N x window. Where a
    window covers nearly the whole catalogue, after ``max_rounds`` draws only ``items[p]`` is excluded.

    The rule only looks within a user, so the log is drawn in blocks of whole users of about
    ``block_positions`` interactions (a longer user is a block of its own), one after the other
    from ``generator``: the working memory is a block's, not the log's (a 100M-behaviour log drew
    past 16 GB in one piece). A log of at most ``block_positions`` interactions is one block.
    """
    _check(n_items, exclude)
    n = len(items)
    if n <= block_positions:
        return _sample_log_block(users, items, n_items, window, exclude, generator, max_rounds)
    firsts = torch.nonzero(torch.cat([torch.ones(1, dtype=torch.bool), users[1:] != users[:-1]])).squeeze(1)
    # each block ends at the last user start at or before the next multiple of block_positions
    targets = torch.arange(block_positions, n, block_positions)
    cuts = torch.unique(firsts[torch.searchsorted(firsts, targets, right=True) - 1])
    bounds = [0, *[int(cut) for cut in cuts if cut > 0], n]
    negatives = torch.empty_like(items)
    for start, end in zip(bounds[:-1], bounds[1:]):
        negatives[start:end] = _sample_log_block(users[start:end], items[start:end], n_items, window, exclude,
                                                 generator, max_rounds)
    return negatives


def _sample_log_block(users, items, n_items, window, exclude, generator, max_rounds):
    """:func:`sample_log_negatives` on a log of whole users, in one piece."""
    n = len(items)
    position = torch.arange(n)
    window_start = torch.maximum(user_starts(users), position - window + 1)
    if exclude == "history":
        pairs, pair_rank = torch.unique(users.long() * n_items + items, return_inverse=True)  # sorted (user, item)
        occurrences = torch.sort(pair_rank * n + position).values    # (pair, position), sorted
    negatives = torch.zeros_like(items)
    pending = torch.arange(n)
    for round_ in itertools.count():
        if len(pending) == 0:
            break
        draw = torch.randint(1, n_items, (len(pending),), generator=generator, dtype=items.dtype)
        clash = draw == items[pending]
        if exclude == "history" and round_ < max_rounds:
            query = users[pending].long() * n_items + draw
            pair = torch.searchsorted(pairs, query).clamp(max=len(pairs) - 1)
            known = pairs[pair] == query
            # the pair's first occurrence at or after the window's start: a clash if it is <= p
            found = torch.searchsorted(occurrences, pair * n + window_start[pending])
            at = occurrences[found.clamp(max=n - 1)]
            clash |= known & (found < n) & (at <= pair * n + position[pending])
        negatives[pending[~clash]] = draw[~clash]
        pending = pending[clash]
    return negatives
