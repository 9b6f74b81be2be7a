"""RecBole's grouped splits (leave-one-out, ratios per user) computed on index tensors.

RecBole's ``Dataset._grouped_index`` walks the interactions in a Python loop and its split
methods gather Python lists of every row index: fine at 100k rows, minutes and gigabytes at 20M.
These functions return the same indices in the same order as tensors:

- groups in order of their key's first appearance, indices ascending within a group (RecBole's
  ``_grouped_index``);
- each part of a split lists its indices group after group (RecBole's ``next_index`` lists).
"""
import numpy as np
import torch


class GroupedIndex:
    """Indices grouped by key, as RecBole's ``_grouped_index`` groups them, held as two tensors:
    ``order`` (every index, group after group) and ``sizes`` (each group's size, in that order).
    Iterating yields each group's index tensor, so RecBole code that loops over groups still works."""

    def __init__(self, keys):
        keys = torch.as_tensor(np.asarray(keys))
        positions = torch.arange(len(keys))
        _, group_of = torch.unique(keys, return_inverse=True)
        groups = int(group_of.max()) + 1 if len(keys) else 0
        first_seen = torch.full((groups,), len(keys), dtype=torch.long).scatter_reduce(
            0, group_of, positions, "amin")
        rank = torch.empty(groups, dtype=torch.long)
        rank[first_seen.argsort()] = torch.arange(groups)
        group_rank = rank[group_of]                                   # each index's group, by first appearance
        self.order = torch.sort(group_rank, stable=True).indices      # [N] group after group
        self.sizes = torch.bincount(group_rank, minlength=groups)     # [G]

    def offsets(self):
        """Each entry of ``order``: its group's size and its place inside the group."""
        group = torch.repeat_interleave(torch.arange(len(self.sizes)), self.sizes)
        group_start = torch.cumsum(self.sizes, 0) - self.sizes
        return self.sizes[group], torch.arange(len(self.order)) - group_start[group]

    def __iter__(self):
        return iter(torch.split(self.order, self.sizes.tolist()))

    def __len__(self):
        return len(self.sizes)


def leave_one_out_parts(grouped, leave_one_num):
    """RecBole's ``_split_index_by_leave_one_out``: per group, the last ``leave_one_num`` indices
    go one to each of the last parts (fewer when the group is small: a group keeps at least one
    index in the first part); ``leave_one_num + 1`` index tensors."""
    size, offset = grouped.offsets()
    kept_out = torch.clamp(size - 1, max=leave_one_num)      # legal_leave_one_num
    first_left_out = size - kept_out
    part = torch.where(offset < first_left_out, 0, leave_one_num + 1 - kept_out + (offset - first_left_out))
    return [grouped.order[part == k] for k in range(leave_one_num + 1)]


def ratio_parts(grouped, ratios, split_ids):
    """RecBole's grouped ``split_by_ratio``: every group cut by ``split_ids(size, ratios)`` (RecBole's
    ``_calcu_split_ids``), computed once per distinct group size; ``len(ratios)`` index tensors."""
    size, offset = grouped.offsets()
    distinct = torch.unique(grouped.sizes)
    bounds = torch.tensor([split_ids(tot=int(tot), ratios=ratios) for tot in distinct], dtype=torch.long)
    bounds = bounds.reshape(len(distinct), len(ratios) - 1)
    row_bounds = bounds[torch.searchsorted(distinct, size)]   # [N, parts - 1]
    part = (offset.unsqueeze(1) >= row_bounds).sum(1)
    return [grouped.order[part == k] for k in range(len(ratios))]
