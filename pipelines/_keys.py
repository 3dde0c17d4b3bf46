"""Keys shared by the steps: column lists as users give them, group codes, and order by key.

Every step that works per key (dedup, lookahead, summary) takes ``by`` the same way and groups rows
the same way: a missing value (NaN, None, NaT, pd.NA) in a key column is a key of its own, as
``groupby(dropna=False)``; rows keep their order within a key.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipelines import _jit

#: One or several column labels, as every step takes them (str, list, tuple, pd.Index).
Labels = Hashable | Sequence[Hashable]

__all__ = ["Labels", "as_list", "first_positions", "key_codes", "previous_positions", "stable_order", "take_rows"]


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
    group 0. The codes of an Arrow-backed column (pandas' ``str``) are remembered while the
    column lives (:func:`_arrow_codes`), so the steps of a partition factorize it once.

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
        column_codes, n_uniques = _column_codes(parts)
        if i == 0:
            codes, n_groups = column_codes, n_uniques
        else:  # renumber: keeps the codes below n and in order of first appearance
            codes, uniques = pd.factorize(codes * n_uniques + column_codes)
            codes, n_groups = np.asarray(codes, dtype=np.int64), len(uniques)
    return codes, n_groups


def _column_codes(parts: list[pd.Series]) -> tuple[np.ndarray, int]:
    """Codes (order of first appearance, missing values one code) of ``parts`` end to end, and
    the number of distinct values.

    Arrow-backed parts of one dtype are factorized one by one (each remembered) and their codes
    renumbered through the factorized concatenation of their distinct values: the same codes as
    factorizing the concatenation, as a value's first appearance is in the first part holding it.
    """
    arrays = [part.array for part in parts]
    if all(isinstance(a, _ARROW) for a in arrays) and len({a.dtype for a in arrays}) == 1:
        factorized = [_arrow_codes(a) for a in arrays]
        if len(factorized) == 1:
            return factorized[0][0], len(factorized[0][1])
        uniques = type(arrays[0])._concat_same_type([u for _, u in factorized])
        renumber, merged = pd.factorize(uniques, use_na_sentinel=False)
        offsets = np.cumsum([0, *(len(u) for _, u in factorized[:-1])])
        codes = np.concatenate([renumber[offset + c] for offset, (c, _) in zip(offsets, factorized)])
        return codes.astype(np.int64, copy=False), len(merged)
    column = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    column_codes, uniques = pd.factorize(column, use_na_sentinel=False)
    return np.asarray(column_codes, dtype=np.int64), len(uniques)


_ARROW = pd.arrays.ArrowExtensionArray
#: Codes of the Arrow columns factorized lately: id of the (immutable) Arrow data -> (a weak
#: reference to it, its codes as small unsigned ints, its distinct values). An entry leaves when
#: its data is freed, or when more than ``_REMEMBERED_MAX`` are remembered.
_REMEMBERED: OrderedDict[int, tuple[weakref.ref, np.ndarray, Any]] = OrderedDict()
_REMEMBERED_MAX = 16
_LOCK = threading.RLock()  # re-entrant: a weak reference may call back while it is held


def _arrow_codes(array: Any) -> tuple[np.ndarray, Any]:
    """``pd.factorize(array, use_na_sentinel=False)`` of an Arrow-backed array, remembered while
    its Arrow data lives. Arrow data never changes (pandas replaces it on assignment), so data
    still alive under the same id is the same data. Each call returns its own int64 codes.

    Examples
    --------
    >>> array = pd.array(["x", "y", "x", None], dtype="str")
    >>> codes, uniques = _arrow_codes(array)
    >>> codes.tolist(), list(uniques), id(array.__arrow_array__()) in _REMEMBERED
    ([0, 1, 0, 2], ['x', 'y', nan], True)
    """
    data = array.__arrow_array__()
    key = id(data)
    with _LOCK:
        found = _REMEMBERED.get(key)
        if found is not None and found[0]() is data:
            _REMEMBERED.move_to_end(key)
            return found[1].astype(np.int64), found[2]
    codes, uniques = pd.factorize(array, use_na_sentinel=False)
    codes = np.asarray(codes, dtype=np.int64)
    _remember(data, codes, uniques)
    return codes, uniques


def _remember(data: Any, codes: np.ndarray, uniques: Any) -> None:
    """Remember ``codes`` of ``data`` (in the smallest unsigned dtype that holds them)."""
    key = id(data)
    small = np.min_scalar_type(max(len(uniques) - 1, 0))

    def forget(ref: weakref.ref, key: int = key) -> None:
        with _LOCK:
            if key in _REMEMBERED and _REMEMBERED[key][0] is ref:
                del _REMEMBERED[key]

    with _LOCK:
        _REMEMBERED[key] = (weakref.ref(data, forget), codes.astype(small), uniques)
        while len(_REMEMBERED) > _REMEMBERED_MAX:
            _REMEMBERED.popitem(last=False)


def take_rows(frame: pd.DataFrame, positions: np.ndarray, by: Sequence[Hashable]) -> pd.DataFrame:
    """``frame.iloc[positions]`` (positions increasing); the remembered codes of its Arrow key
    columns are taken along, renumbered in order of first appearance, so that the next step does
    not factorize the rows again.

    Examples
    --------
    >>> frame = pd.DataFrame({"k": pd.array(["a", "b", "a", "c"], dtype="str")})
    >>> _ = key_codes([frame], ["k"])
    >>> taken = take_rows(frame, np.array([1, 2, 3]), ["k"])
    >>> _arrow_codes(taken["k"].array)[0].tolist(), key_codes([taken], ["k"])
    ([0, 1, 2], (array([0, 1, 2]), 3))
    """
    taken = frame.iloc[positions]
    for name in by:
        array = frame[name].array
        if not isinstance(array, _ARROW):
            continue
        data = array.__arrow_array__()
        with _LOCK:
            found = _REMEMBERED.get(id(data))
        if found is None or found[0]() is not data:
            continue
        codes, first = pd.factorize(found[1][positions])
        _remember(taken[name].array.__arrow_array__(), codes, found[2].take(first))
    return taken


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
    return _jit.previous_positions(np.ascontiguousarray(codes, dtype=np.int64), max(int(n_groups), 1))
