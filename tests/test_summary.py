"""Tests of pipelines.summary: exactness, batch-by-batch merging, per-key results, tree depth."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.core import get_dependencies
from dask.dataframe.utils import assert_eq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.summary import (
    STATS,
    Moments,
    SummaryState,
    combine_mean_std,
    moments,
    moments_array,
    summarize,
    summarize_array,
)

RTOL = 1e-12


@pytest.fixture(autouse=True)
def sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


# --------------------------------------------------------------------------------------------
# exact references


def exact_mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and std (ddof=1) of float64 ``x``, exact up to the final rounding.

    Every float64 is ``m * 2**e`` with integer ``m``: scaled to a common exponent the values are
    Python integers, so the sums are exact; mean and variance are exact fractions.
    """
    x = np.asarray(x, dtype=np.float64)
    mantissa, exponent = np.frexp(x)
    m = (mantissa * 2.0**53).astype(np.int64)
    e = exponent.astype(np.int64) - 53
    base = int(e.min())
    ints = m.astype(object) * (2 ** (e - base).astype(object))
    n = len(x)
    s1 = sum(ints)
    s2 = sum(v * v for v in ints)
    scale = Fraction(2) ** base
    mean = Fraction(s1, n) * scale
    var = Fraction(n * s2 - s1 * s1, n * (n - 1)) * scale * scale
    return float(mean), math.sqrt(float(var))  # sqrt of a correctly rounded float: <= 1 ulp


def test_exact_reference_against_fractions():
    x = np.array([1e9 + 0.1, 1e9 - 0.3, -2.5e-3, 7.0, 1e12 + 2**-13])
    mean = sum(map(Fraction, x)) / len(x)
    var = sum((Fraction(v) - mean) ** 2 for v in x) / (len(x) - 1)
    assert exact_mean_std(x) == (float(mean), math.sqrt(float(var)))


def adversarial(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signs = np.where(rng.random(n) < 0.75, 1.0, -1.0)
    return pd.DataFrame(
        {
            "big": 1e9 + rng.normal(0.0, 1.0, n),  # 1e9 + N(0, 1)
            "huge": 1e12 + rng.uniform(0.0, 1e-3, n),  # 1e12 + U(0, 1e-3): 8 float64 steps wide
            "mixed": signs * (1e9 + rng.normal(0.0, 1.0, n)),  # mixed signs, std ~ 9e8
        }
    )


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def check_adversarial(n: int, partitions: int, record_property) -> None:
    pdf = adversarial(n)
    df = dd.from_pandas(pdf, npartitions=partitions)
    assert df.npartitions == partitions
    ours = summarize(df).compute()
    dask_std, dask_mean = dask.compute(df.std(), df.mean())
    for column in pdf.columns:
        mean, std = exact_mean_std(pdf[column].to_numpy())
        errors = {
            "ours_mean": rel(ours.loc[column, "mean"], mean),
            "ours_std": rel(ours.loc[column, "std"], std),
            "dask_mean": rel(dask_mean[column], mean),
            "dask_std": rel(dask_std[column], std),
        }
        for name, value in errors.items():
            record_property(f"{column}_{name}_rel_error", value)
        print(f"{column} n={n} P={partitions}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
        assert errors["ours_mean"] <= RTOL, (column, errors)
        assert errors["ours_std"] <= RTOL, (column, errors)
        assert ours.loc[column, "count"] == n


def test_adversarial_accuracy(record_property):
    check_adversarial(200_000, 500, record_property)


@pytest.mark.slow
def test_adversarial_accuracy_10m(record_property):
    check_adversarial(10_000_000, 1_000, record_property)


def test_shift_matters():
    """Without the shift (shift 0) the same merges lose ~1e-10 of the std on 1e9 + N(0, 1)."""
    x = adversarial(200_000)["big"].to_numpy()
    _, std = exact_mean_std(x)
    parts = np.array_split(x, 500)
    shifted = Moments.merge_all([Moments.from_values(p) for p in parts])
    unshifted = []
    for p in parts:
        m = Moments.from_values(p)
        unshifted.append(Moments(m.n, 0.0, m.shift + m.mean_shifted, m.m2, m.minimum, m.maximum))
    plain = Moments.merge_all(unshifted)
    assert rel(float(shifted.std()), std) <= RTOL
    assert rel(float(plain.std()), std) > 1e-12  # the failure the shift avoids


# --------------------------------------------------------------------------------------------
# semantics: NaN, inf, count < 2, empty, dtypes

SPECIAL = {
    "plain": [1.0, 2.0, 4.0, 8.0],
    "nan": [np.nan, 1.0, np.nan, 3.0],
    "all_nan": [np.nan, np.nan],
    "one": [np.nan, 5.0, np.nan],
    "pos_inf": [1.0, np.inf, 2.0],
    "only_inf": [np.inf, np.inf],
    "one_inf": [np.nan, -np.inf],
    "both_inf": [np.inf, 1.0, -np.inf],
    "neg_inf_first": [-np.inf, 3.0, 4.0, np.nan],
    "empty": [],
}


def pandas_stats(values: pd.Series, ddof: int = 1) -> list[float]:
    return [values.count(), values.mean(), values.std(ddof=ddof), values.var(ddof=ddof), values.min(), values.max()]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", list(SPECIAL))
@pytest.mark.parametrize("partitions", [1, 3])
def test_special_values_like_pandas(case, partitions):
    values = pd.Series(SPECIAL[case], dtype=np.float64)
    df = dd.from_pandas(pd.DataFrame({"x": values}), npartitions=partitions, sort=False)
    ours = summarize(df).compute().loc["x"]
    expected = pandas_stats(values)
    np.testing.assert_allclose(ours[list(STATS)].to_numpy(dtype=float), np.array(expected, dtype=float), rtol=RTOL)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_special_values_per_key_like_pandas():
    rows = [(case, v) for case, vs in SPECIAL.items() for v in vs]
    pdf = pd.DataFrame(rows, columns=["k", "x"])
    expected = pdf.groupby("k").x.agg(list(STATS))
    for partitions in (1, 4):
        ours = summarize(dd.from_pandas(pdf, npartitions=partitions, sort=False), by="k").compute()
        ours = ours.xs("x", level="column")
        np.testing.assert_allclose(
            ours.loc[expected.index].to_numpy(dtype=float), expected.to_numpy(dtype=float), rtol=RTOL
        )


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("block", [3, 1 << 16])
@pytest.mark.parametrize("pattern", ["clean", "nan", "nan_first", "inf", "all_nan_column"])
def test_from_values_in_blocks(monkeypatch, block, pattern):
    """The NumPy path works in blocks of ``_BLOCK`` elements: same results for any block size."""
    import pipelines.moments

    monkeypatch.setattr(pipelines.moments, "_BLOCK", block)
    rng = np.random.default_rng(block)
    x = 1e9 + rng.normal(0.0, 1.0, (200_000 if block > 3 else 200, 3))
    if pattern != "clean":
        x[rng.random(x.shape) < 0.1] = np.nan
    if pattern == "nan_first":
        x[: len(x) // 2, 1] = np.nan
    if pattern == "inf":
        x[len(x) // 3, 0] = np.inf
    if pattern == "all_nan_column":
        x[:, 2] = np.nan
    for values in (x, x[:, 1]):  # elementwise and one column
        m = Moments.from_values(values)
        frame = pd.DataFrame(values.reshape(len(values), -1))
        expected = np.array([pandas_stats(frame[c]) for c in frame.columns])
        got = np.stack([np.ravel(v) for v in (m.count(), m.mean(), m.std(), m.var(), m.min(), m.max())], axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-9)  # pandas' own error on 1e9 + N(0, 1)
        column = values if values.ndim == 1 else values[:, 1]
        clean = column[~np.isnan(column)]
        mean, std = exact_mean_std(clean)
        got_mean = float(np.ravel(m.mean())[0 if values.ndim == 1 else 1])
        got_std = float(np.ravel(m.std())[0 if values.ndim == 1 else 1])
        assert rel(got_mean, mean) <= RTOL and rel(got_std, std) <= RTOL


def test_ddof():
    x = pd.Series([1.0, 2.0, 7.0])
    ours = summarize(dd.from_pandas(pd.DataFrame({"x": x}), npartitions=2), ddof=0).compute()
    assert ours.loc["x", "std"] == pytest.approx(x.std(ddof=0), rel=RTOL)
    one = summarize(dd.from_pandas(pd.DataFrame({"x": [3.0]}), npartitions=1), ddof=0).compute()
    assert one.loc["x", "std"] == 0.0 and one.loc["x", "var"] == 0.0


def test_empty_frame_and_partitions():
    pdf = pd.DataFrame({"x": pd.Series([], dtype=float), "k": pd.Series([], dtype="int64")})
    out = summarize(dd.from_pandas(pdf, npartitions=1)).compute()
    assert out.loc["x", "count"] == 0 and out[["mean", "std", "min", "max"]].isna().all(axis=None)
    keyed = summarize(dd.from_pandas(pdf, npartitions=1), by="k").compute()
    assert keyed.empty and list(keyed.columns) == list(STATS)
    # empty partitions inside a frame
    df = dd.from_pandas(pd.DataFrame({"x": np.arange(10.0)}), npartitions=5)
    df = df[df.x > 5]
    assert summarize(df).compute().loc["x", "count"] == 4


def test_dtypes_bool_int_nullable():
    pdf = pd.DataFrame(
        {
            "b": [True, False, True, True],
            "i": np.array([1, 2, 3, 2**40], dtype=np.int64),
            "u8": np.array([1, 2, 3, 250], dtype=np.uint8),
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "f32": np.array([0.1, 0.2, np.nan, 0.4], dtype=np.float32),
            "s": ["a", "b", "c", "d"],
        }
    )
    out = summarize(dd.from_pandas(pdf, npartitions=2)).compute()
    assert list(out.index) == ["b", "i", "u8", "nullable", "f32"]  # default: numeric and bool
    for column in out.index:
        values = pdf[column].astype("float64")
        np.testing.assert_allclose(out.loc[column].to_numpy(dtype=float), pandas_stats(values), rtol=RTOL)
    assert out.loc["b", "min"] == 0.0 and out.loc["b", "max"] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"columns": ["s"]}, r"column 's': not numeric \(dtype str"),
        ({"columns": ["t"]}, r"column 't': not numeric \(dtype datetime64"),
        ({"columns": ["c"]}, r"column 'c': not numeric \(dtype complex128\)"),
        ({"columns": ["nope"]}, r"^columns: unknown column 'nope' \(columns: x, s, t, c\)$"),
        ({"columns": ["x"], "by": "nope"}, r"^by: unknown column 'nope' \(columns: x, s, t, c\)$"),
        ({"columns": ["x"], "by": "x"}, r"column 'x': is a key column"),
        ({"columns": ["x"], "split_every": 1}, r"split_every: must be an integer >= 2"),
        ({"columns": ["x", "x"]}, r"^columns: column 'x' is listed twice$"),
    ],
)
def test_bad_input(kwargs, match):
    pdf = pd.DataFrame(
        {
            "x": [1.0, 2.0],
            "s": ["a", "b"],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "c": [1 + 1j, 2 + 0j],
        }
    )
    df = dd.from_pandas(pdf, npartitions=1)
    with pytest.raises(InputError, match=match) as info:
        summarize(df, **kwargs)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=match):
        moments(df, **kwargs)


def test_no_numeric_columns():
    df = dd.from_pandas(pd.DataFrame({"s": ["a"]}), npartitions=1)
    with pytest.raises(InputError, match="no numeric columns"):
        summarize(df)


# --------------------------------------------------------------------------------------------
# persistence and batches


def roundtrip(state: SummaryState) -> SummaryState:
    return SummaryState.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))


def test_moments_to_dict_lossless():
    x = np.array([[0.1, np.inf, np.nan], [1e300, -np.inf, np.nan], [-0.0, 3.0, np.nan]])
    m = Moments.from_values(x).merge(Moments.from_values(x[:1] * 3))
    data = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    back = Moments.from_dict(data)
    for name in ("n", "shift", "mean_shifted", "m2", "minimum", "maximum"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    assert math.copysign(1.0, float(Moments.from_dict(Moments.from_values(np.array([-0.0])).to_dict()).max())) == -1.0


def batches_of(pdf: pd.DataFrame, sizes: list[int]) -> list[pd.DataFrame]:
    bounds = np.cumsum([0, *sizes])
    return [pdf.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def keyed_data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = 1e9 + rng.normal(0.0, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    keys = rng.choice(np.array(["a", "b", "c", None], dtype=object), n)
    return pd.DataFrame({"k": pd.Series(keys, dtype="str"), "x": x, "y": rng.exponential(3.0, n)})


def uneven_sizes(total: int, batches: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, total + 1, batches - 1))
    sizes = np.diff(np.r_[0, cuts, total]).tolist()
    if batches >= 3:
        sizes[1] += sizes[2]  # force an empty batch
        sizes[2] = 0
    return sizes


def assert_frames_close(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, rtol=RTOL, atol=0.0, check_exact=False)


@pytest.mark.parametrize("n_batches", [1, 3, 50])
@pytest.mark.parametrize("by", [None, "k"])
def test_batches_with_saved_state_equal_all_at_once(n_batches, by):
    pdf = keyed_data(20_000, seed=n_batches)
    sizes = uneven_sizes(len(pdf), n_batches, seed=n_batches)
    state = None
    for i, batch in enumerate(batches_of(pdf, sizes)):
        df = dd.from_pandas(batch, npartitions=max(1, len(batch) // 700), sort=False)
        new = moments(df, columns=["x", "y"], by=by).compute().with_source(f"batch-{i}.parquet", f"fp{i}")
        state = new if state is None else roundtrip(state).merge(new)
    state = roundtrip(state)
    all_at_once = summarize(dd.from_pandas(pdf, npartitions=17, sort=False), columns=["x", "y"], by=by).compute()
    assert_frames_close(state.to_frame(), all_at_once)
    assert len(state.sources) == n_batches


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=50),
    keyed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_batches_property(sizes, keyed, seed):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    pdf = pd.DataFrame(
        {
            "k": rng.choice(np.array([1.0, 2.0, 3.0, np.nan]), n),
            "x": 1e12 + rng.uniform(0.0, 1e-3, n),
            "y": rng.normal(0.0, 1.0, n) * 10.0 ** rng.integers(-3, 4, n),
        }
    )
    pdf.loc[rng.random(n) < 0.1, "y"] = np.nan
    by = "k" if keyed else None
    state = None
    for i, batch in enumerate(batches_of(pdf, sizes)):
        new = SummaryState.from_frame(batch, columns=["x", "y"], by=by).with_source(f"b{i}", f"{seed}-{i}")
        state = new if state is None else roundtrip(state).merge(roundtrip(new))
    expected = SummaryState.from_frame(pdf, columns=["x", "y"], by=by).to_frame()
    got = state.to_frame()
    np.testing.assert_array_equal(got["count"], expected["count"])
    pd.testing.assert_index_equal(got.index, expected.index)
    np.testing.assert_allclose(got.to_numpy(dtype=float), expected.to_numpy(dtype=float), rtol=RTOL, atol=0)


def test_refuses_repeated_source():
    pdf = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    a = SummaryState.from_frame(pdf).with_source("data/a.parquet", "f-a")
    b = SummaryState.from_frame(pdf).with_source("data/b.parquet", "f-b")
    merged = roundtrip(a.merge(b))
    with pytest.raises(InputError, match=r"'data/b.parquet' \(fingerprint f-b\) is already merged"):
        merged.merge(b)
    with pytest.raises(InputError, match="already merged"):
        merged.with_source("elsewhere/copy.parquet", "f-a")  # same fingerprint, another path
    # the same path with new contents (another fingerprint) is another input
    c = SummaryState.from_frame(pdf).with_source("data/a.parquet", "f-a2")
    assert merged.merge(c).to_frame().loc["x", "count"] == 9
    bad = a.merge(b).to_dict()
    bad["sources"].append(dict(bad["sources"][0]))
    with pytest.raises(InputError, match="already merged"):
        SummaryState.from_dict(bad)


def test_state_dict_is_strict_json_and_checked():
    pdf = pd.DataFrame(
        {
            "k1": pd.array([1, 2, None, 1], dtype="Int64"),
            "k2": pd.to_datetime(["2024-01-01", None, "2024-01-02", "2024-01-01"]),
            "x": [np.inf, 1.0, np.nan, 2.0],
        }
    )
    state = SummaryState.from_frame(pdf, by=["k1", "k2"]).with_source("p", "f")
    text = json.dumps(state.to_dict(), allow_nan=False)
    back = SummaryState.from_dict(json.loads(text))
    pd.testing.assert_frame_equal(back.to_frame(), state.to_frame())
    with pytest.raises(InputError, match="not a dask-flows summary state"):
        SummaryState.from_dict({"columns": []})
    with pytest.raises(InputError, match="different keys"):
        state.merge(SummaryState.from_frame(pdf, columns=["x"]))


def test_merge_with_new_columns_and_keys():
    a = SummaryState.from_frame(pd.DataFrame({"k": [1, 2], "x": [1.0, 2.0]}), by="k")
    b = SummaryState.from_frame(pd.DataFrame({"k": [3, 1], "x": [5.0, 7.0], "y": [1.0, 2.0]}), by="k")
    out = a.merge(b).to_frame()
    assert out.loc[(1, "x"), "count"] == 2 and out.loc[(3, "y"), "count"] == 1
    assert out.loc[(2, "y"), "count"] == 0 and np.isnan(out.loc[(2, "y"), "mean"])


# --------------------------------------------------------------------------------------------
# per key against pandas


def groupby_expected(pdf: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    parts = {c: pdf.groupby(by, dropna=False)[c].agg(list(STATS)) for c in columns}
    out = pd.concat(parts, names=["column"]).reorder_levels([*range(1, len(by) + 1), 0])
    out.index = out.index.set_levels(out.index.levels[-1].astype("str"), level=-1)
    return out


@pytest.mark.parametrize("by", [["k"], ["k", "j"]])
def test_per_key_equals_pandas_groupby(by):
    rng = np.random.default_rng(7)
    n = 30_000
    pdf = keyed_data(n, seed=7)
    pdf["x"] -= 1e9  # pandas' own groupby std loses ~1e-8 on 1e9 + N(0, 1): see below
    pdf["j"] = rng.integers(0, 5, n)
    pdf["z"] = rng.normal(-50.0, 2.0, n)
    pdf.loc[pdf.index[:3], "z"] = np.nan
    pdf.loc[pdf.index[5], "j"] = 10  # a key with one row: std NaN
    df = dd.from_pandas(pdf, npartitions=23, sort=False)
    columns = ["x", "y", "z"]
    got = summarize(df, columns=columns, by=by if len(by) > 1 else by[0])
    assert_eq(got, groupby_expected(pdf, by, columns), rtol=RTOL, atol=0)
    assert got.compute()["std"].isna().any() == (len(by) > 1)


def test_per_key_adversarial_exact(record_property):
    pdf = keyed_data(60_000, seed=8)
    got = summarize(dd.from_pandas(pdf, npartitions=97, sort=False), columns=["x"], by="k").compute()
    pandas_std = pdf.groupby("k", dropna=False).x.std()
    for key, group in pdf.groupby("k", dropna=False):
        values = group.x.dropna().to_numpy()
        mean, std = exact_mean_std(values)
        row = got.loc[(key, "x")]
        assert rel(row["mean"], mean) <= RTOL and rel(row["std"], std) <= RTOL
        record_property(f"pandas_groupby_std_rel_error_{key}", rel(pandas_std[key], std))


# --------------------------------------------------------------------------------------------
# the tree


def graph_height(collection) -> tuple[int, int, int]:
    """Longest dependency chain (in tasks) to the result, the largest fan-in, the task count."""
    optimized = collection.optimize()
    graph = dict(optimized.__dask_graph__())
    deps = {key: get_dependencies(graph, key) for key in graph}
    heights: dict = {}
    for key in dask.core.toposort(graph, dependencies=deps):
        heights[key] = 1 + max((heights[d] for d in deps[key]), default=0)
    (root,) = [k for k in graph if not any(k in deps[o] for o in graph)]
    return heights[root], max(len(v) for v in deps.values()), len(graph)


@pytest.mark.parametrize("split_every", [8, 4])
@pytest.mark.parametrize("by", [None, "k"])
def test_tree_depth(split_every, by):
    pdf = pd.DataFrame({"x": np.arange(4000.0), "k": np.arange(4000) % 3})
    base, _, _ = graph_height(moments(dd.from_pandas(pdf, npartitions=1), by=by, split_every=split_every))
    df = dd.from_pandas(pdf, npartitions=1000)
    assert df.npartitions == 1000
    height, fan_in, tasks = graph_height(moments(df, by=by, split_every=split_every))
    levels = math.ceil(math.log(1000, split_every))
    # a single partition: data -> state -> aggregate; the tree replaces that one aggregate level
    assert height == base - 1 + levels
    assert fan_in <= split_every  # no all-to-one task
    assert tasks > 2000


# --------------------------------------------------------------------------------------------
# arrays


def test_summarize_array_equals_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 1.0, (3_000, 37))
    x[rng.random(x.shape) < 0.01] = np.nan
    x[:, 5] = np.nan  # an all-NaN element
    x[:1, 6] = 4.0  # ... and one with a single value
    x[1:, 6] = np.nan
    x[:, 7] += 1e9  # adversarial: checked against the exact reference
    dx = da.from_array(x, chunks=(97, 10))
    out = dask.compute(summarize_array(dx, axis=0, split_every=4))[0]
    with np.errstate(invalid="ignore", divide="ignore"), pytest.warns(RuntimeWarning):
        expected = {
            "count": (~np.isnan(x)).sum(axis=0),
            "mean": np.nanmean(x, axis=0),
            "std": np.nanstd(x, axis=0, ddof=1),
            "var": np.nanvar(x, axis=0, ddof=1),
            "min": np.nanmin(x, axis=0),
            "max": np.nanmax(x, axis=0),
        }
    expected["std"][6] = expected["var"][6] = np.nan
    assert out["count"].dtype == np.int64
    for name, value in expected.items():
        assert out[name].shape == (37,)
        np.testing.assert_allclose(out[name][:7], value[:7], rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(out[name][8:], value[8:], rtol=RTOL, err_msg=name)
    clean = x[:, 7]
    mean, std = exact_mean_std(clean[~np.isnan(clean)])
    assert rel(out["mean"][7], mean) <= RTOL and rel(out["std"][7], std) <= RTOL


def test_summarize_array_other_axis_and_batches():
    rng = np.random.default_rng(4)
    x = rng.normal(5.0, 2.0, (6, 500, 4))
    out = dask.compute(summarize_array(da.from_array(x, chunks=(4, 64, 3)), axis=1))[0]
    np.testing.assert_allclose(out["mean"], x.mean(axis=1), rtol=RTOL)
    np.testing.assert_allclose(out["std"], x.std(axis=1, ddof=1), rtol=RTOL)
    # array-valued samples across mini-batches: merged states equal all at once
    samples = rng.normal(0.0, 1.0, (1_000, 3, 2)) + 1e9
    states = [
        dask.compute(moments_array(da.from_array(b, chunks=(50, 3, 2))))[0]
        for b in np.array_split(samples, [0, 10, 400, 400])
    ]
    merged = Moments.from_dict(json.loads(json.dumps(Moments.merge_all(states).to_dict())))
    for name in ("mean", "std"):
        exact = np.vectorize(lambda i, j: exact_mean_std(samples[:, i, j])[name == "std"])(*np.indices((3, 2)))
        np.testing.assert_allclose(getattr(merged, name)(), exact, rtol=RTOL)


def test_summarize_array_cupy():
    cupy = pytest.importorskip("cupy")
    x = np.random.default_rng(5).normal(1e9, 1.0, (2_000, 8))
    dx = da.from_array(x, chunks=(300, 4)).map_blocks(cupy.asarray)
    out = dask.compute(summarize_array(dx))[0]
    assert type(out["mean"]).__module__.startswith("cupy")
    np.testing.assert_allclose(cupy.asnumpy(out["std"]), x.std(axis=0, ddof=1), rtol=1e-12)


def test_bad_array_input():
    with pytest.raises(InputError, match="axis: 3 is out of range"):
        summarize_array(da.ones((3, 3)), axis=3)
    with pytest.raises(InputError, match="not numeric"):
        summarize_array(da.from_array(np.array(["a", "b"])))


# --------------------------------------------------------------------------------------------
# combine_mean_std


def fraction_combine(m1, s1, n1, m2, s2, n2):
    """The combination of the given (rounded) inputs in exact arithmetic."""
    m1, s1, m2, s2 = (Fraction(v) for v in (m1, s1, m2, s2))
    n = n1 + n2
    mean = (n1 * m1 + n2 * m2) / n
    m2_total = s1 * s1 * max(n1 - 1, 0) + s2 * s2 * max(n2 - 1, 0) + (m2 - m1) ** 2 * Fraction(n1 * n2, n)
    return float(mean), math.sqrt(float(m2_total / (n - 1))) if n > 1 else math.nan


@pytest.mark.parametrize("sizes", [(5, 7), (1, 9), (9, 1), (0, 4), (1, 1), (0, 1), (0, 0)])
@pytest.mark.parametrize("offset", [0.0, 1e9])
def test_combine_mean_std(sizes, offset):
    rng = np.random.default_rng(sum(sizes))
    a, b = offset + rng.normal(0.0, 1.0, sizes[0]), offset + rng.normal(0.0, 1.0, sizes[1])

    def stats(v):
        return (v.mean() if len(v) else np.nan, v.std(ddof=1) if len(v) > 1 else np.nan, len(v))

    (m1, s1, n1), (m2, s2, n2) = stats(a), stats(b)
    mean, std, n = combine_mean_std(m1, s1, n1, m2, s2, n2)
    assert n == n1 + n2
    if n == 0:
        assert np.isnan(mean) and np.isnan(std)
        return
    if n1 == 0 or n2 == 0:
        assert (mean, std) == ((m2, s2) if n1 == 0 else (m1, s1)) or np.isnan(std)
        return
    ref_mean, ref_std = fraction_combine(m1, 0.0 if n1 < 2 else s1, n1, m2, 0.0 if n2 < 2 else s2, n2)
    assert rel(mean, ref_mean) <= 1e-15
    assert rel(std, ref_std) <= RTOL
    if offset == 0.0:  # well-conditioned inputs: also the std of the union
        assert rel(std, np.r_[a, b].std(ddof=1)) <= RTOL


def test_combine_mean_std_arrays_and_errors():
    mean, std, n = combine_mean_std(np.array([1.0, 2.0]), np.array([0.5, 0.0]), np.array([4, 1]), 3.0, 1.0, 2)
    assert n.tolist() == [6, 3]
    for i, (m1, s1, n1) in enumerate([(1.0, 0.5, 4), (2.0, 0.0, 1)]):
        assert (mean[i], std[i], n[i]) == combine_mean_std(m1, s1, n1, 3.0, 1.0, 2)
    with pytest.raises(InputError, match="counts must be >= 0"):
        combine_mean_std(1.0, 1.0, -1, 1.0, 1.0, 2)


# --------------------------------------------------------------------------------------------
# a real cluster


def test_on_local_cluster(local_client):
    pdf = keyed_data(40_000, seed=11)
    pdf["k"] = pdf["k"].astype("string[pyarrow]")  # what dask makes of it anyway
    df = dd.from_pandas(pdf, npartitions=40, sort=False)
    table = local_client.compute(summarize(df, columns=["x", "y"], by="k", split_every=4)).result()
    state = local_client.compute(moments(df, columns=["x", "y"], by="k")).result()
    expected = groupby_expected(pdf, ["k"], ["x", "y"])
    # pandas' own std loses ~1e-8 on 1e9 + N(0, 1)
    pd.testing.assert_frame_equal(table, expected.loc[table.index], rtol=1e-7)
    assert_frames_close(roundtrip(state).to_frame(), table)
