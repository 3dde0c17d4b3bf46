"""The compiled loops of ``pipelines._jit`` against plain NumPy/pandas references.

``rolling_extreme`` is checked against pandas' rolling min/max in ``test_window_stats.py`` and
``window_ends`` against a per-row search in ``test_lookahead_windows.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipelines import _jit

codes_arrays = st.integers(1, 6).flatmap(
    lambda groups: st.tuples(hnp.arrays(np.int64, st.integers(0, 80), elements=st.integers(0, groups - 1)),
                             st.just(groups))
)


def reference_previous(codes):
    prev = np.full(len(codes), -1, dtype=np.int64)
    for i in range(len(codes)):
        earlier = np.flatnonzero(codes[:i] == codes[i])
        prev[i] = earlier[-1] if len(earlier) else -1
    return prev


@settings(max_examples=200, deadline=None)
@given(codes_arrays)
def test_previous_positions(case):
    codes, groups = case
    np.testing.assert_array_equal(_jit.previous_positions(codes, groups), reference_previous(codes))


@settings(max_examples=200, deadline=None)
@given(codes_arrays, st.booleans())
def test_end_positions(case, last):
    codes, groups = case
    keep = "last" if last else "first"
    expected = np.flatnonzero(~pd.Series(codes).duplicated(keep=keep).to_numpy())
    np.testing.assert_array_equal(_jit.end_positions(codes, groups, last), expected)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.sampled_from([np.nan, 0.0, -0.0, 1.0, np.inf])),
       st.data(), st.booleans())
def test_equal_at_floats(values, data, nan_equal):
    n = len(values)
    positions = st.lists(st.integers(0, n - 1), min_size=30, max_size=30)
    size = data.draw(st.integers(0, 30))
    cur = np.array(data.draw(positions)[:size], dtype=np.int64)
    prev = np.array(data.draw(positions)[:size], dtype=np.int64)
    expected = values[cur] == values[prev]
    if nan_equal:
        expected |= np.isnan(values[cur]) & np.isnan(values[prev])
    np.testing.assert_array_equal(_jit.equal_at(values, cur, prev, nan_equal), expected)


def test_equal_at_other_dtypes_and_read_only_input():
    cur, prev = np.array([1, 2, 3]), np.array([0, 1, 2])
    for values in (np.array([1, 1, 2, 2], dtype=np.int64), np.array([True, True, False, False]),
                   np.array([1, 1, 2, 2], dtype=np.uint8), np.array([1, 1, np.nan, np.nan], dtype=np.float32)):
        values.flags.writeable = False
        np.testing.assert_array_equal(_jit.equal_at(values, cur, prev, True),
                                      (values[cur] == values[prev]) | (pd.isna(values[cur]) & pd.isna(values[prev])))
