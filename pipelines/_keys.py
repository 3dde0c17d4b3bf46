"""Keys shared by the steps: column lists as users give them, group codes, and order by key.

Every step that works per key (dedup, lookahead, summary) takes ``by`` the same way and groups rows
the same way: a missing value (NaN, None, NaT, pd.NA) in a key column is a key of its own, as
``groupby(dropna=False)``; rows keep their order within a key.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["as_list", "first_positions", "key_codes", "previous_positions", "stable_order"]


def as_list(value: Any) -> list[Hashable]:
    """Column names as a user may give them (one name, list, tuple or ``pd.Index``) -> a list.

    Examples
    --------
    >>> as_list(None), as_list("a"), as_list(("a", "b")), as_list(pd.Index(["a"]))
    ([], ['a'], ['a', 'b'], ['a'])
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple, pd.Index)):
        return list(value)
    return [value]


def key_codes(frames: Sequence[pd.DataFrame], by: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Group codes of the rows of ``frames`` concatenated, and the number of groups.

    Codes run ``0..n_groups-1`` in order of each key's first row; rows equal in every ``by``
    column share a code, and missing values equal each other. Without ``by`` every row is in
    group 0.

    Examples
    --------
    >>> frame = pd.DataFrame({"k": ["b", "a", None, "b"], "j": [1, 1, 2, 1]})
    >>> codes, n_groups = key_codes([frame.iloc[:2], frame.iloc[2:]], ["k", "j"])
    >>> codes.tolist(), n_groups
    ([0, 1, 2, 0], 3)
    """
    n = sum(len(f) for f in frames)
    codes = np.zeros(n, dtype=np.int64)
    n_groups = 1 if n else 0
    for i, name in enumerate(by):
        parts = [f[name] for f in frames if len(f)]
        if not parts:
            break
        column = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        column_codes, uniques = pd.factorize(column, use_na_sentinel=False)
        column_codes = np.asarray(column_codes, dtype=np.int64)
        if i == 0:
            codes, n_groups = column_codes, len(uniques)
        else:  # renumber: keeps the codes below n and in order of first appearance
            codes, uniques = pd.factorize(codes * len(uniques) + column_codes)
            codes, n_groups = np.asarray(codes, dtype=np.int64), len(uniques)
    return codes, n_groups


def first_positions(codes: np.ndarray) -> np.ndarray:
    """The position of each group's first row, for codes numbered in order of first appearance.

    Examples
    --------
    >>> first_positions(np.array([0, 1, 0, 2, 1])).tolist()
    [0, 1, 3]
    """
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.r_[True, running[1:] > running[:-1]])


def stable_order(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Stable argsort of group codes: rows by key, in row order within a key.

    NumPy's stable sort is a radix sort for 8- and 16-bit integers, so up to 65,536 groups are
    sorted in linear time.

    Examples
    --------
    >>> stable_order(np.array([1, 0, 1, 0]), 2).tolist()
    [1, 3, 0, 2]
    """
    if n_groups <= 1 << 8:
        codes = codes.astype(np.uint8)
    elif n_groups <= 1 << 16:
        codes = codes.astype(np.uint16)
    return np.argsort(codes, kind="stable")


def previous_positions(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """For each row, the position of the previous row of its group, else -1.

    Examples
    --------
    >>> previous_positions(np.array([0, 1, 0, 0, 1]), 2).tolist()
    [-1, -1, 0, 2, 1]
    """
    n = len(codes)
    prev = np.full(n, -1, dtype=np.intp)
    if n < 2:
        return prev
    order = stable_order(codes, n_groups)
    sorted_codes = codes[order]
    same = sorted_codes[1:] == sorted_codes[:-1]
    prev[order[1:][same]] = order[:-1][same]
    return prev
