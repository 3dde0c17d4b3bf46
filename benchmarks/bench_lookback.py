"""Benchmark of ``lookback``: Parquet -> 30 s past mean/max/min of price per symbol -> Parquet.

The workload is ``benchmarks/bench_table.py``'s (#11): its data generator, shapes (``--shape
issue|default``), layouts (``--layout file|folder``) and partition sizes, imported from it; the
data folder is the same (``bench-data/ticks-<shape>-<layout>``), so both scripts share one copy.
The step is :func:`pipelines.lookback.past_features` (``horizon=30s``, ``columns=price``,
``features=mean,max,min``, ``by=symbol``, ``time=ts``). Methods, each timed from reading the
Parquet files to having written the result:

1. ``flows``: ``flows.run(config)`` with a ``lookback`` step, as a user runs it; it starts its own
   ``LocalCluster`` (the default: one worker in the run's process, ``--workers`` threads) and
   closes it: **cluster start and stop are timed**. Fresh child process; its peak RSS.
2. ``dask``: ``dd.read_parquet`` -> ``past_features`` -> ``to_parquet`` on a **warm** cluster
   (``bench_table.start_warm_cluster``: same size, ``flows.cluster.worker_environ``), warmed by
   one untimed run. Each repeat writes to its own path (a different graph, checked: the number of
   distinct graphs is printed) and starts once the scheduler holds no task of the previous one.
   Peak RSS per worker from ``bench_table``'s sampling thread on each worker.
3. ``pandas`` (one process): ``pd.read_parquet``; ``groupby(symbol).rolling("30s", on=ts)``
   ``["price"].agg([mean, max, min])`` (window ``t_j in (t_i - 30s, t_i]``), back in row order;
   ``to_parquet``. (Its result is ordered by symbol, then row order: put back in row order by
   a stable sort of the symbol codes.)
4. ``polars-lazy`` (all cores): ``pl.scan_parquet`` ->
   ``pl.col(price).mean/max/min().rolling(index_column=ts, period="30s").over(symbol)``
   (``closed="right"`` by default: the same window) -> ``sink_parquet``.

**Incomplete windows.** ``lookback`` gives NaN for a window reaching before the input's first
time (``t_i - 30s`` earlier than the first ``ts`` over all symbols) unless ``partial``. By default
the step runs with ``partial=False`` and pandas and Polars get the same mask
(``ts - 30s >= min(ts)``, else NaN / null) so that all outputs hold the same values;
``--partial`` runs the step with ``partial=True`` and pandas and Polars unmasked (their plain
rolling: partial windows over the rows there are). Methods 3-4 run in a fresh child process each
repeat (so their peak RSS is their own).

**Ties.** ``lookback``'s window ends at row *i* in row order; pandas' and Polars' time windows
hold every row of the symbol with ``t_j <= t_i``, later rows of the same time too. The ``issue``
shape (the default here) has strictly increasing times, so the windows are the same; the
``default`` shape has rare equal times within a symbol, where the outputs differ by design (the
check reports them as a mismatch, counting the rows).

Afterwards (``--no-check`` skips it) every output is compared with the reference (pandas' if
run, else the first method's): same rows and input columns, max/min identical, mean to 1e-9
relative, the same NaN pattern. Prints the median of ``--repeat`` runs per method, ratios against
Polars' lazy form and pandas, the peak RSS, and the targets of #15: the step (warm and with
cluster start) >= 1.25x Polars' lazy form, ahead of pandas, peak RSS <= 1 GiB per worker.

    python benchmarks/bench_lookback.py --layout folder --shape issue --files 20   # 20 M rows
    python benchmarks/bench_lookback.py --rows 300000 --files 4 --repeat 1          # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import bench_table as table  # noqa: E402  (the workload: data, cluster, samplers)
from bench_table import KEY, TIME  # noqa: E402

HORIZON = "30s"
COLUMN = "price"
FEATURES = ["mean", "max", "min"]
NEW = [f"{COLUMN}_{f}_past_{HORIZON}" for f in FEATURES]
METHODS = ["flows", "dask", "pandas", "polars-lazy"]
GIB = 2**30


# ----------------------------------------------------------------------------------------------
# the methods; each returns {"seconds": ..., plus what bench_table._memory_line reads}


def run_pandas(data: Path, out: Path, partial: bool) -> dict[str, Any]:
    phases = {}
    start = time.perf_counter()
    df = table.read_pandas(data)
    phases["read"] = time.perf_counter() - start
    rolling = df.groupby(KEY, sort=True, dropna=False).rolling(HORIZON, on=TIME)[COLUMN]
    stats = rolling.agg(FEATURES)  # indexed (symbol, ts): rows by sorted symbol, then row order
    codes = pd.factorize(df[KEY], sort=True, use_na_sentinel=False)[0]  # NaN last, as groupby
    order = np.argsort(codes, kind="stable")  # the numbers of those rows
    mask = (df[TIME] - pd.Timedelta(HORIZON) >= df[TIME].min()).to_numpy() if not partial else None
    for feature, name in zip(FEATURES, NEW):
        values = np.empty(len(df))
        values[order] = stats[feature].to_numpy(dtype=np.float64)  # back in row order
        if mask is not None:
            values[~mask] = np.nan
        df[name] = values
    phases["rolling"] = time.perf_counter() - start - sum(phases.values())
    out.mkdir(parents=True)
    df.to_parquet(out / "part-00000.parquet", index=False)
    phases["write"] = time.perf_counter() - start - sum(phases.values())
    return {"seconds": time.perf_counter() - start, "peak_rss": table._rusage_bytes(),
            "phases": phases}


def run_polars_lazy(data: Path, out: Path, partial: bool) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    out.mkdir(parents=True)
    price = pl.col(COLUMN)
    window = dict(index_column=TIME, period=HORIZON)  # closed="right": (t - 30s, t]
    exprs = {name: getattr(price, f)().rolling(**window).over(KEY).cast(pl.Float64)
             for f, name in zip(FEATURES, NEW)}
    if not partial:
        complete = pl.col(TIME) - pl.duration(seconds=30) >= pl.col(TIME).min()
        exprs = {name: pl.when(complete).then(e).otherwise(None) for name, e in exprs.items()}
    frame = pl.scan_parquet(table.parquet_files(data)).with_columns(**exprs)
    frame.sink_parquet(out / "part-00000.parquet")
    return {"seconds": time.perf_counter() - start, "peak_rss": table._rusage_bytes(),
            "threads": pl.thread_pool_size()}


def lookback_step(partial: bool) -> dict[str, Any]:
    """The ``lookback`` step's parameters (YAML keys = ``past_features``' arguments)."""
    return {"horizon": HORIZON, "columns": [COLUMN], "features": FEATURES, "by": KEY,
            "partial": partial}


def run_flows(data: Path, out: Path, workers: int, blocksize: int | None,
              partial: bool) -> dict[str, Any]:
    import flows
    import flows.runner
    import flows.table  # noqa: F401 - libraries imported before the clock starts, as for Polars

    config = table.flows_config(data, out, workers, blocksize)
    config["steps"] = [{"lookback": lookback_step(partial)}]
    start = time.perf_counter()
    result = flows.run(config)
    seconds = time.perf_counter() - start
    peaks = [table._rusage_bytes()]  # the default cluster's one worker is this (child) process
    return {"seconds": seconds, "worker_peak_rss": peaks,
            "task_seconds": {s.name: s.task_seconds for s in result.steps}}


def run_dask(client: Any, data: Path, out: Path, layout: str, partial: bool) -> dict[str, Any]:
    from pipelines.lookback import past_features
    from pipelines.partitions import with_hold_partitions

    held = table._wait_until_idle(client)
    client.run(table._start_sampler)
    start = time.perf_counter()
    step = lookback_step(partial)
    ddf = past_features(table.read_dask(data, layout), step.pop("horizon"), step.pop("columns"),
                        time=TIME, **step)
    (ddf,) = with_hold_partitions(ddf, hold=True)  # what flows.run's hold_partitions: auto picks here
    write = ddf.to_parquet(str(out), write_index=False, compute=False,
                           name_function=lambda i: f"part-{i:05d}.parquet")
    client.compute(write, optimize_graph=True).result()
    seconds = time.perf_counter() - start
    memory = list(client.run(table._stop_sampler).values())
    memory_limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
    return {"seconds": seconds, "held_before": held, "graph": str(write.__dask_keys__()),
            "worker_idle_rss": [idle for idle, _ in memory],
            "worker_peak_rss": [peak for _, peak in memory], "memory_limit": memory_limit}


def time_methods(methods: list[str], data: Path, out_root: Path, args: argparse.Namespace,
                 client: Any, blocksize: int | None) -> tuple[dict[str, list[dict[str, Any]]],
                                                              dict[str, Path]]:
    """Run every method ``args.repeat`` times, interleaved; each run writes its own folder."""
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    outputs: dict[str, Path] = {}
    if "dask" in methods:
        run_dask(client, data, out_root / "dask-warm-up", args.layout, args.partial)  # untimed
        shutil.rmtree(out_root / "dask-warm-up")
    for repeat in range(args.repeat):
        for method in methods:
            out = out_root / method / f"run-{repeat}"  # a new path: a new graph on the warm cluster
            shutil.rmtree(out_root / method, ignore_errors=True)
            out.parent.mkdir(parents=True)
            common = {"data": data, "out": out, "partial": args.partial}
            if method == "dask":
                result = run_dask(client, layout=args.layout, **common)
            elif method == "flows":
                result = table.in_child(run_flows, workers=args.workers, blocksize=blocksize, **common)
            else:
                result = table.in_child(globals()[f"run_{method.replace('-', '_')}"], **common)
            results[method].append(result)
            outputs[method] = out
            print(f"  run {repeat + 1}/{args.repeat} {method:<13} {result['seconds']:8.2f} s",
                  flush=True)
    return results, outputs


# ----------------------------------------------------------------------------------------------
# checking and printing


def _column_problem(name: str, a: np.ndarray, b: np.ndarray) -> str | None:
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not (nan_a == nan_b).all():
        return f"{name}: NaN pattern differs ({int((nan_a != nan_b).sum()):,} rows)"
    a, b = a[~nan_a], b[~nan_b]
    if name.startswith(f"{COLUMN}_mean"):
        bad = ~np.isclose(a, b, rtol=1e-9, atol=0.0)
    else:
        bad = a != b
    return f"{name}: values differ ({int(bad.sum()):,} rows)" if bad.any() else None


def check(outputs: dict[str, Path]) -> list[str]:
    """Each output against the reference's (pandas', else the first method's)."""
    reference_method = "pandas" if "pandas" in outputs else next(iter(outputs))
    reference = table.read_pandas(outputs[reference_method])
    lines = []
    for method, path in outputs.items():
        if method == reference_method:
            continue
        other = table.read_pandas(path)
        problems = []
        if len(other) != len(reference):
            problems.append(f"{len(other):,} rows, {reference_method} {len(reference):,}")
        else:
            for column in [TIME, KEY, COLUMN]:
                same_dtype = other[column].astype(reference[column].dtype)  # any str dtype
                if not same_dtype.equals(reference[column]):  # NaN equal to NaN
                    problems.append(f"column {column} differs")
            for name in NEW:
                problem = _column_problem(name, other[name].to_numpy(np.float64),
                                          reference[name].to_numpy(np.float64))
                problems += [problem] if problem else []
        lines.append(f"check {method:<12} " + (f"ok: same as {reference_method}" if not problems
                                                 else "MISMATCH: " + "; ".join(problems)))
    return lines


def print_results(results: dict[str, list[dict[str, Any]]], rows: int, args: argparse.Namespace
                  ) -> None:
    """``bench_table.print_results``' table (same columns, memory lines) under this step's title,
    then the targets."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        table.print_results(results, rows, args.repeat)
    lines = printed.getvalue().splitlines()
    lines[1] = (f"{rows:,} rows; lookback ({HORIZON}; {', '.join(FEATURES)} of {COLUMN}; by {KEY};"
                f" partial={args.partial}) + write; median of {args.repeat}")
    median = {m: statistics.median(r["seconds"] for r in runs) for m, runs in results.items()}
    print("\n".join(lines + target_lines(results, median)))


def target_lines(results: dict[str, list[dict[str, Any]]], median: dict[str, float]) -> list[str]:
    """#15's targets for the dask-flows methods: >= 1.25x Polars lazy, ahead of pandas, RSS."""
    lines = []
    for m in ("dask", "flows"):
        if m not in results:
            continue
        label = "warm cluster" if m == "dask" else "cluster start included"
        peak = max(max(r["worker_peak_rss"], default=0) for r in results[m])
        checks = [f"peak RSS/worker {peak / GIB:.2f} GiB <= 1 GiB: "
                  f"{'met' if peak <= GIB else 'MISSED'}"]
        if "polars-lazy" in median:
            ratio = median["polars-lazy"] / median[m]
            checks.insert(0, f"{ratio:.2f}x polars-lazy >= 1.25x: "
                             f"{'met' if ratio >= 1.25 else 'MISSED'}")
        if "pandas" in median:
            ahead = "met" if median[m] < median["pandas"] else "MISSED"
            checks.insert(len(checks) - 1, f"ahead of pandas: {ahead}")
        lines.append(f"target {m} ({label}): " + "; ".join(checks))
    return lines


# ----------------------------------------------------------------------------------------------
# command line


WORKLOAD_OPTIONS = ("--rows, --symbols, --layout, --shape (default issue here), --files, "
                    "--file-rows, --row-group-rows, --seed, --data, --out (default "
                    "<data>-lookback), --repeat, --workers, --no-check")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """This script's options; the workload's (the rest) are parsed by ``bench_table.parse_args``,
    so they mean the same in both scripts."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=f"Workload options, as in bench_table.py --help: {WORKLOAD_OPTIONS}.")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--partial", action="store_true",
                        help="lookback partial=True, pandas/Polars unmasked (default: NaN-masked)")
    own, rest = parser.parse_known_args(argv)
    methods = [m.strip() for m in own.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s): {', '.join(sorted(unknown))}")
    # "--methods pandas": bench_table's own methods are not run; a later --shape wins
    args, _ = table.parse_args(["--shape", "issue", *rest, "--methods", "pandas"])
    args.partial = own.partial
    return args, methods


def main(argv: list[str] | None = None) -> int:
    args, methods = parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores", flush=True)
    part_rows = args.file_rows or max(1, -(-args.rows // args.files))
    table.generate(args.data, args.rows, args.symbols, part_rows,
                   min(args.row_group_rows, part_rows), args.seed, args.shape, args.layout)
    info = table.partition_info(args.data, args.layout)
    print(f"input: {args.rows:,} rows ({args.shape} shape, {args.layout} layout), "
          f"{info['npartitions']} partitions of ~{info['rows']:,} rows "
          f"({info['bytes'] / 2**20:.1f} MiB in memory each)", flush=True)
    blocksize, note = (table.flows_blocksize(args.data, args.layout, args.workers)
                       if "flows" in methods else (None, ""))
    if note:
        print(note)
    cluster, client = table.start_warm_cluster(args.workers) if "dask" in methods else (None, None)
    out_root = (args.out or args.data.with_name(args.data.name + "-lookback")).resolve()
    try:
        results, outputs = time_methods(methods, args.data, out_root, args, client, blocksize)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    print_results(results, args.rows, args)
    if not args.no_check and len(outputs) > 1:
        for line in check(outputs):
            print(line)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(timings are only meaningful on an otherwise idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
