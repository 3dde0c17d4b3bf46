"""Benchmark: the table flow's graph at many partitions (build time, tasks, depth) and wall time.

The flow is :func:`pipelines.dedup.drop_consecutive_duplicates` (subset price; by symbol), then
:func:`pipelines.lookahead.future_features` (30 s; change, max; by symbol; time ts), then the
summary :func:`pipelines.summary.moments` of ``price_change_30s`` per symbol, on
``dd.from_pandas(ticks, npartitions=P)`` of ``--rows-per-partition`` rows per partition (one tick
per second, 4 symbols, prices in {0, 1, 2} so that dedup drops rows).

1. **Graph**, for each P of ``--sizes``: the seconds to build the lazy collections, the seconds
   to build the task graph ``dask.compute`` would submit (:func:`pipelines.partitions.task_graph`:
   optimize, then materialize; of which ``from_pandas`` alone, dask's own cost of slicing the
   input, is shown separately), the number of tasks, and the longest dependency chain
   (:func:`pipelines.partitions.graph_depth`) against the target ``4 log2 P + 30``. Target: at
   10,000 partitions the whole flow's graph builds in <= 10 s.
2. **Wall time**, for each P of ``--wall-sizes``, on a ``LocalCluster`` (``--workers`` processes
   x 1 thread; start-up not timed): the flow written with ``to_parquet`` and its summary computed
   in the same ``dask.compute``, against dask's own ``map_partitions`` (a column added) ->
   ``to_parquet`` over the same partitions. Target: within 3x.

Example::

    python benchmarks/bench_scale.py                                   # 1k/10k/100k; 1k, 4k wall
    python benchmarks/bench_scale.py --sizes 100,1000 --wall-sizes 200  # a quick check
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.dedup import drop_consecutive_duplicates  # noqa: E402
from pipelines.lookahead import future_features  # noqa: E402
from pipelines.partitions import graph_depth, task_graph  # noqa: E402
from pipelines.summary import moments  # noqa: E402


def ticks(n_partitions: int, rows_per_partition: int, seed: int = 0) -> dd.DataFrame:
    """One tick a second, 4 symbols, prices in {0, 1, 2}, as ``n_partitions`` partitions."""
    n = n_partitions * rows_per_partition
    rng = np.random.default_rng(seed)
    pdf = pd.DataFrame({
        "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
        "symbol": rng.choice(["A", "B", "C", "D"], n),
        "price": rng.integers(0, 3, n).astype(np.float64),
    })
    return dd.from_pandas(pdf, npartitions=n_partitions, sort=False)


def flow(ddf: dd.DataFrame) -> tuple[dd.DataFrame, object]:
    """The table flow's steps and its summary, lazily."""
    deduped = drop_consecutive_duplicates(ddf, subset=["price"], by="symbol")
    features = future_features(deduped, "30s", "price", ["change", "max"], by="symbol", time="ts")
    return features, moments(features, columns=["price_change_30s"], by="symbol")


def bench_graph(n_partitions: int, rows_per_partition: int) -> dict[str, float]:
    ddf = ticks(n_partitions, rows_per_partition)
    started = time.perf_counter()
    task_graph(ddf)
    input_seconds = time.perf_counter() - started
    started = time.perf_counter()
    features, summary = flow(ddf)
    lazy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    graph = task_graph(features, summary)
    graph_seconds = time.perf_counter() - started
    return {
        "P": n_partitions, "lazy_s": lazy_seconds, "graph_s": graph_seconds,
        "input_s": input_seconds, "tasks": len(graph), "depth": graph_depth(features, summary),
        "target_depth": 4 * math.log2(n_partitions) + 30,
    }


def _add_column(part: pd.DataFrame) -> pd.DataFrame:
    return part.assign(price_change=part["price"] * 2.0)


def bench_wall(n_partitions: int, rows_per_partition: int, workers: int) -> dict[str, float]:
    from distributed import Client, LocalCluster

    ddf = ticks(n_partitions, rows_per_partition)
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster):
            started = time.perf_counter()
            ddf.map_partitions(_add_column).to_parquet(folder / "dask", write_index=False)
            dask_seconds = time.perf_counter() - started
            started = time.perf_counter()
            features, summary = flow(ddf)
            write = features.to_parquet(folder / "ours", write_index=False, compute=False)
            dask.compute(write, summary)
            ours_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"P": n_partitions, "ours_s": ours_seconds, "dask_s": dask_seconds,
            "ratio": ours_seconds / dask_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="partition counts, graph")
    parser.add_argument("--wall-sizes", default="1000,4000", help="partition counts, wall time")
    parser.add_argument("--rows-per-partition", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    wall_sizes = [int(s) for s in args.wall_sizes.split(",") if s]

    print("| P | lazy s | graph s (of which from_pandas) | tasks | tasks / P | depth | target |")
    print("|---|---|---|---|---|---|---|")
    for n_partitions in sizes:
        r = bench_graph(n_partitions, args.rows_per_partition)
        print(f"| {r['P']:,} | {r['lazy_s']:.3f} | {r['graph_s']:.2f} ({r['input_s']:.2f}) | "
              f"{r['tasks']:,} | {r['tasks'] / r['P']:.1f} | {r['depth']} | "
              f"{r['target_depth']:.0f} |", flush=True)
    if wall_sizes:
        print(f"\n| P | ours s | dask map_partitions -> to_parquet s | ratio (target <= 3) |")
        print("|---|---|---|---|")
    for n_partitions in wall_sizes:
        r = bench_wall(n_partitions, args.rows_per_partition, args.workers)
        print(f"| {r['P']:,} | {r['ours_s']:.2f} | {r['dask_s']:.2f} | {r['ratio']:.2f}x |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
