"""Compiled loops (Numba) for the per-partition kernels that NumPy can only do in several passes.

Each function here is one linear pass over arrays, replacing a NumPy composition that sorts,
searches or gathers (``argsort``, ``searchsorted`` per key, pandas' rolling machinery). They are
compiled on first use in a process (``cache=True``: later processes load the machine code from
``__pycache__``; Numba itself is imported then too, ~130 MiB of a process's memory, so a process
that never runs these kernels never pays it) and release the GIL (``nogil=True``), so threads of
one worker run them in parallel. Inputs are plain NumPy arrays; the callers own the semantics
(documented where they are called) and the tests compare each with a NumPy reference.

Examples
--------
>>> import numpy as np
>>> previous_positions(np.array([0, 1, 0, 0, 1]), 2).tolist()
[-1, -1, 0, 2, 1]
>>> rolling_extreme(np.array([3.0, np.nan, 1.0, 2.0, np.inf]), np.array([1, 2, 3, 4, 5]),
...                 np.array([2, 4, 4, 5, 5]), True).tolist()
[nan, 2.0, 2.0, nan, nan]
>>> equal_at(np.array([1.0, np.nan, 1.0, np.nan]), np.array([2, 3]), np.array([0, 1]), True).tolist()
[True, True]
>>> end_positions(np.array([0, 1, 0, 2, 1]), 3, True).tolist()
[2, 3, 4]
>>> window_ends(np.array([0, 1, 5, 0, 2]), np.array([0, 0, 0, 1, 1]), 1).tolist()
[2, 2, 3, 4, 5]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["end_positions", "equal_at", "previous_positions", "rolling_extreme", "window_ends"]


def _compiled(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` compiled by ``numba.njit(cache=True, nogil=True)`` when first called."""
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(func)
    def call(*args: Any) -> Any:
        if not compiled:  # two threads may both get here: numba compiles (or loads) once
            import numba

            compiled.append(numba.njit(cache=True, nogil=True)(func))
        return compiled[0](*args)

    return call


_INT64_MAX = np.iinfo(np.int64).max


@_compiled
def previous_positions(codes: np.ndarray, n_groups: int) -> np.ndarray:  # pragma: no cover - compiled
    """For each row, the position of the previous row with the same code, else -1 (one pass).

    ``codes`` are ``0 <= code < n_groups``.
    """
    last = np.full(n_groups, -1, dtype=np.int64)
    prev = np.empty(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        code = codes[i]
        prev[i] = last[code]
        last[code] = i
    return prev


@_compiled
def rolling_extreme(
    values: np.ndarray, start: np.ndarray, end: np.ndarray, maximum: bool
) -> np.ndarray:  # pragma: no cover - compiled
    """The max (``maximum``) or min of the finite values of each window ``[start[i], end[i])``;
    NaN for a window without one (±inf count as missing, as in pandas' rolling aggregations).
    ``start`` and ``end`` must be non-decreasing (sliding windows).

    A monotonic deque of positions: each position enters once (when a window's end passes it)
    and leaves once, so the pass is linear whatever the windows' lengths.
    """
    n = len(start)
    out = np.empty(n, dtype=np.float64)
    deque = np.empty(len(values), dtype=np.int64)
    head = 0
    tail = 0  # the deque is deque[head:tail]; values along it decrease (max) or increase (min)
    pushed = 0  # positions below this have entered
    for i in range(n):
        while pushed < end[i]:
            v = values[pushed]
            if v == v and v != np.inf and v != -np.inf:  # finite (pandas' rolling: inf is NaN)
                if maximum:
                    while tail > head and values[deque[tail - 1]] <= v:
                        tail -= 1
                else:
                    while tail > head and values[deque[tail - 1]] >= v:
                        tail -= 1
                deque[tail] = pushed
                tail += 1
            pushed += 1
        while tail > head and deque[head] < start[i]:
            head += 1
        out[i] = values[deque[head]] if tail > head else np.nan
    return out


@_compiled
def window_ends(sorted_t: np.ndarray, sorted_codes: np.ndarray, span: int) -> np.ndarray:  # pragma: no cover - compiled
    """For rows sorted by code (times non-decreasing within a code): past the last row of the
    same code with ``t <= t_i + span`` (``t_i + span`` saturates at the int64 maximum).

    Two pointers: within a code the end never moves back, so the pass is linear.
    """
    n = len(sorted_t)
    end = np.empty(n, dtype=np.int64)
    j = 0
    for i in range(n):
        if j < i:
            j = i
        t = sorted_t[i]
        reach = t + span if t <= _INT64_MAX - span else _INT64_MAX
        code = sorted_codes[i]
        while j < n and sorted_codes[j] == code and sorted_t[j] <= reach:
            j += 1
        end[i] = j
    return end


@_compiled
def equal_at(values: np.ndarray, cur: np.ndarray, prev: np.ndarray, nan_equal: bool) -> np.ndarray:  # pragma: no cover - compiled
    """``values[cur] == values[prev]`` element-wise, NaN equal to NaN if ``nan_equal`` (one pass,
    no gathered copies). For numbers; datetimes as int64 (where NaT equals NaT)."""
    out = np.empty(len(cur), dtype=np.bool_)
    for i in range(len(cur)):
        a = values[cur[i]]
        b = values[prev[i]]
        out[i] = a == b or (nan_equal and a != a and b != b)
    return out


@_compiled
def end_positions(codes: np.ndarray, n_groups: int, last: bool) -> np.ndarray:  # pragma: no cover - compiled
    """The positions of the last (``last``) or first row of each code present, increasing."""
    at = np.full(n_groups, -1, dtype=np.int64)
    for i in range(len(codes)):
        if last or at[codes[i]] < 0:
            at[codes[i]] = i
    return np.sort(at[at >= 0])
