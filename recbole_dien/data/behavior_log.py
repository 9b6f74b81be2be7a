"""A behaviour log sorted by (user, time), and where in it each impression's history lies.

Impressions (an ad shown to a user at a time, clicked or not) take their histories from a separate
log of the users' behaviours (:mod:`recbole_dien.data.impressions`). Everything here is tensor
arithmetic over the whole log, so that building the rows costs O(behaviours + impressions) memory
and no Python loop over either:

* :func:`sort_by_user_and_time` - the log's order (stable: behaviours of one user in the same
  second keep their file order);
* :func:`histories_before` - for each impression, the span of its user's behaviours that lie
  **strictly before** its time: a behaviour in the same second is left out, because a click is
  often logged as a behaviour in the very second of the impression, and its history would then
  hold the label;
* :func:`distinct_behaviours` - each behaviour as the id of its field values (category, brand,
  behaviour type, ...): the history columns hold one id per behaviour, the fields live once per
  distinct combination.
"""
import torch


def sort_by_user_and_time(users, times):
    """The permutation that sorts a log by (user, time), stable (equal keys keep their order)."""
    by_time = torch.sort(times, stable=True).indices
    return by_time[torch.sort(users[by_time], stable=True).indices]


def histories_before(log_users, log_times, users, times):
    """For queries (``users`` [Q], ``times`` [Q]) against a log sorted by (user, time): ``first``
    [Q], where the user's behaviours start, and ``end`` [Q], one past the last of them strictly
    before the query's time (``end - first`` behaviours; 0 for a user without any).

    Exact for any time values (float64 seconds compare as they are): the user's span comes from a
    binary search on the sorted users, the end from a binary search on the times inside it, both
    vectorised over the queries (at most log2(span) + 1 rounds)."""
    users = users.to(log_users.dtype)
    first = torch.searchsorted(log_users, users, side="left")
    low, high = first.clone(), torch.searchsorted(log_users, users, side="right")
    times = times.to(log_times.dtype)
    last = max(len(log_times) - 1, 0)
    while True:
        active = low < high
        if not active.any():
            break
        middle = torch.div(low + high, 2, rounding_mode="floor")
        earlier = log_times[middle.clamp(max=last)] < times                 # strictly before: ties stay out
        low = torch.where(active & earlier, middle + 1, low)
        high = torch.where(active & ~earlier, middle, high)
    return first, low


def _codes(values):
    """Dense codes 0..K-1 of a column's distinct values (floats by their exact bits) and K."""
    if values.is_floating_point():
        values = values.double().view(torch.int64)
    distinct, codes = torch.unique(values.reshape(len(values), -1), dim=0, return_inverse=True) \
        if values.dim() > 1 else torch.unique(values, return_inverse=True)
    return codes, len(distinct)


def distinct_behaviours(columns):
    """``columns`` {field: values [N, ...]} of the same N behaviours -> ``ids`` [N] (1..K, one per
    distinct combination of the values) and ``table`` {field: [K + 1, ...]}: the values of each
    id, row 0 zeros (the padding id).

    The combination key is built field by field: two fields' codes fold into one code of their
    pairs (a product below N^2, which int64 holds for any log that fits in memory), so no key
    ever overflows whatever the fields' cardinalities."""
    fields = list(columns)
    n = len(columns[fields[0]])
    key, _ = _codes(columns[fields[0]])
    for field in fields[1:]:
        codes, count = _codes(columns[field])
        key, _ = _codes(key * count + codes)
    first = torch.full((int(key.max()) + 1 if n else 0,), n, dtype=torch.long)
    first = first.scatter_reduce(0, key, torch.arange(n), "amin")                # each id's first behaviour
    table = {}
    for field, values in columns.items():
        table[field] = torch.cat([torch.zeros((1,) + values.shape[1:], dtype=values.dtype), values[first]])
    return key + 1, table
