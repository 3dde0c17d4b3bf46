"""Consecutive-duplicate removal across partitions, per key: one row per run of equal rows.

A row is a *duplicate* when its ``subset`` columns equal those of the previous row of the same key.
The previous row of a key is the last earlier row, in row order (partition order, then position),
whose ``by`` values are all equal to the row's; missing key values (NaN, None, NaT, pd.NA) are
equal to each other, so they form a key of their own. Missing values in ``subset`` equal each
other when ``nan_equal`` (the default); otherwise a row with a missing value is never a duplicate,
nor is the row after it. A *run* is a row that is not a duplicate and the duplicates that follow it
in its key; ``keep="first"`` keeps the first row of each run (drops the duplicates),
``keep="last"`` its last row, and ``count`` adds the run's number of rows. (``docs/semantics.md``
states the same for all steps.) A run may span any number of partitions, so the partitions are
linked by scans (:func:`pipelines.partitions.scan_partitions`) over small summaries:

- ``keep="first"``: a *forward scan*. ``L_q``, the last row per key of partition ``q`` (key and
  subset columns only), computed in parallel, one task per partition; ``C_p``, the last row per
  key of everything before partition ``p``, ``C_p = merge(C_{p-1}, L_{p-1})`` where the newer
  row of a key wins. Its size is bounded by the number of distinct keys, and ``merge`` is
  associative, so all ``C_p`` come from a parallel prefix scan of depth ``O(log P)`` over the
  ``L_q``. Partition ``p`` is deduplicated against ``C_p``: the carried rows are put in front of
  the partition's key and subset columns, every row finds the position of the previous row of its
  key (a stable sort of the key codes), and the subset columns are compared column by column,
  vectorized.
- ``keep="last"``: the mirror image, a *backward scan* of the first row per key of the partitions
  after ``p`` (the earlier row of a key wins); a row is kept unless the next row of its key
  equals it.
- ``count``: the first scan marks the kept rows (run starts, or run ends) in a bool column, and a
  second scan over the marked partitions counts the rows of each run that lie in other partitions:
  per key, the rows before its first mark and whether it has one (from the end for
  ``keep="last"``), folded associatively (:class:`_Tally`); backwards for ``keep="first"`` (a run
  goes on into later partitions), forwards for ``keep="last"`` (it began in earlier ones).
  ``keep="first"`` without ``count`` runs the forward scan only.

No partition is ever gathered with another; each output partition depends on its own input
partition and small states.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipelines import _jit
from pipelines._checks import check_columns
from pipelines._keys import as_list, first_positions, key_codes, previous_positions, stable_order, take_rows
from pipelines.errors import InputError
from pipelines.partitions import Call, Scan, Slot, scan_partitions

__all__ = ["drop_consecutive_duplicates"]


def drop_consecutive_duplicates(
    df: dd.DataFrame,
    subset: Hashable | Sequence[Hashable] | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    nan_equal: bool = True,
    time: Hashable | None = None,
    keep: str = "first",
    count: Hashable | None = None,
) -> dd.DataFrame:
    """Keep one row of each run of consecutive equal rows of a key: its first (or last) row.

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
    keep : {"first", "last"}, default "first"
        Which row of each run to keep: the first (a row is dropped when it equals the previous
        row of its key) or the last (a row is dropped when the next row of its key equals it).
    count : column label, optional
        A new int64 column of this name: the number of rows in the kept row's run.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; the kept rows in their order, with their index, columns and dtypes unchanged (and
        ``count`` appended), and the input's divisions.

    Raises
    ------
    InputError
        An unknown column in ``subset``, ``by`` or ``time``, nothing to compare, ``keep`` not
        "first" or "last", or a ``count`` column that already exists.

    Notes
    -----
    The previous row of a key may lie any number of partitions back: the last row per key of each
    partition is carried forwards by a scan over the partitions (a tree of small merges whose
    size is bounded by the number of keys), and each partition is deduplicated against the rows
    carried into it. ``keep="last"`` carries the first row per key of the later partitions
    backwards instead, and ``count`` adds a second scan that carries run lengths (see the module
    docstring). Partitions are never gathered together.

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
    >>> drop_consecutive_duplicates(ddf, subset="price", by="symbol", keep="last",
    ...                             count="run_rows").compute()
      symbol  price  run_rows
    2      a    1.0         2
    4      b    5.0         2
    5      a    2.0         2
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

    if keep not in ("first", "last"):
        raise InputError(f"keep: must be 'first' or 'last', got {keep!r}")
    if count is not None and count in columns:
        raise InputError(f"count: column {count!r} already exists")

    needed = keys + [c for c in cols if c not in keys]
    for col in needed:
        if columns.count(col) > 1:
            raise InputError(f"dedup: column {col!r} appears more than once")
    runs = _Runs(keys, cols, needed, bool(nan_equal), count)
    if keep == "first":
        flagged = scan_partitions(df, runs.starts_scan(), meta=runs.flagged_meta(df._meta))
    else:
        flagged = scan_partitions(df, runs.ends_scan(), meta=runs.flagged_meta(df._meta))
    if count is None:
        return flagged
    return scan_partitions(flagged, runs.count_scan(keep), meta=runs.counted_meta(df._meta))


@dataclass(frozen=True)
class _Runs:
    """The scans of one dedup: the flags of run boundaries, and the run lengths.

    A *run* is a maximal sequence of consecutive rows of a key, each a duplicate of the one
    before. Without ``count`` the boundary scan drops the rows it does not keep. With ``count``
    it marks the boundaries (the run starts for ``keep="first"``, the run ends for
    ``keep="last"``) in a bool column named ``count``, and the count scan
    (:func:`_count_kernel`) keeps the marked rows and replaces the marks with the run lengths.
    """

    keys: list[Hashable]
    cols: list[Hashable]
    needed: list[Hashable]
    nan_equal: bool
    count: Hashable | None

    def starts_scan(self) -> Scan:
        """Forwards: the last row per key of the partitions before (``C_p``); starts."""
        kernel = _dedup_partition if self.count is None else partial(_mark, _run_starts, self.count)
        return Scan(
            "dedup",
            summary=Call(_last_rows, Slot.PARTITION, self.keys, self.needed),
            combine=partial(_merge_last_rows, keys=self.keys),
            initial=None,
            kernel=Call(kernel, Slot.PARTITION, Slot.STATE, self.keys, self.cols, self.needed,
                        self.nan_equal),
        )

    def ends_scan(self) -> Scan:
        """Backwards: the first row per key of the partitions after; ends."""
        kernel = partial(_drop_unmarked, _run_ends) if self.count is None else partial(
            _mark, _run_ends, self.count)
        return Scan(
            "dedup-last",
            summary=Call(_end_rows, Slot.PARTITION, self.keys, self.needed, "first"),
            combine=partial(_merge_end_rows, keys=self.keys, end="first"),
            initial=None,
            kernel=Call(kernel, Slot.PARTITION, Slot.STATE, self.keys, self.cols, self.needed,
                        self.nan_equal),
            reverse=True,
        )

    def count_scan(self, keep: str) -> Scan:
        """The run lengths, over the marked partitions: backwards for the first row of each run
        (its run goes on into later partitions), forwards for the last (back into earlier ones)."""
        from_end = keep == "last"
        return Scan(
            "dedup-count",
            summary=Call(_tally, Slot.PARTITION, self.keys, self.count, from_end),
            combine=partial(_merge_tallies, from_end=from_end),
            initial=None,
            kernel=Call(_count_kernel, Slot.PARTITION, Slot.STATE, self.keys, self.count,
                        from_end),
            reverse=not from_end,
        )

    def flagged_meta(self, meta: pd.DataFrame) -> pd.DataFrame:
        return meta if self.count is None else _with_column(meta, self.count, np.zeros(0, bool))

    def counted_meta(self, meta: pd.DataFrame) -> pd.DataFrame:
        return _with_column(meta, self.count, np.zeros(0, np.int64))


# ----------------------------------------------------------------------------------------------
# per-partition kernels (plain pandas / NumPy)


def _end_per_key(frame: pd.DataFrame, keys: list[Hashable], end: str) -> np.ndarray:
    """The positions of the ``end`` ("first" or "last") row of each key, in row order."""
    if not keys:
        n = len(frame)
        return np.arange(max(n - 1, 0), n, dtype=np.intp) if end == "last" else np.arange(min(n, 1))
    codes, n_groups = key_codes([frame], keys)
    return _jit.end_positions(codes, max(n_groups, 1), end == "last")


def _end_rows(part: pd.DataFrame, keys: list[Hashable], needed: list[Hashable], end: str) -> Any:
    """The first or last row per key of a partition (key and subset columns), or None if empty."""
    if len(part) == 0:
        return None
    return part.iloc[_end_per_key(part, keys, end), part.columns.get_indexer(needed)]


def _last_rows(part: pd.DataFrame, keys: list[Hashable], needed: list[Hashable]) -> Any:
    """``L_q``: the last row per key of a partition (key and subset columns), or None if empty."""
    return _end_rows(part, keys, needed, "last")


def _merge_end_rows(earlier: Any, later: Any, keys: list[Hashable], end: str) -> Any:
    """The first (last) row per key of ``earlier`` followed by ``later``: the earlier (later)
    range's row of a key wins."""
    if earlier is None or later is None:
        return later if earlier is None else earlier
    if not keys:
        return earlier if end == "first" else later
    both = pd.concat([earlier, later], ignore_index=True)
    return both.iloc[_end_per_key(both, keys, end)]


def _merge_last_rows(carry: Any, last: Any, keys: list[Hashable]) -> Any:
    """``merge(C, L)``: the last row per key of ``C`` followed by ``L`` (the newer row wins)."""
    return _merge_end_rows(carry, last, keys, "last")


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


#: Column dtypes compared by the compiled :func:`pipelines._jit.equal_at`.
_COMPILED_EQUAL = frozenset(map(np.dtype, ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                           "uint32", "uint64", "float32", "float64"]))


def _equal_at(col: pd.Series, cur: np.ndarray, prev: np.ndarray, nan_equal: bool) -> np.ndarray:
    """``col[cur] == col[prev]``, with missing values equal to each other if ``nan_equal``."""
    values = _values(col)
    if isinstance(values, np.ndarray) and values.dtype in _COMPILED_EQUAL:
        return _jit.equal_at(values, cur, prev, nan_equal)
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


def _equal_rows(frame: pd.DataFrame, cols: list[Hashable], rows: np.ndarray, other: np.ndarray,
                nan_equal: bool) -> np.ndarray:
    """Whether row ``rows[i]`` of ``frame`` equals row ``other[i]`` in every column of ``cols``."""
    equal = np.ones(len(rows), dtype=bool)
    for col in cols:
        if not equal.any():
            break
        check = np.flatnonzero(equal)
        equal[check] = _equal_at(frame[col], rows[check], other[check], nan_equal)
    return equal


def _run_starts(part: pd.DataFrame, carry: Any, keys: list[Hashable], cols: list[Hashable],
                needed: list[Hashable], nan_equal: bool) -> np.ndarray:
    """Whether each row of ``part`` starts a run: it does not equal the previous row of its key
    (in ``part``, or in ``carry``: ``C_p``, the last row per key of the partitions before)."""
    n = len(part)
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
    starts = np.ones(n, dtype=bool)
    starts[has_prev] = ~_equal_rows(frame, cols, has_prev + offset, prev[has_prev], nan_equal)
    return starts


def _run_ends(part: pd.DataFrame, carry: Any, keys: list[Hashable], cols: list[Hashable],
              needed: list[Hashable], nan_equal: bool) -> np.ndarray:
    """Whether each row of ``part`` ends a run: the next row of its key (in ``part``, or in
    ``carry``: the first row per key of the partitions after) does not equal it."""
    n = len(part)
    frame = part
    if carry is not None and len(carry):
        frame = pd.concat([part[needed], carry], ignore_index=True)
    if keys:
        prev = previous_positions(*key_codes([frame], keys))
        following = np.full(len(frame), -1, dtype=np.intp)
        has_prev = np.flatnonzero(prev >= 0)
        following[prev[has_prev]] = has_prev
        following = following[:n]
    else:
        following = np.arange(1, n + 1, dtype=np.intp)
        following[following >= len(frame)] = -1
    has_next = np.flatnonzero(following >= 0)
    ends = np.ones(n, dtype=bool)
    ends[has_next] = ~_equal_rows(frame, cols, following[has_next], has_next, nan_equal)
    return ends


Flags = Callable[..., np.ndarray]  # _run_starts or _run_ends


def _drop_unmarked(flags: Flags, part: pd.DataFrame, carry: Any, keys: list[Hashable],
                   cols: list[Hashable], needed: list[Hashable], nan_equal: bool) -> pd.DataFrame:
    """The rows of ``part`` that ``flags`` marks (run starts or ends)."""
    if len(part) == 0:
        return part
    keep = flags(part, carry, keys, cols, needed, nan_equal)
    if keep.all():
        return part
    return take_rows(part, np.flatnonzero(keep), keys)


def _dedup_partition(
    part: pd.DataFrame,
    carry: Any,
    keys: list[Hashable],
    cols: list[Hashable],
    needed: list[Hashable],
    nan_equal: bool,
) -> pd.DataFrame:
    """Partition ``p`` without its consecutive duplicates, given ``C_p`` (or None)."""
    return _drop_unmarked(_run_starts, part, carry, keys, cols, needed, nan_equal)


def _with_column(frame: pd.DataFrame, name: Hashable, values: np.ndarray) -> pd.DataFrame:
    """``frame`` with the column ``name`` set to ``values`` (appended if new)."""
    out = frame.copy(deep=False)
    out[name] = values
    return out


def _mark(flags: Flags, name: Hashable, part: pd.DataFrame, carry: Any, keys: list[Hashable],
          cols: list[Hashable], needed: list[Hashable], nan_equal: bool) -> pd.DataFrame:
    """``part`` with the bool column ``name``: whether ``flags`` marks the row."""
    marks = flags(part, carry, keys, cols, needed, nan_equal) if len(part) else np.zeros(0, bool)
    return _with_column(part, name, marks)


# ----------------------------------------------------------------------------------------------
# run lengths: a scan over the marked partitions


@dataclass(frozen=True)
class _Tally:
    """Per key of a range of partitions: the rows before its first mark (after its last mark,
    counting from the end), and whether it has a mark. Absent keys have 0 rows and no mark.

    Folding: ``rows(A + B) = rows(A) + (0 if marked(A) else rows(B))`` from the start (mirrored
    from the end), ``marked(A + B) = marked(A) or marked(B)``; associative.
    """

    keys: pd.DataFrame  # the key columns, one row per key
    rows: np.ndarray  # int64
    marked: np.ndarray  # bool


def _leading(codes: np.ndarray, marks: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the rows before its first marked row, and whether it has one."""
    first_mark = np.full(n_groups, len(codes), dtype=np.intp)
    marked_rows = np.flatnonzero(marks)
    np.minimum.at(first_mark, codes[marked_rows], marked_rows)
    leading = np.arange(len(codes)) < first_mark[codes]
    rows = np.bincount(codes[leading], minlength=n_groups).astype(np.int64)
    return rows, first_mark < len(codes)


def _tally(part: pd.DataFrame, keys: list[Hashable], flag: Hashable, from_end: bool) -> Any:
    """The :class:`_Tally` of a marked partition (None if empty)."""
    if len(part) == 0:
        return None
    codes, n_groups = key_codes([part], keys)
    marks = part[flag].to_numpy(dtype=bool)
    if from_end:
        rows, marked = _leading(codes[::-1], marks[::-1], n_groups)
    else:
        rows, marked = _leading(codes, marks, n_groups)
    key_rows = part.iloc[first_positions(codes), part.columns.get_indexer(keys)]
    return _Tally(key_rows.reset_index(drop=True), rows, marked)


def _merge_tallies(earlier: Any, later: Any, from_end: bool) -> Any:
    """The :class:`_Tally` of ``earlier``'s range followed by ``later``'s."""
    if earlier is None or later is None:
        return later if earlier is None else earlier
    both = pd.concat([earlier.keys, later.keys], ignore_index=True)
    codes, n_groups = key_codes([both], list(both.columns))
    spread = []
    for tally, where in ((earlier, codes[:len(earlier.rows)]), (later, codes[len(earlier.rows):])):
        rows, marked = np.zeros(n_groups, np.int64), np.zeros(n_groups, bool)
        rows[where], marked[where] = tally.rows, tally.marked
        spread.append((rows, marked))
    (rows_a, marked_a), (rows_b, marked_b) = spread
    if from_end:
        rows = rows_b + np.where(marked_b, 0, rows_a)
    else:
        rows = rows_a + np.where(marked_a, 0, rows_b)
    keys = both.iloc[first_positions(codes)].reset_index(drop=True)
    return _Tally(keys, rows, marked_a | marked_b)


def _run_lengths(codes: np.ndarray, marks: np.ndarray, n_groups: int,
                 carried: np.ndarray) -> np.ndarray:
    """At each marked row, the rows from it to the next marked row of its group (exclusive),
    plus ``carried[group]`` for its group's last marked row; 0 elsewhere."""
    n = len(codes)
    order = stable_order(codes, n_groups)
    sorted_codes, sorted_marks = codes[order], marks[order]
    label = np.cumsum(sorted_marks)  # the run of each row: the marks up to it
    group_start = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    group_end = np.r_[group_start[1:], n] - 1
    before = np.repeat(label[group_start] - sorted_marks[group_start], np.diff(np.r_[group_start, n]))
    in_run = label > before  # at or after its group's first mark
    lengths = np.bincount(label[in_run], minlength=int(label[-1]) + 1).astype(np.int64)
    closed = group_end[in_run[group_end]]  # groups whose last run goes on after the partition
    lengths[label[closed]] += carried[sorted_codes[closed]]
    out = np.zeros(n, dtype=np.int64)
    out[order[sorted_marks]] = lengths[label[sorted_marks]]
    return out


def _count_kernel(part: pd.DataFrame, carry: Any, keys: list[Hashable], flag: Hashable,
                  from_end: bool) -> pd.DataFrame:
    """The marked rows of ``part``, the column ``flag`` holding their run's length."""
    marks = part[flag].to_numpy(dtype=bool)
    kept = np.flatnonzero(marks)
    if not len(kept):
        return _with_column(part.iloc[:0], flag, np.zeros(0, np.int64))
    n_carried = 0 if carry is None else len(carry.rows)
    codes, n_groups = key_codes([part] if carry is None else [carry.keys, part], keys)
    carried = np.zeros(n_groups, dtype=np.int64)
    if carry is not None:
        carried[codes[:n_carried]] = carry.rows
    codes = codes[n_carried:]
    if from_end:
        lengths = _run_lengths(codes[::-1], marks[::-1], n_groups, carried)[::-1]
    else:
        lengths = _run_lengths(codes, marks, n_groups, carried)
    return _with_column(part.iloc[kept], flag, lengths[kept])
