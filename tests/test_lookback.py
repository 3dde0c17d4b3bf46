"""pipelines.lookback against the plain-pandas reference, over many partitionings."""

from __future__ import annotations

import functools

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.dataframe.utils import assert_eq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.lookback import FEATURES, past_features

try:
    from reference_windows import reference_past_features
    from test_lookahead import (CASES, GRID, frames_and_cuts, make_frame, partitioned, shifted,
                                split)
except ImportError:  # tests/ collected as a package
    from tests.reference_windows import reference_past_features
    from tests.test_lookahead import (CASES, GRID, frames_and_cuts, make_frame, partitioned,
                                      shifted, split)

RTOL = {"sum": 1e-12, "mean": 1e-12, "std": 1e-9, "var": 1e-9}  # count, min, max: exactly


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


def check(result: dd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal to the reference: NaN pattern and exact columns exactly, the others at RTOL."""
    assert isinstance(result, dd.DataFrame)
    got = result.compute()
    assert list(got.columns) == list(expected.columns) == list(result.columns)
    assert (got.dtypes == result._meta.dtypes).all()
    pd.testing.assert_index_equal(got.index, expected.index)
    inputs = [c for c in expected.columns if "_past_" not in str(c)]
    assert_eq(got[inputs], expected[inputs], sort_results=False)  # dask's string dtypes allowed
    for column in expected.columns[len(inputs):]:
        feature = str(column).split("_past_")[0].rsplit("_", 1)[-1]
        if feature in RTOL:
            np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(),
                                       rtol=RTOL[feature], atol=0, equal_nan=True)
        else:
            pd.testing.assert_series_equal(got[column], expected[column], check_exact=True)


# ----------------------------------------------------------------------------------------------
# against the reference over partitionings: test_lookahead's cases (rows and time horizons, with
# and without keys, times in the index or a column, duplicate times) and partitionings
@functools.cache
def case_data(case: str, partial: bool):
    params = dict(CASES[case])
    pdf = make_frame(160, seed=len(case), **params.pop("frame", {}))
    kwargs = dict(columns=["price", "size"], features=FEATURES, partial=partial, **params)
    return pdf, kwargs, reference_past_features(pdf, **kwargs)


@pytest.mark.parametrize("how, case, partial", GRID)
def test_matches_reference(how, case, partial):
    pdf, kwargs, expected = case_data(case, partial)
    check(past_features(partitioned(pdf, how), **kwargs), expected)


def test_partitions_and_divisions_are_kept():
    pdf = make_frame(120, seed=1)
    ddf = dd.from_pandas(pdf, npartitions=9, sort=True)
    out = past_features(ddf, "5s", "price", ["max", "count"], by="key")
    assert out.divisions == ddf.divisions
    sizes = [len(p) for p in dask.compute(*out.to_delayed())]
    assert sizes == [len(p) for p in dask.compute(*ddf.to_delayed())]
    assert list(out.columns[-2:]) == ["price_max_past_5s", "price_count_past_5s"]
    check(out, reference_past_features(pdf, "5s", "price", ["max", "count"], by="key"))


def test_streams_forwards():
    """Output partition p needs input partitions 0..p only (a worker holds few at a time)."""
    pdf = make_frame(200, seed=3)
    ddf = dd.from_pandas(pdf, npartitions=10, sort=True)
    out = past_features(ddf, "5s", "price", ["max"], by="key")
    graph = dict(out.__dask_graph__())
    for p in (0, 4):
        seen, todo = set(), [out.__dask_keys__()[p]]
        while todo:
            key = todo.pop()
            if key not in seen:
                seen.add(key)
                todo += list(dask.core.get_dependencies(graph, key))
        reads = {k[1] for k in seen if isinstance(k, tuple) and str(k[0]).startswith("frompandas")}
        assert reads == set(range(p + 1))


def test_complete_windows_are_pandas_groupby_rolling():
    """The reference's complete time windows are pandas' groupby-rolling windows."""
    pdf = make_frame(200, seed=5, time_index=False).reset_index(drop=True)
    expected = reference_past_features(pdf, "6s", "price", FEATURES, by="key", time="ts")
    groups = [g for _, g in pdf.groupby("key", dropna=False)]
    rolling = {  # pandas' groupby().rolling(), back in row order
        f: pd.concat([getattr(g.rolling("6s", on="ts", closed="right",
                                         min_periods=0 if f in ("count", "sum") else 1)["price"],
                              f)() for g in groups]).sort_index()
        for f in FEATURES
    }
    complete = pdf["ts"] - pd.Timedelta("6s") >= pdf["ts"].iloc[0]
    for feature, series in rolling.items():
        column = expected[f"price_{feature}_past_6s"]
        assert column[~complete].isna().all()
        np.testing.assert_allclose(column[complete], series[complete], rtol=1e-9)


def test_several_keys_tz_aware_times_and_missing_keys():
    pdf = make_frame(90, seed=2, time_index=False)
    pdf["ts"] = pdf["ts"].dt.tz_localize("Europe/Paris")
    pdf["venue"] = pd.Series(np.where(np.arange(90) % 3 == 0, None, "x"), dtype="object")
    for horizon in ("6s", 4):
        kwargs = dict(horizon=horizon, columns="price", features=["mean", "std", "count"],
                      by=["key", "venue"], time="ts")
        check(past_features(partitioned(pdf, "tiny", seed=3), **kwargs),
              reference_past_features(pdf, **kwargs))


def test_many_keys_spread_over_partitions():
    rng = np.random.default_rng(16)
    pdf = make_frame(900, seed=16, keys=tuple(f"k{i}" for i in range(300)))
    pdf["key"] = pdf["key"].where(rng.random(900) > 0.02)
    for horizon in (2, "20s"):
        kwargs = dict(horizon=horizon, columns="price", features=["sum", "max", "var"], by="key")
        check(past_features(partitioned(pdf, 7), **kwargs), reference_past_features(pdf, **kwargs))


def test_span_finer_than_the_time_unit_rounds_the_cut_correctly():
    """Whole-second times and T = 2.5 s: t_j > t_i - 2.5 s keeps t_i - 2 s (ceil, not floor)."""
    pdf = make_frame(80, seed=6)
    pdf.index = pdf.index.astype("datetime64[s]")
    kwargs = dict(horizon="2500ms", columns="price", features=["count", "sum"], by="key")
    check(past_features(partitioned(pdf, 5), **kwargs), reference_past_features(pdf, **kwargs))


def test_horizon_longer_than_any_time_difference():
    """A span near the Timedelta limit: no overflow; every window incomplete (or expanding)."""
    pdf = make_frame(40, seed=7)
    out = past_features(partitioned(pdf, 4), "100000D", "price", ["count"], by="key").compute()
    assert out["price_count_past_100000D"].isna().all()
    out = past_features(partitioned(pdf, 4), "100000D", "price", ["count"], by="key",
                        partial=True).compute()
    expanding = pdf.groupby("key", dropna=False)["price"].transform(lambda s: s.expanding().count())
    np.testing.assert_array_equal(out["price_count_past_100000D"], expanding.astype(float))


@pytest.mark.parametrize("partial", [False, True])
def test_spans_near_the_int64_limit_saturate(partial):
    """t - T before int64's smallest value (nanosecond times near 1677, or 100000D): bounds
    saturate, so results equal those of the same gaps elsewhere; 1000000D (longer than pandas
    parses) works on microsecond times and is refused on nanosecond ones, saying why."""
    pdf = make_frame(60, seed=7)
    kwargs = dict(columns="price", features=["max", "count", "std"], by="key", partial=partial)
    for horizon, early in (("3D", "1677-09-22"), ("100000D", "2024-01-01"),
                           ("100000D", "1677-09-22")):
        expected = past_features(partitioned(shifted(pdf, "2000-01-01"), 1), horizon, **kwargs)
        got = past_features(partitioned(shifted(pdf, early), 4), horizon, **kwargs)
        pd.testing.assert_frame_equal(got.compute().reset_index(drop=True),
                                      expected.compute().reset_index(drop=True), check_exact=True)
    got = past_features(partitioned(pdf, 3), "1000000D", "price", "count", partial=partial)
    expected = past_features(partitioned(pdf, 1), "1D", "price", "count", partial=partial)
    np.testing.assert_array_equal(got.compute().iloc[:, -1], expected.compute().iloc[:, -1])
    with pytest.raises(InputError, match=r"^horizon '1000000D' is out of range for "
                                         r"datetime64\[ns\] times: a span of them is at most"):
        past_features(partitioned(shifted(pdf, "2024-01-01"), 2), "1000000D", "price")


def test_partial_windows_without_values_have_count_and_sum_zero():
    """partial: the rules of complete windows over the rows there are, so a window without a
    value has count 0 and sum 0 (pandas' rolling sum with min_periods=1 gives NaN there)."""
    pdf = pd.DataFrame({"x": [np.nan, np.nan, 1.0, np.nan, 2.0]},
                       index=pd.date_range("2024-01-01", periods=5, freq="s"))
    got = past_features(split(pdf, [2, 0, 3]), 3, "x", ["count", "sum", "mean", "std"],
                        partial=True).compute()
    np.testing.assert_array_equal(got["x_count_past_3r"], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(got["x_sum_past_3r"], [0, 0, 1, 1, 3])
    np.testing.assert_array_equal(got["x_mean_past_3r"], [np.nan, np.nan, 1, 1, 1.5])
    assert got["x_std_past_3r"].iloc[:4].isna().all() and got["x_std_past_3r"].iloc[4] > 0
    assert np.isnan(pdf["x"].rolling(3, min_periods=1).sum().iloc[0])  # where pandas differs


def test_empty_input_and_empty_partitions():
    pdf = make_frame(0, seed=1)
    out = past_features(split(pdf, [0, 0]), "3s", "price", ["mean"])
    assert len(out.compute()) == 0 and "price_mean_past_3s" in out.columns
    pdf = make_frame(10, seed=1)
    check(past_features(split(pdf, [0, 4, 0, 0, 6, 0]), 2, "price", ["min"], by="key"),
          reference_past_features(pdf, 2, "price", ["min"], by="key"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=frames_and_cuts(),
    horizon=st.one_of(st.integers(1, 5), st.integers(1, 6).map(lambda s: f"{s}s")),
    by=st.sampled_from([None, "k", ["k"]]),
    partial=st.booleans(),
)
def test_property_any_partitioning(data, horizon, by, partial):
    pdf, sizes = data
    time = "ts" if "ts" in pdf.columns and isinstance(horizon, str) else None
    kwargs = dict(horizon=horizon, columns="v", features=FEATURES, by=by, time=time,
                  partial=partial)
    check(past_features(split(pdf, sizes), **kwargs), reference_past_features(pdf, **kwargs))


# ----------------------------------------------------------------------------------------------
# bad input
@pytest.fixture
def ddf():
    pdf = make_frame(20, seed=1)
    pdf["name"] = pd.Series(["x"] * 20, dtype="str", index=pdf.index)
    return dd.from_pandas(pdf, npartitions=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(columns="name"), r"^column 'name': not numeric \(dtype \w+\)$"),
        (dict(columns="nope"), r"^columns: unknown column 'nope' \(columns: key, price, size, name\)$"),
        (dict(columns=[]), "^columns: at least one column is needed$"),
        (dict(features=["mean", "median"]), r"^features: unknown feature 'median' \(known: count"),
        (dict(features=["max", "max"]), "^features: a feature is listed twice"),
        (dict(by="nope"), r"^by: unknown column 'nope' \(columns: key, price, size, name\)$"),
        (dict(horizon="30x"), r"^'30x' is not a row count or a time span like '30s'$"),
        (dict(horizon=0), "must be a positive row count"),
        (dict(time="key"), r"^time column 'key' is not a datetime column"),
    ],
)
def test_eager_errors(ddf, kwargs, match):
    args = dict(horizon="3s", columns="price", features=["mean"])
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        past_features(ddf, **args)


def test_existing_output_column_is_refused(ddf):
    out = past_features(ddf, 3, "price")
    with pytest.raises(InputError, match="'price_mean_past_3r' already exists"):
        past_features(out, 3, "price")


def test_unsorted_time_is_found_during_compute():
    pdf = make_frame(30, seed=1)
    inside = pdf.iloc[[0, 2, 1, *range(3, 30)]]
    with pytest.raises(InputError, match=r"index is not sorted: row 2 of partition 0"):
        past_features(split(inside, [30]), "3s", "price").compute()
    across = pd.concat([pdf.iloc[10:20], pdf.iloc[:10], pdf.iloc[20:]])
    for sizes in ([10, 10, 10], [10, 0, 3, 7, 10]):
        with pytest.raises(InputError, match=r"row 0 of partition \d .* before .* of the last row "
                                             r"of partition 0"):
            past_features(split(across, sizes), "3s", "price").compute()


def test_on_local_cluster(local_client):
    """2 worker processes (the session's LocalCluster from conftest.py)."""
    pdf, kwargs, expected = case_data("time-by-key-index", False)
    got = local_client.compute(past_features(partitioned(pdf, 17), **kwargs)).result()
    check(dd.from_pandas(got, npartitions=1), expected)


# ----------------------------------------------------------------------------------------------
# the reach combine is associative with the empty reach as identity (so any prefix scan fits)
def _same_reach(a, b) -> None:
    assert (a.rows is None) == (b.rows is None)
    if a.rows is not None:
        pd.testing.assert_frame_equal(a.rows, b.rows)
    for name in ("t", "first_t", "last_t", "first", "last"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=frames_and_cuts(),
       horizon=st.one_of(st.integers(1, 4), st.integers(1, 5).map(lambda s: f"{s}s")),
       by=st.sampled_from([None, "k"]))
def test_reach_combine_is_associative(data, horizon, by):
    from pipelines.lookback import _combine, _past_spec, _Reach, _summarize

    pdf, sizes = data
    time = "ts" if "ts" in pdf.columns and isinstance(horizon, str) else None
    ddf = split(pdf, sizes)
    spec = _past_spec(ddf, horizon, by, time, ["v"])
    bounds = np.cumsum([0, *sizes])
    reaches = [_summarize(pdf.iloc[a:b], spec, i)
               for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]

    def combine(a, b):
        return _combine(a, b, spec)

    left = functools.reduce(combine, reaches, _Reach())
    right = functools.reduce(lambda acc, r: combine(r, acc), reversed(reaches), _Reach())
    half = len(reaches) // 2
    middle = combine(functools.reduce(combine, reaches[:half], _Reach()),
                     functools.reduce(combine, reaches[half:], _Reach()))
    whole = _summarize(pdf, spec, 0)
    for other in (right, middle):
        _same_reach(left, other)
    assert (left.rows is None) == (whole.rows is None)
    if whole.rows is not None:  # the same rows as the whole input's reach
        pd.testing.assert_frame_equal(left.rows, whole.rows)
        assert (left.first_t, left.last_t) == (whole.first_t, whole.last_t)
