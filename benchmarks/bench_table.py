"""Benchmark of the table flow's steps: Parquet -> dedup -> lookahead (30 s) -> Parquet.

Synthetic ticks (default 20 M rows): 10 symbols, each ticking at irregular times (exponential
gaps, mean 1 s per symbol, so the merged stream is sorted by ``ts`` and ~10 rows/s), runs of
consecutive duplicates (a tick repeats its symbol's previous ``price``/``size`` with probability
0.3, and random-walk steps of zero add more), and a few NaN prices (also in runs). Columns:
``ts`` (datetime64[us], sorted, rare duplicates), ``symbol`` (str), ``price`` (float64, 0.01
ticks), ``size`` (float64). Written once to ``--data`` as many Parquet files with several row
groups each, reused while the parameters match (``_bench.json``).

Every method does the same work, timed from reading the Parquet files to having written the
result, and read from a warm page cache:

1. dask-flows: a distributed ``LocalCluster`` (2 worker processes x 1 thread), ``dd.read_parquet``
   (one partition per file), :func:`pipelines.dedup.drop_consecutive_duplicates` (subset
   price, size; by symbol), :func:`pipelines.lookahead.future_features` (30 s; change, max, min;
   by symbol; time ts), ``to_parquet``. Cluster start-up is not timed. A fresh cluster per repeat;
   each worker's RSS is sampled every 20 ms during the run (a thread started with ``client.run``),
   and its peak is reported with the idle RSS before the run and the partition size.
2. pandas: one process. ``pd.read_parquet``; the dedup and the lookahead are a **straightforward
   pandas version written here** (not the ``pipelines`` functions): dedup by
   ``groupby(symbol).shift(1)`` and a NaN-aware comparison; lookahead by a stable sort on
   (symbol, time), window bounds ``t < t' <= t + 30s`` by ``searchsorted`` and pandas ``rolling``
   with a ``BaseIndexer`` for max/min, "future" = the last row of the window (own value when
   empty), incomplete windows (``t + 30s`` after the last time) NaN. ``to_parquet``.
3. Pool: the seed's ``multiprocessing.Pool`` recipe with 2 processes: the parent reads everything,
   splits it into ``--pool-chunks`` chunks, adds to each the rows up to 30 s after its last row,
   the workers dedup and compute the features on their chunk (the pandas functions of 2.) and
   return their own rows, and the parent concatenates, drops the duplicates at the end (the first
   row of each symbol in a chunk could not be compared inside the chunk), marks the windows that
   run past the deduplicated data's last time incomplete (the workers only knew the raw last time)
   and writes one file.
   Chunks are pickled to the workers, as that recipe does.
4. Polars (all cores): ``pl.read_parquet``, dedup by ``shift(1).over(symbol)`` with
   ``eq_missing``, lookahead by ``Expr.rolling(index_column=ts, period=30s, offset=0s,
   closed=right).over(symbol)`` (the forward window ``(t, t + 30s]`` directly; ``last`` for the
   future value, ``len`` for empty windows), ``write_parquet``. All three features are exact.

Methods 2-4 run in a fresh child process each repeat (so their peak RSS is their own). Afterwards
(``--no-check`` skips it) the outputs of 1, 3 and 4 are compared with pandas' (same rows; max/min
identical, change to 1e-12 relative, same NaN pattern).

Prints rows/s (input rows / wall time) per method, the median of ``--repeat`` runs, the ratios
against pandas and Pool, the peak RSS per worker and the partition size.

    python benchmarks/bench_table.py                  # 20 M rows
    python benchmarks/bench_table.py --rows 2000000   # smaller
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

try:  # the steps under test; lookahead.py may still be in the works
    from pipelines.dedup import drop_consecutive_duplicates
    from pipelines.lookahead import future_features
except ImportError as error:  # pragma: no cover - only while a step is missing
    drop_consecutive_duplicates = future_features = None  # type: ignore[assignment]
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

HORIZON = "30s"
SUBSET = ["price", "size"]
KEY = "symbol"
TIME = "ts"
COLUMNS = ["price"]
FEATURES = ["change", "max", "min"]
NEW = [f"price_{f}_{HORIZON}" for f in FEATURES]


# ----------------------------------------------------------------------------------------------
# data


def generate(path: Path, rows: int, symbols: int, file_rows: int, row_group_rows: int,
             seed: int) -> None:
    """Write the synthetic ticks to ``path/part-NNNNN.parquet`` (skipped if already there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    params = dict(rows=rows, symbols=symbols, file_rows=file_rows,
                  row_group_rows=row_group_rows, seed=seed, version=1)
    stamp = path / "_bench.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = np.array([f"SYM{i:02d}" for i in range(symbols)], dtype=object)
    sizes = np.array([100.0, 200.0, 300.0, 500.0, 1000.0])
    last_ticks = rng.integers(5_000, 20_000, symbols)
    last_size = np.full(symbols, 100.0)
    last_nan = np.zeros(symbols, dtype=bool)
    t_us = 1_704_067_200 * 10**6  # 2024-01-01 in microseconds
    start = time.perf_counter()
    for number, first in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - first)
        # merged stream of `symbols` Poisson processes of rate 1/s: gaps ~ Exp(1/symbols s)
        ts = t_us + np.cumsum(np.rint(rng.exponential(1e6 / symbols, n))).astype(np.int64)
        t_us = int(ts[-1])
        sym = rng.integers(0, symbols, n)
        repeat = rng.random(n) < 0.3
        price = np.empty(n)
        size = np.empty(n)
        for s in range(symbols):
            idx = np.flatnonzero(sym == s)
            m = len(idx)
            if m == 0:
                continue
            rep = repeat[idx]
            steps = rng.integers(-2, 3, m)
            steps[rep] = 0
            ticks = last_ticks[s] + np.cumsum(steps)
            src = np.maximum.accumulate(np.where(rep, -1, np.arange(m)))  # last fresh tick
            new_size = sizes[rng.integers(0, len(sizes), m)]
            new_nan = rng.random(m) < 0.002
            size_s = np.where(src >= 0, new_size[np.maximum(src, 0)], last_size[s])
            nan_s = np.where(src >= 0, new_nan[np.maximum(src, 0)], last_nan[s])
            price[idx] = np.where(nan_s, np.nan, ticks / 100.0)
            size[idx] = size_s
            last_ticks[s], last_size[s], last_nan[s] = ticks[-1], size_s[-1], nan_s[-1]
        table = pa.table({
            TIME: pa.array(ts.astype("datetime64[us]")),
            KEY: pa.array(names[sym], type=pa.string()),
            "price": pa.array(price, from_pandas=True),  # NaN stored as null
            "size": pa.array(size),
        })
        pq.write_table(table, path / f"part-{number:05d}.parquet", row_group_size=row_group_rows)
    stamp.write_text(json.dumps(params))
    print(f"generated {rows:,} rows in {len(list(path.glob('*.parquet')))} files "
          f"({time.perf_counter() - start:.1f} s) at {path}", flush=True)


def parquet_files(path: Path) -> list[str]:
    return sorted(glob.glob(str(path / "*.parquet")))


def read_pandas(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(parquet_files(path)).to_pandas()


# ----------------------------------------------------------------------------------------------
# the straightforward pandas version (baseline 2, and the work of the Pool recipe's workers)


def pandas_dedup(df: pd.DataFrame) -> pd.DataFrame:
    """Drop rows whose price and size equal the previous row of the same symbol (NaN == NaN)."""
    grouped = df.groupby(KEY, sort=False, dropna=False)
    prev = grouped[SUBSET].shift(1)
    cur = df[SUBSET]
    same = ((cur == prev) | (cur.isna() & prev.isna())).all(axis=1)
    duplicate = same & (grouped.cumcount() > 0)
    return df[~duplicate.to_numpy()]


class _Window(BaseIndexer):
    """Rolling windows given as explicit [start, end) bounds."""

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        super().__init__()
        self.start, self.end = start, end

    def get_window_bounds(self, num_values=0, min_periods=None, center=None, closed=None,
                          step=None):
        return self.start, self.end


def pandas_lookahead(df: pd.DataFrame, last_time: Any = None) -> pd.DataFrame:
    """Add price_{change,max,min}_30s over the window t < t' <= t + 30s of the same symbol."""
    n = len(df)
    out = df.copy()
    if n == 0:
        return out.assign(**{name: np.empty(0) for name in NEW})
    span = pd.Timedelta(HORIZON).value
    t = df[TIME].to_numpy().astype("datetime64[ns]").view(np.int64)
    last = t.max() if last_time is None else pd.Timestamp(last_time).value
    codes, _ = pd.factorize(df[KEY], use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")  # by symbol, then row order (= time order)
    ts = t[order]
    base = ts.min()
    # one sorted key for (symbol, time): symbols far enough apart that no window crosses them
    sort_key = codes[order].astype(np.int64) * (int(ts.max() - base) + 2 * span + 1) + (ts - base)
    start = np.searchsorted(sort_key, sort_key, side="right")  # first row with t' > t
    end = np.searchsorted(sort_key, sort_key + span, side="right")  # past the last t' <= t+30s
    price = df["price"].to_numpy(dtype=np.float64)[order]
    rolling = pd.Series(price).rolling(_Window(start, end))
    future = np.where(end > start, price[np.maximum(end - 1, 0)], price)
    values = {
        "change": future - price,
        "max": rolling.max().to_numpy(),
        "min": rolling.min().to_numpy(),
    }
    incomplete = ts + span > last
    for feature, name in zip(FEATURES, NEW):
        column = np.empty(n)
        column[order] = np.where(incomplete, np.nan, values[feature])
        out[name] = column
    return out


# ----------------------------------------------------------------------------------------------
# the methods; each returns {"seconds": ..., plus extras}


def _rusage_bytes(who: int = resource.RUSAGE_SELF) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux: KiB


def run_pandas(data: Path, out: Path) -> dict[str, Any]:
    phases = {}
    start = time.perf_counter()
    df = read_pandas(data)
    phases["read"] = time.perf_counter() - start
    df = pandas_dedup(df)
    phases["dedup"] = time.perf_counter() - start - sum(phases.values())
    df = pandas_lookahead(df)
    phases["lookahead"] = time.perf_counter() - start - sum(phases.values())
    out.mkdir(parents=True)
    df.to_parquet(out / "part-00000.parquet", index=False)
    phases["write"] = time.perf_counter() - start - sum(phases.values())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": _rusage_bytes(), "phases": phases}


def _pool_task(args: tuple[pd.DataFrame, int, Any]) -> pd.DataFrame:
    chunk, n_own, last_time = args
    chunk = chunk.assign(_pos=np.arange(len(chunk)))
    chunk = pandas_lookahead(pandas_dedup(chunk), last_time)
    own = chunk[chunk["_pos"].to_numpy() < n_own]
    return own.drop(columns="_pos")


def run_pool(data: Path, out: Path, processes: int, chunks: int) -> dict[str, Any]:
    start = time.perf_counter()
    with mp.get_context("fork").Pool(processes) as pool:
        df = read_pandas(data)
        t = df[TIME].to_numpy()
        last_time = t[-1] if len(t) else None
        bounds = np.linspace(0, len(df), chunks + 1).astype(int)
        tasks = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b <= a:
                continue
            # the extra future rows: everything up to 30 s after the chunk's last row
            stop = int(np.searchsorted(t, t[b - 1] + np.timedelta64(30, "s"), side="right"))
            tasks.append((df.iloc[a:stop], b - a, last_time))
        del df
        parts = pool.map(_pool_task, tasks, chunksize=1)
        pool.close()
        pool.join()
    result = pandas_dedup(pd.concat(parts, ignore_index=True))  # duplicates at chunk starts
    # the workers took the raw input's last time; the lookahead's input is the deduplicated
    # one, whose last row may come earlier: windows running past it are incomplete, all NaN
    if len(result):
        late = (result[TIME] + pd.Timedelta(HORIZON) > result[TIME].max()).to_numpy()
        result.loc[late, NEW] = np.nan
    out.mkdir(parents=True)
    result.to_parquet(out / "part-00000.parquet", index=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": _rusage_bytes(),
            "worker_peak_rss": _rusage_bytes(resource.RUSAGE_CHILDREN)}


def run_polars(data: Path, out: Path) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    df = pl.read_parquet(parquet_files(data))
    prev_equal = [pl.col(c).eq_missing(pl.col(c).shift(1).over(KEY)) for c in SUBSET]
    first = pl.int_range(pl.len()).over(KEY) == 0
    df = df.filter(first | ~pl.all_horizontal(prev_equal))
    window = dict(index_column=TIME, period=HORIZON, offset="0s", closed="right")
    price = pl.col("price")
    n_window = pl.len().rolling(**window).over(KEY)
    future = pl.when(n_window > 0).then(price.last().rolling(**window).over(KEY)).otherwise(price)
    last_time = df[TIME].max()
    incomplete = pl.col(TIME) + pl.duration(seconds=30) > last_time
    exprs = {
        NEW[0]: future - price,
        NEW[1]: price.max().rolling(**window).over(KEY),
        NEW[2]: price.min().rolling(**window).over(KEY),
    }
    df = df.with_columns(
        **{name: pl.when(incomplete).then(None).otherwise(e).cast(pl.Float64)
           for name, e in exprs.items()}
    )
    out.mkdir(parents=True)
    df.write_parquet(out / "part-00000.parquet")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": _rusage_bytes(), "threads": pl.thread_pool_size()}


def _child(queue: Any, name: str, kwargs: dict[str, Any]) -> None:
    try:
        queue.put(("ok", globals()[name](**kwargs)))
    except BaseException as error:  # report, don't hang the parent
        queue.put(("error", f"{type(error).__name__}: {error}"))


def in_child(name: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``name(**kwargs)`` in a fresh (spawned) process; its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, name, kwargs))
    process.start()
    status, result = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{name}: {result}")
    return result


def _start_sampler(dask_worker: Any, interval: float = 0.02) -> int:
    """On a worker: sample its RSS every ``interval`` s in a thread, until ``_stop_sampler``."""
    import threading

    import psutil

    process = psutil.Process()
    state = {"idle": process.memory_info().rss, "stop": threading.Event()}
    state["peak"] = state["idle"]

    def loop() -> None:
        while not state["stop"].wait(interval):
            state["peak"] = max(state["peak"], process.memory_info().rss)

    state["thread"] = threading.Thread(target=loop, daemon=True)
    state["thread"].start()
    dask_worker._bench_sampler = state
    return state["idle"]


def _stop_sampler(dask_worker: Any) -> tuple[int, int]:
    """On a worker: (RSS before the run, peak RSS sampled during it)."""
    state = dask_worker._bench_sampler
    state["stop"].set()
    state["thread"].join()
    peak = max(state["peak"], __import__("psutil").Process().memory_info().rss)
    return state["idle"], peak


def run_dask(data: Path, out: Path, workers: int) -> dict[str, Any]:
    import logging

    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    if _IMPORT_ERROR is not None:
        raise RuntimeError(f"pipelines steps not importable: {_IMPORT_ERROR}")
    import dask

    from flows.cluster import worker_environ  # the worker environment dask-flows runs with

    t0 = time.perf_counter()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        startup = time.perf_counter() - t0
        client.run(_start_sampler)
        start = time.perf_counter()
        ddf = dd.read_parquet(str(data))
        ddf = drop_consecutive_duplicates(ddf, subset=SUBSET, by=KEY, time=TIME)
        ddf = future_features(ddf, HORIZON, COLUMNS, FEATURES, by=KEY, time=TIME)
        ddf.to_parquet(str(out), write_index=False,
                       name_function=lambda i: f"part-{i:05d}.parquet")
        seconds = time.perf_counter() - start
        memory = list(client.run(_stop_sampler).values())
        memory_limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
    return {"seconds": seconds, "startup": startup,
            "worker_idle_rss": [idle for idle, _ in memory],
            "worker_peak_rss": [peak for _, peak in memory], "memory_limit": memory_limit}


def partition_info(data: Path) -> dict[str, Any]:
    import dask
    import dask.dataframe as dd

    ddf = dd.read_parquet(str(data))
    with dask.config.set(scheduler="sync"):
        first = ddf.partitions[0].compute()
    return {"npartitions": ddf.npartitions, "rows": len(first),
            "bytes": int(first.memory_usage(deep=True).sum())}


# ----------------------------------------------------------------------------------------------
# checking the outputs against pandas'


def check(outputs: dict[str, Path]) -> list[str]:
    reference = read_pandas(outputs["pandas"])
    lines = []
    for method, path in outputs.items():
        if method == "pandas" or not path.exists():
            continue
        other = read_pandas(path)
        problems = []
        if len(other) != len(reference):
            problems.append(f"{len(other):,} rows, pandas {len(reference):,}")
        else:
            for column in [TIME, KEY, *SUBSET]:
                a, b = other[column].to_numpy(), reference[column].to_numpy()
                if not (pd.isna(a) == pd.isna(b)).all() or not (
                        a[~pd.isna(a)] == b[~pd.isna(b)]).all():
                    problems.append(f"column {column} differs")
            for name in NEW:
                a = other[name].to_numpy(dtype=np.float64)
                b = reference[name].to_numpy(dtype=np.float64)
                if not (np.isnan(a) == np.isnan(b)).all():
                    problems.append(f"{name}: NaN pattern differs "
                                    f"({int((np.isnan(a) != np.isnan(b)).sum())} rows)")
                    continue
                ok = ~np.isnan(a)
                if "change" in name:
                    good = np.allclose(a[ok], b[ok], rtol=1e-12, atol=1e-9)
                else:
                    good = np.array_equal(a[ok], b[ok])
                if not good:
                    problems.append(f"{name}: values differ")
        lines.append(f"check {method:<10} " + ("ok: same as pandas" if not problems
                                                 else "MISMATCH: " + "; ".join(problems)))
    return lines


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--files", type=int, default=40,
                        help="number of Parquet files = Dask partitions (default 40: 500k rows "
                             "each at 20 M rows)")
    parser.add_argument("--file-rows", type=int, default=None,
                        help="rows per Parquet file instead of --files")
    parser.add_argument("--row-group-rows", type=int, default=100_000,
                        help="rows per Parquet row group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("bench-data/ticks"))
    parser.add_argument("--out", type=Path, default=None,
                        help="where outputs go (default: <data>-out)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool-chunks", type=int, default=8)
    parser.add_argument("--methods", default="dask,pandas,pool,polars",
                        help="comma-separated subset of dask,pandas,pool,polars")
    parser.add_argument("--no-check", action="store_true",
                        help="skip comparing the outputs with pandas'")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rows < 1 or args.workers < 1:
        parser.error("--repeat, --rows and --workers must be at least 1")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - {"dask", "pandas", "pool", "polars"}
    if unknown:
        parser.error(f"unknown method(s): {', '.join(sorted(unknown))}")
    if "polars" in methods:
        try:
            import polars  # noqa: F401
        except ImportError:
            print("polars not installed: skipping it (pip install polars)")
            methods.remove("polars")

    data = args.data.resolve()
    out_root = (args.out or data.with_name(data.name + "-out")).resolve()
    file_rows = args.file_rows or max(1, -(-args.rows // args.files))
    row_group_rows = min(args.row_group_rows, file_rows)
    generate(data, args.rows, args.symbols, file_rows, row_group_rows, args.seed)
    info = partition_info(data)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"input: {args.rows:,} rows, {info['npartitions']} files/partitions of ~{info['rows']:,}"
          f" rows ({info['bytes'] / 2**20:.1f} MiB in memory each); {os.cpu_count()} cores",
          flush=True)

    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    outputs = {m: out_root / m for m in methods}
    for repeat in range(args.repeat):
        for method in methods:
            if outputs[method].exists():
                shutil.rmtree(outputs[method])
            kwargs: dict[str, Any] = {"data": data, "out": outputs[method]}
            if method == "dask":
                result = run_dask(workers=args.workers, **kwargs)
            elif method == "pool":
                result = in_child("run_pool", processes=args.workers, chunks=args.pool_chunks,
                                  **kwargs)
            else:
                result = in_child(f"run_{method}", **kwargs)
            results[method].append(result)
            print(f"  run {repeat + 1}/{args.repeat} {method:<7} {result['seconds']:8.2f} s",
                  flush=True)

    median = {m: statistics.median(r["seconds"] for r in results[m]) for m in methods}
    print(f"\n{args.rows:,} rows; dedup (subset price,size by symbol) + lookahead ({HORIZON}; "
          f"{', '.join(FEATURES)}; by symbol) + write; median of {args.repeat}")
    print(f"{'method':<10}{'seconds':>10}{'rows/s':>14}{'vs pandas':>11}{'vs Pool':>9}  memory")
    for m in methods:
        rate = args.rows / median[m]
        vs_pandas = f"{median['pandas'] / median[m]:.2f}x" if "pandas" in median else "-"
        vs_pool = f"{median['pool'] / median[m]:.2f}x" if "pool" in median else "-"
        last = results[m][-1]
        if m == "dask":
            peaks = [max(r["worker_peak_rss"][w] for r in results[m])
                     for w in range(len(last["worker_peak_rss"]))]
            idle = max(max(r["worker_idle_rss"]) for r in results[m])
            memory = (f"peak RSS per worker {', '.join(f'{p / 2**20:.0f}' for p in peaks)} MiB "
                      f"(idle before the run <= {idle / 2**20:.0f} MiB; limit "
                      f"{last['memory_limit'] / 2**30:.1f} GiB); cluster start "
                      f"{last['startup']:.1f} s, not timed")
        elif m == "pool":
            memory = (f"peak RSS parent {max(r['peak_rss'] for r in results[m]) / 2**20:.0f} MiB,"
                      f" worker {max(r['worker_peak_rss'] for r in results[m]) / 2**20:.0f} MiB")
        else:
            memory = f"peak RSS {max(r['peak_rss'] for r in results[m]) / 2**20:.0f} MiB"
            if m == "pandas":
                phases = {k: statistics.median(r["phases"][k] for r in results[m])
                          for k in last["phases"]}
                memory += " (" + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()) + ")"
            if m == "polars":
                memory += f", {last['threads']} threads"
        print(f"{m:<10}{median[m]:>10.2f}{rate:>14,.0f}{vs_pandas:>11}{vs_pool:>9}  {memory}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(timings are only meaningful on an otherwise idle machine)")
    print(f"partition size: {info['rows']:,} rows, {info['bytes'] / 2**20:.1f} MiB in memory "
          f"({info['npartitions']} partitions)")
    if not args.no_check and "pandas" in methods:
        for line in check(outputs):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
