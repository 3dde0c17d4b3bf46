"""Benchmark of the table flow's steps: Parquet -> dedup -> lookahead (30 s) -> Parquet.

Synthetic ticks (default 20 M rows, 10 symbols as strings), in one of two shapes (``--shape``):

- ``default``: each symbol ticks at irregular times (exponential gaps, mean 1 s per symbol, so the
  merged stream is sorted by ``ts`` and ~10 rows/s; rare equal times), a tick repeats its
  symbol's previous ``price``/``size`` with probability 0.3 (random-walk steps of zero add more),
  and a few NaN prices (also in runs). ``price`` float64 (0.01 ticks), ``size`` float64.
- ``issue`` (#14's shape): strictly increasing microsecond timestamps with exponential gaps (mean
  0.1 s overall; a symbol drawn at random per row), ``size`` int64 (100..1000), ``price`` **int64
  cents**, a random walk per symbol with ~10% full repeats (price and size equal the symbol's
  previous row), ~20% price-only repeats (same price, another size) and nonzero steps otherwise;
  no NaN.

``ts`` is datetime64[us], ``symbol`` a Parquet string. Two layouts (``--layout``), both written
once under ``--data`` (a folder) and reused while the parameters match (``_bench.json``):

- ``folder``: ``--files`` Parquet files (row groups of ``--row-group-rows``), one partition each;
- ``file``: one Parquet file of ``--files`` row groups; dask-flows splits it into one partition per
  row group (``dd.read_parquet(..., split_row_groups=True)`` on the warm cluster; ``flows.run`` is
  given ``input.blocksize`` = the largest row group's uncompressed size if its config accepts the
  key, which the output says).

Every method does the same work, timed from reading the Parquet files to having written the
result, and read from a warm page cache:

1. ``flows``: dask-flows as a user runs it: ``flows.run(config)`` with ``input: {format: parquet,
   path, time: ts}``, the two steps and ``output``; it starts its own ``LocalCluster`` (the
   default: one worker in the run's process, ``--workers`` threads) and closes it: cluster start
   and stop are timed. Run in a fresh child process (a cold start: compiled kernels loaded from
   their cache, first page faults; the libraries are imported before the clock starts, as for
   Polars); peak RSS of that process. ``flows-processes``:
   the same with ``cluster: {processes: true, n_workers: 2, threads_per_worker: 1}`` (#14's
   "LocalCluster 2 x 1"); the peak RSS of its worker processes is sampled every 20 ms (psutil).
   Both choose the scans' memory policy themselves (``hold_partitions: auto``).
2. ``dask``: the same steps on a warm cluster (2 worker processes x 1 thread) started once (not
   timed; ``--scans hold|recompute``, default hold), warmed by one untimed
   run of the graph on the first input, and kept for all repeats (and sizes of a sweep):
   ``dd.read_parquet`` -> :func:`pipelines.dedup.drop_consecutive_duplicates` (subset price,
   size; by symbol) -> :func:`pipelines.lookahead.future_features` (30 s; change, max, min; by
   symbol; time ts) -> ``to_parquet``. Each repeat writes to its own output path (so its graph
   differs from the previous repeat's: checked, the keys are printed as distinct) and starts only
   once the scheduler holds no task from the previous one. Peak RSS per worker from a sampling
   thread on each worker.
3. ``pandas``: one process. ``pd.read_parquet``; the dedup and the lookahead are a
   **straightforward pandas version written here** (not the ``pipelines`` functions): dedup by
   ``groupby(symbol).shift(1)`` and a NaN-aware comparison; lookahead by a stable sort on
   (symbol, time), window bounds ``t < t' <= t + 30s`` by ``searchsorted`` and pandas ``rolling``
   with a ``BaseIndexer`` for max/min, "future" = the last row of the window (own value when
   empty), incomplete windows (``t + 30s`` after the last time) NaN. ``to_parquet``.
4. ``pool``: the seed's ``multiprocessing.Pool`` recipe with 2 processes: the parent reads
   everything, splits it into ``--pool-chunks`` chunks, adds to each the rows up to 30 s after its
   last row, the workers dedup and compute the features on their chunk (the pandas functions of
   3.) and return their own rows, and the parent concatenates, drops the duplicates at the end (the
   first row of each symbol in a chunk could not be compared inside the chunk), marks the windows
   that run past the deduplicated data's last time incomplete (the workers only knew the raw last
   time) and writes one file. Chunks are pickled to the workers, as that recipe does.
5. ``polars-lazy`` (all cores), the form a Polars user writes: ``pl.scan_parquet`` -> dedup by
   ``shift(1).over(symbol)`` with ``eq_missing`` -> ``Expr.rolling(index_column=ts, period=30s,
   offset=0s, closed=right).over(symbol)`` for change/max/min (the forward window ``(t, t + 30s]``
   directly; ``last`` for the future value, ``len`` for empty windows) -> ``sink_parquet``.
6. ``polars-eager``: the same expressions on ``pl.read_parquet`` -> ``write_parquet``.

Methods 3-6 run in a fresh child process each repeat (so their peak RSS is their own). Afterwards
(``--no-check`` skips it) every output is compared with pandas' (same rows; max/min identical,
change to 1e-12 relative, same NaN pattern).

Prints, per method, the median of ``--repeat`` runs, rows/s, the ratios against pandas and
Polars' lazy form, the peak RSS (per worker for dask-flows) and the partition size.
``--sweep 5e6,10e6,20e6,40e6`` instead times the dask-flows methods (``flows``, ``dask``) at
each size with the same partition size (``--rows`` / ``--files`` rows) and prints the time per row
(not checked against pandas: the reference would need the whole table in memory).

    python benchmarks/bench_table.py --layout folder --shape issue --files 20   # 20 M rows
    python benchmarks/bench_table.py --layout file --shape issue --files 20
    python benchmarks/bench_table.py --rows 200000 --files 4 --repeat 1           # smoke run
    python benchmarks/bench_table.py --sweep 5e6,10e6,20e6,40e6 --methods flows,dask
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
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
METHODS = ["flows", "flows-processes", "dask", "pandas", "pool", "polars-lazy", "polars-eager"]
T0_US = 1_704_067_200 * 10**6  # 2024-01-01 in microseconds


# ----------------------------------------------------------------------------------------------
# data


class _DefaultShape:
    """The benchmark's original ticks: float64 price/size, 30% repeats, a few NaN prices."""

    def __init__(self, rng: np.random.Generator, symbols: int) -> None:
        self.rng, self.symbols = rng, symbols
        self.sizes = np.array([100.0, 200.0, 300.0, 500.0, 1000.0])
        self.last_ticks = rng.integers(5_000, 20_000, symbols)
        self.last_size = np.full(symbols, 100.0)
        self.last_nan = np.zeros(symbols, dtype=bool)
        self.t_us = T0_US

    def chunk(self, n: int) -> dict[str, np.ndarray]:
        rng, symbols = self.rng, self.symbols
        # merged stream of `symbols` Poisson processes of rate 1/s: gaps ~ Exp(1/symbols s)
        ts = self.t_us + np.cumsum(np.rint(rng.exponential(1e6 / symbols, n))).astype(np.int64)
        self.t_us = int(ts[-1])
        sym = rng.integers(0, symbols, n)
        repeat = rng.random(n) < 0.3
        price, size = np.empty(n), np.empty(n)
        for s in range(symbols):
            idx = np.flatnonzero(sym == s)
            m = len(idx)
            if m == 0:
                continue
            rep = repeat[idx]
            steps = rng.integers(-2, 3, m)
            steps[rep] = 0
            ticks = self.last_ticks[s] + np.cumsum(steps)
            src = np.maximum.accumulate(np.where(rep, -1, np.arange(m)))  # last fresh tick
            new_size = self.sizes[rng.integers(0, len(self.sizes), m)]
            new_nan = rng.random(m) < 0.002
            size_s = np.where(src >= 0, new_size[np.maximum(src, 0)], self.last_size[s])
            nan_s = np.where(src >= 0, new_nan[np.maximum(src, 0)], self.last_nan[s])
            price[idx] = np.where(nan_s, np.nan, ticks / 100.0)
            size[idx] = size_s
            self.last_ticks[s], self.last_size[s], self.last_nan[s] = ticks[-1], size_s[-1], nan_s[-1]
        return {"ts": ts, "sym": sym, "price": price, "size": size}


class _IssueShape:
    """#14's ticks: strictly increasing us times, int64 cents random walk, 10%/20% repeats."""

    def __init__(self, rng: np.random.Generator, symbols: int) -> None:
        self.rng, self.symbols = rng, symbols
        self.last_cents = rng.integers(10_000, 50_000, symbols)
        self.last_size = np.zeros(symbols, dtype=np.int64)  # index into 100, 200, ..., 1000
        self.t_us = T0_US

    def chunk(self, n: int) -> dict[str, np.ndarray]:
        rng = self.rng
        gaps = np.maximum(np.rint(rng.exponential(1e5, n)).astype(np.int64), 1)  # mean 0.1 s
        ts = self.t_us + np.cumsum(gaps)
        self.t_us = int(ts[-1])
        sym = rng.integers(0, self.symbols, n)
        kind = rng.random(n)  # < 0.1: full repeat; < 0.3: price-only repeat; else a fresh tick
        price, size = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        for s in range(self.symbols):
            idx = np.flatnonzero(sym == s)
            if len(idx) == 0:
                continue
            k = kind[idx]
            steps = rng.integers(1, 6, len(idx)) * rng.choice(np.array([-1, 1]), len(idx))
            steps[k < 0.3] = 0
            size_steps = rng.integers(0, 10, len(idx))  # a fresh tick: any size
            size_steps[k < 0.3] = rng.integers(1, 10, int((k < 0.3).sum()))  # price-only: another
            size_steps[k < 0.1] = 0  # full repeat: the same size
            cents = self.last_cents[s] + np.cumsum(steps)
            size_index = (self.last_size[s] + np.cumsum(size_steps)) % 10
            price[idx], size[idx] = cents, (size_index + 1) * 100
            self.last_cents[s], self.last_size[s] = cents[-1], size_index[-1]
        return {"ts": ts, "sym": sym, "price": price, "size": size}


def _chunk_table(columns: dict[str, np.ndarray], names: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.table({
        TIME: pa.array(columns["ts"].astype("datetime64[us]")),
        KEY: pa.array(names[columns["sym"]], type=pa.string()),
        "price": pa.array(columns["price"], from_pandas=True),  # NaN stored as null
        "size": pa.array(columns["size"]),
    })


def generate(path: Path, rows: int, symbols: int, part_rows: int, row_group_rows: int,
             seed: int, shape: str = "default", layout: str = "folder") -> None:
    """Write the synthetic ticks under ``path`` (skipped if already there).

    ``folder``: ``part-NNNNN.parquet`` of ``part_rows`` rows each (row groups of
    ``row_group_rows``); ``file``: one ``part-00000.parquet`` of row groups of ``part_rows``.
    """
    import pyarrow.parquet as pq

    params = dict(rows=rows, symbols=symbols, part_rows=part_rows, seed=seed, shape=shape,
                  layout=layout, version=2,
                  row_group_rows=row_group_rows if layout == "folder" else part_rows)
    stamp = path / "_bench.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = np.array([f"SYM{i:02d}" for i in range(symbols)], dtype=object)
    source = (_IssueShape if shape == "issue" else _DefaultShape)(rng, symbols)
    start = time.perf_counter()
    writer = None
    for number, first in enumerate(range(0, rows, part_rows)):
        table = _chunk_table(source.chunk(min(part_rows, rows - first)), names)
        if layout == "file":
            writer = writer or pq.ParquetWriter(path / "part-00000.parquet", table.schema)
            writer.write_table(table, row_group_size=len(table))
        else:
            pq.write_table(table, path / f"part-{number:05d}.parquet", row_group_size=row_group_rows)
    if writer is not None:
        writer.close()
    stamp.write_text(json.dumps(params))
    print(f"generated {rows:,} rows ({shape} shape, {layout} layout: "
          f"{len(parquet_files(path))} files, {pq.ParquetFile(parquet_files(path)[0]).num_row_groups}"
          f" row groups in the first) in {time.perf_counter() - start:.1f} s at {path}", flush=True)


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def parquet_files(path: Path) -> list[str]:
    """The Parquet files of a folder in natural order (``part.2`` before ``part.10``)."""
    return sorted(glob.glob(str(path / "*.parquet")), key=_natural)


def read_pandas(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(parquet_files(path)).to_pandas()


def largest_row_group_bytes(data: Path) -> int:
    """Uncompressed bytes of the largest row group of the input (the flows' ``input.blocksize``)."""
    import pyarrow.parquet as pq

    meta = [pq.ParquetFile(f).metadata for f in parquet_files(data)]
    return max(m.row_group(i).total_byte_size for m in meta for i in range(m.num_row_groups))


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


def _polars_pipeline(frame: Any) -> Any:
    """Dedup + the three 30 s features on a Polars DataFrame or LazyFrame (the same expressions)."""
    import polars as pl

    prev_equal = [pl.col(c).eq_missing(pl.col(c).shift(1).over(KEY)) for c in SUBSET]
    first = pl.int_range(pl.len()).over(KEY) == 0  # a first row whose price is null stays
    frame = frame.filter(first | ~pl.all_horizontal(prev_equal))
    window = dict(index_column=TIME, period=HORIZON, offset="0s", closed="right")
    price = pl.col("price")
    n_window = pl.len().rolling(**window).over(KEY)
    future = pl.when(n_window > 0).then(price.last().rolling(**window).over(KEY)).otherwise(price)
    incomplete = pl.col(TIME) + pl.duration(seconds=30) > pl.col(TIME).max()
    exprs = {
        NEW[0]: future - price,
        NEW[1]: price.max().rolling(**window).over(KEY),
        NEW[2]: price.min().rolling(**window).over(KEY),
    }
    return frame.with_columns(
        **{name: pl.when(incomplete).then(None).otherwise(e).cast(pl.Float64)
           for name, e in exprs.items()}
    )


def run_polars_eager(data: Path, out: Path) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    df = _polars_pipeline(pl.read_parquet(parquet_files(data)))
    out.mkdir(parents=True)
    df.write_parquet(out / "part-00000.parquet")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": _rusage_bytes(), "threads": pl.thread_pool_size()}


def run_polars_lazy(data: Path, out: Path) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    out.mkdir(parents=True)
    _polars_pipeline(pl.scan_parquet(parquet_files(data))).sink_parquet(out / "part-00000.parquet")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": _rusage_bytes(), "threads": pl.thread_pool_size()}


# ----------------------------------------------------------------------------------------------
# dask-flows as a user runs it (flows.run, its own cluster)


class _ChildrenPeak:
    """Sample the RSS of this process's child processes (the workers) every ``interval`` s.

    The list of children is refreshed every ``refresh`` s only: finding them scans all of
    ``/proc``, which would cost CPU that the workers need.
    """

    def __init__(self, interval: float = 0.02, refresh: float = 0.5) -> None:
        import psutil

        self.process, self.interval, self.refresh = psutil.Process(), interval, refresh
        self.peaks: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        children, found_at = [], -1.0
        while not self.stop.wait(self.interval):
            if time.monotonic() - found_at > self.refresh:
                children, found_at = self.process.children(recursive=True), time.monotonic()
            for child in children:
                try:
                    rss = child.memory_info().rss
                except Exception:  # gone meanwhile
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)

    def __enter__(self) -> _ChildrenPeak:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def flows_config(data: Path, out: Path, workers: int, blocksize: int | None,
                 processes: bool = False) -> dict[str, Any]:
    """The table flow's config as a user writes it (``input.blocksize`` only when given);
    the default cluster (one worker in the run's process, ``workers`` threads), or with
    ``processes`` ``workers`` worker processes of one thread (#14's "LocalCluster 2 x 1")."""
    source: dict[str, Any] = {"format": "parquet", "path": str(data), "time": TIME}
    if blocksize is not None:
        source["blocksize"] = blocksize
    return {
        "flow": "table",
        "cluster": ({"processes": True, "n_workers": workers, "threads_per_worker": 1} if processes
                    else {"threads_per_worker": workers}),
        "input": source,
        "steps": [
            {"dedup": {"subset": SUBSET, "by": KEY}},
            {"lookahead": {"horizon": HORIZON, "columns": COLUMNS, "features": FEATURES,
                           "by": KEY}},
        ],
        "output": {"path": str(out), "overwrite": True},
    }


def flows_blocksize(data: Path, layout: str, workers: int) -> tuple[int | None, str]:
    """``input.blocksize`` for the one-file layout if the config accepts it, and a note."""
    if layout != "file":
        return None, ""
    from flows.config import load_config

    blocksize = largest_row_group_bytes(data)
    try:
        load_config(flows_config(data, data.with_name("x"), workers, blocksize))
    except Exception as error:
        import dask.dataframe as dd

        default = dd.read_parquet(parquet_files(data), index=False).npartitions
        return None, (f"flows: input.blocksize not accepted by this version's config "
                      f"({str(error).splitlines()[0][:120]}); flows.run read the file with "
                      f"dask's default row-group splitting: {default} partition(s)")
    return blocksize, f"flows: input.blocksize={blocksize:,} (the largest row group, uncompressed)"


def run_flows(data: Path, out: Path, workers: int, blocksize: int | None,
              processes: bool = False) -> dict[str, Any]:
    import flows
    import flows.runner
    import flows.table  # noqa: F401 - libraries imported before the clock starts, as for Polars

    config = flows_config(data, out, workers, blocksize, processes)
    # worker processes: sample their RSS (psutil scans /proc every 20 ms, which costs CPU: only
    # where it is needed); the default cluster's one worker is this process: its own peak
    with _ChildrenPeak() if processes else contextlib.nullcontext() as sampler:
        start = time.perf_counter()
        result = flows.run(config)
        seconds = time.perf_counter() - start
    peaks = sorted(sampler.peaks.values(), reverse=True)[:workers] if processes else [_rusage_bytes()]
    steps = {s.name: s.task_seconds for s in result.steps}
    return {"seconds": seconds, "worker_peak_rss": peaks, "task_seconds": steps}


# ----------------------------------------------------------------------------------------------
# dask-flows' steps on a warm cluster


def read_dask(data: Path, layout: str) -> Any:
    """The input as a Dask DataFrame: a partition per file, or per row group of the one file."""
    import dask.dataframe as dd

    return dd.read_parquet(parquet_files(data), split_row_groups=layout == "file")


def start_warm_cluster(workers: int) -> tuple[Any, Any]:
    """A LocalCluster (``workers`` x 1 thread, dask-flows' worker environment) and its client."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    from flows.cluster import worker_environ  # the worker environment dask-flows runs with

    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)  # flows.run must not pick it up
    client.run(lambda: [__import__(m) for m in ("pipelines.dedup", "pipelines.lookahead",
                                                  "pyarrow.parquet")] and None)
    return cluster, client


def _scheduler_tasks(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def _wait_until_idle(client: Any, timeout: float = 10.0) -> int:
    """Wait until the scheduler holds no task (none left from a previous repeat); return the
    number it held when this was called."""
    held = client.run_on_scheduler(_scheduler_tasks)
    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(_scheduler_tasks) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


def run_dask(client: Any, data: Path, out: Path, layout: str, hold: bool = True) -> dict[str, Any]:
    """The steps on the warm cluster; ``hold``: the scans' partitions held between summary and
    kernel (what the table flow's ``hold_partitions: auto`` chooses when the data fit), else
    recomputed."""
    from pipelines.partitions import with_hold_partitions

    if _IMPORT_ERROR is not None:
        raise RuntimeError(f"pipelines steps not importable: {_IMPORT_ERROR}")
    held = _wait_until_idle(client)
    client.run(_start_sampler)
    start = time.perf_counter()
    ddf = read_dask(data, layout)
    ddf = drop_consecutive_duplicates(ddf, subset=SUBSET, by=KEY, time=TIME)
    ddf = future_features(ddf, HORIZON, COLUMNS, FEATURES, by=KEY, time=TIME)
    (ddf,) = with_hold_partitions(ddf, hold=hold)
    write = ddf.to_parquet(str(out), write_index=False, compute=False,
                           name_function=lambda i: f"part-{i:05d}.parquet")
    client.compute(write, optimize_graph=True).result()
    seconds = time.perf_counter() - start
    memory = list(client.run(_stop_sampler).values())
    memory_limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
    return {"seconds": seconds, "held_before": held, "graph": str(write.__dask_keys__()),
            "worker_idle_rss": [idle for idle, _ in memory],
            "worker_peak_rss": [peak for _, peak in memory], "memory_limit": memory_limit}


def partition_info(data: Path, layout: str) -> dict[str, Any]:
    import dask

    ddf = read_dask(data, layout)
    with dask.config.set(scheduler="sync"):
        first = ddf.partitions[0].compute()
    return {"npartitions": ddf.npartitions, "rows": len(first),
            "bytes": int(first.memory_usage(deep=True).sum())}


def _child(queue: Any, function: Callable[..., dict[str, Any]], kwargs: dict[str, Any]) -> None:
    try:
        queue.put(("ok", function(**kwargs)))
    except BaseException as error:  # report, don't hang the parent
        queue.put(("error", f"{type(error).__name__}: {error}"))


def in_child(function: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """Run ``function(**kwargs)`` (a module-level function) in a fresh (spawned) process; its peak
    RSS is its own. Shared by the benchmark scripts."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, function, kwargs))
    process.start()
    status, result = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{function.__name__}: {result}")
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


def time_methods(methods: list[str], data: Path, out_root: Path, args: argparse.Namespace,
                 client: Any, blocksize: int | None) -> tuple[dict[str, list[dict[str, Any]]],
                                                              dict[str, Path]]:
    """Run every method ``args.repeat`` times, interleaved; each run writes its own folder."""
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    outputs: dict[str, Path] = {}
    if "dask" in methods and not getattr(client, "bench_warmed", False):
        run_dask(client, data, out_root / "dask-warm-up", args.layout, args.scans == "hold")  # untimed, once a cluster
        shutil.rmtree(out_root / "dask-warm-up")
        client.bench_warmed = True
    for repeat in range(args.repeat):
        for method in methods:
            out = out_root / method / f"run-{repeat}"  # a new path: a new graph on the warm cluster
            shutil.rmtree(out_root / method, ignore_errors=True)
            out.parent.mkdir(parents=True)
            kwargs: dict[str, Any] = {"data": data, "out": out}
            if method == "dask":
                result = run_dask(client, layout=args.layout, hold=args.scans == "hold", **kwargs)
            elif method in ("flows", "flows-processes"):
                result = in_child(run_flows, workers=args.workers, blocksize=blocksize,
                                  processes=method == "flows-processes", **kwargs)
            elif method == "pool":
                result = in_child(run_pool, processes=args.workers, chunks=args.pool_chunks,
                                  **kwargs)
            else:
                result = in_child(globals()[f"run_{method.replace('-', '_')}"], **kwargs)
            results[method].append(result)
            outputs[method] = out
            print(f"  run {repeat + 1}/{args.repeat} {method:<13} {result['seconds']:8.2f} s",
                  flush=True)
    return results, outputs


def _memory_line(method: str, runs: list[dict[str, Any]]) -> str:
    last = runs[-1]
    if method in ("dask", "flows", "flows-processes"):
        peaks = [max(r["worker_peak_rss"][w] for r in runs if len(r["worker_peak_rss"]) > w)
                 for w in range(len(last["worker_peak_rss"]))]
        line = f"peak RSS per worker {', '.join(f'{p / 2**20:.0f}' for p in peaks)} MiB"
        if method == "dask":
            idle = max(max(r["worker_idle_rss"]) for r in runs)
            line += (f" (idle before a run <= {idle / 2**20:.0f} MiB; limit "
                     f"{last['memory_limit'] / 2**30:.1f} GiB; warm cluster, start not timed)")
        else:
            tasks = ", ".join(f"{k} {v:.1f}" for k, v in last["task_seconds"].items())
            where = "worker processes" if method == "flows-processes" else "1 worker in the run's process"
            line += f" ({where}; cluster start/stop timed; task s: {tasks})"
        return line
    if method == "pool":
        return (f"peak RSS parent {max(r['peak_rss'] for r in runs) / 2**20:.0f} MiB,"
                f" worker {max(r['worker_peak_rss'] for r in runs) / 2**20:.0f} MiB")
    line = f"peak RSS {max(r['peak_rss'] for r in runs) / 2**20:.0f} MiB"
    if method == "pandas":
        phases = {k: statistics.median(r["phases"][k] for r in runs) for k in last["phases"]}
        line += " (" + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()) + ")"
    if method.startswith("polars"):
        line += f", {last['threads']} threads"
    return line


def print_results(results: dict[str, list[dict[str, Any]]], rows: int, repeat: int) -> None:
    median = {m: statistics.median(r["seconds"] for r in runs) for m, runs in results.items()}
    print(f"\n{rows:,} rows; dedup (subset price,size by symbol) + lookahead ({HORIZON}; "
          f"{', '.join(FEATURES)}; by symbol) + write; median of {repeat}")
    print(f"{'method':<16}{'seconds':>9}{'ns/row':>8}{'rows/s':>13}{'vs pandas':>10}"
          f"{'vs polars-lazy':>15}  memory")
    for m, runs in results.items():
        vs_pandas = f"{median['pandas'] / median[m]:.2f}x" if "pandas" in median else "-"
        vs_lazy = f"{median['polars-lazy'] / median[m]:.2f}x" if "polars-lazy" in median else "-"
        print(f"{m:<16}{median[m]:>9.2f}{median[m] / rows * 1e9:>8.0f}{rows / median[m]:>13,.0f}"
              f"{vs_pandas:>10}{vs_lazy:>15}  {_memory_line(m, runs)}")
        flagged = [f"{r['seconds']:.2f}" for r in runs if r["seconds"] < 0.1 * median[m]]
        if flagged:
            print(f"  SUSPICIOUS {m} runs under 10% of the median: {', '.join(flagged)} s")
    if "dask" in results:
        runs = results["dask"]
        distinct = len({r["graph"] for r in runs})
        print(f"warm cluster: {distinct} distinct graphs in {len(runs)} repeats; tasks held on the "
              f"scheduler when each repeat began: {[r['held_before'] for r in runs]} "
              "(each began only once none was held)")


def run_sweep(args: argparse.Namespace, methods: list[str], client: Any) -> None:
    """Time the dask-flows methods at each size of ``--sweep``, same partition size."""
    methods = [m for m in methods if m in ("flows", "flows-processes", "dask")]
    sizes = [int(float(s)) for s in args.sweep.split(",") if s.strip()]
    part_rows = args.file_rows or max(1, -(-args.rows // args.files))
    table = []
    for rows in sizes:
        data = args.data.with_name(f"{args.data.name}-{rows}")
        generate(data, rows, args.symbols, part_rows, min(args.row_group_rows, part_rows),
                 args.seed, args.shape, args.layout)
        blocksize, note = flows_blocksize(data, args.layout, args.workers)
        if note:
            print(note)
        sweep_args = argparse.Namespace(**{**vars(args), "rows": rows})
        results, _ = time_methods(methods, data, data.with_name(data.name + "-out"), sweep_args,
                                  client, blocksize)
        for m in methods:
            seconds = statistics.median(r["seconds"] for r in results[m])
            peak = max(max(r["worker_peak_rss"]) for r in results[m])
            table.append((m, rows, -(-rows // part_rows), seconds, peak))
    print(f"\nsweep ({args.shape} shape, {args.layout} layout, {part_rows:,} rows per partition, "
          f"median of {args.repeat}; not checked against pandas)")
    print(f"{'method':<16}{'rows':>12}{'parts':>7}{'seconds':>9}{'ns/row':>8}{'vs smallest':>12}"
          f"{'peak RSS/worker':>17}")
    for m in methods:
        own = [t for t in table if t[0] == m]
        base = own[0][3] / own[0][1]
        for _, rows, parts, seconds, peak in own:
            print(f"{m:<16}{rows:>12,}{parts:>7}{seconds:>9.2f}{seconds / rows * 1e9:>8.0f}"
                  f"{seconds / rows / base:>11.2f}x{peak / 2**20:>13.0f} MiB")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=20_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--layout", choices=["folder", "file"], default="folder",
                        help="many files, or one file of many row groups (default folder)")
    parser.add_argument("--shape", choices=["default", "issue"], default="default",
                        help="the data: this script's original ticks, or #14's (default default)")
    parser.add_argument("--files", type=int, default=40,
                        help="number of Parquet files (folder) or row groups (file) = Dask "
                             "partitions (default 40: 500k rows each at 20 M rows)")
    parser.add_argument("--file-rows", type=int, default=None,
                        help="rows per file (folder) or row group (file) instead of --files")
    parser.add_argument("--row-group-rows", type=int, default=100_000,
                        help="rows per Parquet row group in the folder layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None,
                        help="the input folder (default bench-data/ticks-<shape>-<layout>)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where outputs go (default: <data>-out)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scans", choices=["hold", "recompute"], default="hold",
                        help="the dask method's scan memory policy (flows.run decides its own)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool-chunks", type=int, default=8)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--sweep", default=None,
                        help="sizes, e.g. 5e6,10e6,20e6,40e6: time per row of flows/dask instead")
    parser.add_argument("--no-check", action="store_true",
                        help="skip comparing the outputs with pandas'")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rows < 1 or args.workers < 1:
        parser.error("--repeat, --rows and --workers must be at least 1")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s): {', '.join(sorted(unknown))}")
    if any(m.startswith("polars") for m in methods):
        try:
            import polars  # noqa: F401
        except ImportError:
            print("polars not installed: skipping it (pip install polars)")
            methods = [m for m in methods if not m.startswith("polars")]
    args.data = (args.data or Path(f"bench-data/ticks-{args.shape}-{args.layout}")).resolve()
    return args, methods


def main(argv: list[str] | None = None) -> int:
    args, methods = parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores", flush=True)
    cluster, client = start_warm_cluster(args.workers) if "dask" in methods else (None, None)
    try:
        if args.sweep:
            run_sweep(args, methods, client)
        else:
            run_table(args, methods, client)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(timings are only meaningful on an otherwise idle machine)")
    return 0


def run_table(args: argparse.Namespace, methods: list[str], client: Any) -> None:
    """All methods on one input, checked against pandas."""
    data = args.data
    out_root = (args.out or data.with_name(data.name + "-out")).resolve()
    part_rows = args.file_rows or max(1, -(-args.rows // args.files))
    generate(data, args.rows, args.symbols, part_rows, min(args.row_group_rows, part_rows),
             args.seed, args.shape, args.layout)
    info = partition_info(data, args.layout)
    print(f"input: {args.rows:,} rows ({args.shape} shape, {args.layout} layout), "
          f"{info['npartitions']} partitions of ~{info['rows']:,} rows "
          f"({info['bytes'] / 2**20:.1f} MiB in memory each)", flush=True)
    uses_flows = any(m.startswith("flows") for m in methods)
    blocksize, note = flows_blocksize(data, args.layout, args.workers) if uses_flows else (None, "")
    if note:
        print(note)
    results, outputs = time_methods(methods, data, out_root, args, client, blocksize)
    print_results(results, args.rows, args.repeat)
    if note:
        print(note)
    if not args.no_check and "pandas" in methods:
        for line in check(outputs):
            print(line)


if __name__ == "__main__":
    sys.exit(main())
