"""The scans' memory policy: "recompute" (a copy of each partition per summary) and "hold" (each
partition computed once) give the same results; the table flow chooses between them
(``hold_partitions``), by the input's estimated size against the workers' memory."""

from __future__ import annotations

from collections import Counter

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from dask.utils import key_split
from distributed import Client, LocalCluster, get_task_stream
from reference import reference_drop_consecutive_duplicates as reference_dedup
from reference import reference_future_features
from reference_windows import reference_past_features

import flows
from flows.cli import main
from flows.config import CsvInput, ParquetInput, SyntheticTicks
from flows.sources import TableSource, row_bytes, synthetic_ticks
from flows.table import HOLD_SHARE, cluster_memory, decide_hold
from pipelines.dedup import drop_consecutive_duplicates
from pipelines.lookahead import future_features
from pipelines.lookback import past_features
from pipelines.partitions import HOLD_PARTITIONS, count_scans, hold_partitions, task_graph, with_hold_partitions

IN_PROCESS = {"n_workers": 2, "threads_per_worker": 1, "processes": False}


def ticks(rows: int = 240, seed: int = 5) -> pd.DataFrame:
    """Two keys, repeated and unique times, runs of equal prices, NaN."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-01-02") + pd.to_timedelta(np.sort(rng.integers(0, rows, rows)), unit="s"),
        "key": rng.choice(["a", "b"], rows),
        "price": rng.choice([1.0, 2.0, 3.0, np.nan], rows, p=[0.4, 0.3, 0.2, 0.1]),
    })
    return frame


def split(frame: pd.DataFrame, sizes: list[int]) -> dd.DataFrame:
    """Partitions of exactly ``sizes`` rows (zeros allowed), each a task that reads its rows, so
    the recompute policy has something to recompute (``from_pandas`` data is never copied)."""
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(frame)
    pieces = [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return dd.from_map(lambda piece: piece.copy(), pieces, meta=frame.iloc[:0], enforce_metadata=False)


def partitionings(rows: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(1)
    tiny: list[int] = [0, 0]
    while sum(tiny) < rows:
        tiny.append(min(int(rng.integers(0, 5)), rows - sum(tiny)))
    even = lambda n: [len(p) for p in np.array_split(np.arange(rows), n)]  # noqa: E731
    return {"one": [rows], "many": even(9), "tiny": tiny + [0], "empty ends": [0, *even(4), 0, 0]}


PIPELINES = {
    "dedup -> lookahead": (
        lambda df: future_features(drop_consecutive_duplicates(df, subset=["price"], by="key"), "5s", "price",
                                   ["max", "change"], by="key", time="ts"),
        lambda pdf: reference_future_features(reference_dedup(pdf, subset=["price"], by="key").reset_index(drop=True),
                                              "5s", ["price"], ["max", "change"], by="key", time="ts"),
    ),
    "dedup count": (
        lambda df: drop_consecutive_duplicates(df, subset=["price"], by="key", keep="last", count="run_rows"),
        lambda pdf: reference_dedup(pdf, subset=["price"], by="key", keep="last", count="run_rows"),
    ),
    "lookback": (
        lambda df: past_features(df, 4, "price", ["mean", "max"], by="key", partial=True),
        lambda pdf: reference_past_features(pdf, 4, ["price"], ["mean", "max"], by="key", partial=True),
    ),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_both_policies_equal_the_reference_over_partitionings(name):
    build, reference = PIPELINES[name]
    frame = ticks()
    expected = reference(frame).reset_index(drop=True)
    assert not hold_partitions()  # the default: recompute
    for how, sizes in partitionings(len(frame)).items():
        out = build(split(frame, sizes))
        results = {}
        for hold in (False, True):
            with dask.config.set({HOLD_PARTITIONS: hold}):
                results[hold] = out.compute(scheduler="sync").reset_index(drop=True)
        pd.testing.assert_frame_equal(results[True], results[False], obj=f"{name}, {how}")
        pd.testing.assert_frame_equal(results[True], expected, check_dtype=False, obj=f"{name}, {how}")


def test_hold_builds_no_copies_and_fewer_tasks():
    out = PIPELINES["dedup -> lookahead"][0](split(ticks(), [30] * 8))
    recomputing = task_graph(out)
    with dask.config.set({HOLD_PARTITIONS: True}):
        holding = task_graph(out)
    copies = [k for k in recomputing if str(k[0] if isinstance(k, tuple) else k).startswith("recompute-")]
    assert len(copies) >= 8  # a re-read per dedup summary, a re-read and re-dedup per lookahead one
    assert not [k for k in holding if str(k[0] if isinstance(k, tuple) else k).startswith("recompute-")]
    assert len(holding) == len(recomputing) - len(copies)
    # fixed into the collection, the policy no longer follows the config
    held, = with_hold_partitions(out, hold=True)
    assert set(task_graph(held)) == set(holding)
    with dask.config.set({HOLD_PARTITIONS: True}):
        recomputed, = with_hold_partitions(out, hold=False)
        assert kinds(task_graph(recomputed)) == kinds(recomputing)  # the same tasks (other names)


def kinds(graph) -> Counter:
    """How many tasks of each name prefix."""
    return Counter(map(key_split, graph))


def test_fixing_the_policy_does_not_call_user_functions_again():
    """Fixing the policy rebuilds the expressions above the scans with their metadata: a user
    function of a later ``map_partitions`` is not emulated on the client again."""
    calls = []

    def user(part):
        calls.append(len(part))
        return part

    out = drop_consecutive_duplicates(split(ticks(), [60] * 4), subset=["price"], by="key").map_partitions(user)
    built = len(calls)  # dask ran it once on fake rows to learn its output
    for hold in (False, True):
        fixed, total = with_hold_partitions(out, out.price.sum(), hold=hold)
        task_graph(fixed, total)
        fixed.compute(scheduler="sync")
    assert built >= 1 and len(calls) - built == 4 * 2  # the 4 partitions, twice: nothing else


def test_the_policy_reaches_a_scheduler_in_another_process(dask_processes):
    """Client.compute sends the expression to the scheduler, which builds the tasks there with its
    own config: the policy chosen on the client (by the config, or fixed) is what runs."""
    out = PIPELINES["dedup count"][0](split(ticks(), [40] * 6))
    expected = out.compute(scheduler="sync")
    runs = [("config", {HOLD_PARTITIONS: True}, out), ("default", {}, out),
            ("fixed", {}, with_hold_partitions(out, hold=True)[0])]
    copies = {}
    with Client(dask_processes.address, set_as_default=False) as client:
        assert cluster_memory(client) == 2 * 2 * 2**30  # the workers' --memory-limit 2GiB
        for label, config, collection in runs:
            with get_task_stream(client) as stream, dask.config.set(config):
                pd.testing.assert_frame_equal(client.compute(collection).result(), expected)
            copies[label] = sum("recompute-" in str(task["key"]) for task in stream.data)
    assert copies["config"] == copies["fixed"] == 0 and copies["default"] >= 6


def test_count_scans():
    df = split(ticks(), [60] * 4)
    deduped = drop_consecutive_duplicates(df, subset=["price"], by="key")
    both = future_features(deduped, "5s", "price", ["max"], by="key", time="ts")
    assert [count_scans(df), count_scans(deduped), count_scans(both), count_scans(deduped, both)] == [0, 1, 2, 2]
    counted = drop_consecutive_duplicates(df, subset=["price"], by="key", count="n")
    assert count_scans(counted) >= 2  # run starts, then the run lengths


@pytest.mark.parametrize("n_scans", [0, 1, 3])
def test_decide_hold_at_the_boundary(n_scans):
    cluster = 16 * 2**30
    limit = int(HOLD_SHARE * cluster) // max(1, n_scans)
    assert decide_hold(limit, n_scans, cluster)[0] is True
    hold, reason = decide_hold(limit + 1, n_scans, cluster)
    assert hold is False and reason.startswith("recomputed (est.") and "> 25% of 16.00 GiB" in reason
    assert decide_hold(None, n_scans, cluster) == (False, "recomputed (input size unknown)")
    assert decide_hold(0, n_scans, 0)[0] is True and decide_hold(1, n_scans, 0)[0] is False


def test_estimated_bytes_of_parquet_is_the_footers_sum(tmp_path):
    frame = ticks(3000)
    frame.iloc[:1000].to_parquet(tmp_path / "a.parquet", row_group_size=300)
    frame.iloc[1000:].to_parquet(tmp_path / "b.parquet", row_group_size=700)
    footers = [pq.read_metadata(tmp_path / f) for f in ("a.parquet", "b.parquet")]
    groups = [m.row_group(i) for m in footers for i in range(m.num_row_groups)]
    assert len(groups) == 4 + 3
    source = TableSource.from_config(ParquetInput(format="parquet", path=str(tmp_path)))
    assert source.estimated_bytes() == sum(g.total_byte_size for g in groups) > 0
    only = TableSource.from_config(ParquetInput(format="parquet", path=str(tmp_path), columns=["price"]))
    price = [g.column(j) for g in groups for j in range(g.num_columns) if g.column(j).path_in_schema == "price"]
    assert only.estimated_bytes() == sum(c.total_uncompressed_size for c in price) > 0
    (tmp_path / "c.parquet").write_bytes(b"not parquet")  # a footer that cannot be read: unknown
    assert TableSource.from_config(ParquetInput(format="parquet", path=str(tmp_path))).estimated_bytes() is None


def test_estimated_bytes_of_csv_and_synthetic(tmp_path):
    ticks(100).to_csv(tmp_path / "a.csv", index=False)
    ticks(50).to_csv(tmp_path / "b.csv", index=False)
    source = TableSource.from_config(CsvInput(format="csv", path=str(tmp_path)))
    assert source.estimated_bytes() == sum((tmp_path / f).stat().st_size for f in ("a.csv", "b.csv"))
    config = SyntheticTicks(format="synthetic", rows=5000, npartitions=3)
    estimate = TableSource.from_config(config).estimated_bytes()
    assert estimate == 5000 * row_bytes(synthetic_ticks(config).dtypes)
    actual = synthetic_ticks(config).compute().memory_usage(deep=True, index=False).sum()
    assert actual / 4 < estimate < actual * 4  # an estimate, of the right size


def test_cluster_memory_counts_the_host_for_a_worker_without_a_limit():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, memory_limit=0,
                      dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
        assert cluster_memory(client) == 2 * psutil.virtual_memory().total


def table_config(tmp_path, hold) -> dict:
    return {
        "flow": "table", "cluster": IN_PROCESS, "hold_partitions": hold,
        "input": {"format": "parquet", "path": str(tmp_path / "in"), "time": "ts"},
        "steps": [{"dedup": {"subset": ["price"], "by": "key"}},
                  {"lookahead": {"horizon": "5s", "columns": ["price"], "features": ["max"], "by": "key",
                                 "partial": True}}],
        "output": {"path": str(tmp_path / f"out-{hold}")},
    }


def test_table_flow_output_is_the_same_held_or_recomputed(tmp_path):
    (tmp_path / "in").mkdir()
    frame = ticks(600)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 5)):
        frame.iloc[part].to_parquet(tmp_path / f"in/part-{i}.parquet")
    results = {hold: flows.run(table_config(tmp_path, hold)) for hold in (True, False, "auto")}
    assert results[True].partitions == "held (hold_partitions: true)"
    assert results[False].partitions == "recomputed (hold_partitions: false)"
    assert results["auto"].partitions.startswith("held (est. ") and " x 2 scans <= 25% of " in results["auto"].partitions
    assert "partitions: held (hold_partitions: true)" in repr(results[True]).splitlines()
    files = {hold: sorted(p.name for p in (tmp_path / f"out-{hold}").glob("*.parquet")) for hold in results}
    assert files[True] == files[False] == files["auto"] and len(files[True]) == 5
    for name in files[True]:
        held = pd.read_parquet(tmp_path / f"out-True/{name}")
        pd.testing.assert_frame_equal(held, pd.read_parquet(tmp_path / f"out-False/{name}"))
        pd.testing.assert_frame_equal(held, pd.read_parquet(tmp_path / f"out-auto/{name}"))
    assert [s.rows_out for s in results[True].steps] == [s.rows_out for s in results[False].steps]
    assert sum(s.task_seconds for s in results[True].steps[1:3]) > 0  # the scans' tasks are attributed
    dry = flows.run(table_config(tmp_path, "auto") | {"output": {"path": str(tmp_path / "dry")}}, dry_run=True)
    assert "partitions               auto (decided at run time)" in dry.graph.splitlines()


@pytest.mark.parametrize("value", ["maybe", "yes please", 2])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, capsys, value):
    config = {"flow": "table", "hold_partitions": value, "input": {"format": "synthetic", "rows": 10},
              "output": {"path": str(tmp_path / "out")}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"hold_partitions: {value!r} is not one of" in lines[0]
    assert not (tmp_path / "out").exists()
