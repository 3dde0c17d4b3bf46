"""Dedup runs: ``keep="last"`` and ``count=`` of drop_consecutive_duplicates, against the pandas
reference over many partitionings, the associativity of the run-length scan, and from YAML."""

from __future__ import annotations

import math
from functools import partial

import dask
import numpy as np
import pandas as pd
import pytest
import yaml
from dask.dataframe.utils import assert_eq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flows
from flows.cli import main
from pipelines import dedup
from pipelines.dedup import drop_consecutive_duplicates
from pipelines.errors import InputError
from pipelines.partitions import graph_depth, task_graph

try:
    from reference import reference_drop_consecutive_duplicates as reference
    from test_dedup import frames_and_sizes, from_sizes, make_frame, split
    from test_partitions import assert_same
except ImportError:  # tests/ collected as a package
    from tests.reference import reference_drop_consecutive_duplicates as reference
    from tests.test_dedup import frames_and_sizes, from_sizes, make_frame, split
    from tests.test_partitions import assert_same

MODES = [("first", "run_rows"), ("last", None), ("last", "run_rows")]  # (keep, count)


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set({"scheduler": "sync", "dataframe.convert-string": False}):
        yield


def check(pdf, ddf, **kwargs):
    """The step on ``ddf`` equals the reference on ``pdf``, as a Dask object and computed."""
    out = drop_consecutive_duplicates(ddf, **kwargs)
    expected = reference(pdf, **kwargs)
    assert out.npartitions == ddf.npartitions
    assert_eq(out, expected)
    return expected


# ----------------------------------------------------------------------------------------------
# against the reference


@pytest.mark.parametrize("keep, count", MODES)
@pytest.mark.parametrize("npartitions", [1, 3, 17, 120])
@pytest.mark.parametrize("by", [None, "k", ["k", "k2"]])
def test_matches_reference(keep, count, npartitions, by):
    pdf = make_frame(120, seed=npartitions)
    ddf = split(pdf, npartitions)
    options = [(None, True), (["x"], False), (["s", "o", "i"], True), (["b", "c", "t"], False)]
    if npartitions > 100:  # one-row partitions: scheduling dominates
        options = options[:2]
    for subset, nan_equal in options:
        expected = check(pdf, ddf, subset=subset, by=by, nan_equal=nan_equal, keep=keep, count=count)
        if count is not None:
            assert expected[count].dtype == np.int64 and expected[count].max() > 1


@pytest.mark.parametrize("keep, count", MODES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("by", [None, "k", ["k2", "k"]])
def test_tiny_partitions_with_empty_ones(keep, count, seed, by):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 6, 40)  # partitions of 0-5 rows
    sizes[:3] = [0, 1, 0]
    sizes[-2:] = [0, 0]
    pdf = make_frame(int(sizes.sum()), seed=seed)
    check(pdf, from_sizes(pdf, sizes), subset=["x", "s"], by=by, keep=keep, count=count)


def test_run_spanning_many_partitions():
    # key a: one run of 1.0 from partition 0 to partition 40, with partitions holding no row of a
    # or only rows of that run in between; key b changes often
    rows = [("a", 1.0)]
    for i in range(40):
        rows.append(("b", float(i // 3)))
        if i < 29:
            rows.append(("a", 1.0))
    rows.append(("a", 2.0))
    pdf = pd.DataFrame(rows, columns=["k", "x"])
    sizes = [1, 0, 2, 1, 0] * 17 + [1, 2]  # partitions of one row of b, of a, of both, empty ones
    assert sum(sizes) == len(pdf)
    ddf = from_sizes(pdf, sizes)
    assert ddf.npartitions > 40
    last = check(pdf, ddf, by="k", keep="last", count="n")
    first = check(pdf, ddf, by="k", keep="first", count="n")
    assert last[last["k"] == "a"]["n"].tolist() == [30, 1]
    assert first[first["k"] == "a"]["n"].tolist() == [30, 1]
    assert first[first["k"] == "b"]["n"].tolist()[:3] == [3, 3, 3]
    check(pdf, ddf, by="k", keep="last")
    check(pdf, ddf, keep="last", count="n")  # without a key: runs of the whole frame


def test_nan_at_boundaries_and_missing_keys():
    pdf = pd.DataFrame(
        {
            "k": pd.Series(["a", None, "a", "a", np.nan, "a", None, "a", "a", "b", "a", "a"],
                           dtype=object),
            "x": [1.0, np.nan, 1.0, 1.0, np.nan, 1.0, 2.0, np.nan, np.nan, 2.0, np.nan, 1.0],
        }
    )
    for sizes in ([12], [2, 0, 2, 1, 1, 0, 3, 1, 2], [1] * 12):
        ddf = from_sizes(pdf, sizes)
        for keep, count in MODES:
            for nan_equal in (True, False):
                check(pdf, ddf, by="k", nan_equal=nan_equal, keep=keep, count=count)
    out = drop_consecutive_duplicates(from_sizes(pdf, [2, 0, 2, 1, 1, 0, 3, 1, 2]), by="k",
                                      keep="last", count="n").compute()
    # a: runs 0-5 (4 rows), 7-10 (NaN, 3 rows), 11; None and NaN are one key: runs 1-4, 6; b: 9
    assert out.index.tolist() == [4, 5, 6, 9, 10, 11]
    assert out["n"].tolist() == [2, 4, 1, 1, 3, 1]


def test_keep_first_without_count_is_the_plain_dedup():
    pdf = make_frame(60, seed=3)
    ddf = split(pdf, 5)
    plain = drop_consecutive_duplicates(ddf, by="k")
    counted = drop_consecutive_duplicates(ddf, by="k", count="n").compute()
    assert_eq(plain, counted.drop(columns="n"))
    assert list(counted.columns) == [*pdf.columns, "n"]
    assert counted["n"].sum() == len(pdf)  # every row is in exactly one run


def test_keep_last_keeps_divisions_and_is_lazy():
    pdf = make_frame(90, seed=5).reset_index(drop=True)
    ddf = dask.dataframe.from_pandas(pdf, npartitions=7)
    for keep, count in MODES:
        out = drop_consecutive_duplicates(ddf, subset="x", by="k", keep=keep, count=count)
        assert out.divisions == ddf.divisions
        assert_eq(out, reference(pdf, subset="x", by="k", keep=keep, count=count))


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        ({"keep": "middle"}, r"^keep: must be 'first' or 'last', got 'middle'$"),
        ({"keep": None}, r"^keep: must be 'first' or 'last', got None$"),
        ({"count": "x"}, r"^count: column 'x' already exists$"),
        ({"count": "k", "keep": "last"}, r"^count: column 'k' already exists$"),
    ],
)
def test_bad_input(kwargs, culprit):
    ddf = split(pd.DataFrame({"k": ["a"], "x": [1.0]}), 1)
    with pytest.raises(InputError, match=culprit):
        drop_consecutive_duplicates(ddf, by="k", **kwargs)


# ----------------------------------------------------------------------------------------------
# properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=frames_and_sizes(),
    by=st.sampled_from([None, "k", ["k", "g"]]),
    subset=st.sampled_from([None, ["x"], ["x", "s"]]),
    nan_equal=st.booleans(),
    mode=st.sampled_from(MODES),
)
def test_property_matches_reference(data, by, subset, nan_equal, mode):
    pdf, sizes = data
    keep, count = mode
    with dask.config.set(scheduler="sync"):
        out = drop_consecutive_duplicates(from_sizes(pdf, sizes), subset=subset, by=by,
                                          nan_equal=nan_equal, keep=keep, count=count)
        assert_eq(out, reference(pdf, subset=subset, by=by, nan_equal=nan_equal, keep=keep,
                                 count=count))


@st.composite
def marked_chunks(draw):
    """Three consecutive chunks of a marked frame (keys with a missing one, bool marks)."""
    n = draw(st.integers(0, 30))
    frame = pd.DataFrame({
        "k": pd.Series(draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n)),
                       dtype=object),
        "m": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
    })
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
    return [frame.iloc[: cuts[0]], frame.iloc[cuts[0]: cuts[1]], frame.iloc[cuts[1]:]]


@settings(max_examples=80, deadline=None)
@given(marked_chunks(), st.booleans(), st.booleans())
def test_run_length_tally_is_associative(chunks, keyed, from_end):
    keys = ["k"] if keyed else []
    summarize = partial(dedup._tally, keys=keys, flag="m", from_end=from_end)
    combine = partial(dedup._merge_tallies, from_end=from_end)
    a, b, c = map(summarize, chunks)
    left = combine(combine(a, b), c)
    assert_same(left, combine(a, combine(b, c)))
    assert_same(left, summarize(pd.concat(chunks)))  # the combine is the summary of all rows


@settings(max_examples=60, deadline=None)
@given(marked_chunks(), st.booleans())
def test_first_rows_merge_is_associative(chunks, keyed):
    keys = ["k"] if keyed else []
    first_rows = partial(dedup._end_rows, keys=keys, needed=[*keys, "m"], end="first")
    combine = partial(dedup._merge_end_rows, keys=keys, end="first")
    no_index = lambda rows: None if rows is None else rows.reset_index(drop=True)  # noqa: E731
    a, b, c = map(first_rows, chunks)
    left = no_index(combine(combine(a, b), c))
    assert_same(left, no_index(combine(a, combine(b, c))))
    assert_same(left, no_index(first_rows(pd.concat(chunks))))


# ----------------------------------------------------------------------------------------------
# from YAML


def ticks(n: int = 400, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
        "symbol": rng.choice(["A", "B", "C"], n),
        "price": np.round(np.cumsum(rng.random(n) < 0.2) * 0.5, 1),
    })


@pytest.mark.parametrize("keep", ["first", "last"])
def test_flow_run_from_yaml_equals_the_reference(tmp_path, keep):
    frame = ticks()
    (tmp_path / "in").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 7)):
        frame.iloc[part].to_parquet(tmp_path / f"in/part-{i}.parquet")
    config = tmp_path / "dedup.yaml"
    config.write_text(yaml.safe_dump({
        "flow": "table", "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": False},
        "input": {"format": "parquet", "path": str(tmp_path / "in"), "time": "ts"},
        "steps": [{"dedup": {"subset": ["price"], "by": "symbol", "keep": keep, "count": "run_rows"}}],
        "output": {"path": str(tmp_path / "out")},
    }))
    result = flows.run(str(config))
    expected = reference(frame, subset=["price"], by="symbol", keep=keep, count="run_rows")
    assert len(expected) < len(frame)
    pd.testing.assert_frame_equal(pd.read_parquet(result.output),
                                  expected.reset_index(drop=True), check_dtype=False)
    assert pd.read_parquet(result.output)["run_rows"].dtype == np.int64


@pytest.mark.parametrize("params, expected", [
    ({"keep": "middle"}, "steps[0].dedup.keep"),
    ({"count": "price"}, "steps[0].dedup.count: column 'price' already exists"),
])
def test_bad_yaml_exits_2_naming_the_key(tmp_path, capsys, monkeypatch, params, expected):
    monkeypatch.chdir(tmp_path)
    ticks(20).to_parquet(tmp_path / "t.parquet")
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({
        "flow": "table", "cluster": {"n_workers": 1, "processes": False},
        "input": {"format": "parquet", "path": str(tmp_path / "t.parquet"), "time": "ts"},
        "steps": [{"dedup": {"by": "symbol", **params}}], "output": {"path": str(tmp_path / "out")},
    }))
    code = main(["run", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# the graph and a real cluster


@pytest.mark.parametrize("keep, count", [("first", None), *MODES])
def test_graph_is_linear_in_size_and_logarithmic_in_depth(keep, count):
    n_parts = 256
    pdf = ticks(2 * n_parts)
    ddf = dask.dataframe.from_pandas(pdf, npartitions=n_parts, sort=False)
    out = drop_consecutive_duplicates(ddf, subset="price", by="symbol", keep=keep, count=count)
    graph = task_graph(out)
    n_scans = 1 if count is None else 2
    per_scan = (len(graph) - n_parts) / n_scans / n_parts
    assert 2 <= per_scan <= 5  # summary, state (+ blocks), kernel, (the count scan:) a copy
    assert graph_depth(out) <= 2 * n_scans * math.log2(n_parts) + 10


def test_on_local_cluster(local_client):
    """A real LocalCluster (conftest: 2 worker processes, 1 thread each)."""
    pdf = make_frame(3000, seed=12)
    ddf = dask.dataframe.from_pandas(pdf, npartitions=25, sort=False)
    for keep, count in MODES:
        out = drop_consecutive_duplicates(ddf, subset=["x", "s"], by=["k", "k2"], keep=keep,
                                          count=count)
        expected = reference(pdf, subset=["x", "s"], by=["k", "k2"], keep=keep, count=count)
        pd.testing.assert_frame_equal(local_client.compute(out).result(), expected)
