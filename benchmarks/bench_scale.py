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
3. **The compare grid's task graph** (``--grid-n``, default 20,000 matrices; ``--grid-tile``,
   default 256: 79 blocks, 3,160 tiles; ``--grid-n 0`` skips it). The executor
   (:func:`flows.grid_executor.run_tiles`) submits its tasks as it builds them, so the build is
   timed without running anything as: :func:`pipelines.grid.plan_grid`, then ``run_tiles``'s own
   task construction with its runner swapped for one that only builds the tasks (the local
   scheduler's ``dask.delayed`` path, never computed). The scheduler's memory for that many tasks:
   stand-in tasks of the same keys, count and dependencies (a tile on its two blocks, a top-k
   merge on its tiles), each block task carrying its ``--grid-tile`` matrices of
   ``--grid-matrix-shape`` as the real one does, are submitted to a ``SubprocessCluster``
   (scheduler in its own process, ``--workers`` x 1 thread); the scheduler process's RSS is
   read before, once all are submitted, and once all are done (futures still held), and the
   wall time from the first submit to the last result gives the per-task overhead.
4. **The scheduler's cost per task** (``--overhead-tasks``, default 5,000; 0 skips it): that many
   independent trivial tasks on a ``LocalCluster`` (time per task), and a chain of a tenth as
   many dependent ones (time per hop of a critical path).

Example::

    python benchmarks/bench_scale.py                                   # 1k/10k/100k; 1k, 4k wall
    python benchmarks/bench_scale.py --sizes 100,1000 --wall-sizes 200  # a quick check
    python benchmarks/bench_scale.py --sizes 10000 --wall-sizes "" --grid-n 0   # graph only
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


# ----------------------------------------------------------------------------------------------
# the compare grid's task graph


def grid_graph(n: int, tile: int, top_k: int | None,
               arrays: list[np.ndarray]) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Plan and build the grid's tasks without running them: timings, and each task's key with
    the keys it depends on (in submission order)."""
    from unittest import mock

    from flows import grid_executor
    from flows.grid_store import MemorySink
    from pipelines.compare import fft_length
    from pipelines.grid import GridSpec, plan_grid

    built: list[object] = []

    class BuildOnly(grid_executor._Runner):
        """The executor's runner on the local scheduler's path, keeping the tasks unrun."""

        def __init__(self, client: object, gpu: bool, progress: bool = False) -> None:
            super().__init__(None, gpu, progress)

        def gather(self, tasks: list[object]) -> list[object]:
            built.extend(tasks)
            return [None] * len(tasks)

    # all_pairs' default comparison on CPU: the full cross-correlation in float32
    spec = GridSpec(nfft=fft_length(arrays[0].shape[1]), dtype="float32", device="cpu", top_k=top_k)
    started = time.perf_counter()
    plan = plan_grid(n, tile, spec.symmetric)
    plan_seconds = time.perf_counter() - started
    with mock.patch.object(grid_executor, "_Runner", BuildOnly):
        started = time.perf_counter()
        grid_executor.run_tiles(plan, set(), arrays, spec, MemorySink())
        build_seconds = time.perf_counter() - started
    graph = task_graph(*built)
    dependencies = {str(key): sorted(str(d) for d in node.dependencies if d in graph)
                    for key, node in graph.items()}
    return {"n": n, "tile": tile, "tiles": len(plan), "plan_s": plan_seconds,
            "build_s": build_seconds}, dependencies


def _stand_in(*inputs: object) -> int:
    return 0


def _scheduler_rss(dask_scheduler: object = None) -> int:
    import psutil

    return psutil.Process().memory_info().rss


def grid_scheduler(dependencies: dict[str, list[str]], arrays: list[np.ndarray], tile: int,
                   workers: int) -> dict[str, float]:
    """Stand-in tasks of the grid's shape on a cluster: the scheduler's RSS and the wall time."""
    from distributed import Client, wait
    from distributed.deploy.subprocess import SubprocessCluster

    order = sorted(dependencies, key=lambda k: (len(dependencies[k]) > 0, "merge" in k))
    with SubprocessCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0"
                           ) as cluster, Client(cluster) as client:
        client.submit(_stand_in, key="warm-up").result()
        before = client.run_on_scheduler(_scheduler_rss)
        started = time.perf_counter()
        futures: dict[str, object] = {}
        for key in order:
            payload = ()
            if key.startswith("compare-block-"):  # the block's matrices travel in its task
                block = int(key.split("-")[2])
                payload = (arrays[block * tile:(block + 1) * tile],)
            futures[key] = client.submit(_stand_in, *[futures[d] for d in dependencies[key]],
                                         *payload, key=key, pure=False)
        submitted = client.run_on_scheduler(_scheduler_rss)
        wait(list(futures.values()))
        seconds = time.perf_counter() - started
        done = client.run_on_scheduler(_scheduler_rss)
    return {"tasks": len(futures), "rss_before": before, "rss_submitted": submitted,
            "rss_done": done, "seconds": seconds}


def bench_grid(n: int, tile: int, top_k: int | None, matrix_shape: tuple[int, int],
               workers: int) -> None:
    arrays = [np.zeros(matrix_shape) for _ in range(n)]
    r, dependencies = grid_graph(n, tile, top_k, arrays)
    edges = sum(len(d) for d in dependencies.values())
    print(f"\ncompare grid: N = {n:,}, tile {tile}, top_k {top_k}: {r['tiles']:,} tiles, "
          f"{len(dependencies):,} tasks, {edges:,} dependencies; plan {r['plan_s']:.3f} s, "
          f"task construction (run_tiles, not run) {r['build_s']:.2f} s", flush=True)
    m = grid_scheduler(dependencies, arrays, tile, workers)
    mib = 2**20
    payload = n * arrays[0].nbytes
    print(f"scheduler RSS: {m['rss_before'] / mib:.0f} MiB before, "
          f"{m['rss_submitted'] / mib:.0f} MiB with {m['tasks']:,} stand-in tasks submitted, "
          f"{m['rss_done'] / mib:.0f} MiB when all done (futures held): "
          f"{(m['rss_done'] - m['rss_before']) / m['tasks'] / 1024:.1f} KiB per task, "
          f"matrices in the block tasks {payload / mib:.1f} MiB; wall {m['seconds']:.2f} s on "
          f"{workers} workers = {m['seconds'] / m['tasks'] * 1e3:.2f} ms per task", flush=True)


def bench_overhead(tasks: int, workers: int) -> None:
    """The scheduler's cost per trivial task: ``tasks`` independent ones (throughput), and a
    chain of ``tasks // 10`` dependent ones (latency of one hop: task done -> next one started)."""
    from distributed import Client, LocalCluster, wait

    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.submit(_stand_in, key="warm-up").result()
        started = time.perf_counter()
        wait(client.map(_stand_in, range(tasks), pure=False))
        independent = (time.perf_counter() - started) / tasks
        started = time.perf_counter()
        chain = client.submit(_stand_in, pure=False)
        for _ in range(tasks // 10 - 1):
            chain = client.submit(_stand_in, chain, pure=False)
        chain.result()
        hop = (time.perf_counter() - started) / (tasks // 10)
    print(f"\nscheduler overhead ({workers} workers x 1 thread): {independent * 1e6:.0f} us per "
          f"independent trivial task ({tasks:,} tasks), {hop * 1e6:.0f} us per hop of a chain of "
          f"{tasks // 10:,} dependent ones", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="partition counts, graph")
    parser.add_argument("--wall-sizes", default="1000,4000", help="partition counts, wall time")
    parser.add_argument("--rows-per-partition", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grid-n", type=int, default=20_000, help="matrices (0: no grid)")
    parser.add_argument("--grid-tile", type=int, default=256)
    parser.add_argument("--grid-top-k", type=int, default=None, help="add the top-k merges")
    parser.add_argument("--grid-matrix-shape", default="4x16",
                        help="rows x columns of the stand-in float64 matrices of the blocks")
    parser.add_argument("--overhead-tasks", type=int, default=5000,
                        help="trivial tasks timed for the scheduler's per-task cost (0: skip)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    wall_sizes = [int(s) for s in args.wall_sizes.split(",") if s]

    if sizes:
        print("| P | lazy s | graph s (of which from_pandas) | tasks | tasks / P | depth "
              "| target |")
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
    if args.grid_n:
        shape = tuple(int(x) for x in args.grid_matrix_shape.lower().split("x"))
        bench_grid(args.grid_n, args.grid_tile, args.grid_top_k, shape, args.workers)
    if args.overhead_tasks >= 10:
        bench_overhead(args.overhead_tasks, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
