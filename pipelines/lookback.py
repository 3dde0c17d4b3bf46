"""Past-window features: every row sees the rows of its key up to itself, across partitions.

For row *i* (time ``t_i``, key ``g_i``) its past window holds the rows *j* of the same key with
``j <= i`` in row order (row *i* included) and, for a **time horizon** *T*, ``t_j > t_i - T``;
for a **rows horizon** *k*, the last *k* such rows. For complete windows this is pandas'
``groupby(by).rolling(horizon, on=time, closed="right")`` window. :func:`past_features` adds
``{column}_{feature}_past_{label}`` columns (float64) computed over those windows.

How it works
------------
The step streams forwards. Each partition has a small *reach*: the rows a later partition's
windows can still reach (rows: the last ``k - 1`` rows of each key; time: the rows with
``t > t_last - T``, ``t_last`` its last time), with only the key, time and value columns, plus
its first and last time. Reaches combine associatively (:func:`_combine`: concatenate, then keep
what is still reachable; the first time is the earlier one's), with the empty reach as identity,
so a forward scan (:func:`pipelines.partitions.scan_forward`, or any prefix scan) gives for each
partition the reach of everything before it, whose first time is the input's first time
(completeness of time windows). Each partition is then computed on that reach followed by its own
rows, and only its own rows are returned: row order, index, partitions and divisions are kept.

The per-partition kernel is vectorized: a stable sort by key, window bounds ``[start, end)`` by
``searchsorted``, and the kernels of :mod:`pipelines.window_stats` over those bounds, scattered
back to row order. Times must be non-decreasing (duplicates allowed; row order breaks ties); this
is checked during the compute, inside and across partitions.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipelines.errors import InputError
from pipelines._keys import Labels
from pipelines._keys import as_list as _as_list
from pipelines._keys import key_codes as _key_codes
from pipelines._keys import stable_order as _stable_order
from pipelines.lookahead import (
    _check_arguments,
    _check_times,
    _cumcount,
    _float_values,
    _fmt,
    _meta_with,
    _minus,
    _Spec,
    _span_units,
    _spec,
    _time_values,
    _times,
    _with_columns,
    feature_label,
)
from pipelines.partitions import Call, Scan, Slot, scan_partitions
from pipelines.window_stats import window_stat

__all__ = ["FEATURES", "past_features"]

#: The features :func:`past_features` can compute, in their documented order.
FEATURES: tuple[str, ...] = ("count", "sum", "mean", "std", "var", "min", "max")

# ----------------------------------------------------------------------------------------------
# the reach of a run of partitions, and its associative combine
@dataclass(frozen=True)
class _Row:
    """Where a row is, for messages."""

    part: int
    label: Any  # its index label
    time: str  # its time, as text


@dataclass
class _Reach:
    """What a run of consecutive partitions leaves to later ones (empty: the identity)."""

    rows: pd.DataFrame | None = None  # reachable rows (key, time and value columns), row order
    t: np.ndarray | None = None  # their times (time horizon)
    first_t: int | None = None  # the run's first time (time horizon)
    last_t: int | None = None  # the run's last time
    first: _Row | None = None
    last: _Row | None = None


def _last_per_key(frame: pd.DataFrame, k: int, by: Sequence[Hashable]) -> pd.DataFrame:
    """The last ``k`` rows of each key of ``frame``, in row order."""
    if k <= 0 or not len(frame):
        return frame.iloc[:0]
    if not by:
        return frame.iloc[max(len(frame) - k, 0):]
    codes, n_groups = _key_codes([frame], by)
    from_end = _cumcount(codes[::-1].copy(), n_groups)[::-1]
    return frame.iloc[np.flatnonzero(from_end < k)]


def _reachable(rows: pd.DataFrame | None, t: np.ndarray | None, last_t: int | None,
               spec: _Spec) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    """The rows (and times) a row after ``last_t`` can still reach."""
    if rows is None:
        return None, None
    if spec.rows is not None:
        return _last_per_key(rows, spec.rows - 1, spec.by), None
    assert t is not None and last_t is not None and spec.span is not None
    cut = int(np.searchsorted(t, _minus(last_t, spec.span), side="right"))
    return rows.iloc[cut:], t[cut:]


def _summarize(frame: pd.DataFrame, spec: _Spec, part: int) -> _Reach:
    """The reach of partition ``part`` alone (times checked)."""
    if not len(frame):
        return _Reach()
    assert spec.keep is not None
    rows = frame[list(spec.keep)]
    if spec.rows is not None:
        return _Reach(_reachable(rows, None, None, spec)[0].copy())
    t = _times(frame, spec)
    _check_times(frame, t, spec, part)
    values = _time_values(frame, spec)
    first = _Row(part, frame.index[0], _fmt(values, 0))
    last = _Row(part, frame.index[-1], _fmt(values, -1))
    rows, kept = _reachable(rows, t, int(t[-1]), spec)
    return _Reach(rows.copy(), kept.copy(), int(t[0]), int(t[-1]), first, last)  # type: ignore


def _unsorted(spec: _Spec, before: _Row, after: _Row) -> InputError:
    return InputError(
        f"{spec.time_name} is not sorted: row 0 of partition {after.part} (index "
        f"{after.label!r}) has time {after.time}, before {before.time} of the last row of "
        f"partition {before.part} (index {before.label!r}); sort the input by time first "
        "(input option sort: true)"
    )


def _combine(earlier: _Reach, later: _Reach, spec: _Spec) -> _Reach:
    """The reach of two adjacent runs of partitions (associative; ``_Reach()`` is neutral)."""
    if earlier.rows is None:
        return later
    if later.rows is None:
        return earlier
    if spec.rows is not None:
        rows = pd.concat([earlier.rows, later.rows])
        return _Reach(_reachable(rows, None, None, spec)[0])
    assert earlier.last_t is not None and later.first_t is not None
    if later.first_t < earlier.last_t:
        assert earlier.last is not None and later.first is not None
        raise _unsorted(spec, earlier.last, later.first)
    rows = pd.concat([earlier.rows, later.rows])
    t = np.concatenate([earlier.t, later.t])  # type: ignore[list-item]
    rows, t = _reachable(rows, t, later.last_t, spec)  # type: ignore[assignment]
    return _Reach(rows, t, earlier.first_t, later.last_t, earlier.first, later.last)


# ----------------------------------------------------------------------------------------------
# the per-partition kernel
def _past_bounds(
    n: int, codes: np.ndarray | None, n_groups: int, t: np.ndarray | None, spec: _Spec
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Past-window bounds ``[start, end)`` in key-sorted order, and that order (None: row order).

    In key-sorted order (stable: row order within a key) row *i*'s window ends at *i* + 1, and
    ``start`` and ``end`` are non-decreasing.
    """
    order = None if codes is None or n_groups <= 1 else _stable_order(codes, n_groups)
    end = np.arange(1, n + 1, dtype=np.int64)
    sorted_codes = None if order is None else codes[order].astype(np.int64)  # type: ignore
    if spec.rows is not None:
        group_start: Any = 0
        if sorted_codes is not None:
            first = np.ones(n, dtype=bool)
            first[1:] = sorted_codes[1:] != sorted_codes[:-1]
            group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
        return order, np.maximum(end - spec.rows, group_start), end
    assert t is not None and spec.span is not None
    # in row order (times sorted) the rows with t_j > t_i - T begin at first_in
    first_in = np.searchsorted(t, _minus(t, spec.span), side="right").astype(np.int64)
    if sorted_codes is None:
        return None, first_in, end
    # the key's rows before first_in, counted with the strictly increasing code * n + position
    composite = sorted_codes * n + order
    start = np.searchsorted(composite, sorted_codes * n + first_in[order], side="left")
    return order, start.astype(np.int64), end


def _past_kernel(
    frame: pd.DataFrame,
    before: _Reach,
    spec: _Spec,
    part: int,
    columns: tuple[Hashable, ...],
    features: tuple[str, ...],
    names: tuple[tuple[str, ...], ...],
    partial_windows: bool,
) -> pd.DataFrame:
    """Partition ``part`` with its features, from the reach of the partitions before it."""
    n_own = len(frame)
    if not n_own:
        return _with_columns(frame, {nm: np.empty(0) for row in names for nm in row})
    t = None
    if spec.span is not None:
        t = _times(frame, spec)
        _check_times(frame, t, spec, part)
        if before.last_t is not None and t[0] < before.last_t:
            first = _Row(part, frame.index[0], _fmt(_time_values(frame, spec), 0))
            raise _unsorted(spec, before.last, first)  # type: ignore[arg-type]
    frames = [frame] if before.rows is None or not len(before.rows) else [before.rows, frame]
    n_before = len(frames[0]) if len(frames) == 2 else 0
    if t is not None and n_before:
        t = np.concatenate([before.t, t])  # type: ignore[list-item]
    codes, n_groups = _key_codes(frames, spec.by) if spec.by else (None, 1)
    order, start, end = _past_bounds(n_before + n_own, codes, n_groups, t, spec)
    own = np.arange(n_before, n_before + n_own)  # where the own rows sit in key-sorted order
    if order is not None:
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        own = inverse[own]
    if spec.rows is not None:
        complete = (end - start)[own] == spec.rows
    else:
        first_t = before.first_t if before.first_t is not None else int(t[n_before])  # type: ignore
        complete = _minus(t[n_before:], spec.span) >= first_t  # type: ignore[index,arg-type]
    out: dict[str, np.ndarray] = {}
    for column, column_names in zip(columns, names, strict=True):
        values = _float_values(frames, column)
        in_order = values if order is None else values[order]
        for feature, name in zip(features, column_names, strict=True):
            result = window_stat(feature, in_order, None, start, end)[own]
            if not partial_windows:
                result[~complete] = np.nan
            out[name] = result
    return _with_columns(frame, out)


# ----------------------------------------------------------------------------------------------
# public API
def _past_spec(df: dd.DataFrame, horizon: Any, by: Any, time: Any, columns: list[Any]) -> _Spec:
    """The lookahead spec, with a time span rounded *up* to whole time units: with whole-unit
    times, ``t_j > t_i - T`` is ``t_j > t_i - ceil(T)`` (lookahead's ``t_j <= t_i + T`` floors)."""
    spec, parsed = _spec(df, horizon, by, time, keep=columns)
    if spec.span is None:
        return spec
    assert spec.unit is not None
    return replace(spec, span=_span_units(horizon, parsed, spec.unit, ceil=True))


def past_features(
    df: dd.DataFrame,
    horizon: int | str | pd.Timedelta,
    columns: Labels,
    features: str | Sequence[str] = ("mean",),
    by: Labels | None = None,
    time: Hashable | None = None,
    partial: bool = False,
) -> dd.DataFrame:
    """Add features of each row's past window, per key, exactly across partitions (lazy).

    The window of row *i* holds the rows *j* of its key with ``j <= i`` in row order (row *i*
    included) and, for a time horizon *T*, ``t_j > t_i - T``; for a rows horizon *k*, the last
    *k* such rows. For each column ``c`` and feature ``f`` a float64 column
    ``{c}_{f}_past_{label}`` is added (``label`` from :func:`pipelines.lookahead.feature_label`):
    ``count``, ``sum``, ``mean``, ``std``, ``var`` (ddof 1), ``min``, ``max`` over the window's
    non-NaN values; count 0, sum 0 and the others NaN when there are none; std and var NaN below
    2 values. For complete windows this equals pandas'
    ``groupby(by, dropna=False).rolling(horizon, on=time, closed="right")`` with
    ``min_periods=0`` (count, sum) or 1 (the others).

    A window is *incomplete* when fewer than *k* rows of the key came before and at *i* (rows),
    or when ``t_i - T`` is earlier than the first time of the whole input over all keys (time).
    All its features are NaN unless ``partial=True``, which computes them over the rows there are
    with the same rules: this is pandas' ``min_periods=1``, except that a window without a
    non-NaN value has count 0 and sum 0 (pandas gives NaN for that sum), as complete ones do.

    Parameters
    ----------
    df : dask.dataframe.DataFrame
        The input; its row order, index, partitions, divisions and columns are kept.
    horizon : int, str or Timedelta
        A row count (``20``) or a fixed time span (``"30s"``); see
        :func:`pipelines.lookahead.parse_horizon`.
    columns : column name or list of names
        Numeric columns to compute features of.
    features : str or sequence of str, default ``("mean",)``
        Any of :data:`FEATURES`.
    by : column name or list of names, optional
        Key columns; a missing value is a key of its own.
    time : column name, optional
        The time column of a time horizon; by default the index, which must be a DatetimeIndex.
        Times must be non-decreasing in row order (checked during the compute).
    partial : bool, default False
        Compute incomplete windows over the rows there are instead of giving NaN.

    Returns
    -------
    dask.dataframe.DataFrame
        ``df`` with the feature columns added, in the order columns x features.

    Raises
    ------
    InputError
        Bad arguments, at once; unsorted times or NaT when computed.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> pdf = pd.DataFrame({"price": [1.0, 2.0, 4.0, 3.0, 5.0]},
    ...                    index=pd.date_range("2024-01-01", periods=5, freq="s"))
    >>> past_features(dd.from_pandas(pdf, npartitions=2), "2s", "price", ["mean", "max"]).compute()
                         price  price_mean_past_2s  price_max_past_2s
    2024-01-01 00:00:00    1.0                 NaN                NaN
    2024-01-01 00:00:01    2.0                 NaN                NaN
    2024-01-01 00:00:02    4.0                 3.0                4.0
    2024-01-01 00:00:03    3.0                 3.5                4.0
    2024-01-01 00:00:04    5.0                 4.0                5.0
    """
    if not isinstance(df, dd.DataFrame):
        raise TypeError(f"expected a dask DataFrame, got {type(df).__name__}")
    column_list, feature_list = _as_list(columns), _as_list(features)
    _check_arguments(df._meta, column_list, feature_list, FEATURES)
    spec = _past_spec(df, horizon, by, time, column_list)
    text = f"past_{feature_label(horizon)}"
    names = tuple(tuple(f"{c}_{f}_{text}" for f in feature_list) for c in column_list)
    out_meta = _meta_with(df._meta, names, "")
    kernel_args = (tuple(column_list), tuple(feature_list), names, bool(partial))
    return _scan_past(df, spec, out_meta, kernel_args)


def _scan_past(
    df: dd.DataFrame, spec: _Spec, meta: Any, kernel_args: tuple[Any, ...]
) -> dd.DataFrame:
    """The graph: per-partition reaches, a forward prefix scan of them, the kernel per partition
    (:func:`pipelines.partitions.scan_partitions`, with the associative :func:`_combine` and the
    identity ``_Reach()``)."""
    scan = Scan(
        "lookback",
        summary=Call(_summarize, Slot.PARTITION, spec, Slot.INDEX),
        combine=partial(_combine, spec=spec),
        initial=_Reach(),
        kernel=Call(_past_kernel, Slot.PARTITION, Slot.STATE, spec, Slot.INDEX, *kernel_args),
    )
    return scan_partitions(df, scan, meta=meta)