"""Plain-pandas references for the window steps, written for clarity (row by row), not speed.

They follow the semantics in the steps' docstrings word for word and share no code with
``pipelines``.
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


def _rows_of_key(pdf: pd.DataFrame, keys: list[Any]) -> list[list[int]]:
    """For each row, the positions of all rows of its key (a missing value is a key of its own)."""
    def key_of(i: int) -> tuple[Any, ...]:
        return tuple(_MISSING if pd.isna(pdf[k].iloc[i]) else pdf[k].iloc[i] for k in keys)

    rows: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i in range(len(pdf)):
        rows[key_of(i)].append(i)
    return [rows[key_of(i)] for i in range(len(pdf))]


def _stats(values: np.ndarray) -> dict[str, float]:
    """The past features over a window's values (NaN skipped)."""
    window = pd.Series(values, dtype="float64")
    return {
        "count": window.count(),
        "sum": window.sum(),
        "mean": window.mean(),
        "std": window.std(ddof=1),
        "var": window.var(ddof=1),
        "min": window.min(),
        "max": window.max(),
    }


def reference_past_features(
    pdf: pd.DataFrame,
    horizon: int | str | pd.Timedelta,
    columns: Hashable | Sequence[Hashable],
    features: str | Sequence[str] = ("mean",),
    by: Hashable | Sequence[Hashable] | None = None,
    time: Hashable | None = None,
    partial: bool = False,
) -> pd.DataFrame:
    """``pdf`` with the lookback feature columns added, one row at a time.

    The window of row *i*: the rows *j* <= *i* of its key, the last *k* of them (rows) or those
    with ``t_j > t_i - T`` (time); incomplete (NaN unless ``partial``) when the key has fewer than
    *k* rows up to *i*, or when ``t_i - T`` is before the input's first time.
    """
    columns, features, keys = _names(columns), _names(features), _names(by)
    by_rows = isinstance(horizon, (int, np.integer))
    label = f"{horizon}r" if by_rows else "".join(str(horizon).split())
    n = len(pdf)
    rows_of_key = _rows_of_key(pdf, keys)
    if not by_rows:
        span = pd.Timedelta(horizon)
        times = list(pdf.index if time is None else pdf[time])
        first_time = min(times) if n else None

    values = {c: pdf[c].to_numpy(dtype="float64", na_value=np.nan) for c in columns}
    out: dict[str, list[float]] = {f"{c}_{f}_past_{label}": [] for c in columns for f in features}
    for i in range(n):
        so_far = [j for j in rows_of_key[i] if j <= i]
        if by_rows:
            window = so_far[-horizon:]
            complete = len(so_far) >= horizon
        else:
            window = [j for j in so_far if times[j] > times[i] - span]
            complete = times[i] - span >= first_time
        for c in columns:
            result = _stats(values[c][window])
            for f in features:
                value = result[f] if (complete or partial) else np.nan
                out[f"{c}_{f}_past_{label}"].append(float(value))
    return pdf.assign(**{name: np.array(vals, dtype="float64") for name, vals in out.items()})


def _first_touch(x: float, window: list[int], values: np.ndarray, up: float, down: float
                 ) -> tuple[float, int | None]:
    """(+1 or -1, the row) of the first barrier touch in ``window``, or (0, None)."""
    for j in window:
        if values[j] >= x * (1 + up):
            return 1.0, j
        if values[j] <= x * (1 - down):
            return -1.0, j
    return 0.0, None


def reference_future_window_features(
    pdf: pd.DataFrame,
    horizon: int | str | pd.Timedelta,
    columns: Hashable | Sequence[Hashable],
    features: Sequence[str] = ("std",),
    by: Hashable | Sequence[Hashable] | None = None,
    time: Hashable | None = None,
    partial: bool = False,
    barrier: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """``pdf`` with the lookahead features ``std``, ``time_to_max``, ``time_to_min`` and
    ``barrier`` (two columns: ``{c}_barrier_{label}``, ``{c}_barrier_time_{label}``) added.

    Future window of row *i*: the next *k* rows of its key (rows; complete when *k* follow), or
    the rows of its key with ``t_i < t_j <= t_i + T`` (time; complete when ``t_i + T`` is not
    after the input's last time). Distances: rows ahead within the key, or seconds.
    """
    columns, keys = _names(columns), _names(by)
    by_rows = isinstance(horizon, (int, np.integer))
    label = f"{horizon}r" if by_rows else "".join(str(horizon).split())
    n = len(pdf)
    rows_of_key = _rows_of_key(pdf, keys)
    times = list(pdf.index if time is None else pdf[time]) if not by_rows else []
    expanded = [g for f in features for g in ((f, "barrier_time") if f == "barrier" else (f,))]
    names = [f"{c}_{g}_{label}" for c in columns for g in expanded]
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        later = [j for j in rows_of_key[i] if j > i]
        if by_rows:
            window, complete = later[:horizon], len(later) >= horizon
        else:
            span = pd.Timedelta(horizon)
            window = [j for j in later if times[i] < times[j] <= times[i] + span]
            complete = times[i] + span <= max(times)

        def distance(j: int) -> float:
            if by_rows:
                return float(later.index(j) + 1)
            return (times[j] - times[i]).total_seconds()

        for c in columns:
            values = pdf[c].to_numpy(dtype="float64", na_value=np.nan)
            valid = [j for j in window if not np.isnan(values[j])]
            result = {"std": pd.Series(values[window], dtype="float64").std(ddof=1)}
            for name, pick in (("time_to_max", max), ("time_to_min", min)):
                target = pick(values[j] for j in valid) if valid else None
                result[name] = np.nan if target is None else distance(
                    next(j for j in valid if values[j] == target))
            for f in features:
                if f != "barrier":
                    out[f"{c}_{f}_{label}"].append(result[f] if complete or partial else np.nan)
                    continue
                x = values[i]
                touch, j = (np.nan, None) if np.isnan(x) or x <= 0 else _first_touch(
                    x, window, values, *barrier)  # type: ignore[misc]
                if j is None and touch == 0.0 and not (complete or partial):
                    touch = np.nan
                out[f"{c}_barrier_{label}"].append(touch)
                out[f"{c}_barrier_time_{label}"].append(np.nan if j is None else distance(j))
    return pdf.assign(**{name: np.array(vals, dtype="float64") for name, vals in out.items()})
