"""Benchmark of the all-against-all compare grid against the seed's way and tslearn.

Defaults: N = 5,000 synthetic matrices, 20 rows, 150-250 columns: all 12,497,500 unique pairs on a
LocalCluster of 2 single-threaded workers, written to a Zarr store (the wall time includes the
writes and the publish). Prints pairs/s and the ratio to

- the seed's way: one ``scipy.signal.correlate2d(a, b, mode="full")`` per pair (its middle row is
  c[k]), normalized, max/argmax -- timed on a sample of pairs and extrapolated; likewise
  ``pipelines.compare.compare`` pair by pair (direct sums over the zero row shift only);
- ``tslearn.metrics.cdist_normalized_cc`` (zero-padded to the longest length) -- if tslearn imports
  here, or in the interpreter given by ``--tslearn-python`` (a throwaway venv) -- timed on a subset
  and extrapolated.

    python benchmarks/bench_compare.py                 # the full N = 5,000 grid
    python benchmarks/bench_compare.py --n 1000        # smaller
    python benchmarks/bench_compare.py --no-cluster    # dask.compute on the local threaded scheduler
    python benchmarks/bench_compare.py --window 20     # windowed: N = 1,000, w = 20; beside it the
                                                       # seed's convolve2d per pair and the GEMM alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.matrices import synthetic_matrices  # noqa: E402
from pipelines.compare import compare, compare_window, zscore_rows  # noqa: E402
from flows.compare import all_pairs  # noqa: E402

TSLEARN_SNIPPET = r"""
import json, sys, time
import numpy as np
from tslearn.metrics import cdist_normalized_cc
data = np.load(sys.argv[1])
x = data["x"]
n = len(x)
cdist_normalized_cc(x[:4], x[:4], np.full(4, -1.0), np.full(4, -1.0), True)  # numba compile
t0 = time.perf_counter()
# self_similarity=True: the upper triangle only, mirrored -- the same n (n - 1) / 2 pairs as the grid
cdist_normalized_cc(x, x, np.full(n, -1.0), np.full(n, -1.0), True)
print(json.dumps({"seconds": time.perf_counter() - t0, "n": n}))
"""


def seed_way(mats: list[np.ndarray], sample: int, rng: np.random.Generator) -> float:
    """Seconds per pair of the seed's per-pair scipy.signal.correlate2d loop (a sample)."""
    from scipy.signal import correlate2d

    n = len(mats)
    pairs = rng.integers(0, n, size=(sample, 2))
    t0 = time.perf_counter()
    for i, j in pairs:
        a, b = mats[i], mats[j]
        c = correlate2d(a, b, mode="full")[a.shape[0] - 1]  # zero row shift: sum over rows
        c = c / (np.linalg.norm(a) * np.linalg.norm(b))
        k = int(np.argmax(c))
        _ = (c[k], k - (b.shape[1] - 1))
    return (time.perf_counter() - t0) / sample


def own_pairs(mats: list[np.ndarray], sample: int, rng: np.random.Generator) -> float:
    """Seconds per pair of pipelines.compare.compare() called pair by pair (a sample)."""
    pairs = rng.integers(0, len(mats), size=(sample, 2))
    t0 = time.perf_counter()
    for i, j in pairs:
        compare(mats[i], mats[j])
    return (time.perf_counter() - t0) / sample


def tslearn_way(mats: list[np.ndarray], subset: int, python: str | None) -> tuple[float, str] | None:
    """Seconds per pair of tslearn's cdist_normalized_cc on a subset (zero-padded), or None."""
    sub = mats[:subset]
    length = max(x.shape[1] for x in sub)
    x = np.zeros((len(sub), length, sub[0].shape[0]))  # tslearn: (n_ts, sz, d)
    for k, m in enumerate(sub):
        x[k, : m.shape[1]] = m.T
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npz")
        np.savez(path, x=x)
        exe = python or sys.executable
        try:
            done = subprocess.run([exe, "-c", TSLEARN_SNIPPET, path], capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None if python is None else (float("nan"), f"failed: {error}")
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            return None if python is None else (float("nan"), f"failed: {last}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
    pairs = out["n"] * (out["n"] - 1) / 2
    return out["seconds"] / pairs, exe


def window_seed_way(mats: list[np.ndarray], w: int, sample: int, rng: np.random.Generator) -> float:
    """Seconds per pair of the seed's windowed compare: ``convolve2d(a.T @ b, eye(w), 'valid')``,
    then the window norms and the max (a sample of pairs)."""
    from scipy.signal import convolve2d

    pairs = rng.integers(0, len(mats), size=(sample, 2))
    eye = np.eye(w)
    t0 = time.perf_counter()
    for i, j in pairs:
        a, b = mats[i], mats[j]
        table = convolve2d(a.T @ b, eye, mode="valid")
        na = np.sqrt(np.convolve((a * a).sum(0), np.ones(w), mode="valid"))
        nb = np.sqrt(np.convolve((b * b).sum(0), np.ones(w), mode="valid"))
        ratio = table / np.outer(na, nb)
        _ = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return (time.perf_counter() - t0) / sample


def gemm_alone(mats: list[np.ndarray], tile: int) -> float:
    """Seconds per pair of ``C = a.T @ b`` alone (float32, one BLAS thread), batched like the
    grid's tiles: one GEMM per tile of zero-padded matrices -- the arithmetic floor."""
    from pipelines.compare import single_threaded_blas

    block = mats[: min(tile, len(mats))]
    length = max(x.shape[1] for x in block)
    cols = np.zeros((len(block), length, block[0].shape[0]), dtype=np.float32)
    for k, x in enumerate(block):
        cols[k, : x.shape[1]] = x.T
    flat = cols.reshape(-1, cols.shape[-1])
    buf = np.empty((length, flat.shape[0]), dtype=np.float32)  # one matrix against the block
    with single_threaded_blas():
        np.matmul(flat[:length], flat.T, out=buf)  # warm: pages touched, BLAS loaded
        t0 = time.perf_counter()
        for a0 in range(0, flat.shape[0], length):
            np.matmul(flat[a0 : a0 + length], flat.T, out=buf)
        seconds = time.perf_counter() - t0
    return seconds / len(block) ** 2


def run_grid(args: argparse.Namespace, ms, out: str) -> tuple[object, float]:
    """The grid on a LocalCluster (or the local scheduler), into ``out``: (result, wall seconds)."""
    client = cluster = None
    try:
        if not args.no_cluster:
            from distributed import Client, LocalCluster

            import dask

            from flows.cluster import worker_environ  # the worker environment dask-flows runs with

            t0 = time.perf_counter()
            shape = (dict(n_workers=1, threads_per_worker=args.workers, processes=False) if args.threads
                     else dict(n_workers=args.workers, threads_per_worker=1, processes=True))
            with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
                cluster = LocalCluster(dashboard_address=None, **shape)
            client = Client(cluster)
            what = (f"1 worker x {args.workers} threads (in this process)" if args.threads
                    else f"{args.workers} workers x 1 thread")
            print(f"cluster: LocalCluster {what}, started in {time.perf_counter() - t0:.1f} s")
        else:
            print("cluster: none (dask.compute, local threaded scheduler)")
        t0 = time.perf_counter()
        result = all_pairs(ms, tile=args.tile, device=args.device, dtype=args.dtype, out=out,
                           normalize=args.normalize, top_k=args.top_k, window=args.window, client=client,
                           overwrite=True)
        return result, time.perf_counter() - t0
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def check_one_pair(args: argparse.Namespace, ms, out: str) -> None:
    import zarr

    g = zarr.open_group(out, mode="r")
    i, j = 1, min(args.n - 1, 7)
    a, b = ms.arrays[i], ms.arrays[j]
    if args.window:
        s, p, q = compare_window(a, b, args.window, normalize=args.normalize)
        print(f"check: score[{i},{j}] = {float(g['score'][i, j]):.6f} (compare_window(): {s:.6f}), "
              f"offsets ({int(g['offset_a'][i, j])}, {int(g['offset_b'][i, j])}) ({p}, {q})")
        return
    if args.normalize is not None:
        a, b = zscore_rows(a), zscore_rows(b)
    s, lag = compare(a, b)
    print(f"check: score[{i},{j}] = {float(g['score'][i, j]):.6f} (compare(): {s:.6f}), "
          f"lag {int(g['lag'][i, j])} ({lag})")


def window_baselines(args: argparse.Namespace, ms, result, wall: float) -> None:
    rng = np.random.default_rng(args.seed)
    per_pair = window_seed_way(ms.arrays, args.window, args.sample, rng)
    seed_total = per_pair * result.pairs
    print(f"seed's way (per-pair convolve2d(a.T @ b, eye({args.window}), 'valid') + norms + max, "
          f"{args.sample} pairs sampled): {1 / per_pair:,.0f} pairs/s -> {seed_total:,.0f} s extrapolated "
          f"on one core; grid is {seed_total / wall:,.0f}x faster")
    per_pair = gemm_alone(ms.arrays, args.tile or 256)
    floor = per_pair * result.pairs / args.workers
    print(f"GEMM alone (C = a.T @ b for every pair, float32, batched per tile, one BLAS thread): "
          f"{1 / per_pair:,.0f} pairs/s per core -> {floor:,.1f} s on {args.workers} workers; "
          f"the grid takes {wall / floor:,.1f}x that")


def full_baselines(args: argparse.Namespace, ms, result, wall: float) -> None:
    rng = np.random.default_rng(args.seed)
    per_pair = seed_way(ms.arrays, args.sample, rng)
    seed_total = per_pair * result.pairs
    print(f"seed's way (per-pair scipy.signal.correlate2d, {args.sample} pairs sampled): "
          f"{1 / per_pair:,.0f} pairs/s -> {seed_total:,.0f} s ({seed_total / 3600:.1f} h) extrapolated; "
          f"grid is {seed_total / wall:,.0f}x faster")
    per_pair = own_pairs(ms.arrays, args.sample, rng)
    total = per_pair * result.pairs
    print(f"per-pair compare() (direct float64 sums, {args.sample} pairs sampled): {1 / per_pair:,.0f} pairs/s "
          f"-> {total:,.0f} s extrapolated; grid is {total / wall:,.0f}x faster")
    ts = tslearn_way(ms.arrays, min(args.tslearn_subset, args.n), args.tslearn_python)
    if ts is None:
        print("tslearn: not importable here (try --tslearn-python /path/to/venv/bin/python)")
    elif not np.isfinite(ts[0]):
        print(f"tslearn: {ts[1]}")
    else:
        total = ts[0] * result.pairs
        print(f"tslearn cdist_normalized_cc ({min(args.tslearn_subset, args.n)} matrices zero-padded, via {ts[1]}): "
              f"{1 / ts[0]:,.0f} pairs/s -> {total:,.0f} s extrapolated; grid is {total / wall:,.1f}x faster")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="number of matrices (default 5000; 1000 with --window)")
    p.add_argument("--rows", type=int, default=20)
    p.add_argument("--min-len", type=int, default=150)
    p.add_argument("--max-len", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=int, default=None, help="the windowed comparison with this window")
    p.add_argument("--tile", type=int, default=None, help="matrices per block (default: by device)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--normalize", default=None, choices=[None, "zscore"])
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (1 thread each)")
    p.add_argument("--threads", action="store_true",
                   help="one worker of --workers threads in this process (the table flow's default)")
    p.add_argument("--no-cluster", action="store_true", help="local threaded scheduler, no LocalCluster")
    p.add_argument("--out", default=None, help="Zarr output (default: a temporary folder, removed)")
    p.add_argument("--sample", type=int, default=200, help="pairs timed for the seed's way")
    p.add_argument("--tslearn-subset", type=int, default=200, help="matrices for the tslearn timing")
    p.add_argument("--tslearn-python", default=None, help="an interpreter with tslearn (throwaway venv)")
    p.add_argument("--skip-baselines", action="store_true")
    args = p.parse_args(argv)
    args.n = args.n or (1000 if args.window else 5000)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()
    ms = synthetic_matrices(args.n, args.rows, args.min_len, args.max_len, args.seed)
    print(f"data: {args.n:,} matrices {args.rows} x {args.min_len}-{args.max_len} "
          f"({sum(x.nbytes for x in ms.arrays) / 2**20:.0f} MiB float64), made in {time.perf_counter() - t0:.1f} s")
    tmp = tempfile.mkdtemp(prefix="bench-compare-")
    out = args.out or os.path.join(tmp, "grid.zarr")
    try:
        result, wall = run_grid(args, ms, out)
        print(result)
        what = f"window {args.window}" if args.window else "full"
        print(f"grid ({what}): {result.pairs:,} pairs in {wall:.2f} s wall (validation, fingerprint, blocks, "
              f"tiles, Zarr writes, publish) = {result.pairs / wall:,.0f} pairs/s on {result.device}")
        if result.top_k is None:
            check_one_pair(args, ms, out)
    finally:
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_baselines:
        (window_baselines if args.window else full_baselines)(args, ms, result, wall)


if __name__ == "__main__":
    main()
