"""pipelines.lookahead against the plain-pandas reference, over many partitionings."""

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
from pipelines.lookahead import (
    FEATURES,
    feature_label,
    future_features,
    map_lookahead,
    parse_horizon,
)

try:
    from reference import reference_future_features
except ImportError:  # tests/ collected as a package
    from tests.reference import reference_future_features

APPROX = ("sum", "mean", "change", "return")  # relative 1e-12; every other column exactly
#: The features tests/reference.py computes; std, time_to_*, barrier: tests/test_window_stats.py.
BASIC = ("future", "change", "return", "max", "min", "mean", "sum", "count")


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


# ----------------------------------------------------------------------------------------------
# frames and partitionings
def make_frame(
    n: int, seed: int, irregular: bool = True, time_index: bool = True, keys=("a", "b", "c", None)
) -> pd.DataFrame:
    """Ticks: keys interleaved, ~100 prices with NaN, int sizes, 1 s or irregular times (dups)."""
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0, 0, 1, 1, 2, 5], n) if irregular else np.ones(n, dtype=int)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(gaps), unit="s")
    price = 100 + rng.standard_normal(n).cumsum()
    price[rng.random(n) < 0.15] = np.nan
    pdf = pd.DataFrame(
        {
            "key": pd.Series([keys[i] for i in rng.integers(0, len(keys), n)], dtype="str"),
            "price": price,
            "size": rng.integers(1, 10, n),
            "ts": ts,
        }
    )
    return pdf.set_index("ts") if time_index else pdf


def split(pdf: pd.DataFrame, sizes) -> dd.DataFrame:
    """A Dask frame whose partitions hold exactly ``sizes`` rows (zeros allowed), in order."""
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(pdf)
    parts = [dask.delayed(pdf.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return dd.from_delayed(parts, meta=pdf.iloc[:0], verify_meta=False)


def partitioned(pdf: pd.DataFrame, how, seed: int = 0) -> dd.DataFrame:
    if how == "tiny":  # 0-5 rows each, empty partitions included
        rng = np.random.default_rng(seed)
        sizes: list[int] = []
        while sum(sizes) < len(pdf):
            sizes.append(min(int(rng.integers(0, 6)), len(pdf) - sum(sizes)))
        sizes[1:1] = [0, 0]
        return split(pdf, sizes + [0])
    return split(pdf, [len(p) for p in np.array_split(np.arange(len(pdf)), how)])


def check(result: dd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal to the reference: approx columns at rtol 1e-12, the rest (and NaN pattern) exactly."""
    assert isinstance(result, dd.DataFrame)
    got = result.compute()
    assert list(got.columns) == list(result.columns)
    assert (got.dtypes == result._meta.dtypes).all()
    approx = [c for c in expected.columns if any(f"_{f}_" in str(c) for f in APPROX)]
    exact = [c for c in expected.columns if c not in approx]
    assert_eq(got[exact], expected[exact], check_exact=True, check_dtype=True)
    if approx:
        assert_eq(got[approx], expected[approx], check_exact=False, rtol=1e-12, atol=0,
                  check_dtype=True)


# ----------------------------------------------------------------------------------------------
# against the reference over partitionings
CASES = {  # irregular times have duplicates; "regular" is one row a second
    "rows-by-key": dict(horizon=3, by="key"),
    "rows-no-key": dict(horizon=5, time="ts", frame=dict(time_index=False)),
    "time-by-key-index": dict(horizon="7s", by="key"),
    "time-no-key-regular-column": dict(horizon="4s", time="ts",
                                       frame=dict(time_index=False, irregular=False)),
}


@functools.cache
def case_data(case: str, partial: bool):
    params = dict(CASES[case])
    pdf = make_frame(160, seed=len(case), **params.pop("frame", {}))
    kwargs = dict(columns=["price", "size"], features=BASIC, partial=partial, **params)
    return pdf, kwargs, reference_future_features(pdf, **kwargs)


# every case at every partitioning; partial windows too where they matter most (and fast enough)
GRID = [(how, case, False) for how in (1, 3, 17, 200, "tiny") for case in CASES] + [
    (how, case, True) for how in (1, 17, "tiny") for case in CASES
]


@pytest.mark.parametrize("how, case, partial", GRID)
def test_matches_reference(how, case, partial):
    pdf, kwargs, expected = case_data(case, partial)
    check(future_features(partitioned(pdf, how), **kwargs), expected)


def test_known_divisions_are_kept_by_rows_horizons():
    pdf = make_frame(120, seed=1)
    ddf = dd.from_pandas(pdf, npartitions=9, sort=True)
    assert ddf.known_divisions
    out = future_features(ddf, 5, "price", ["max", "count"], by="key")
    assert out.divisions == ddf.divisions
    assert_eq(out, reference_future_features(pdf, 5, "price", ["max", "count"], by="key"))


def test_time_horizons_stream_rows_to_later_partitions_in_order():
    """A time horizon streams forwards: a row leaves in the partition where its window ends
    (the last partition takes the rest), so boundaries move, order never changes."""
    pdf = make_frame(120, seed=1)
    ddf = dd.from_pandas(pdf, npartitions=9, sort=True)
    out = future_features(ddf, "5s", "price", ["max", "count"], by="key")
    assert not out.known_divisions and out.npartitions == ddf.npartitions
    sizes = [len(p) for p in dask.compute(*out.to_delayed())]
    assert sum(sizes) == len(pdf) and sizes != [len(p) for p in dask.compute(*ddf.to_delayed())]
    assert_eq(out, reference_future_features(pdf, "5s", "price", ["max", "count"], by="key"))


def test_time_horizon_after_a_forward_step_streams():
    """After a step that scans forwards (dedup), a time lookahead needs no partition to wait for
    the end of the input: each output partition depends on a bounded set of input partitions."""
    from pipelines.dedup import drop_consecutive_duplicates

    pdf = make_frame(400, seed=3)
    ddf = dd.from_pandas(pdf, npartitions=20, sort=True)
    out = future_features(drop_consecutive_duplicates(ddf, subset=["price"], by="key"), "5s", "price",
                          ["max"], by="key")
    graph = dict(out.__dask_graph__())
    first_output = out.__dask_keys__()[0]
    seen, todo = set(), [first_output]
    while todo:  # everything the first output partition depends on
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        todo += [d for d in dask.core.get_dependencies(graph, key)]
    reads = {k for k in seen if isinstance(k, tuple) and str(k[0]).startswith("frompandas")}
    assert 1 <= len(reads) <= 2  # the first input partition(s), not the whole input


def test_several_keys_and_tz_aware_time_column():
    pdf = make_frame(90, seed=2, time_index=False)
    pdf["ts"] = pdf["ts"].dt.tz_localize("Europe/Paris")
    pdf["venue"] = pd.Series(np.where(np.arange(90) % 3 == 0, None, "x"), dtype="object")
    kwargs = dict(horizon="6s", columns="price", features=["future", "sum", "count"],
                  by=["key", "venue"], time="ts")
    check(future_features(partitioned(pdf, "tiny", seed=3), **kwargs),
          reference_future_features(pdf, **kwargs))


def test_many_keys():
    """More than 256 keys (another sort path), each with a few rows spread over partitions."""
    rng = np.random.default_rng(16)
    pdf = make_frame(900, seed=16, keys=tuple(f"k{i}" for i in range(300)))
    pdf["key"] = pdf["key"].where(rng.random(900) > 0.02)  # some missing keys too
    for horizon in (2, "20s"):
        kwargs = dict(horizon=horizon, columns="price", features=["future", "max", "count"],
                      by="key")
        check(future_features(partitioned(pdf, 7), **kwargs),
              reference_future_features(pdf, **kwargs))


def test_nullable_integer_column_and_label():
    pdf = make_frame(40, seed=4)
    pdf["qty"] = pd.array([None if i % 7 == 0 else i for i in range(40)], dtype="Int64")
    kwargs = dict(horizon=4, columns="qty", features=["future", "sum", "min"], label="next4")
    out = future_features(partitioned(pdf, 6), **kwargs)
    assert list(out.columns[-3:]) == ["qty_future_next4", "qty_sum_next4", "qty_min_next4"]
    check(out, reference_future_features(pdf, **kwargs))


def test_the_map_overlap_trap():
    """shift(-30) on 1,000 rows at 1 s in 7 partitions: exactly 30 NaN (map_overlap gave 36)."""
    pdf = pd.DataFrame({"x": np.arange(1000.0)},
                       index=pd.date_range("2024-01-01", periods=1000, freq="s"))
    ddf = dd.from_pandas(pdf, npartitions=7)
    for horizon in (30, "30s"):
        got = future_features(ddf, horizon, "x", "future").compute()
        column = got.columns[-1]
        assert got[column].isna().sum() == 30
        assert_eq(got[column], pdf["x"].shift(-30).rename(column), check_exact=True)


def test_partitions_smaller_than_the_window_and_empty():
    pdf = make_frame(30, seed=5, irregular=False)
    ddf = split(pdf, [0, 1, 0, 0, 2, 1, 0, 5, 1, 1, 0, 19, 0])
    for horizon in (12, "12s"):
        kwargs = dict(horizon=horizon, columns="price", features=BASIC, by="key")
        check(future_features(ddf, **kwargs), reference_future_features(pdf, **kwargs))


def test_empty_input_and_horizon_longer_than_data():
    pdf = make_frame(20, seed=6)
    empty = future_features(split(pdf.iloc[:0], [0, 0]), "5s", "price", FEATURES,
                            barrier=(0.1, 0.1))
    assert len(empty.compute()) == 0 and len(empty.columns) == 3 + len(FEATURES) + 1
    assert (empty.dtypes.iloc[3:] == "float64").all()
    out = future_features(partitioned(pdf, 3), "1D", "price", ["max", "count"]).compute()
    assert out.iloc[:, -2:].isna().all().all()


def test_duplicate_index_with_rows_horizon_is_fine():
    pdf = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}, index=[0, 0, 0, 0])
    got = future_features(split(pdf, [1, 2, 1]), 1, "x", "future").compute()
    assert got["x_future_1r"].tolist()[:3] == [2.0, 3.0, 4.0]


def test_lazy_until_computed():
    calls = []

    def load(pdf):
        calls.append(1)
        return pdf

    pdf = make_frame(20, seed=7)
    ddf = dd.from_delayed([dask.delayed(load)(pdf.iloc[:10]), dask.delayed(load)(pdf.iloc[10:])],
                          meta=pdf.iloc[:0], verify_meta=False)
    out = future_features(ddf, "3s", "price", ["max"], by="key")
    assert calls == []
    out.compute()
    assert len(calls) == 2  # each partition loaded once, though the scan and its kernel use it


# ----------------------------------------------------------------------------------------------
# property tests
@st.composite
def frames_and_cuts(draw):
    n = draw(st.integers(0, 30))
    keys = draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    values = draw(st.lists(st.sampled_from([np.nan, 0.0, 1.0, 2.0, 3.0, 7.0, -4.0]),
                           min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=n, max_size=n))
    pdf = pd.DataFrame({
        "k": pd.Series(keys, dtype="str"),
        "v": np.array(values, dtype="float64"),
        "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(gaps), unit="s"),
    })
    if draw(st.booleans()):
        pdf = pdf.set_index("ts")
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))
    sizes = np.diff([0, *cuts, n]).tolist()
    return pdf, sizes


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=frames_and_cuts(),
    horizon=st.one_of(st.integers(1, 5), st.integers(1, 6).map(lambda s: f"{s}s")),
    by=st.sampled_from([None, "k"]),
    partial=st.booleans(),
)
def test_property_any_partitioning(data, horizon, by, partial):
    pdf, sizes = data
    time = "ts" if "ts" in pdf.columns and isinstance(horizon, str) else None
    kwargs = dict(horizon=horizon, columns="v", features=BASIC, by=by, time=time,
                  partial=partial)
    check(future_features(split(pdf, sizes), **kwargs), reference_future_features(pdf, **kwargs))


# ----------------------------------------------------------------------------------------------
# map_lookahead
def _future_sum_by_key(k):
    def func(frame, n_own):
        nxt = frame.groupby("key", dropna=False)["price"].transform(
            lambda s: s[::-1].rolling(k, min_periods=1).sum().shift(1)[::-1])
        return frame.iloc[:n_own].assign(s=nxt.iloc[:n_own])
    return func


def test_map_lookahead_rows_by_key():
    pdf = make_frame(60, seed=8)
    expected = pdf.assign(s=_future_sum_by_key(3)(pdf, len(pdf))["s"])
    for how in (1, 7, "tiny"):
        out = map_lookahead(partitioned(pdf, how), _future_sum_by_key(3), 3, by="key")
        assert_eq(out, expected, check_exact=False, rtol=1e-12, atol=0)


def test_map_lookahead_time_sees_every_row_in_reach():
    pdf = make_frame(80, seed=9)

    def features(frame, n_own):
        return reference_future_features(frame, "6s", "price", ["max", "count"], by="key",
                                         partial=True).iloc[:n_own]

    out = map_lookahead(partitioned(pdf, "tiny"), features, "6s", by="key")
    expected = reference_future_features(pdf, "6s", "price", ["max", "count"], by="key",
                                         partial=True)
    # windows reaching past each partition's carried rows would differ; these must not
    exact = ["price_max_6s", "price_count_6s"]
    got = out.compute()
    last = pdf.index[-1] - pd.Timedelta("6s")
    inner = got.index <= last
    assert_eq(got.loc[inner, exact], expected.loc[inner, exact], check_exact=True)


def test_map_lookahead_wrong_row_count():
    pdf = make_frame(20, seed=10)
    out = map_lookahead(partitioned(pdf, 3), lambda frame, n_own: frame, 2,
                        meta=pdf.iloc[:0])
    with pytest.raises(InputError, match=r"returned \d+ rows for the \d+ own rows of partition"):
        out.compute()


# ----------------------------------------------------------------------------------------------
# horizons and labels
def test_parse_horizon_and_label():
    assert parse_horizon(30) == 30 and parse_horizon("30") == 30
    assert parse_horizon("30s") == pd.Timedelta(seconds=30)
    assert parse_horizon(pd.Timedelta("5min")) == pd.Timedelta(minutes=5)
    assert feature_label(30) == "30r" and feature_label("30s") == "30s"
    assert feature_label(pd.Timedelta(hours=2)) == "2h"
    with pytest.raises(InputError, match=r"^'30x' is not a row count or a time span like '30s'$"):
        parse_horizon("30x")
    for bad in (0, -3, "0s", "-5s", True, 2.5, None, "1M", "1Y", "1B"):
        with pytest.raises(InputError):
            parse_horizon(bad)
    with pytest.raises(InputError, match="calendar offset"):
        parse_horizon("1M")


def shifted(pdf: pd.DataFrame, to: str) -> pd.DataFrame:
    """``pdf`` with nanosecond times moved to start at ``to`` (same gaps)."""
    index = pdf.index.astype("datetime64[ns]")
    return pdf.set_axis(index - index[0] + pd.Timestamp(to).as_unit("ns"))


@pytest.mark.parametrize("partial", [False, True])
def test_spans_near_the_int64_limit_saturate(partial):
    """t + T beyond int64 (nanosecond times near 2262, or 100000D on any ns time): window bounds
    saturate instead of wrapping around, so results equal those of the same gaps elsewhere."""
    pdf = make_frame(60, seed=7)
    kwargs = dict(columns="price", features=["max", "count", "barrier"], by="key",
                  partial=partial, barrier=(0.01, 0.01), label="h")
    for horizon, late in (("3D", "2262-04-09"), ("100000D", "2024-01-01"),
                          ("100000D", "2262-04-09")):
        expected = future_features(partitioned(shifted(pdf, "2000-01-01"), 1), horizon, **kwargs)
        got = future_features(partitioned(shifted(pdf, late), 4), horizon, **kwargs).compute()
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      expected.compute().reset_index(drop=True), check_exact=True)
    pdf = make_frame(60, seed=7, irregular=False)  # distinct times
    got = future_features(partitioned(pdf, 3), "100000D", "price", "count", partial=partial)
    column = got.compute()["price_count_100000D"]
    if partial:  # every later row of the input
        np.testing.assert_array_equal(column, np.cumsum(pdf["price"].notna()[::-1])[::-1]
                                      - pdf["price"].notna())
    else:
        assert column.isna().all()


def test_spans_longer_than_pandas_parses():
    """pandas' parser stops at ~106751 days, its Timedelta does not: 1000000D is a span; one
    that the data's time unit cannot hold is refused, saying so."""
    assert parse_horizon("1000000D") == pd.Timedelta(days=1_000_000)
    assert parse_horizon("1000000 days") == parse_horizon(np.timedelta64(1_000_000, "D"))
    pdf = make_frame(30, seed=8)  # microsecond times
    got = future_features(partitioned(pdf, 3), "1000000D", "price", "count", partial=True)
    expected = future_features(partitioned(pdf, 1), "1D", "price", "count", partial=True)
    np.testing.assert_array_equal(got.compute().iloc[:, -1], expected.compute().iloc[:, -1])
    with pytest.raises(InputError, match=r"^horizon '1000000D' is out of range for "
                                         r"datetime64\[ns\] times: a span of them is at most "
                                         r"106751 days; use a shorter horizon"):
        future_features(partitioned(shifted(pdf, "2024-01-01"), 2), "1000000D", "price")
    for bad in ("10000000000000D", np.timedelta64(10**15, "D")):
        with pytest.raises(InputError, match=r"is out of range: longer than a pandas Timedelta"):
            parse_horizon(bad)
    assert parse_horizon(np.timedelta64(5, "s")) == pd.Timedelta(seconds=5)  # not 5 rows


# ----------------------------------------------------------------------------------------------
# errors
@pytest.fixture
def ddf():
    return partitioned(make_frame(20, seed=11), 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(horizon=3, columns="nope"), r"^columns: unknown column 'nope' \(columns: key, price, size\)$"),
        (dict(horizon=3, columns="key"), r"column 'key': not numeric \(dtype str\)"),
        (dict(horizon=3, columns="price", features="median"), r"unknown feature 'median'"),
        (dict(horizon=0, columns="price"), r"horizon 0 must be a positive row count"),
        (dict(horizon="-1s", columns="price"), r"must be a positive time span"),
        (dict(horizon="30x", columns="price"), r"'30x' is not a row count"),
        (dict(horizon=3, columns="price", by="nope"), r"^by: unknown column 'nope' \(columns: key, price, size\)$"),
        (dict(horizon="3s", columns="price", time="nope"), r"^time: unknown column 'nope' \(columns: key, price, size\)$"),
        (dict(horizon="3s", columns="price", time="size"), r"'size' is not a datetime column"),
        (dict(horizon=3, columns="price", label="size_x"), None),
    ],
)
def test_eager_errors(ddf, kwargs, match):
    if match is None:  # a working call, for contrast
        future_features(ddf, **kwargs)
        return
    with pytest.raises(InputError, match=match):
        future_features(ddf, **kwargs)


def test_time_horizon_needs_times():
    pdf = make_frame(10, seed=12, time_index=False)
    with pytest.raises(InputError, match="neither a DatetimeIndex .* nor a `time` column"):
        future_features(partitioned(pdf, 2), "3s", "price")
    future_features(partitioned(pdf, 2), 3, "price")  # rows need no times
    with pytest.raises(InputError, match="already exists"):
        future_features(partitioned(pdf.assign(price_change_3r=1.0), 2), 3, "price")


def test_unsorted_time_is_found_during_compute():
    pdf = make_frame(30, seed=13, irregular=False)
    index = pdf.index.to_numpy().copy()
    index[17], index[18] = index[18], index[17]
    inside = pdf.set_axis(index)
    out = future_features(split(inside, [10, 10, 10]), "3s", "price")  # lazy: no error yet
    message = (r"index is not sorted: row 8 of partition 1 .* "
               r"has time 2024-01-01 00:00:18, before 2024-01-01 00:00:19")
    with pytest.raises(InputError, match=message):
        out.compute()
    across = pdf.set_axis(np.concatenate([index[:10], index[:10] + np.timedelta64(5, "s"),
                                          index[20:]]))
    for sizes in ([10, 10, 10], [10, 0, 10, 0, 10]):
        with pytest.raises(InputError, match=r"row 0 of partition \d .* before .* of the last row "
                                             r"of partition \d"):
            future_features(split(across, sizes), "3s", "price").compute()
    future_features(split(across, [10, 10, 10]), 3, "price").compute()  # rows: order is enough


def test_nat_time():
    pdf = make_frame(12, seed=14, time_index=False)
    pdf.loc[5, "ts"] = pd.NaT
    with pytest.raises(InputError, match=r"missing time \(NaT\) at row 1 of partition 1"):
        future_features(split(pdf, [4, 4, 4]), "3s", "price", time="ts").compute()


# ----------------------------------------------------------------------------------------------
# a real cluster
def test_on_local_cluster(local_client):
    """2 worker processes (the session's LocalCluster from conftest.py)."""
    pdf = make_frame(200, seed=15)
    kwargs = dict(horizon="5s", columns="price", features=["change", "max", "min"], by="key")
    expected = reference_future_features(pdf, **kwargs)
    got = local_client.compute(future_features(partitioned(pdf, 9), **kwargs)).result()
    approx = ["price_change_5s"]
    assert_eq(got[approx], expected[approx], check_exact=False, rtol=1e-12, atol=0)
    assert_eq(got.drop(columns=approx), expected.drop(columns=approx), check_exact=True)
