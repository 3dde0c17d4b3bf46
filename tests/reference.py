"""Plain-pandas reference implementations, written for clarity (row by row), not for speed.

Tests compare the Dask steps against these on small frames. They follow the "Semantics" section
of DESIGN.md word for word and share no code with ``pipelines``.
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
    """``pdf`` with the lookahead feature columns of DESIGN.md added, one row at a time.

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
            own = values[c][i]
            in_window = pd.Series(values[c][window], dtype="float64")
            if by_rows:
                future = values[c][window[-1]] if complete else np.nan
            else:
                future = values[c][window[-1]] if window else own
            with np.errstate(divide="ignore", invalid="ignore"):
                result = {
                    "future": future,
                    "change": np.float64(future) - own,
                    "return": np.float64(future) / own - 1,
                    "max": in_window.max(),
                    "min": in_window.min(),
                    "mean": in_window.mean(),
                    "sum": in_window.sum(),
                    "count": in_window.count(),
                }
            for f in features:
                value = result[f] if (complete or partial) else np.nan
                out[f"{c}_{f}_{label}"].append(float(value))

    return pdf.assign(**{name: np.array(vals, dtype="float64") for name, vals in out.items()})
