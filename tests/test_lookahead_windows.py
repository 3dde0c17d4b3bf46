"""The lookahead's window bounds (``_windows``) against a plain search for each row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines._keys import stable_order
from pipelines.lookahead import _Spec, _windows


def reference_windows(codes, t, span):
    """Bounds by the definition: for each row in key-sorted order, the rows of its key with
    ``t_i < t_j <= t_i + T`` (a contiguous range of key-sorted positions)."""
    order = stable_order(codes, int(codes.max()) + 1)
    sorted_codes, sorted_t = codes[order], t[order]
    n = len(t)
    start, end = np.empty(n, np.int64), np.empty(n, np.int64)
    for i in range(n):
        same = np.flatnonzero(sorted_codes == sorted_codes[i])
        after = same[sorted_t[same] > sorted_t[i]]
        reach = min(int(sorted_t[i]) + span, np.iinfo(np.int64).max)  # t + T, saturating
        inside = same[sorted_t[same] <= reach]
        start[i] = after[0] if len(after) else same[-1] + 1
        end[i] = inside[-1] + 1
    return order, start, end


@st.composite
def keyed_times(draw):
    n = draw(st.integers(1, 60))
    n_groups = draw(st.integers(1, 6))
    codes = np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=n, max_size=n)))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    t = np.cumsum(gaps).astype(np.int64) + draw(st.integers(-10**6, 10**6))
    return codes, t, draw(st.integers(1, 7))


def _check(codes, t, span):
    n_groups = int(codes.max()) + 1
    spec = _Spec(None, span, "us", "t", "time column 't'", ("k",), None)
    order, start, end = _windows(len(t), codes, n_groups, t, spec)
    want_order, want_start, want_end = reference_windows(codes, t, span)
    if n_groups > 1:
        np.testing.assert_array_equal(order, want_order)
    else:
        assert order is None
    np.testing.assert_array_equal(start, want_start)
    np.testing.assert_array_equal(end, want_end)
    assert start.dtype == end.dtype == np.int64


@settings(max_examples=300, deadline=None)
@given(keyed_times())
def test_time_windows_equal_the_definition(case):
    _check(*case)


def test_time_windows_far_apart_and_near_the_int64_limits():
    """Times spanning most of int64, and t + T past its maximum (the end saturates)."""
    codes = np.array([0, 1, 0, 1, 2])
    t = np.array([-(2**61), -(2**61), 0, 2**61, 2**61], dtype=np.int64)
    _check(codes, t, 2**60)
    big = np.iinfo(np.int64).max - 5
    _check(np.array([0, 0, 1, 0]), np.array([big - 3, big - 1, big, big], dtype=np.int64), 10)


@pytest.mark.parametrize("n_groups", [1, 3, 1500])
def test_time_windows_of_many_rows(n_groups):
    rng = np.random.default_rng(n_groups)
    n = 3000
    codes = rng.integers(0, n_groups, n)
    t = np.cumsum(rng.integers(0, 4, n)).astype(np.int64)
    _check(codes, t, 5)

