import numpy as np
import torch

from recbole_dien.data.behavior_log import distinct_behaviours, histories_before, sort_by_user_and_time


def reference_spans(log_users, log_times, users, times):
    """Per query: (first position of the user's behaviours, one past the last strictly before the time)."""
    spans = []
    for user, time in zip(users.tolist(), times.tolist()):
        mine = [p for p, u in enumerate(log_users.tolist()) if u == user]
        first = mine[0] if mine else int(np.searchsorted(log_users.numpy(), user))
        before = [p for p in mine if log_times[p] < time]
        spans.append((first, before[-1] + 1 if before else first))
    return spans


def test_same_second_is_left_out_one_second_earlier_kept():
    log_users = torch.tensor([1, 1, 1, 2, 2])
    log_times = torch.tensor([1494000000.0, 1494000099.0, 1494000100.0, 1494000100.0, 1494000101.0],
                             dtype=torch.float64)
    first, end = histories_before(log_users, log_times, torch.tensor([1, 1, 2, 3]),
                                  torch.tensor([1494000100.0, 1494000101.0, 1494000100.0, 5.0], dtype=torch.float64))
    # user 1 at t=...100: the behaviours at ...000 and ...099, not the one at ...100
    assert first.tolist() == [0, 0, 3, 5] and end.tolist() == [2, 3, 3, 5]


def test_times_beyond_float32_resolution_stay_exact():
    # float32 holds 1494000000 +- 64: these three would collapse into one value
    log_times = torch.tensor([1494000000.0, 1494000001.0, 1494000002.0], dtype=torch.float64)
    _, end = histories_before(torch.zeros(3, dtype=torch.long), log_times, torch.zeros(3, dtype=torch.long),
                              log_times.clone())
    assert end.tolist() == [0, 1, 2]


def test_spans_match_a_python_reference_on_random_logs():
    generator = torch.Generator().manual_seed(3)
    users = torch.randint(0, 9, (400,), generator=generator)
    times = torch.randint(0, 60, (400,), generator=generator).double()  # many equal seconds
    order = sort_by_user_and_time(users, times)
    log_users, log_times = users[order], times[order]
    query_users = torch.randint(0, 11, (300,), generator=generator)   # some users have no behaviour
    query_times = torch.randint(-5, 70, (300,), generator=generator).double()
    first, end = histories_before(log_users, log_times, query_users, query_times)
    assert list(zip(first.tolist(), end.tolist())) == reference_spans(log_users, log_times, query_users, query_times)


def test_sort_is_by_user_then_time_and_stable():
    users = torch.tensor([2, 1, 2, 1, 1])
    times = torch.tensor([5.0, 7.0, 5.0, 3.0, 7.0])
    assert sort_by_user_and_time(users, times).tolist() == [3, 1, 4, 0, 2]


def test_distinct_behaviours_give_one_id_per_combination_and_their_values():
    columns = {"cate_id": torch.tensor([4, 4, 9, 4, 9]), "brand": torch.tensor([1, 2, 1, 1, 1]),
               "price": torch.tensor([0.5, 0.5, 0.25, 0.5, 0.25])}
    ids, table = distinct_behaviours(columns)
    assert ids[0] == ids[3] and ids[2] == ids[4] and len(set(ids.tolist())) == 3 and ids.min() == 1
    for field, values in columns.items():
        assert table[field][0] == 0  # the padding row
        assert torch.equal(table[field][ids], values)


def test_distinct_behaviours_fold_fields_of_any_cardinality():
    generator = torch.Generator().manual_seed(0)
    columns = {name: torch.randint(0, 2 ** 40, (1000,), generator=generator) % modulus
               for name, modulus in (("a", 2 ** 40), ("b", 7), ("c", 2 ** 35))}
    columns["b"][500:] = columns["b"][:500]
    columns["a"][500:], columns["c"][500:] = columns["a"][:500], columns["c"][:500]
    ids, table = distinct_behaviours(columns)
    assert torch.equal(ids[500:], ids[:500]) and len(torch.unique(ids[:500])) == 500
    for field, values in columns.items():
        assert torch.equal(table[field][ids], values)
