"""The scan machinery: prefix scans against a plain fold, associativity of every scan's combine,
and the graph's shape (tasks linear in P, depth logarithmic)."""

from __future__ import annotations

import math
import operator
from functools import partial, reduce

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask._task_spec import DataNode, execute_graph
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from pipelines import dedup, lookahead
from pipelines.dedup import drop_consecutive_duplicates
from pipelines.lookahead import _spec, future_features, map_lookahead
from pipelines.partitions import (
    Call, Scan, Slot, graph_depth, hold_partitions, prefix_scan, scan_partitions, task_graph,
)


def run_scan(values, combine, initial, reverse=False, radix=4):
    leaves = {("leaf", i): DataNode(("leaf", i), v) for i, v in enumerate(values)}
    tasks, states = prefix_scan(list(leaves), combine, initial, "state", reverse=reverse, radix=radix)
    assert len(states) == len(values) and not set(tasks) & set(leaves)
    results = execute_graph({**leaves, **tasks})
    return [results[k] for k in states], tasks


def sequential(values, combine, initial, reverse=False):
    """The plain fold: the state before each value (forwards) or after it (backwards)."""
    states, state = [], initial
    if reverse:
        for value in reversed(values):
            states.append(state)
            state = combine(value, state)
        return states[::-1]
    for value in values:
        states.append(state)
        state = combine(state, value)
    return states


@pytest.mark.parametrize("radix", [2, 3, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 15, 16, 17, 64, 65, 100, 257])
@pytest.mark.parametrize("reverse", [False, True])
def test_prefix_scan_equals_sequential_fold(n, radix, reverse):
    values = [(i,) for i in range(n)]  # tuple concatenation: associative, not commutative
    states, tasks = run_scan(values, operator.add, (), reverse=reverse, radix=radix)
    assert states == sequential(values, operator.add, (), reverse=reverse)
    assert len(tasks) <= n + n / (radix - 1) + 1


def test_prefix_scan_depth_is_logarithmic_and_forward_states_need_earlier_values_only():
    n, radix = 1000, 4
    leaves = {("leaf", i): DataNode(("leaf", i), (i,)) for i in range(n)}
    tasks, states = prefix_scan(list(leaves), operator.add, (), "state", radix=radix)
    graph = {**leaves, **tasks}
    depth, needs = {}, {}
    for key in [*leaves, *tasks]:  # tasks are created after their dependencies
        deps = graph[key].dependencies
        depth[key] = (key in tasks) + max((depth[d] for d in deps), default=0)
        needs[key] = {key[1]} if key in leaves else set().union(*(needs[d] for d in deps))
    assert max(depth.values()) <= 2 * math.ceil(math.log(n, radix)) + 1
    for p, key in enumerate(states):
        assert needs[key] == set(range(p))  # exactly the values before p


# ----------------------------------------------------------------------------------------------
# associativity of the scans' combines, on summaries of random consecutive chunks of a frame
def random_frame(draw, n):
    steps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    prices = draw(st.lists(st.sampled_from([1.0, 2.0, np.nan]), min_size=n, max_size=n))
    ts = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.cumsum(steps), unit="s")
    return pd.DataFrame({"ts": ts, "key": keys, "price": prices}, index=np.arange(n) * 10)


@st.composite
def chunked_frames(draw):
    n = draw(st.integers(0, 30))
    frame = random_frame(draw, n)
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
    return [frame.iloc[: cuts[0]], frame.iloc[cuts[0]: cuts[1]], frame.iloc[cuts[1]:]]


def assert_same(left, right):
    if isinstance(left, pd.DataFrame) or isinstance(right, pd.DataFrame):
        assert isinstance(left, pd.DataFrame) and isinstance(right, pd.DataFrame)
        assert_frame_equal(left, right)
        return
    if hasattr(left, "__dataclass_fields__"):
        assert type(left) is type(right)
        for field in left.__dataclass_fields__:
            assert_same(getattr(left, field), getattr(right, field))
        return
    if isinstance(left, np.ndarray):
        np.testing.assert_array_equal(left, right)
        return
    assert left == right or (pd.isna(left) and pd.isna(right))


def check_associative(chunks, summarize, combine, whole=None, normalize=lambda x: x):
    a, b, c = (summarize(chunk, i) for i, chunk in enumerate(chunks))
    left = normalize(combine(combine(a, b), c))
    assert_same(left, normalize(combine(a, combine(b, c))))
    if whole is not None:  # the combine of the chunks' summaries is the summary of all rows
        assert_same(left, whole)


@settings(max_examples=60, deadline=None)
@given(chunked_frames(), st.booleans())
def test_dedup_merge_is_associative(chunks, keyed):
    keys = ["key"] if keyed else []
    needed = [*keys, "price"]
    last_rows = partial(dedup._last_rows, keys=keys, needed=needed)
    no_index = lambda rows: None if rows is None else rows.reset_index(drop=True)  # noqa: E731
    check_associative(chunks, lambda frame, i: last_rows(frame), partial(dedup._merge_last_rows, keys=keys),
                      whole=no_index(last_rows(pd.concat(chunks))), normalize=no_index)


@settings(max_examples=60, deadline=None)
@given(chunked_frames(), st.sampled_from([1, 2, 3, "2s", "5s"]), st.booleans())
def test_lookahead_backward_combine_is_associative(chunks, horizon, keyed):
    frame = dd.from_pandas(pd.concat(chunks), npartitions=1)
    spec, _ = _spec(frame, horizon, "key" if keyed else None, "ts", keep=["price"])
    summarize = partial(lookahead._summarize, spec=spec)
    combine = partial(lookahead._combine, spec=spec)
    initial = lookahead._Summary()
    check_associative(chunks, lambda f, i: summarize(f, part=i), combine)
    for chunk in chunks:  # the empty summary is the identity
        s = summarize(chunk, part=0)
        assert_same(combine(initial, s), s)
        assert_same(combine(s, initial), s)
    whole = summarize(pd.concat(chunks), part=0)
    rows = reduce(combine, [summarize(c, part=i) for i, c in enumerate(chunks)], initial).rows
    assert_same(rows, whole.rows)  # the combine of the chunks' summaries: the summary of all rows


@settings(max_examples=60, deadline=None)
@given(chunked_frames(), st.sampled_from(["1s", "2s", "5s"]))
def test_lookahead_forward_carry_is_associative(chunks, horizon):
    frame = dd.from_pandas(pd.concat(chunks), npartitions=1)
    spec, _ = _spec(frame, horizon, "key", "ts", keep=None)
    check_associative(chunks, lambda frame, i: lookahead._tail(frame, spec, i),
                      partial(lookahead._carry, spec=spec))


# ----------------------------------------------------------------------------------------------
# scan_partitions and the graph's shape
def ticks(n, npartitions):
    rng = np.random.default_rng(0)
    pdf = pd.DataFrame({
        "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
        "key": rng.choice(["a", "b", "c"], n), "price": rng.integers(0, 3, n) * 1.0,
    })
    return pdf, dd.from_pandas(pdf, npartitions=npartitions, sort=False)


def test_scan_partitions_matches_a_cumulative_sum_on_empty_and_uneven_partitions():
    pdf = pd.DataFrame({"x": np.arange(20)})
    ddf = dd.from_pandas(pdf, npartitions=6).partitions[[0, 1, 1, 2, 5, 3, 4]]
    ddf = ddf.map_partitions(lambda p: p[p["x"] % 3 != 1])  # some partitions empty
    before = Scan("before", Call(lambda p: int(p["x"].sum()), Slot.PARTITION), operator.add, 0,
                  Call(lambda p, s, i, last: p.assign(s=s, i=i, last=last), Slot.PARTITION,
                       Slot.STATE, Slot.INDEX, Slot.IS_LAST))
    out = scan_partitions(ddf, before, meta=ddf._meta.assign(s=0, i=0, last=False))
    parts = dask.compute(*ddf.to_delayed())
    got = dask.compute(*out.to_delayed())
    sums = [int(p["x"].sum()) for p in parts]
    for i, (part, result) in enumerate(zip(parts, got, strict=True)):
        assert result["x"].tolist() == part["x"].tolist()
        assert (result["s"] == sum(sums[:i])).all() and (result["i"] == i).all()
        assert (result["last"] == (i == len(parts) - 1)).all()


@pytest.mark.parametrize("n_parts", [64, 512])
def test_table_graph_is_linear_in_size_and_logarithmic_in_depth(n_parts):
    """dedup, then a 30 s lookahead and a rows lookahead (forward and backward scans)."""
    _, ddf = ticks(2 * n_parts, n_parts)
    deduped = drop_consecutive_duplicates(ddf, subset=["price"], by="key")
    timed = future_features(deduped, "30s", "price", ["max"], by="key", time="ts")
    rows = future_features(timed, 3, "price", ["max"], by="key")
    graph = task_graph(rows)
    n_inputs = sum(str(key[0]).startswith("frompandas") for key in graph)
    assert n_inputs == n_parts
    per_scan = (len(graph) - n_inputs) / 3 / n_parts
    # per partition and scan: summary, state (+ blocks), kernel, and the recomputed copies of the
    # earlier steps' kernels that the summary reads (none for dedup on data in the graph)
    assert 2 <= per_scan <= 6
    assert graph_depth(rows) <= 4 * math.log2(n_parts) + 30


def test_graph_depth_of_a_chain():
    value = dask.delayed(0)
    for _ in range(50):
        value = dask.delayed(operator.add)(value, 1)
    assert graph_depth(value) == 50


def test_forward_scans_need_only_earlier_partitions():
    """dedup then a time lookahead: the output partition p reads input partitions <= p only."""
    _, ddf = ticks(400, 40)
    out = future_features(drop_consecutive_duplicates(ddf, subset=["price"], by="key"), "3s", "price",
                          ["max"], by="key", time="ts")
    graph = task_graph(out)
    keys = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("future-features-")
            and "-summary-" not in k[0] and "-state-" not in k[0]]
    for key in keys:
        seen, todo = set(), [key]
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo += list(graph[k].dependencies)
        reads = {k[1] for k in seen if str(k[0]).startswith("frompandas")}
        assert max(reads) == key[1]


def test_map_lookahead_time_horizon_matches_pandas_over_partitionings():
    """map_lookahead with a time horizon uses the backward scan's time branch."""
    pdf, _ = ticks(120, 1)
    pdf = pdf.set_index("ts")

    def window_sum(frame, n_own):  # price summed over (t, t + 5s], all keys
        t = frame.index.to_numpy()
        csum = np.concatenate([[0.0], np.cumsum(frame["price"].to_numpy())])
        lo = np.searchsorted(t, t[:n_own], side="right")
        hi = np.searchsorted(t, t[:n_own] + np.timedelta64(5, "s"), side="right")
        return pd.Series(csum[hi] - csum[lo], index=frame.index[:n_own], name="s")

    expected = window_sum(pdf, len(pdf))
    for n_parts in (1, 7, 40, 120):
        ddf = dd.from_pandas(pdf, npartitions=n_parts, sort=True)
        got = map_lookahead(ddf, window_sum, "5s").compute()
        pd.testing.assert_series_equal(got, expected)


def test_dask_order_holds_few_partitions(tmp_path):
    """Parquet -> dedup -> time lookahead -> Parquet: in the order Dask runs the tasks, only a few
    partition-sized results are alive at once (the summaries read their own copy of a partition,
    so the shallow scans do not keep every partition until its kernel). This is the default
    policy (recompute); with ``dask-flows.scan.hold-partitions`` the partitions may all be held."""
    assert not hold_partitions()
    pdf, _ = ticks(3200, 1)
    for i in range(32):
        pdf.iloc[i * 100:(i + 1) * 100].to_parquet(tmp_path / f"part-{i:02d}.parquet")
    ddf = dd.read_parquet(tmp_path)
    assert ddf.npartitions == 32
    out = future_features(drop_consecutive_duplicates(ddf, subset=["price"], by="key"), "3s", "price",
                          ["max"], by="key", time="ts")
    graph = task_graph(out.to_parquet(tmp_path / "out", compute=False))
    priority = dask.order.order(graph)
    dependents = {key: set() for key in graph}
    for key, node in graph.items():
        for dep in node.dependencies:
            dependents[dep].add(key)

    def partition_sized(key):
        name = str(key[0]) if isinstance(key, tuple) else str(key)
        return (name.startswith(("read", "recompute", "fused"))
                or name.rsplit("-", 1)[0] in ("dedup", "future-features"))

    assert sum(map(partition_sized, graph)) >= 4 * 32
    alive, done, peak = set(), set(), 0
    for key in sorted(graph, key=priority.__getitem__):
        done.add(key)
        alive |= {key} if partition_sized(key) else set()
        alive -= {d for d in graph[key].dependencies if dependents[d] <= done}
        peak = max(peak, len(alive))
    assert peak <= 4
