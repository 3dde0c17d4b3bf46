"""Plain-pandas reference implementations, written for clarity (row by row), not for speed.

Tests compare the Dask steps against these on small frames. They follow the semantics stated in
the steps' module docstrings (``pipelines.lookahead``, ``pipelines.dedup``, ``pipelines.summary``;
``docs/semantics.md`` collects them) word for word and share no code with ``pipelines``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

_MISSING = object()  # the key of a row whose key value is missing (NaN, None, NA, NaT)


def _names(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def reference_future_features(
    pdf: pd.DataFrame,
    horizon: int | str | pd.Timedelta,
    columns: Hashable | Sequence[Hashable],
    features: str | Sequence[str] = ("change",),
    by: Hashable | Sequence[Hashable] | None = None,
    time: Hashable | None = None,
    partial: bool = False,
    label: str | None = None,
) -> pd.DataFrame:
    """``pdf`` with the lookahead feature columns added, one row at a time.

    Row *i*'s window holds the rows *j* of its key with, for a rows horizon *k*, the next *k* rows
    of the key after *i*, and for a time horizon *T*, ``t_i < t_j <= t_i + T``. It is incomplete
    when fewer than *k* rows follow, or when ``t_i + T`` is after the last time of the whole input;
    then every feature is NaN unless ``partial``.

    ``horizon`` is an int (rows) or a fixed time span; the times (``time`` column, else the index)
    must be sorted.
    """
    columns = _names(columns)
    features = _names(features)
    keys = _names(by)
    by_rows = isinstance(horizon, (int, np.integer))
    if label is None:
        label = f"{horizon}r" if by_rows else "".join(str(horizon).split())
    span = None if by_rows else pd.Timedelta(horizon)
    n = len(pdf)

    # the key of every row, with every missing value the same key
    def key_of(i: int) -> tuple[Any, ...]:
        return tuple(_MISSING if pd.isna(pdf[k].iloc[i]) else pdf[k].iloc[i] for k in keys)

    positions_of_key: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i in range(n):
        positions_of_key[key_of(i)].append(i)

    if not by_rows:
        times = list(pdf.index if time is None else pdf[time])
        last_time = max(times) if n else None

    values = {c: pdf[c].to_numpy(dtype="float64", na_value=np.nan) for c in columns}
    out: dict[str, list[float]] = {f"{c}_{f}_{label}": [] for c in columns for f in features}

    for i in range(n):
        same_key = positions_of_key[key_of(i)]
        if by_rows:
            later = [j for j in same_key if j > i]
            window = later[:horizon]
            complete = len(later) >= horizon
        else:
            window = [j for j in same_key if times[i] < times[j] <= times[i] + span]
            complete = times[i] + span <= last_time

        for c in columns:
            result = _features_of_row(values[c], i, window, complete, by_rows)
            for f in features:
                value = result[f] if (complete or partial) else np.nan
                out[f"{c}_{f}_{label}"].append(float(value))

    return pdf.assign(**{name: np.array(vals, dtype="float64") for name, vals in out.items()})


def _features_of_row(
    values: np.ndarray, i: int, window: list[int], complete: bool, by_rows: bool
) -> dict[str, float]:
    """Every feature of row ``i`` over the rows ``window`` (positions in ``values``)."""
    own = values[i]
    in_window = pd.Series(values[window], dtype="float64")
    if by_rows:
        future = values[window[-1]] if complete else np.nan
    else:
        future = values[window[-1]] if window else own
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "future": future,
            "change": np.float64(future) - own,
            "return": np.float64(future) / own - 1,
            "max": in_window.max(),
            "min": in_window.min(),
            "mean": in_window.mean(),
            "sum": in_window.sum(),
            "count": in_window.count(),
        }


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and value != value
    ) or (isinstance(value, (np.datetime64, np.timedelta64)) and np.isnat(value))


def _same(a, b, nan_equal: bool) -> bool:
    if _missing(a) and _missing(b):
        return nan_equal
    if _missing(a) or _missing(b):
        return False
    return bool(a == b)


def reference_drop_consecutive_duplicates(
    pdf: pd.DataFrame, subset=None, by=None, nan_equal: bool = True, time=None,
    keep: str = "first", count=None,
) -> pd.DataFrame:
    """Keep the first (or last) row of each run of consecutive equal rows of a key.

    A row is a duplicate when its subset values equal those of the previous row of its key; a run
    is a row that is not a duplicate and the duplicates that follow it in its key. With ``count``
    a column of that name holds the number of rows in the kept row's run.
    """
    assert keep in ("first", "last")
    keys = _names(by)
    if subset is None:
        cols = [c for c in pdf.columns if c not in keys and c != time]
    else:
        cols = _names(subset)
    key_values = [pdf[k].tolist() for k in keys]
    col_values = [pdf[c].tolist() for c in cols]
    previous: dict[tuple, list] = {}  # key -> subset values of the key's last row so far
    current_run: dict[tuple, list[int]] = {}  # key -> the positions of the key's current run
    runs: list[list[int]] = []  # every run's positions
    for i in range(len(pdf)):
        key = tuple(_MISSING if _missing(v[i]) else v[i] for v in key_values)
        values = [v[i] for v in col_values]
        duplicate = key in previous and all(
            _same(a, b, nan_equal) for a, b in zip(values, previous[key])
        )
        if duplicate:
            current_run[key].append(i)
        else:
            current_run[key] = [i]
            runs.append(current_run[key])
        previous[key] = values
    kept = sorted((run[0] if keep == "first" else run[-1], len(run)) for run in runs)
    out = pdf.iloc[[position for position, _ in kept]]
    if count is not None:
        out = out.copy()
        out[count] = np.array([length for _, length in kept], dtype=np.int64)
    return out


# ----------------------------------------------------------------------------------------------
# helpers


def reference_summarize(pdf: pd.DataFrame, columns, by=None, ddof: int = 1) -> pd.DataFrame:
    """count, mean, std, var, min, max per column (and key, missing keys a key of their own)."""
    stats = ["count", "mean", "std", "var", "min", "max"]
    keys = _names(by)
    rows = []
    for column in _names(columns):
        values = pdf[column].astype("float64")
        groups = [((), values)] if not keys else values.groupby(
            [pdf[k] for k in keys], dropna=False, sort=True)
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            rows.append((*key, column, group.count(), group.mean(), group.std(ddof=ddof),
                         group.var(ddof=ddof), group.min(), group.max()))
    frame = pd.DataFrame(rows, columns=[*keys, "column", *stats])
    return frame.set_index([*keys, "column"]).sort_index(level=list(range(len(keys))), sort_remaining=False)
