"""Tests of pipelines.dedup.drop_consecutive_duplicates against a plain pandas reference."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.dataframe.utils import assert_eq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.dedup import drop_consecutive_duplicates
from pipelines.errors import InputError

try:
    from reference import reference_drop_consecutive_duplicates as reference
except ImportError:  # tests/ collected as a package
    from tests.reference import reference_drop_consecutive_duplicates as reference


@pytest.fixture(autouse=True)
def _sync_scheduler():
    # object columns stay object: the tests mean to check object semantics (1 != "1", pd.NA)
    with dask.config.set({"scheduler": "sync", "dataframe.convert-string": False}):
        yield


def from_sizes(pdf: pd.DataFrame, sizes) -> dd.DataFrame:
    """A Dask DataFrame whose partitions have exactly these sizes (zeros give empty ones)."""
    assert sum(sizes) == len(pdf)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    parts = [dask.delayed(pdf.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return dd.from_delayed(parts, meta=pdf.iloc[:0], verify_meta=False)


def split(pdf: pd.DataFrame, npartitions: int) -> dd.DataFrame:
    """``npartitions`` partitions of near-equal size; empty ones when there are fewer rows."""
    return from_sizes(pdf, [len(c) for c in np.array_split(np.arange(len(pdf)), npartitions)])


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Several keys interleaved, missing keys and values, runs of repeated values (duplicates)."""
    rng = np.random.default_rng(seed)

    def runs(choices) -> np.ndarray:
        """Draws from ``choices`` that change only now and then: long runs of equal values."""
        choices = np.array(choices, dtype=object)
        change = np.cumsum(rng.random(n) < 0.15)
        return choices[rng.integers(0, len(choices), n + 1)][change]

    k = np.array(["a", "b", "c", None], dtype=object)[rng.integers(0, 4, n)]
    return pd.DataFrame(
        {
            "k": pd.Series(k, dtype="str"),
            "k2": rng.integers(0, 2, n),
            "x": runs([0.0, 0.5, np.nan]).astype(float),
            "s": pd.Series(runs(["u", "v", None]), dtype="str"),
            "o": pd.Series(runs([1, "1", None, pd.NA, np.nan, "w"]), dtype=object),
            "i": pd.array(runs([0, 1, None]), dtype="Int64"),
            "b": pd.array(runs([True, False, None]), dtype="boolean"),
            "c": pd.Categorical(runs(["p", "q", None])),
            "t": pd.to_datetime(runs([0, 10**9, None]), unit="ns"),
        },
        index=pd.Index(rng.integers(0, 1000, n), name="idx"),  # unsorted, with repeats
    )


# ----------------------------------------------------------------------------------------------
# against the reference


OPTIONS = [  # (subset, nan_equal)
    (None, True),
    (None, False),
    (["x"], True),
    (["x"], False),
    ("s", True),
    (["s", "o", "i"], True),
    (["o"], False),
    (["b", "c", "t"], False),
    (["b", "c", "t"], True),
]


@pytest.mark.parametrize("npartitions", [1, 3, 17, 200])
@pytest.mark.parametrize("by", [None, "k", ["k", "k2"]])
def test_matches_reference(npartitions, by):
    pdf = make_frame(120, seed=npartitions)
    ddf = split(pdf, npartitions)
    # 200 one-row-or-empty partitions cost ~1 s of scheduling per option: two options there
    options = OPTIONS if npartitions < 100 else [OPTIONS[0], OPTIONS[6]]
    outs = [
        drop_consecutive_duplicates(ddf, subset=subset, by=by, nan_equal=nan_equal)
        for subset, nan_equal in options
    ]
    assert all(out.npartitions == npartitions for out in outs)
    expected = [
        reference(pdf, subset=subset, by=by, nan_equal=nan_equal) for subset, nan_equal in options
    ]
    assert 0 < len(expected[0]) < len(pdf)
    assert_eq(outs[0], expected[0])  # the Dask object: meta, dtypes, divisions, key names
    for (subset, nan_equal), result, exp in zip(options, dask.compute(*outs), expected):
        assert len(exp) < len(pdf) or not nan_equal, (subset, nan_equal)
        assert_eq(result, exp)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("by", [None, "k", ["k2", "k"]])
def test_tiny_partitions_with_empty_ones(seed, by):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 6, 40)  # partitions of 0-5 rows
    sizes[:3] = [0, 1, 0]
    pdf = make_frame(int(sizes.sum()), seed=seed)
    out = drop_consecutive_duplicates(from_sizes(pdf, sizes), subset=["x", "s"], by=by)
    assert_eq(out, reference(pdf, subset=["x", "s"], by=by))


def test_run_spanning_many_partitions_with_nan_at_boundaries():
    # key a holds the same value across 4 partitions; NaN rows sit at partition boundaries
    pdf = pd.DataFrame(
        {
            "k": ["a", "b", "a", "a", "b", "a", "b", "a", "a", "b", "a", "a"],
            "x": [1.0, np.nan, 1.0, 1.0, np.nan, 1.0, 2.0, 1.0, np.nan, 2.0, np.nan, 1.0],
        }
    )
    sizes = [2, 0, 2, 1, 1, 0, 3, 1, 2]  # boundaries after rows 1, 3, 4, 5, 8, 9
    ddf = from_sizes(pdf, sizes)
    out = drop_consecutive_duplicates(ddf, by="k").compute()
    assert out.index.tolist() == [0, 1, 6, 8, 11]
    assert_eq(out, reference(pdf, by="k"))
    out = drop_consecutive_duplicates(ddf, by="k", nan_equal=False).compute()
    assert out.index.tolist() == [0, 1, 4, 6, 8, 10, 11]
    # without a key every row is compared with the previous row of the frame
    out = drop_consecutive_duplicates(ddf).compute()
    assert_eq(out, reference(pdf))
    assert out.index.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]


def test_missing_key_is_a_key_of_its_own():
    pdf = pd.DataFrame(
        {
            "k": pd.Series([None, "a", np.nan, "a", pd.NA, None], dtype=object),
            "x": [1, 1, 1, 2, 2, 2],
        }
    )
    for n in (1, 2, 6):
        out = drop_consecutive_duplicates(split(pdf, n), by="k").compute()
        assert out.index.tolist() == [0, 1, 3, 4]
        assert_eq(out, reference(pdf, by="k"))


def test_strings_none_and_na():
    pdf = pd.DataFrame(
        {
            "s": pd.Series(["a", None, None, "a", "a", None], dtype="str"),
            "o": pd.Series([None, pd.NA, np.nan, "x", "x", None], dtype=object),
            "n": pd.array([pd.NA, pd.NA, 1, 1, 1, pd.NA], dtype="Int64"),
        }
    )
    for n in (1, 3, 6):
        for nan_equal in (True, False):
            for subset in (["s"], ["o"], ["n"], None):
                out = drop_consecutive_duplicates(split(pdf, n), subset=subset, nan_equal=nan_equal)
                assert_eq(out, reference(pdf, subset=subset, nan_equal=nan_equal))
    out = drop_consecutive_duplicates(split(pdf, 3), subset=["o"]).compute()
    assert out.index.tolist() == [0, 3, 5]


def test_time_column_and_index_are_not_compared():
    ts = pd.date_range("2024-01-01", periods=6, freq="s")
    pdf = pd.DataFrame({"ts": ts, "k": list("ababab"), "x": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0]})
    ddf = split(pdf, 4)
    out = drop_consecutive_duplicates(ddf, by="k", time="ts").compute()
    assert out.index.tolist() == [0, 1, 4, 5]
    assert_eq(drop_consecutive_duplicates(ddf, by="k"), pdf)  # ts compared: nothing is dropped
    indexed = dd.from_pandas(pdf.set_index("ts"), npartitions=3)
    out = drop_consecutive_duplicates(indexed, by="k", time="ts")
    assert out.divisions == indexed.divisions
    assert_eq(out, pdf.set_index("ts").iloc[[0, 1, 4, 5]])


def test_keeps_index_columns_and_divisions():
    pdf = make_frame(200, seed=7).reset_index().set_index("idx").sort_index()
    ddf = dd.from_pandas(pdf, npartitions=9)
    out = drop_consecutive_duplicates(ddf, subset="x", by=["k", "k2"])
    assert out.divisions == ddf.divisions
    assert list(out.columns) == list(pdf.columns)
    assert_eq(out, reference(pdf, subset="x", by=["k", "k2"]))


def test_is_lazy():
    calls = []

    def load(i):
        calls.append(i)
        return pd.DataFrame({"x": [1.0, 1.0]}, index=[2 * i, 2 * i + 1])

    ddf = dd.from_delayed([dask.delayed(load)(i) for i in range(3)], meta={"x": "f8"})
    out = drop_consecutive_duplicates(ddf)
    assert calls == []
    assert out.compute().index.tolist() == [0]


def test_empty_and_pandas_input():
    pdf = pd.DataFrame({"k": pd.Series([], dtype="str"), "x": pd.Series([], dtype=float)})
    assert_eq(drop_consecutive_duplicates(split(pdf, 3), by="k"), pdf)
    pdf = pd.DataFrame({"x": [1, 1, 2]})
    assert_eq(drop_consecutive_duplicates(pdf), pdf.iloc[[0, 2]])


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        ({"subset": ["x", "nope"]}, r"^subset: unknown column 'nope' \(columns: k, x\)$"),
        ({"by": "nope"}, r"^by: unknown column 'nope' \(columns: k, x\)$"),
        ({"by": ["k", "nope"]}, r"^by: unknown column 'nope' \(columns: k, x\)$"),
        ({"time": "nope"}, r"^time: unknown column 'nope' \(columns: k, x\)$"),
        ({"subset": []}, r"^subset: no columns to compare"),
        ({"by": "k", "time": "x"}, r"^subset: no columns to compare"),
    ],
)
def test_bad_input(kwargs, culprit):
    ddf = split(pd.DataFrame({"k": ["a"], "x": [1.0]}), 1)
    with pytest.raises(InputError, match=culprit) as info:
        drop_consecutive_duplicates(ddf, **kwargs)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------
# properties over random frames and random partition boundaries


@st.composite
def frames_and_sizes(draw):
    n = draw(st.integers(0, 40))
    key = st.sampled_from(["a", "b", "c", None])
    value = st.sampled_from([0.0, 1.0, np.nan])
    text = st.sampled_from(["u", "v", None])
    pdf = pd.DataFrame(
        {
            "k": pd.Series(draw(st.lists(key, min_size=n, max_size=n)), dtype=object),
            "g": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
            "x": pd.Series(draw(st.lists(value, min_size=n, max_size=n)), dtype=float),
            "s": pd.Series(draw(st.lists(text, min_size=n, max_size=n)), dtype="str"),
        }
    )
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=12)))
    sizes = np.diff([0, *cuts, n]).tolist()
    return pdf, sizes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=frames_and_sizes(),
    by=st.sampled_from([None, "k", ["k", "g"]]),
    subset=st.sampled_from([None, ["x"], ["s"], ["x", "s"]]),
    nan_equal=st.booleans(),
)
def test_property_matches_reference(data, by, subset, nan_equal):
    pdf, sizes = data
    with dask.config.set(scheduler="sync"):
        out = drop_consecutive_duplicates(
            from_sizes(pdf, sizes), subset=subset, by=by, nan_equal=nan_equal
        )
        assert_eq(out, reference(pdf, subset=subset, by=by, nan_equal=nan_equal))


@settings(max_examples=25, deadline=None)
@given(data=frames_and_sizes())
def test_property_partitioning_does_not_matter(data):
    pdf, sizes = data
    with dask.config.set(scheduler="sync"):
        one = drop_consecutive_duplicates(from_sizes(pdf, [len(pdf)]), by="k").compute()
        many = drop_consecutive_duplicates(from_sizes(pdf, sizes), by="k").compute()
    pd.testing.assert_frame_equal(one, many)
    # idempotent: nothing left to drop
    again = drop_consecutive_duplicates(from_sizes(many, [len(many)]), by="k").compute()
    pd.testing.assert_frame_equal(again, many)


# ----------------------------------------------------------------------------------------------
# a real cluster


def test_on_local_cluster(local_client):
    """A real LocalCluster (conftest: 2 worker processes, 1 thread each)."""
    assert len(local_client.scheduler_info()["workers"]) == 2
    pdf = make_frame(3000, seed=11)
    ddf = dd.from_pandas(pdf, npartitions=25, sort=False)
    out = drop_consecutive_duplicates(ddf, subset=["x", "s", "o"], by=["k", "k2"])
    result = local_client.compute(out).result()
    expected = reference(pdf, subset=["x", "s", "o"], by=["k", "k2"])
    pd.testing.assert_frame_equal(result, expected)
