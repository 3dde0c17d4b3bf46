"""Future-aware features: every row sees the rows that follow it, per key, across partitions.

For row *i* (time ``t_i``, key ``g_i``) its future window ``W_i`` holds the rows *j* of the same
key with, for a **rows horizon** *k*, the next *k* rows of that key after *i*, and for a **time
horizon** *T* (a fixed span such as ``"30s"``), ``t_i < t_j <= t_i + T``. :func:`future_features` adds
``{column}_{feature}_{label}`` columns (float64) computed over those windows; :func:`map_lookahead`
hands each partition's rows, followed by the future rows they need, to any function.

How it works
------------
No partition is ever gathered with another, and no ``map_overlap`` is used: it raises for
partitions smaller than the overlap, loses boundary rows with a time-based ``after`` and trims the
overlap by position. Instead a **backward scan** (:func:`pipelines.partitions.scan_partitions`)
over small per-partition summaries collects, for each partition *p*, the rows after *p* that its
windows can reach. The summary of a range of partitions is

- rows horizon *k*: the first *k* rows of each key in the range;
- time horizon *T*: the range's rows with ``t <= t0 + T``, ``t0`` its first time (and its last
  time, to check the order of times where two ranges meet).

Both are associative: the summary of two adjacent ranges is the first *k* rows per key of their
summaries' rows, or the first range's rows and the second's up to ``t0 + T``. So the state after
*p*, the summary of all partitions after *p*, comes from a parallel prefix scan of depth
``O(log P)``. As ``last_t(p) <= t0``, it holds every row a window of *p* can reach.

Each partition is then computed on its own rows followed by that state, and only its own rows are
returned (:func:`map_lookahead`, and :func:`future_features` with a rows horizon; divisions kept).

:func:`future_features` with a time horizon **streams forwards** instead, so that it holds a few
partitions at a time also after a forward step such as dedup (a backward scan after a forward one
would keep every partition waiting until the scan reaches it): a forward scan carries the
*pending* rows, whose window ``(t, t + T]`` is still open at the end of the data seen so far
(``t >= t_last - T``), with all their columns. The pending rows of two adjacent ranges are the
later range's and those of the earlier range still within *T* of the later's last time, an
associative combine, so this scan too is a prefix scan of depth ``O(log P)``; the state of
partition *p* depends on earlier partitions only. Partition *p* emits the pending rows and its own rows up to the first row whose
window may reach the next partition; the last partition emits the rest. Rows keep their order and
index; partition boundaries move, so divisions become unknown.

Partitions may hold any number of rows, zero included. The per-partition kernel is
vectorized: a stable sort by key, window bounds ``[start, end)`` by ``searchsorted``, then the
kernels of :mod:`pipelines.window_stats` over those bounds, scattered back to row order. Rows are
never reordered. Time arithmetic saturates at the ends of int64, so spans up to the longest the
times' unit can hold (106751 days for nanoseconds) never overflow.

Times must be non-decreasing (duplicates allowed; row order breaks ties). This is checked during
the compute, inside and across partitions, and a violation raises :class:`InputError` naming the
row.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.utils import make_meta
from pandas.errors import OutOfBoundsTimedelta
from pandas.api.types import (
    is_complex_dtype,
    is_datetime64_any_dtype,
    is_numeric_dtype,
)

from pipelines import _jit, window_stats
from pipelines._checks import check_columns
from pipelines._keys import as_list, key_codes, stable_order
from pipelines.errors import InputError
from pipelines.partitions import Call, Scan, Slot, scan_partitions

__all__ = ["FEATURES", "feature_label", "future_features", "map_lookahead", "parse_horizon"]

#: The features :func:`future_features` can compute, in their documented order.
FEATURES: tuple[str, ...] = (
    "future", "change", "return", "max", "min", "mean", "sum", "count", "std", "time_to_max",
    "time_to_min", "barrier",
)

_ROLLING = ("max", "min", "mean", "sum", "count", "std")  # window_stats.window_stat
_NAT = np.iinfo(np.int64).min
_INT_MIN, _INT_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max
_NUMBER_UNIT = re.compile(r"^\s*\+?(\d+(?:\.\d*)?)\s*([A-Za-z]+)\s*$")
_DIGITS = re.compile(r"^\s*\+?\d+\s*$")
_CALENDAR = re.compile(r"^\s*[+-]?\d*\s*(M|Y|y|Q|B|ME|MS|YE|YS|QE|QS|BM|BME|BMS|BQ|BY|W-\w+)\s*$")

Horizon = int | pd.Timedelta


# ----------------------------------------------------------------------------------------------
# horizon and labels
def parse_horizon(value: Any) -> Horizon:
    """A horizon as given by a user -> a row count (``int``) or a fixed time span (``Timedelta``).

    Parameters
    ----------
    value : int, str, Timedelta, datetime.timedelta or numpy.timedelta64
        A positive row count (``30`` or ``"30"``) or a fixed time span (``"30s"``, ``"5min"``,
        ``"1h"``, ``pd.Timedelta("2D")``). Calendar offsets (``"1M"``, ``"1Y"``, ``"1B"``) have no
        fixed length and are refused.

    Returns
    -------
    int or pandas.Timedelta

    Raises
    ------
    InputError
        For anything else, zero and negative horizons included.

    Examples
    --------
    >>> parse_horizon(30), parse_horizon("30")
    (30, 30)
    >>> parse_horizon("5min")
    Timedelta('0 days 00:05:00')
    >>> parse_horizon("30x")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: '30x' is not a row count or a time span like '30s'
    """
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{value!r} is not a row count or a time span like '30s'")
    if isinstance(value, (pd.Timedelta, datetime.timedelta, np.timedelta64)):  # before integers:
        try:  # numpy.timedelta64 is a numpy.integer
            span = pd.Timedelta(value)
        except (ValueError, OverflowError):  # OutOfBoundsTimedelta
            raise _out_of_range(value) from None
    elif isinstance(value, (int, np.integer)):
        if value <= 0:
            raise InputError(f"horizon {int(value)} must be a positive row count")
        return int(value)
    elif isinstance(value, str):
        if _DIGITS.match(value):
            return parse_horizon(int(value))
        if _CALENDAR.match(value):
            raise InputError(
                f"horizon {value!r} is a calendar offset, not a fixed time span; "
                "use a fixed span such as '30D' or '24h'"
            )
        try:
            span = pd.Timedelta(value.strip())
        except OutOfBoundsTimedelta:
            span = _long_span(value)
        except (ValueError, TypeError, OverflowError):
            raise InputError(f"{value!r} is not a row count or a time span like '30s'") from None
    else:
        raise InputError(f"{value!r} is not a row count or a time span like '30s'")
    if pd.isna(span) or span <= pd.Timedelta(0):
        raise InputError(f"horizon {value!r} must be a positive time span")
    return span


def _long_span(value: str) -> pd.Timedelta:
    """A ``"{number}{unit}"`` span too long for pandas' string parsing (which stops at about 106751
    days), as ``pd.Timedelta(number, unit=unit)``, which holds far longer spans."""
    match = _NUMBER_UNIT.match(value)
    if match is None:
        raise _out_of_range(value)
    number, unit = match.groups()
    try:
        return pd.Timedelta(float(number) if "." in number else int(number), unit=unit)
    except (ValueError, OverflowError):  # OutOfBoundsTimedelta or an unknown unit
        raise _out_of_range(value) from None


def _out_of_range(value: Any) -> InputError:
    return InputError(f"horizon {value!r} is out of range: longer than a pandas Timedelta can hold")


def _plus(t: Any, span: int) -> Any:
    """``t + span`` (int64 times, ``0 <= span <= int64 max``) saturated at the largest int64, which
    is not before any time, so ``t_j <= t + span`` keeps its meaning.

    >>> _plus(np.array([0, 2**62]), 2**62).tolist() == [2**62, 2**63 - 1]
    True
    """
    return np.minimum(t, _INT_MAX - span) + span


def _minus(t: Any, span: int) -> Any:
    """``t - span`` saturated at the smallest int64 (NaT), which is before every time.

    >>> _minus(np.array([0, -2**62]), 2**62).tolist() == [-2**62, -2**63]
    True
    """
    return np.maximum(t, _INT_MIN + span) - span


def _span_units(horizon: Any, parsed: pd.Timedelta, unit: str, ceil: bool = False) -> int:
    """A time span in whole ``unit`` (floored, or rounded up with ``ceil``) as an int64 count;
    :class:`InputError` when datetime64 times of that unit cannot be that far apart."""
    exact = parsed.to_timedelta64()  # in its own unit (``Timedelta.value`` is nanoseconds)
    total = _nanoseconds(exact.astype(np.int64), np.datetime_data(exact.dtype)[0])
    step = _nanoseconds(1, unit)
    span = -(-total // step) if ceil else total // step
    if span > _INT_MAX:
        longest = pd.Timedelta(np.timedelta64(_INT_MAX, unit)).floor("D").days
        raise InputError(
            f"horizon {horizon!r} is out of range for datetime64[{unit}] times: a span of them is "
            f"at most {longest} days; use a shorter horizon or times of a coarser unit"
        )
    return span


def _nanoseconds(count: int, unit: str) -> int:
    """``count`` of ``unit`` in nanoseconds, as an exact Python int (no int64 limit)."""
    return int(count) * int(np.timedelta64(1, unit).astype("m8[ns]").astype(np.int64))


def feature_label(horizon: Any) -> str:
    """The label of a horizon in feature names: ``{k}r`` for rows, the span as written for time.

    A string is kept as written (without whitespace); a ``Timedelta`` is written in its largest
    exact unit.

    Examples
    --------
    >>> feature_label(30), feature_label("30s"), feature_label("5 min")
    ('30r', '30s', '5min')
    >>> feature_label(pd.Timedelta(minutes=90)), feature_label(pd.Timedelta(days=2))
    ('90min', '2D')
    """
    parsed = parse_horizon(horizon)
    if isinstance(parsed, int):
        return f"{parsed}r"
    if isinstance(horizon, str):
        return "".join(horizon.split())
    for unit, text in (("D", "D"), ("h", "h"), ("min", "min"), ("s", "s"), ("ms", "ms"),
                       ("us", "us"), ("ns", "ns")):
        step = pd.Timedelta(1, unit=unit)
        if parsed % step == pd.Timedelta(0):
            return f"{parsed // step}{text}"
    raise AssertionError("unreachable: every Timedelta is a whole number of nanoseconds")


# ----------------------------------------------------------------------------------------------
# specification shared by the graph's tasks (small and picklable)
@dataclass(frozen=True)
class _Spec:
    rows: int | None  # k for a rows horizon
    span: int | None  # T in units of ``unit`` for a time horizon (floored: times are whole units)
    unit: str | None  # the time unit, e.g. "us"
    time: Hashable | None  # the time column, or None for the index
    time_name: str  # for messages: "index" or "time column 'ts'"
    by: tuple[Hashable, ...]
    keep: tuple[Hashable, ...] | None  # columns kept in the carried rows (None: all)


@dataclass(frozen=True)
class _Wanted:
    """The features :func:`future_features` adds: ``names[i][j]`` is feature ``j`` of column
    ``i`` (``barrier`` is followed by ``barrier_time``); ``partial``: compute incomplete windows
    too; ``barrier``: its ``(up, down)`` levels."""

    columns: tuple[Hashable, ...]
    features: tuple[str, ...]
    names: tuple[tuple[str, ...], ...]
    partial: bool
    barrier: tuple[float, float] | None = None

    @property
    def new_columns(self) -> list[str]:
        return [nm for row in self.names for nm in row]


@dataclass
class _Summary:
    """What a range of partitions contributes to the backward scan (``rows`` None: no rows).

    The rows of the range that windows before it can reach: the first *k* rows of each key (rows
    horizon), or the rows with ``t <= first_t + T`` (time horizon); plus, to check the order of
    times where two ranges meet, the range's last time.
    """

    rows: pd.DataFrame | None = None
    t: np.ndarray | None = None  # times of ``rows`` (time horizon)
    first_part: int | None = None  # the partition holding ``rows``' first row
    last_part: int | None = None  # the range's last partition with rows
    last_t: int | None = None  # its last time
    last_time: Any = None  # the same, as a value for messages
    last_label: Any = None  # index label of its last row


@dataclass
class _State:
    """The rows after a partition that its windows can reach (row order)."""

    rows: pd.DataFrame | None = None  # None when nothing follows
    t: np.ndarray | None = None
    first_part: int | None = None  # the partition holding ``rows``' first row


def _spec(
    df: dd.DataFrame, horizon: Any, by: Any, time: Any, keep: Sequence[Hashable] | None
) -> tuple[_Spec, Horizon]:
    """Check the arguments against ``df``'s metadata; nothing is computed."""
    if not isinstance(df, dd.DataFrame):
        raise TypeError(f"expected a dask DataFrame, got {type(df).__name__}")
    parsed = parse_horizon(horizon)
    meta = df._meta
    keys = as_list(by)
    check_columns("by", keys, meta.columns)
    if time is not None:
        check_columns("time", [time], meta.columns)
    rows = span = unit = None
    time_name = "index" if time is None else f"time column {time!r}"
    if isinstance(parsed, int):
        rows = parsed
    else:
        if time is None:
            if not isinstance(meta.index, pd.DatetimeIndex):
                raise InputError(
                    f"horizon {horizon!r} is a time span but the frame has neither a DatetimeIndex "
                    f"(its index is {type(meta.index).__name__}) nor a `time` column"
                )
            dtype = meta.index.dtype
        else:
            dtype = meta[time].dtype
            if not is_datetime64_any_dtype(dtype):
                raise InputError(f"time column {time!r} is not a datetime column (dtype {dtype})")
        unit = np.datetime_data(getattr(dtype, "base", dtype))[0]
        span = _span_units(horizon, parsed, unit)
    if keep is not None:
        wanted = [*keys, *keep] + ([time] if time is not None and span is not None else [])
        keep = tuple(dict.fromkeys(wanted))
    return _Spec(rows, span, unit, time, time_name, tuple(keys), keep), parsed


# ----------------------------------------------------------------------------------------------
# times, keys and order checks
def _time_values(frame: pd.DataFrame, spec: _Spec) -> Any:
    return frame.index if spec.time is None else frame[spec.time]


def _times(frame: pd.DataFrame, spec: _Spec) -> np.ndarray:
    """Times as int64 in ``spec.unit`` (UTC for tz-aware times); NaT is ``_NAT``."""
    values = pd.array(_time_values(frame, spec), copy=False)
    if getattr(values, "tz", None) is not None:
        values = values.tz_convert(None)
    array = np.asarray(values)
    if array.dtype.kind != "M":
        raise InputError(f"{spec.time_name} does not hold datetimes (dtype {array.dtype})")
    if np.datetime_data(array.dtype)[0] != spec.unit:
        array = array.astype(f"M8[{spec.unit}]")
    return array.view(np.int64)


def _check_times(frame: pd.DataFrame, t: np.ndarray, spec: _Spec, part: int) -> None:
    """Raise for NaT or times going backwards inside one partition."""
    if not len(t):
        return
    nat = t == _NAT
    if nat.any():
        i = int(np.argmax(nat))
        raise InputError(
            f"{spec.time_name}: missing time (NaT) at row {i} of partition {part} "
            f"(index {frame.index[i]!r})"
        )
    back = np.flatnonzero(t[1:] < t[:-1])
    if back.size:
        i = int(back[0]) + 1
        values = _time_values(frame, spec)
        raise _not_sorted(spec, frame, i, part, f"{_fmt(values, i - 1)} of the row before it")


def _fmt(values: Any, i: int) -> str:
    value = values[i] if isinstance(values, pd.Index) else values.iloc[i]
    return str(value)


def _not_sorted(spec: _Spec, frame: pd.DataFrame, i: int, part: Any, before: str) -> InputError:
    """The error for row ``i`` of ``frame`` (partition ``part``) being earlier than ``before``."""
    return InputError(
        f"{spec.time_name} is not sorted: row {i} of partition {part} (index "
        f"{frame.index[i]!r}) has time {_fmt(_time_values(frame, spec), i)}, before {before}; "
        "sort the input by time first (input option sort: true)"
    )


def _after_last_row(last_time: Any, last_part: Any, last_label: Any) -> str:
    """``before`` of :func:`_not_sorted` for the last row of an earlier partition."""
    return f"{last_time} of the last row of partition {last_part} (index {last_label!r})"


def _check_boundary(
    spec: _Spec, last_time: Any, last_label: Any, last_part: int, state: _State
) -> None:
    """Raise when the first row after a partition is earlier than the partition's last row."""
    assert state.rows is not None
    before = _after_last_row(last_time, last_part, last_label)
    raise _not_sorted(spec, state.rows, 0, state.first_part, before)


def _first_per_key(frame: pd.DataFrame, k: int, by: Sequence[Hashable]) -> pd.DataFrame:
    """The first ``k`` rows of each key of ``frame``, in row order."""
    if not by:
        return frame.iloc[:k]
    codes, n_groups = key_codes([frame], by)
    return frame.iloc[np.flatnonzero(_cumcount(codes, n_groups) < k)]


def _cumcount(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Position of each row within its group (like ``groupby.cumcount``), vectorized."""
    order = stable_order(codes, n_groups)
    sorted_codes = codes[order]
    n = len(codes)
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    counts = np.empty(n, dtype=np.int64)
    counts[order] = np.arange(n) - group_start
    return counts


def _concat(frames: Sequence[pd.DataFrame | None]) -> pd.DataFrame | None:
    parts = [f for f in frames if f is not None and len(f)]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else pd.concat(parts)


# ----------------------------------------------------------------------------------------------
# the backward scan
def _summarize(frame: pd.DataFrame, spec: _Spec, part: int) -> _Summary:
    """The rows of partition ``part`` that earlier partitions may need (plus its last time)."""
    if not len(frame):
        return _Summary()
    if spec.keep is not None:
        frame = frame[list(spec.keep)]
    # copies, so that a summary never keeps its whole partition alive
    if spec.rows is not None:
        return _Summary(_first_per_key(frame, spec.rows, spec.by).copy(), None, part, part)
    t = _times(frame, spec)
    _check_times(frame, t, spec, part)
    cut = int(np.searchsorted(t, _plus(t[0], spec.span), side="right"))
    return _Summary(
        frame.iloc[:cut].copy(), t[:cut].copy(), part, part, int(t[-1]),
        _fmt(_time_values(frame, spec), -1), frame.index[-1],
    )


def _combine(first: _Summary, then: _Summary, spec: _Spec) -> _Summary:
    """The summary of two adjacent ranges of partitions, ``first`` before ``then``.

    Associative (the summary of the rows of both ranges together): rows horizon, the first *k*
    rows per key of both; time horizon, ``first``'s rows and ``then``'s up to ``first_t + T``.
    Raises if ``then``'s first time is before ``first``'s last.
    """
    if first.rows is None:
        return then
    if then.rows is None:
        return first
    if spec.rows is not None:
        rows = _concat([first.rows, then.rows])
        assert rows is not None
        rows = _first_per_key(rows, spec.rows, spec.by)
        return replace(then, rows=rows, first_part=first.first_part)
    assert first.t is not None and then.t is not None and first.last_t is not None
    if first.last_t > then.t[0]:
        _check_boundary(spec, first.last_time, first.last_label, first.last_part, then)
    cut = int(np.searchsorted(then.t, _plus(first.t[0], spec.span), side="right"))
    rows = _concat([first.rows, then.rows.iloc[:cut]])
    t = np.concatenate([first.t, then.t[:cut]])
    return replace(then, rows=rows, t=t, first_part=first.first_part)


def _run_kernel(
    kernel: Callable[..., Any], frame: pd.DataFrame, after: _Summary, spec: _Spec, part: int,
    *kernel_args: Any,
) -> Any:
    """``kernel`` on partition ``part`` given the summary of the partitions after it."""
    state = _State(rows=after.rows, t=after.t, first_part=after.first_part)
    return kernel(frame, state, spec, part, *kernel_args)


def _future(frame: pd.DataFrame, state: _State, spec: _Spec, part: int) -> pd.DataFrame | None:
    """Check partition ``part`` and pick the carried rows it needs (None: no rows follow)."""
    if spec.rows is not None:
        return state.rows
    t = _times(frame, spec)
    _check_times(frame, t, spec, part)
    last = int(t[-1])
    if state.rows is None:
        return None
    assert state.t is not None
    if last > state.t[0]:
        _check_boundary(spec, _fmt(_time_values(frame, spec), -1), frame.index[-1], part, state)
    cut = int(np.searchsorted(state.t, _plus(last, spec.span), side="right"))
    return state.rows.iloc[:cut] if cut else None


def _lookahead(
    df: dd.DataFrame,
    spec: _Spec,
    kernel: Callable[..., Any],
    meta: Any,
    name: str,
    kernel_args: tuple[Any, ...],
) -> dd.DataFrame:
    """Run ``kernel(part_frame, state, spec, part, *kernel_args)`` on every partition."""
    scan = Scan(
        name,
        summary=Call(_summarize, Slot.PARTITION, spec, Slot.INDEX),
        combine=partial(_combine, spec=spec),
        initial=_Summary(),
        kernel=Call(_run_kernel, kernel, Slot.PARTITION, Slot.STATE, spec, Slot.INDEX,
                    *kernel_args),
        reverse=True,
    )
    return scan_partitions(df, scan, meta=meta)


# ----------------------------------------------------------------------------------------------
# the forward scan (time horizons of future_features): stream, holding only the pending rows
@dataclass
class _Pending:
    """Rows before a partition whose time windows may still grow (all columns, row order)."""

    rows: pd.DataFrame | None = None
    t: np.ndarray | None = None
    last_t: int | None = None  # the last time of everything before the partition
    last_part: int | None = None  # the partition holding that row
    last_label: Any = None
    last_time: Any = None


def _tail(frame: pd.DataFrame, spec: _Spec, part: int) -> _Pending:
    """Partition ``part``'s rows that later partitions may complete: ``t >= t_last - T``."""
    if not len(frame):
        return _Pending()
    t = _times(frame, spec)
    _check_times(frame, t, spec, part)
    assert spec.span is not None
    cut = int(np.searchsorted(t, _minus(t[-1], spec.span), side="left"))
    return _Pending(  # copies, so that a tail never keeps its whole partition alive
        frame.iloc[cut:].copy(), t[cut:].copy(), int(t[-1]), part, frame.index[-1],
        _fmt(_time_values(frame, spec), -1),
    )


def _carry(pending: _Pending, tail: _Pending, spec: _Spec) -> _Pending:
    """The pending rows after a partition from those before it and the partition's tail."""
    if tail.rows is None:
        return pending
    assert tail.t is not None and tail.last_t is not None and spec.span is not None
    rows, t = tail.rows, tail.t
    if pending.rows is not None:
        assert pending.t is not None
        cut = int(np.searchsorted(pending.t, _minus(tail.last_t, spec.span), side="left"))
        if cut < len(pending.t):
            rows = pd.concat([pending.rows.iloc[cut:], tail.rows])
            t = np.concatenate([pending.t[cut:], tail.t])
    return _Pending(rows, t, tail.last_t, tail.last_part, tail.last_label, tail.last_time)


def _streaming_kernel(
    frame: pd.DataFrame,
    pending: _Pending,
    spec: _Spec,
    part: int,
    last: bool,
    wanted: _Wanted,
) -> pd.DataFrame:
    """The rows whose windows end inside partition ``part``, with their features.

    Those are the pending rows of earlier partitions and the partition's own rows, up to the
    first row whose window may still reach the next partition (``t + T >= `` the partition's last
    time); the last partition emits everything left. Rows keep their order; only partition
    boundaries move.
    """
    t_own = _times(frame, spec)
    _check_times(frame, t_own, spec, part)
    if len(frame) and pending.last_t is not None and t_own[0] < pending.last_t:
        before = _after_last_row(pending.last_time, pending.last_part, pending.last_label)
        raise _not_sorted(spec, frame, 0, part, before)
    frames = [f for f in (pending.rows, frame) if f is not None and len(f)]
    if not frames:
        return _with_columns(frame, {nm: np.empty(0) for nm in wanted.new_columns})
    t = t_own if pending.rows is None else np.concatenate([pending.t, t_own])
    end_t = int(t[-1])
    assert spec.span is not None
    n_emit = len(t) if last else int(np.searchsorted(t, _minus(end_t, spec.span), side="left"))
    out = _feature_columns(frames, n_emit, t, end_t, spec, wanted)
    emitted = frames[0] if len(frames) == 1 else pd.concat(frames)
    return _with_columns(emitted.iloc[:n_emit], out)


def _lookahead_streaming(
    df: dd.DataFrame, spec: _Spec, meta: Any, kernel_args: tuple[Any, ...]
) -> dd.DataFrame:
    """``future_features`` for a time horizon as a forward scan: partitions stream in order.

    Each output partition depends on its input partition and on the small pending state carried
    forwards, so a worker holds a few partitions at a time, also after a forward step like dedup.
    """
    scan = Scan(
        "future-features",
        summary=Call(_tail, Slot.PARTITION, spec, Slot.INDEX),
        combine=partial(_carry, spec=spec),
        initial=_Pending(),
        kernel=Call(_streaming_kernel, Slot.PARTITION, Slot.STATE, spec, Slot.INDEX, Slot.IS_LAST,
                    *kernel_args),
    )
    return scan_partitions(df, scan, meta=meta, keep_divisions=False)


# ----------------------------------------------------------------------------------------------
# the feature kernel
def _windows(
    n: int, codes: np.ndarray | None, n_groups: int, t: np.ndarray | None, spec: _Spec
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Window bounds ``[start, end)`` in key-sorted order, and that order (None: row order).

    In key-sorted order (stable, so row order within a key) each window is a contiguous range, and
    ``start`` and ``end`` are non-decreasing. A time window starts at the next row whose (key,
    time) differs (linear, no search) and ends where a search of ``t + T`` within the key's rows
    puts it.

    Examples
    --------
    >>> spec = _Spec(None, 2, "s", "t", "t", ("k",), None)
    >>> order, start, end = _windows(5, np.array([0, 1, 0, 0, 1]), 2, np.array([0, 1, 1, 3, 4]), spec)
    >>> order.tolist(), start.tolist(), end.tolist()
    ([0, 2, 3, 1, 4], [1, 2, 3, 4, 5], [2, 3, 3, 4, 5])
    """
    order = None if codes is None or n_groups <= 1 else stable_order(codes, n_groups)
    sorted_codes = None if order is None else codes[order]  # type: ignore[index]
    if spec.rows is not None:
        start = np.arange(1, n + 1, dtype=np.int64)
        group_end: Any = n if sorted_codes is None else _run_ends(_changes(sorted_codes), n)
        return order, start, np.minimum(start + spec.rows, group_end)
    assert t is not None and spec.span is not None
    # rows after i with t_j > t_i begin at the next change of (key, time); rows with
    # t_j <= t_i + T end at past_end; equal times are not in the window
    sorted_t = t if order is None else t[order]
    change = _changes(sorted_t)
    if sorted_codes is not None:
        change |= _changes(sorted_codes)
    start = _run_ends(change, n)
    return order, start, _window_ends(sorted_t, sorted_codes, spec.span)


def _changes(values: np.ndarray) -> np.ndarray:
    """``changes[i]``: whether position ``i + 1`` differs from position ``i``."""
    return values[1:] != values[:-1]


def _run_ends(change: np.ndarray, n: int) -> np.ndarray:
    """For each of ``n`` positions, the end of its run (runs split where ``change[i]`` says that
    position ``i + 1`` starts a new one).

    Examples
    --------
    >>> _run_ends(_changes(np.array([4, 4, 2, 7, 7, 7])), 6).tolist()
    [2, 2, 3, 6, 6, 6]
    """
    ends = np.append(np.flatnonzero(change) + 1, n).astype(np.int64)
    return np.repeat(ends, np.diff(ends, prepend=0))


def _window_ends(sorted_t: np.ndarray, sorted_codes: np.ndarray | None, span: int) -> np.ndarray:
    """``end`` of the time windows: past the last row of the key with ``t <= t_i + T``, for
    rows in key-sorted order (times non-decreasing within each key); one linear pass."""
    if sorted_codes is None:
        return np.searchsorted(sorted_t, _plus(sorted_t, span), side="right").astype(np.int64)
    return _jit.window_ends(np.ascontiguousarray(sorted_t, dtype=np.int64),
                            np.ascontiguousarray(sorted_codes, dtype=np.int64), span)


def _float_values(frames: Sequence[pd.DataFrame], column: Hashable) -> np.ndarray:
    parts = [f[column].to_numpy(dtype=np.float64, na_value=np.nan) for f in frames]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _feature_kernel(
    frame: pd.DataFrame,
    state: _State,
    spec: _Spec,
    part: int,
    wanted: _Wanted,
) -> pd.DataFrame:
    """Partition ``part`` with its feature columns added (backward scan: rows horizons only)."""
    n_own = len(frame)
    if not n_own:
        return _with_columns(frame, {nm: np.empty(0) for nm in wanted.new_columns})
    future = _future(frame, state, spec, part)
    frames = [frame] if future is None else [frame, future]
    out = _feature_columns(frames, n_own, None, None, spec, wanted)
    return _with_columns(frame, out)


@dataclass
class _Windows:
    """The windows of the own rows, in key-sorted order (see :func:`_windows`)."""

    order: np.ndarray | None  # key-sorted order of all rows (None: row order)
    start: np.ndarray  # window bounds [start, end) of every row, in that order
    end: np.ndarray
    own_sorted: np.ndarray  # where each own row sits in that order
    complete: np.ndarray  # whether each own row's window is complete
    times: np.ndarray | None  # times of all rows in that order, datetime64 (time horizons)


#: Features whose incomplete windows follow their own rule (window_stats.settle_barrier).
_SETTLED = ("barrier", "barrier_time")


def _own_windows(
    frames: Sequence[pd.DataFrame], n_own: int, t: np.ndarray | None, end_t: int | None,
    spec: _Spec,
) -> _Windows:
    """The windows of the first ``n_own`` rows of ``frames`` (concatenated); ``t``: the times of
    all rows, ``end_t``: the input's last time (time horizons)."""
    if spec.by:
        codes, n_groups = key_codes(frames, spec.by)
    else:
        codes, n_groups = None, 1
    n = sum(len(f) for f in frames)
    order, start, end = _windows(n, codes, n_groups, t, spec)
    if order is not None:
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.arange(n)
        own_sorted = inverse[:n_own]  # where each own row sits in key-sorted order
    else:
        own_sorted = np.arange(n_own)
    times = None
    if spec.rows is not None:
        complete = (end - start)[own_sorted] == spec.rows
    else:
        assert t is not None and end_t is not None and spec.span is not None
        complete = t[:n_own] <= _minus(end_t, spec.span)
        times = (t if order is None else t[order]).view(f"M8[{spec.unit}]")
    return _Windows(order, start, end, own_sorted, complete, times)


def _feature_columns(
    frames: Sequence[pd.DataFrame],
    n_own: int,
    t: np.ndarray | None,
    end_t: int | None,
    spec: _Spec,
    wanted: _Wanted,
) -> dict[str, np.ndarray]:
    """The feature columns of the first ``n_own`` rows of ``frames`` (concatenated), whose
    windows all lie within ``frames``; ``t``: their times, ``end_t``: the input's last time."""
    windows = _own_windows(frames, n_own, t, end_t, spec)
    blank = None if wanted.partial or windows.complete.all() else ~windows.complete
    out: dict[str, np.ndarray] = {}
    for column, column_names in zip(wanted.columns, wanted.names, strict=True):
        values = _float_values(frames, column)
        computed = _column_features(values, n_own, windows, spec, wanted)
        for feature, nm in zip(wanted.features, column_names, strict=True):
            result = np.array(computed[feature], dtype=np.float64)
            if blank is not None and feature not in _SETTLED:
                result[blank] = np.nan
            out[nm] = result
    return out


def _column_features(
    values: np.ndarray, n_own: int, w: _Windows, spec: _Spec, wanted: _Wanted
) -> dict[str, np.ndarray]:
    """``wanted.features`` of one column (``values`` of all rows, in row order), own rows only;
    the barrier's incomplete windows already settled."""
    in_order = values if w.order is None else values[w.order]
    start, end, own_sorted = w.start, w.end, w.own_sorted
    features = set(wanted.features)
    computed: dict[str, np.ndarray] = {}
    if features & {"future", "change", "return"}:
        computed.update(_future_change_return(in_order, values[:n_own], w, spec))
    for feature in features & set(_ROLLING):
        computed[feature] = window_stats.window_stat(feature, in_order, None, start, end)[own_sorted]
    for feature in features & {"time_to_max", "time_to_min"}:
        kernel = window_stats.KERNELS[feature]
        computed[feature] = kernel(in_order, w.times, start, end)[own_sorted]
    if "barrier" in features:
        assert wanted.barrier is not None
        label, when = window_stats.barrier(in_order, w.times, start, end, *wanted.barrier)
        computed["barrier"], computed["barrier_time"] = window_stats.settle_barrier(
            label[own_sorted], when[own_sorted], w.complete, wanted.partial)
    return computed


def _future_change_return(
    in_order: np.ndarray, own_values: np.ndarray, w: _Windows, spec: _Spec
) -> dict[str, np.ndarray]:
    """``future``, ``change`` and ``return`` of the own rows."""
    start, end, own_sorted = w.start, w.end, w.own_sorted
    if spec.rows is not None:
        last = np.where(w.complete, end[own_sorted] - 1, 0)
        fut = np.where(w.complete, in_order[last], np.nan)
    else:
        own_start, own_end = start[own_sorted], end[own_sorted]
        fut = np.where(own_end > own_start, in_order[np.maximum(own_end - 1, 0)], own_values)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"future": fut, "change": fut - own_values, "return": fut / own_values - 1}


def _with_columns(frame: pd.DataFrame, new: dict[str, np.ndarray]) -> pd.DataFrame:
    """``frame`` with columns added, in one step (``assign`` inserts them one at a time)."""
    return pd.concat([frame, pd.DataFrame(new, index=frame.index)], axis=1)


# ----------------------------------------------------------------------------------------------
# public API
def future_features(
    df: dd.DataFrame,
    horizon: int | str | pd.Timedelta,
    columns: Hashable | Sequence[Hashable],
    features: str | Sequence[str] = ("change",),
    by: Hashable | Sequence[Hashable] | None = None,
    time: Hashable | None = None,
    partial: bool = False,
    label: str | None = None,
    barrier: Sequence[float] | None = None,
) -> dd.DataFrame:
    """Add features of each row's future window, per key, exactly across partitions (lazy).

    The window ``W_i`` of row *i* holds the rows *j* of the same key with, for a rows horizon *k*,
    the next *k* rows of that key after *i*, and for a time horizon *T*, ``t_i < t_j <= t_i + T``.
    For each column ``c`` and feature ``f`` a float64 column ``{c}_{f}_{label}`` is added:

    - ``future``: rows: the value of the *k*-th row after *i*; time: the value of the last row of
      ``W_i``, or row *i*'s own value when ``W_i`` is empty (NaN taken as is);
    - ``change`` = future - value; ``return`` = future / value - 1;
    - ``max``, ``min``, ``mean``, ``sum``, ``count`` over the non-NaN values of ``W_i`` (count 0,
      sum 0 and max/min/mean NaN when there are none); ``std`` (ddof 1) over them, NaN below 2;
    - ``time_to_max``, ``time_to_min``: from row *i* to the first row of ``W_i`` (row order)
      holding the window's max (min) of non-NaN values: seconds (float) for a time horizon, rows
      ahead within the key (1..k) for a rows horizon; NaN when there is no non-NaN value;
    - ``barrier`` (needs ``barrier=(up, down)``, both > 0): the first row *j* of ``W_i`` in row
      order with a non-NaN ``x_j >= x_i (1 + up)`` gives +1, with ``x_j <= x_i (1 - down)`` -1;
      none gives 0. It adds a second column ``{c}_barrier_time_{label}``: seconds (time) or rows
      ahead (rows) to that touch, NaN without one. Both are NaN when ``x_i`` is NaN or ``<= 0``.

    A window is *incomplete* when fewer than *k* rows of the key follow (rows), or when
    ``t_i + T`` is later than the last time of the whole input over all keys (time). All its
    features are NaN unless ``partial=True``, which computes them over what is there (a rows
    ``future`` stays NaN). The barrier differs: an incomplete window that was touched keeps its
    label and time (the touch is known already); one that was not is NaN, or 0 with ``partial``.

    Parameters
    ----------
    df : dask.dataframe.DataFrame
        The input; its row order is kept, and so are its index, divisions and other columns.
    horizon : int, str or Timedelta
        A row count (``30``) or a fixed time span (``"30s"``, ``"5min"``); see
        :func:`parse_horizon`.
    columns : column name or list of names
        Numeric columns to compute features of.
    features : str or sequence of str, default ``("change",)``
        Any of :data:`FEATURES`.
    by : column name or list of names, optional
        Key columns: windows hold rows of the same key only. A missing value is a key of its own.
    time : column name, optional
        The time column of a time horizon; by default the index, which must be a DatetimeIndex.
        Times must be non-decreasing in row order (duplicates allowed); this is checked during the
        compute. Not used by a rows horizon.
    partial : bool, default False
        Compute incomplete windows over the rows there are instead of giving NaN.
    label : str, optional
        Label in the new column names instead of :func:`feature_label` of the horizon.
    barrier : (float, float), optional
        ``(up, down)`` relative levels of the ``barrier`` feature, e.g. ``(0.02, 0.01)``: up 2 %,
        down 1 %. Required with that feature (and not used without it).

    Returns
    -------
    dask.dataframe.DataFrame
        ``df`` with the feature columns added, in the order columns x features, rows in their
        order with their index. With a rows horizon each partition keeps its rows (and the
        divisions); with a time horizon rows stream forwards, each leaving in the partition where
        its window closes (same number of partitions, unknown divisions).

    Raises
    ------
    InputError
        Bad arguments, at once (unknown column or feature, non-numeric column, bad horizon, a time
        horizon without times or longer than its times can span, ``barrier`` levels missing or
        not > 0); unsorted times or NaT when computed.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> pdf = pd.DataFrame({"price": [1.0, 2.0, 4.0, 3.0, 5.0]},
    ...                    index=pd.date_range("2024-01-01", periods=5, freq="s"))
    >>> ddf = dd.from_pandas(pdf, npartitions=2)
    >>> future_features(ddf, "2s", "price", ["future", "max"]).compute()
                         price  price_future_2s  price_max_2s
    2024-01-01 00:00:00    1.0              4.0           4.0
    2024-01-01 00:00:01    2.0              3.0           4.0
    2024-01-01 00:00:02    4.0              5.0           5.0
    2024-01-01 00:00:03    3.0              NaN           NaN
    2024-01-01 00:00:04    5.0              NaN           NaN

    A rows horizon per key:

    >>> pdf = pd.DataFrame({"key": list("abab"), "x": [1.0, 10.0, 3.0, 30.0]})
    >>> out = future_features(dd.from_pandas(pdf, npartitions=2), 1, "x", ["change", "count"],
    ...                       by="key", partial=True)
    >>> out.compute()
      key     x  x_change_1r  x_count_1r
    0   a   1.0          2.0         1.0
    1   b  10.0         20.0         1.0
    2   a   3.0          NaN         0.0
    3   b  30.0          NaN         0.0

    Barrier labels (+1: up 10 % first, -1: down 10 % first, 0: neither) and when they were hit:

    >>> pdf = pd.DataFrame({"price": [100.0, 104.0, 89.0, 99.0, 95.0]},
    ...                    index=pd.date_range("2024-01-01", periods=5, freq="s"))
    >>> out = future_features(dd.from_pandas(pdf, npartitions=2), "2s", "price", "barrier",
    ...                       barrier=(0.1, 0.1)).compute()
    >>> out[["price_barrier_2s", "price_barrier_time_2s"]].to_numpy().tolist()
    [[-1.0, 2.0], [-1.0, 1.0], [1.0, 1.0], [nan, nan], [nan, nan]]
    """
    if not isinstance(df, dd.DataFrame):
        raise TypeError(f"expected a dask DataFrame, got {type(df).__name__}")
    meta = df._meta
    column_list, feature_list = as_list(columns), as_list(features)
    _check_arguments(meta, column_list, feature_list, FEATURES)
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise InputError(f"label: {label!r} is not a non-empty string")
    levels = _barrier_levels(barrier) if "barrier" in feature_list else None
    spec, _ = _spec(df, horizon, by, time, keep=column_list)
    text = feature_label(horizon) if label is None else label
    feature_list = [g for f in feature_list for g in ((f, "barrier_time") if f == "barrier" else (f,))]
    names = tuple(tuple(f"{c}_{f}_{text}" for f in feature_list) for c in column_list)
    out_meta = _meta_with(meta, names, "; pass another `label`")
    kernel_args = (_Wanted(tuple(column_list), tuple(feature_list), names, bool(partial), levels),)
    if spec.span is not None:  # time horizon: stream forwards
        spec = replace(spec, keep=None)  # emitted rows carry all their columns
        return _lookahead_streaming(df, spec, out_meta, kernel_args)
    return _lookahead(df, spec, _feature_kernel, out_meta, "future-features", kernel_args)


def _check_arguments(
    meta: pd.DataFrame, columns: list[Any], features: list[Any], known: Sequence[str]
) -> None:
    """Raise :class:`InputError` for missing, unknown or non-numeric columns and missing, unknown
    (not in ``known``) or repeated features."""
    if not columns:
        raise InputError("columns: at least one column is needed")
    check_columns("columns", columns, meta.columns)
    for column in columns:
        dtype = meta[column].dtype
        if not is_numeric_dtype(dtype) or is_complex_dtype(dtype):
            raise InputError(f"column {column!r}: not numeric (dtype {dtype})")
    if not features:
        raise InputError("features: at least one feature is needed")
    for feature in features:
        if feature not in known:
            raise InputError(f"features: unknown feature {feature!r} (known: {', '.join(known)})")
    if len(set(features)) != len(features):
        raise InputError(f"features: a feature is listed twice in {features!r}")


def _meta_with(meta: pd.DataFrame, names: tuple[tuple[str, ...], ...], hint: str) -> pd.DataFrame:
    """``meta`` with the float64 feature columns ``names`` added; :class:`InputError` (message
    ending in ``hint``) when one exists already."""
    for name in (nm for row in names for nm in row):
        if name in meta.columns:
            raise InputError(f"column {name!r} already exists{hint}")
    return _with_columns(meta, {nm: np.empty(0) for row in names for nm in row})


def _barrier_levels(barrier: Any) -> tuple[float, float]:
    """``barrier=(up, down)`` checked: two finite numbers > 0.

    >>> _barrier_levels((0.02, 0.01))
    (0.02, 0.01)
    >>> _barrier_levels(None)
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: barrier: the barrier feature needs barrier=(up, down), two numbers > 0, got None
    """
    try:
        if isinstance(barrier, (str, bytes)):
            raise TypeError
        up, down = (float(v) for v in barrier)
    except (TypeError, ValueError):
        raise InputError(
            f"barrier: the barrier feature needs barrier=(up, down), two numbers > 0, got {barrier!r}"
        ) from None
    if not (0 < up < np.inf and 0 < down < np.inf):
        raise InputError(f"barrier: up and down must be finite numbers > 0, got up={up}, down={down}")
    return up, down


def _map_kernel(
    frame: pd.DataFrame, state: _State, spec: _Spec, part: int, func: Callable[..., Any],
    meta: Any,
) -> Any:
    n_own = len(frame)
    if not n_own:
        return meta
    future = _future(frame, state, spec, part)
    combined = frame if future is None else pd.concat([frame, future])
    result = func(combined, n_own)
    if len(result) != n_own:
        name = _function_name(func)
        raise InputError(
            f"map_lookahead: function {name!r} returned {len(result)} rows for the {n_own} own "
            f"rows of partition {part} (it got {len(combined)} rows: {n_own} own + "
            f"{len(combined) - n_own} future); it must return exactly one row per own row"
        )
    return result


def _function_name(func: Callable[..., Any]) -> str:
    """A function's name for messages (that of the function a ``functools.partial`` wraps).

    >>> _function_name(partial(round, ndigits=2))
    'round'
    """
    inner = getattr(func, "func", func)
    return getattr(inner, "__qualname__", None) or repr(func)


def map_lookahead(
    df: dd.DataFrame,
    func: Callable[[pd.DataFrame, int], Any],
    horizon: int | str | pd.Timedelta,
    by: Hashable | Sequence[Hashable] | None = None,
    time: Hashable | None = None,
    meta: Any = None,
) -> dd.DataFrame:
    """Apply ``func(frame, n_own)`` to each partition plus the future rows its windows need (lazy).

    ``frame`` holds the partition's ``n_own`` own rows followed by future rows from later
    partitions, in row order, with all columns and their index:

    - rows horizon *k*: the first *k* rows of each key (of each value of ``by``, or of the whole
      frame without ``by``) after the partition, wherever they are;
    - time horizon *T*: every row after the partition with ``t <= t_last + T``, ``t_last`` the
      partition's last time (whatever its key).

    So every row's future window is within ``frame``; near the end of the input it may be
    incomplete. ``func`` must return a DataFrame or Series of exactly ``n_own`` rows, the results
    for the own rows; like ``map_partitions`` the divisions are kept, so it should keep the index.
    Empty partitions are not passed to ``func``.

    Parameters
    ----------
    df : dask.dataframe.DataFrame
    func : callable
        ``func(frame: pandas.DataFrame, n_own: int) -> pandas.DataFrame | pandas.Series``.
    horizon : int, str or Timedelta
        See :func:`parse_horizon`.
    by : column name or list of names, optional
        Keys of a rows horizon (with a time horizon, only what ``func`` does with it matters).
    time : column name, optional
        The time column of a time horizon; by default the (sorted) DatetimeIndex.
    meta : optional
        The output's metadata (as for ``map_partitions``); by default ``func`` is run on a small
        fake partition to find it.

    Returns
    -------
    dask.dataframe.DataFrame or dask.dataframe.Series

    Raises
    ------
    InputError
        Bad arguments (at once); unsorted times, NaT, or a wrong number of rows from ``func``
        (when computed).

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> pdf = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    >>> def next_sum(frame, n_own):  # x + x of the next row
    ...     return (frame["x"] + frame["x"].shift(-1)).iloc[:n_own].rename("s")
    >>> map_lookahead(dd.from_pandas(pdf, npartitions=3), next_sum, 1).compute().tolist()
    [3.0, 5.0, 7.0, 9.0, nan]
    """
    if not callable(func):
        raise InputError(f"map_lookahead: {func!r} is not callable")
    spec, _ = _spec(df, horizon, by, time, keep=None)
    if meta is None:
        fake = df._meta_nonempty
        try:
            found = func(fake, len(fake))
        except Exception as error:
            raise InputError(
                f"meta: cannot infer the output of {_function_name(func)!r} on a fake partition "
                f"({type(error).__name__}: {error}); pass `meta`"
            ) from None
        out_meta = make_meta(found.iloc[:0] if hasattr(found, "iloc") else found)
    else:
        out_meta = make_meta(meta)
    return _lookahead(df, spec, _map_kernel, out_meta, "map-lookahead", (func, out_meta))
