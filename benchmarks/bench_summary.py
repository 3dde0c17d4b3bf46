"""Benchmark: pipelines.summary.summarize against Dask's own reductions and single-process NumPy.

The data (``--rows`` x ``--columns`` float64, ``1e9 + N(0, 1)``, ``N(0, 1)``, ``U(0, 1)``,
``Exp(1)``, ... in turn) is generated on a distributed ``LocalCluster`` and persisted before
timing, so every timing is of the reduction alone. Each contender is run once untimed, then
``--repeats`` times; medians are printed with ratios against our summary.

- ``summarize``: our count/mean/std/var/min/max (one tree reduction).
- ``dask mean+std``: ``dask.compute(df.mean(), df.std())``; the target is <= 1.3x this.
- ``dask 5 stats``: ``dask.compute(df.count(), df.mean(), df.std(), df.min(), df.max())``,
  the same statistics as ours.
- ``dask describe``: ``df.describe()`` (adds quantiles, so it does more).
- ``one-pass floor``: ``df.sum()``, a bare one-pass per-partition reduction (one sum per
  column and partition, then a tiny tree) on the same persisted data and cluster: the floor for any
  one-pass reduction. Printed as our time / its time.
- ``numpy``: the same statistics on the same data in this process (one thread of work).

No repeat is served from a result still held from the previous one: each run (the untimed warm-up
included) uses its own ``split_every`` (``--split-every`` + 0, 1, 2, ...: other task keys, the
same tree depth for the default 50 partitions), and starts only once the scheduler holds nothing
but the persisted data. A run under 10% of its contender's median is flagged ``SUSPICIOUS``.

Example::

    python benchmarks/bench_summary.py                # 50 M rows x 4 columns
    python benchmarks/bench_summary.py --rows 5e6     # quick check
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.summary import summarize  # noqa: E402


def make_partition(index: int, rows: int, n_columns: int, nan_fraction: float, seed: int) -> pd.DataFrame:
    """Partition ``index`` of the benchmark data (deterministic in ``seed`` and ``index``)."""
    rng = np.random.default_rng([seed, index])
    data = {}
    for c in range(n_columns):
        kind = c % 4
        if kind == 0:
            values = 1e9 + rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            values = rng.normal(0.0, 1.0, rows)
        elif kind == 2:
            values = rng.uniform(0.0, 1.0, rows)
        else:
            values = rng.exponential(1.0, rows)
        if nan_fraction > 0:
            values[rng.random(rows) < nan_fraction] = np.nan
        data[f"c{c}"] = values
    return pd.DataFrame(data)


def partition_sizes(rows: int, partition_rows: int) -> list[int]:
    n = max(1, -(-rows // partition_rows))
    base, extra = divmod(rows, n)
    return [base + (i < extra) for i in range(n)]


def numpy_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """count, mean, std (ddof=1), min, max per column with NumPy (NaN-aware)."""
    out = {}
    for name in frame.columns:
        x = frame[name].to_numpy()
        out[name] = {
            "count": int(np.count_nonzero(~np.isnan(x))),
            "mean": float(np.nanmean(x)),
            "std": float(np.nanstd(x, ddof=1)),
            "min": float(np.nanmin(x)),
            "max": float(np.nanmax(x)),
        }
    return pd.DataFrame(out).T


def _scheduler_tasks(dask_scheduler: object) -> int:
    return len(dask_scheduler.tasks)  # type: ignore[attr-defined]


def wait_until_only(client: object | None, held: int, timeout: float = 10.0) -> None:
    """Wait until the scheduler holds ``held`` tasks (the persisted data) and no leftovers."""
    deadline = time.monotonic() + timeout
    while client is not None and time.monotonic() < deadline:
        if client.run_on_scheduler(_scheduler_tasks) <= held:  # type: ignore[attr-defined]
            return
        time.sleep(0.05)


def timed(
    run: Callable[[int], object], repeats: int, client: object | None = None, held: int = 0
) -> tuple[float, list[float], object]:
    """Median seconds of ``repeats`` runs of ``run(salt)`` after an untimed one; every run gets
    its own ``salt`` (so its own graph) and starts once the scheduler holds only ``held`` tasks."""
    wait_until_only(client, held)
    result = run(0)  # warm-up, untimed
    times = []
    for salt in range(1, repeats + 1):
        wait_until_only(client, held)
        start = time.perf_counter()
        result = run(salt)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def report(name: str, median: float, times: list[float]) -> None:
    """One contender's line, and a warning for any run under 10% of the median."""
    print(f"  {name:<15} {median:8.3f} s   runs {['%.3f' % t for t in times]}")
    flagged = [f"{t:.3f}" for t in times if t < 0.1 * median]
    if flagged:
        print(f"  SUSPICIOUS {name}: run(s) under 10% of the median ({', '.join(flagged)} s): a held result?")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=50e6, help="rows in all (default 50e6)")
    parser.add_argument("--columns", type=int, default=4, help="float64 columns (default 4)")
    parser.add_argument("--partition-rows", type=float, default=1e6, help="rows per partition (default 1e6)")
    parser.add_argument("--split-every", type=int, default=8, help="fan-in of our tree (default 8)")
    parser.add_argument("--nan-fraction", type=float, default=0.0, help="share of NaN values (default 0)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-numpy", action="store_true", help="skip the single-process NumPy run")
    return parser.parse_args(argv)


def time_on_cluster(args: argparse.Namespace, sizes: list[int]) -> dict[str, tuple[float, list[float], object]]:
    """Persist the data on a LocalCluster and time every Dask contender on it."""
    from distributed import Client, LocalCluster, wait

    from flows.cluster import worker_environ  # the worker environment dask-flows runs with

    meta = make_partition(0, 0, args.columns, 0.0, args.seed)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}), LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        processes=True,
        dashboard_address=":0",
        memory_limit=0,
    ) as cluster, Client(cluster) as client:
        df = dd.from_map(
            make_partition,
            list(range(len(sizes))),
            sizes,
            meta=meta,
            enforce_metadata=False,
            n_columns=args.columns,
            nan_fraction=args.nan_fraction,
            seed=args.seed,
        )
        df = df.persist()
        wait(df)
        held = client.run_on_scheduler(_scheduler_tasks)  # the persisted partitions

        def every(salt: int) -> int:
            return args.split_every + salt

        contenders: dict[str, Callable[[int], object]] = {
            "summarize": lambda k: summarize(df, split_every=every(k)).compute(),
            "one-pass floor": lambda k: df.sum(split_every=every(k)).compute(),
            "dask mean+std": lambda k: dask.compute(df.mean(split_every=every(k)), df.std(split_every=every(k))),
            "dask 5 stats": lambda k: dask.compute(
                *(getattr(df, stat)(split_every=every(k)) for stat in ("count", "mean", "std", "min", "max"))
            ),
            "dask describe": lambda k: df.describe(split_every=every(k)).compute(),
        }
        results: dict[str, tuple[float, list[float], object]] = {}
        for name, run in contenders.items():
            results[name] = timed(run, args.repeats, client, held)
            report(name, *results[name][:2])
        client.cancel(df)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows, partition_rows = int(args.rows), int(args.partition_rows)
    sizes = partition_sizes(rows, partition_rows)
    print(
        f"{rows:,} rows x {args.columns} columns, {len(sizes)} partitions, NaN share {args.nan_fraction}, "
        f"{args.workers} workers x {args.threads_per_worker} threads, median of {args.repeats}"
    )
    results = time_on_cluster(args, sizes)
    if not args.skip_numpy:
        local = pd.concat(
            [make_partition(i, n, args.columns, args.nan_fraction, args.seed) for i, n in enumerate(sizes)],
            ignore_index=True,
        )
        results["numpy"] = timed(lambda _: numpy_stats(local), args.repeats)
        report("numpy", *results["numpy"][:2])
        reference = results["numpy"][2]
        ours = results["summarize"][2]
        dask_std = results["dask mean+std"][2][1]
        std = reference["std"]
        ours_err = max(abs(ours.loc[c, "std"] - std[c]) / std[c] for c in local.columns)
        dask_err = max(abs(dask_std[c] - std[c]) / std[c] for c in local.columns)
        print(f"  largest std difference from numpy: ours {ours_err:.1e}, dask's .std() {dask_err:.1e}")

    ours_time = results["summarize"][0]
    print(
        f"summarize / one-pass floor (df.sum on the same data and cluster): "
        f"{ours_time / results['one-pass floor'][0]:.2f}x"
    )
    print("ratios (our summarize time / theirs; target <= 1.3 against dask mean+std):")
    for name, (median, _, _) in results.items():
        if name != "summarize":
            print(f"  vs {name:<14} {ours_time / median:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
