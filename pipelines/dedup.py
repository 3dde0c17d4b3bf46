"""Consecutive-duplicate removal across partitions, per key.

A row is dropped when its ``subset`` columns equal those of the previous row of the same key. The
previous row of a key is the last earlier row, in row order (partition order, then position), whose
``by`` values are all equal to the row's; missing key values (NaN, None, NaT, pd.NA) are equal to
each other, so they form a key of their own. Missing values in ``subset`` equal each other when
``nan_equal`` (the default); otherwise a row with a missing value is never a duplicate, nor is the
row after it. The first row of each key is always kept. (``docs/semantics.md`` states the same for
all steps.) The previous row of a key may lie any number of partitions back,
so the partitions are linked by a *forward scan* (:func:`pipelines.partitions.scan_partitions`)
over small summaries:

- ``L_q``: the last row per key of partition ``q`` (key and subset columns only), computed in
  parallel, one task per partition;
- ``C_p``: the last row per key of everything before partition ``p``,
  ``C_p = merge(C_{p-1}, L_{p-1})`` where the newer row of a key wins. Its size is bounded by the
  number of distinct keys, and ``merge`` is associative, so all ``C_p`` come from a parallel
  prefix scan of depth ``O(log P)`` over the ``L_q``;
- partition ``p`` is deduplicated against ``C_p``: the carried rows are put in front of the
  partition's key and subset columns, every row finds the position of the previous row of its key
  (a stable sort of the key codes), and the subset columns are compared column by column,
  vectorized.

No partition is ever gathered with another; each output partition depends on its own input
partition and one small carry.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipelines._checks import check_columns
from pipelines._keys import as_list, key_codes, previous_positions, take_rows
from pipelines.errors import InputError
from pipelines.partitions import Call, Scan, Slot, scan_partitions

__all__ = ["drop_consecutive_duplicates"]


def drop_consecutive_duplicates(
    df: dd.DataFrame,
    subset: Hashable | Sequence[Hashable] | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    nan_equal: bool = True,
    time: Hashable | None = None,
) -> dd.DataFrame:
    """Drop each row whose ``subset`` columns equal those of the previous row of its key.

    Parameters
    ----------
    df : dask.dataframe.DataFrame
        The input, in its row order (partition order, then position). A pandas DataFrame is
        accepted and treated as one partition.
    subset : column label or list of them, optional
        The columns compared. Default: all columns except the key columns and the time column.
    by : column label or list of them, optional
        Key columns: a row is compared with the previous row of the same key (missing values in a
        key form a key of their own). Default: compare with the previous row of the whole frame.
    nan_equal : bool, default True
        Whether missing values (NaN, None, pd.NA, NaT) equal each other. With ``False`` a row with
        a missing value in ``subset`` is never a duplicate, nor is the row after it.
    time : column label, optional
        The time column, left out of the default ``subset``. It may also name the index, which is
        never compared.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; the kept rows in their order, with their index, columns and dtypes unchanged, and
        the input's divisions.

    Raises
    ------
    InputError
        An unknown column in ``subset``, ``by`` or ``time``, or nothing to compare.

    Notes
    -----
    The previous row of a key may lie any number of partitions back: the last row per key of each
    partition is carried forwards by a scan over the partitions (a tree of small merges whose
    size is bounded by the number of keys), and each partition is deduplicated against the rows
    carried into it. Partitions are never gathered together.

    Examples
    --------
    >>> import pandas as pd
    >>> import dask.dataframe as dd
    >>> pdf = pd.DataFrame({"symbol": ["a", "b", "a", "a", "b", "a"],
    ...                     "price": [1.0, 5.0, 1.0, 2.0, 5.0, 2.0]})
    >>> ddf = dd.from_pandas(pdf, npartitions=3)
    >>> drop_consecutive_duplicates(ddf, subset="price", by="symbol").compute()
      symbol  price
    0      a    1.0
    1      b    5.0
    3      a    2.0
    """
    if isinstance(df, pd.DataFrame):
        df = dd.from_pandas(df, npartitions=1)
    if not isinstance(df, dd.DataFrame):
        raise InputError(f"dedup: expected a Dask DataFrame, got {type(df).__name__}")

    columns = list(df.columns)
    keys = as_list(by)
    check_columns("by", keys, columns, unique=False)
    if time is not None:
        check_columns("time", [time], [*columns, *([] if df.index.name is None else [df.index.name])])
    if subset is None:
        cols = [c for c in columns if c not in keys and c != time]
    else:
        cols = list(dict.fromkeys(as_list(subset)))
        check_columns("subset", cols, columns)
    if not cols:
        raise InputError("subset: no columns to compare (subset is empty)")
    if not isinstance(nan_equal, (bool, np.bool_)):
        raise InputError(f"nan_equal: must be true or false, got {nan_equal!r}")

    needed = keys + [c for c in cols if c not in keys]
    for col in needed:
        if columns.count(col) > 1:
            raise InputError(f"dedup: column {col!r} appears more than once")
    scan = Scan(
        "dedup",
        summary=Call(_last_rows, Slot.PARTITION, keys, needed),
        combine=partial(_merge_last_rows, keys=keys),
        initial=None,
        kernel=Call(_dedup_partition, Slot.PARTITION, Slot.STATE, keys, cols, needed,
                    bool(nan_equal)),
    )
    return scan_partitions(df, scan)


# ----------------------------------------------------------------------------------------------
# per-partition kernels (plain pandas / NumPy)


def _last_per_key(frame: pd.DataFrame, keys: list[Hashable]) -> np.ndarray:
    """The positions of the last row of each key, in row order."""
    if not keys:
        return np.arange(max(len(frame) - 1, 0), len(frame), dtype=np.intp)
    codes, _ = key_codes([frame], keys)
    return np.flatnonzero(~pd.Series(codes).duplicated(keep="last").to_numpy())


def _last_rows(part: pd.DataFrame, keys: list[Hashable], needed: list[Hashable]) -> Any:
    """``L_q``: the last row per key of a partition (key and subset columns), or None if empty."""
    if len(part) == 0:
        return None
    return part.iloc[_last_per_key(part, keys), part.columns.get_indexer(needed)]


def _merge_last_rows(carry: Any, last: Any, keys: list[Hashable]) -> Any:
    """``merge(C, L)``: the last row per key of ``C`` followed by ``L`` (the newer row wins)."""
    if last is None:
        return carry
    if carry is None or not keys:
        return last
    both = pd.concat([carry, last], ignore_index=True)
    return both.iloc[_last_per_key(both, keys)]


def _values(col: pd.Series) -> Any:
    """The column's values as a NumPy array where that is lossless, else its ExtensionArray."""
    arr = col.array
    if isinstance(arr, pd.arrays.NumpyExtensionArray):
        return arr.to_numpy()
    return arr


def _as_bool(result: Any) -> np.ndarray:
    if isinstance(result, np.ndarray):
        return result.astype(bool, copy=False)
    return np.asarray(pd.array(result).to_numpy(dtype=bool, na_value=False))


def _equal_at(col: pd.Series, cur: np.ndarray, prev: np.ndarray, nan_equal: bool) -> np.ndarray:
    """``col[cur] == col[prev]``, with missing values equal to each other if ``nan_equal``."""
    values = _values(col)
    if isinstance(values, np.ndarray) and values.dtype.kind in "biufcmM":
        a, b = values[cur], values[prev]
        eq = a == b  # NaN and NaT equal nothing
        if values.dtype.kind in "fcmM" and nan_equal:
            eq |= pd.isna(a) & pd.isna(b)
        return eq
    missing = np.asarray(pd.isna(values), dtype=bool)
    miss_cur, miss_prev = missing[cur], missing[prev]
    valid = ~(miss_cur | miss_prev)
    eq = np.zeros(len(cur), dtype=bool)
    if valid.all():
        eq = _as_bool(values.take(cur) == values.take(prev))
    elif valid.any():
        idx = np.flatnonzero(valid)
        eq[idx] = _as_bool(values.take(cur[idx]) == values.take(prev[idx]))
    if nan_equal:
        eq |= miss_cur & miss_prev
    return eq


def _dedup_partition(
    part: pd.DataFrame,
    carry: Any,
    keys: list[Hashable],
    cols: list[Hashable],
    needed: list[Hashable],
    nan_equal: bool,
) -> pd.DataFrame:
    """Partition ``p`` without its consecutive duplicates, given ``C_p`` (or None)."""
    n = len(part)
    if n == 0:
        return part
    frame = part
    offset = 0
    if carry is not None and len(carry):
        frame = pd.concat([carry, part[needed]], ignore_index=True)
        offset = len(carry)
    if keys:
        prev = previous_positions(*key_codes([carry, part] if offset else [part], keys))[offset:]
    else:
        prev = np.arange(offset - 1, offset + n - 1, dtype=np.intp)
    has_prev = np.flatnonzero(prev >= 0)
    cur = has_prev + offset
    prv = prev[has_prev]
    dup = np.ones(len(has_prev), dtype=bool)
    for col in cols:
        if not dup.any():
            break
        check = np.flatnonzero(dup)
        dup[check] = _equal_at(frame[col], cur[check], prv[check], nan_equal)
    keep = np.ones(n, dtype=bool)
    keep[has_prev[dup]] = False
    if keep.all():
        return part
    return take_rows(part, np.flatnonzero(keep), keys)
