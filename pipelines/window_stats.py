"""Statistics of windows given by their bounds: pure, vectorized numpy/pandas kernels.

Every kernel takes the same arguments, in one *layout* of ``n`` rows (the key-sorted order of the
window steps: the rows of each key together, in row order within the key):

- ``values``: float64 array of length ``n`` (NaN is a missing value);
- ``times``: datetime64 array of length ``n`` (the rows' times) for a time horizon, or ``None``
  for a rows horizon;
- ``start``, ``end``: int arrays of length ``n``; the window of row *i* is the layout range
  ``[start[i], end[i])``. The order-based kernels (``time_to_*``, :func:`barrier`) accept any
  bounds; the rolling ones (:data:`ROLLING`) need ``start`` and ``end`` non-decreasing (pandas'
  rolling min/max require it), as they are for sliding windows in the key-sorted layout.

and returns one float64 value a row (:func:`barrier`: two arrays). Completeness of windows is
the caller's business, except for :func:`settle_barrier`, whose rule for incomplete windows
differs from "NaN unless partial".

How they are computed
---------------------
``sum`` and ``mean`` run through pandas' rolling aggregations over the precomputed bounds
(:class:`Bounds`); ``min`` and ``max`` through one compiled pass with a monotonic deque
(:func:`pipelines._jit.rolling_extreme`, equal to pandas' rolling min/max: like pandas' rolling
aggregations it counts ±inf as missing); ``count`` is a
difference of prefix sums; ``var`` and
``std`` merge the (count, mean, squared deviations) of power-of-two blocks (Chan et al.), which
keeps digits that a running variance loses (memory O(n)). Order statistics use a *sparse table*
of range maxima (levels ``2**l`` for ``l`` up to ``log2`` of the longest window): a window's max
is the max of two overlapping blocks, and "the first row of the window at or above a level" is
found by a descent over the levels, for all rows at once: O(n log w) time and memory, ``w`` the
longest window. (An infinite value counts as a value, except that a window whose only values
are ``-inf`` (``+inf`` for the min) counts as having none.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from pipelines import _jit

__all__ = [
    "KERNELS",
    "ROLLING",
    "Bounds",
    "barrier",
    "settle_barrier",
    "time_to_max",
    "time_to_min",
    "window_stat",
]

#: Rolling statistics over the non-NaN values of a window, with their ``min_periods``: count 0
#: and sum 0 for a window without values, the others NaN; var/std (ddof 1) NaN below 2 values.
ROLLING: dict[str, int] = {
    "count": 0, "sum": 0, "mean": 1, "var": 2, "std": 2, "min": 1, "max": 1,
}


class Bounds(BaseIndexer):
    """Precomputed window bounds ``[start, end)`` for ``Series.rolling``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> bounds = Bounds(np.array([0, 0, 1]), np.array([1, 2, 3]))
    >>> pd.Series([1.0, 2.0, 4.0]).rolling(bounds, min_periods=0).sum().tolist()
    [1.0, 3.0, 6.0]
    """

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        super().__init__()
        self.start = np.asarray(start, dtype=np.int64)
        self.end = np.asarray(end, dtype=np.int64)

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.start, self.end


def window_stat(
    feature: str,
    values: np.ndarray,
    times: np.ndarray | None,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """One statistic of :data:`ROLLING` over the non-NaN values of every window.

    ``times`` is not used (the same signature as the other kernels).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, np.nan, 3.0, 5.0])
    >>> start, end = np.array([0, 0, 0, 2]), np.array([1, 2, 3, 4])
    >>> window_stat("count", x, None, start, end).tolist()
    [1.0, 1.0, 2.0, 2.0]
    >>> window_stat("std", x, None, start, end).round(6).tolist()
    [nan, nan, 1.414214, 1.414214]
    """
    if feature == "count":
        valid = np.concatenate([[0], np.cumsum(~np.isnan(values))])
        return (valid[end] - valid[start]).astype(np.float64)
    if feature in ("var", "std"):
        var = _window_var(np.asarray(values, dtype=np.float64), start, end)
        return np.sqrt(var) if feature == "std" else var
    if feature in ("max", "min"):  # one linear pass (a monotonic deque), same values as pandas'
        return _jit.rolling_extreme(np.ascontiguousarray(values, dtype=np.float64),
                                    np.ascontiguousarray(start, dtype=np.int64),
                                    np.ascontiguousarray(end, dtype=np.int64), feature == "max")
    series = pd.Series(values, dtype=np.float64, copy=False)
    rolling = series.rolling(Bounds(start, end), min_periods=ROLLING[feature])
    return np.array(getattr(rolling, feature)().to_numpy(), dtype=np.float64)


def _merge(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan et al.'s merge of (count, mean, sum of squared deviations) of two disjoint sets."""
    (na, ma, qa), (nb, mb, qb) = a, b
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, nb / n, 0.0)
    delta = mb - ma
    return n, ma + delta * share, qa + qb + delta * delta * na * share


def _window_var(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sample variance (ddof 1) of every window's non-NaN values; NaN below 2 values.

    Not pandas' rolling variance, whose running add/remove loses digits over long inputs: each
    window is cut into power-of-two blocks from its end (one block per bit of its length) and
    their (count, mean, squared deviations) are merged pairwise-stably. Blocks of size ``2**l``
    are built from those of size ``2**(l-1)`` and dropped after use, so memory stays O(n).
    """
    valid = ~np.isnan(values)
    level = (valid.astype(np.float64), np.where(valid, values, 0.0), np.zeros(len(values)))
    acc = tuple(np.zeros(len(start)) for _ in range(3))
    cursor = np.asarray(end, dtype=np.int64).copy()
    left = cursor - start
    width = 1
    while True:
        rows = np.flatnonzero(left & width)
        if len(rows):
            at = cursor[rows] - width
            block = tuple(part[at] for part in level)
            merged = _merge(tuple(part[rows] for part in acc), block)
            for part, new in zip(acc, merged):
                part[rows] = new
            cursor[rows] = at
        if 2 * width > int(left.max(initial=0)):
            break
        shifted = tuple(np.concatenate([part[width:], np.zeros(width)]) for part in level)
        level = _merge(level, shifted)
        width *= 2
    count, _, squares = acc
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 2, squares / (count - 1), np.nan)


# ----------------------------------------------------------------------------------------------
# sparse table of range maxima
def _max_table(values: np.ndarray, longest: int) -> list[np.ndarray]:
    """Levels ``l = 0 ..``: ``table[l][i] = max(values[i : i + 2**l])`` (``-inf`` past the end
    and for NaN), up to the longest window."""
    level = np.where(np.isnan(values), -np.inf, values)
    table = [level]
    width = 1
    while 2 * width <= longest:
        shifted = np.full_like(level, -np.inf)
        shifted[: len(level) - width] = level[width:]
        level = np.maximum(level, shifted)
        table.append(level)
        width *= 2
    return table


def _range_max(table: list[np.ndarray], start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Max of every window (``-inf`` for an empty one or one without values)."""
    size = end - start
    out = np.full(len(start), -np.inf)
    some = np.flatnonzero(size > 0)
    level = np.floor(np.log2(size[some])).astype(np.int64)
    for l in np.unique(level):
        rows = some[level == l]
        blocks = table[l]
        out[rows] = np.maximum(blocks[start[rows]], blocks[end[rows] - (1 << int(l))])
    return out


def _first_at_least(
    table: list[np.ndarray], start: np.ndarray, end: np.ndarray, threshold: np.ndarray
) -> np.ndarray:
    """For every window, the first position ``p`` in ``[start, end)`` with ``values[p] >=
    threshold`` (NaN never is), or ``end`` when there is none.

    A descent over the levels: ``p`` moves by ``2**l`` while the block it jumps over stays below
    the threshold and within the window, so it stops at the first position that is not.
    """
    p = np.asarray(start, dtype=np.int64).copy()
    n = len(table[0])
    if not n:
        return p
    for l in range(len(table) - 1, -1, -1):
        step = 1 << l
        ahead = p + step
        below = table[l][np.minimum(p, n - 1)] < threshold
        p = np.where((ahead <= end) & below, ahead, p)
    return p


def _longest(start: np.ndarray, end: np.ndarray) -> int:
    return int((end - start).max(initial=0))


def _distance(times: np.ndarray | None, here: np.ndarray, there: np.ndarray) -> np.ndarray:
    """From layout row ``here`` to ``there``: seconds (time) or rows ahead (rows), as float."""
    if times is None:
        return (there - here).astype(np.float64)
    span = times[there] - times[here]
    return span / np.timedelta64(1, "s")


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks of the non-NaN values (NaN stays NaN) and the distinct values they index.

    Ranks order like the values, infinities included, and are finite, so ``-inf`` is free to
    stand for "no value" in the tables.
    """
    valid = ~np.isnan(values)
    distinct, inverse = np.unique(values[valid], return_inverse=True)
    ranks = np.full(len(values), np.nan)
    ranks[valid] = inverse
    return ranks, distinct


def _time_to_extreme(
    signed: np.ndarray, times: np.ndarray | None, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Distance to the first row of each window holding its max of ``signed`` (finite)."""
    n = len(signed)
    table = _max_table(signed, _longest(start, end))
    peak = _range_max(table, start, end)
    found = peak > -np.inf  # -inf: no value in the window
    out = np.full(n, np.nan)
    if found.any():
        rows = np.flatnonzero(found)
        where = _first_at_least(table, start[rows], end[rows], peak[rows])
        out[rows] = _distance(times, rows, where)
    return out


def time_to_max(
    values: np.ndarray, times: np.ndarray | None, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """From row *i* to the first row of its window (layout order) holding the window's max.

    Seconds (float) when ``times`` are given, else rows ahead in the layout; NaN for a window
    without a non-NaN value.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0, 2.0, 3.0, np.nan])
    >>> start, end = np.arange(1, 6), np.minimum(np.arange(1, 6) + 3, 5)  # next 3 rows
    >>> time_to_max(x, None, start, end).tolist()
    [1.0, 2.0, 1.0, nan, nan]
    >>> t = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:00.5", "2024-01-01T00:00:02",
    ...               "2024-01-01T00:00:03", "2024-01-01T00:00:04"], dtype="M8[ms]")
    >>> time_to_max(x, t, start, end).tolist()
    [0.5, 2.5, 1.0, nan, nan]
    """
    return _time_to_extreme(_ranks(np.asarray(values, dtype=np.float64))[0], times, start, end)


def time_to_min(
    values: np.ndarray, times: np.ndarray | None, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """From row *i* to the first row of its window holding the window's min (as
    :func:`time_to_max`).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0, 2.0, 2.0, np.nan])
    >>> start, end = np.arange(1, 6), np.minimum(np.arange(1, 6) + 3, 5)
    >>> time_to_min(x, None, start, end).tolist()
    [2.0, 1.0, 1.0, nan, nan]
    """
    return _time_to_extreme(-_ranks(np.asarray(values, dtype=np.float64))[0], times, start, end)


# ----------------------------------------------------------------------------------------------
# barrier labels
def barrier(
    values: np.ndarray,
    times: np.ndarray | None,
    start: np.ndarray,
    end: np.ndarray,
    up: float,
    down: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The first barrier each row's window touches, and when, ignoring completeness.

    With ``x_i`` row *i*'s value, the first row *j* of the window (layout order) with a non-NaN
    ``x_j >= x_i * (1 + up)`` gives label +1, with ``x_j <= x_i * (1 - down)`` -1. Returns
    ``(label, time)``: label +1/-1 and the distance to that row (seconds or rows ahead, as
    :func:`time_to_max`); label 0 and time NaN when the window touches neither; both NaN when
    ``x_i`` is NaN or ``<= 0``. Apply :func:`settle_barrier` for incomplete windows. (Only an
    infinite ``x_i`` can meet both levels at one row; that row counts as +1.)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([100.0, 101.0, 99.0, 103.0, np.nan, 0.0])
    >>> start, end = np.arange(1, 7), np.minimum(np.arange(1, 7) + 3, 6)
    >>> label, time = barrier(x, None, start, end, up=0.02, down=0.01)
    >>> label.tolist(), time.tolist()
    ([-1.0, -1.0, 1.0, -1.0, nan, nan], [2.0, 1.0, 1.0, 2.0, nan, nan])
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    label, time = np.full(n, np.nan), np.full(n, np.nan)
    rows = np.flatnonzero(x > 0)  # NaN compares False
    if not len(rows):
        return label, time
    s, e, own = start[rows], end[rows], x[rows]
    longest = _longest(s, e)
    ranks, distinct = _ranks(x)
    with np.errstate(over="ignore", invalid="ignore"):
        upper, lower = own * (1 + up), own * (1 - down)
    # x_j >= upper: rank_j >= (distinct values below upper); x_j <= lower: rank_j < (those <= lower)
    at_up = np.searchsorted(distinct, upper, side="left").astype(np.float64)
    past_down = np.searchsorted(distinct, lower, side="right").astype(np.float64)
    hit_up = _first_at_least(_max_table(ranks, longest), s, e, at_up)
    hit_down = _first_at_least(_max_table(-ranks, longest), s, e, 1 - past_down)
    first = np.minimum(hit_up, hit_down)
    touched = first < e
    label[rows] = np.where(touched, np.where(hit_up <= hit_down, 1.0, -1.0), 0.0)
    time[rows[touched]] = _distance(times, rows[touched], first[touched])
    return label, time


def settle_barrier(
    label: np.ndarray, time: np.ndarray, complete: np.ndarray, partial: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Barrier results with the rule for incomplete windows applied (new arrays).

    A touched window keeps its label and time (the touch is known); an untouched incomplete
    window gets label NaN, or 0 with ``partial``.

    Examples
    --------
    >>> import numpy as np
    >>> label, time = np.array([1.0, 0.0, 0.0, np.nan]), np.array([2.0, np.nan, np.nan, np.nan])
    >>> settle_barrier(label, time, np.array([False, True, False, False]), False)[0].tolist()
    [1.0, 0.0, nan, nan]
    """
    label = np.array(label, dtype=np.float64)
    if not partial:
        label[~np.asarray(complete, dtype=bool) & np.isnan(time)] = np.nan
    return label, np.array(time, dtype=np.float64)


def _rolling_kernel(feature: str) -> Callable[..., np.ndarray]:
    def kernel(values: np.ndarray, times: np.ndarray | None, start: np.ndarray,
               end: np.ndarray) -> np.ndarray:
        return window_stat(feature, values, times, start, end)

    kernel.__name__ = kernel.__qualname__ = f"window_{feature}"
    return kernel


#: Every one-column kernel by feature name: ``KERNELS[f](values, times, start, end)``.
KERNELS: dict[str, Callable[..., np.ndarray]] = {
    **{feature: _rolling_kernel(feature) for feature in ROLLING},
    "time_to_max": time_to_max,
    "time_to_min": time_to_min,
}
