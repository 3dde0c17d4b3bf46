"""The compare grid's arithmetic floor for N matrices r x (lo..hi), FFT method (scratch, #14).

Measures (CPU time), in one process on one core (NumPy's BLAS single-threaded, as the grid's tasks run it),
the rates of the operations the batched kernel (:func:`pipelines.compare.score_block`) does per
pair, on the grid's shapes (``nfft = fft_length(hi)``, ``nf = nfft // 2 + 1`` frequencies, a row
chunk of ``step`` matrices of block A against a block B of ``tile``):

1. the batched complex64 GEMM ``(nf, step, r) @ (nf, r, tile)``: ``nf * r`` complex
   multiply-adds (8 flops) per pair;
2. the transpose ``(nf, A, B) -> (A, B, nf)`` (a copy of nf complex64 per pair);
3. the ``irfft`` of length nfft along the last axis (one per pair);
4. the argmax over nfft float32 per pair;
5. the ``rfft`` of every matrix's r rows (once per matrix: the grid computes each block's spectra
   once; negligible, printed for completeness).

Prints each as microseconds per pair, and the floor of the whole grid on ``--cores`` cores:
arithmetic (GEMM + irfft) and with the kernel's memory passes (+ transpose + argmax).

    python benchmarks/compare_floor.py                    # N = 5000, 20 x 150-250, tile 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.compare import CHUNK_BYTES, fft_length, single_threaded_blas  # noqa: E402


def best_of(run: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of this process over ``repeats`` runs after one warm-up.

    CPU time, not wall time: on a shared, loaded machine the wall time counts the time spent
    waiting for a core; the CPU time of a single-threaded kernel is close to its wall time on
    an idle core (cache sharing with other processes still slows it somewhat).
    """
    run()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--hi", type=int, default=250, help="longest matrix (columns)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    nfft = fft_length(args.hi)
    nf = nfft // 2 + 1
    r, tile = args.rows, args.tile
    step = max(1, min(tile, CHUNK_BYTES["cpu"] // (tile * nfft * 4)))  # the kernel's row chunk
    pairs_chunk = step * tile
    rng = np.random.default_rng(0)

    def cplx(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    fa, fb = cplx(nf, step, r), cplx(nf, r, tile)
    prod = np.empty((nf, step, tile), np.complex64)
    spectrum = np.empty((step, tile, nf), np.complex64)
    corr = np.empty((step, tile, nfft), np.float32)
    mats = rng.standard_normal((tile, r, args.hi)).astype(np.float32)
    with single_threaded_blas():
        gemm = best_of(lambda: np.matmul(fa, fb, out=prod), args.repeats)
        transpose = best_of(lambda: np.copyto(spectrum, prod.transpose(1, 2, 0)), args.repeats)
        irfft = best_of(lambda: np.fft.irfft(spectrum, n=nfft, axis=-1, out=corr), args.repeats)
        argmax = best_of(lambda: np.argmax(corr, axis=-1), args.repeats)
        rfft = best_of(lambda: np.fft.rfft(mats, n=nfft, axis=-1), args.repeats)

    pairs = args.n * (args.n - 1) // 2
    per_pair = {
        "complex64 GEMM": gemm / pairs_chunk,
        "transpose (F,A,B)->(A,B,F)": transpose / pairs_chunk,
        "irfft": irfft / pairs_chunk,
        "argmax": argmax / pairs_chunk,
    }
    flops = 8 * nf * r
    print(f"N = {args.n:,} ({pairs:,} pairs), r = {r}, up to {args.hi} columns: nfft = {nfft}, "
          f"nf = {nf}; row chunk {step} x tile {tile} ({pairs_chunk:,} pairs a call); one core")
    print(f"GEMM: {flops:,} flops a pair; {flops * pairs_chunk / gemm / 1e9:.1f} GFLOP/s")
    print(f"rfft of one matrix ({r} rows, n = {nfft}): {rfft / tile * 1e6:.1f} us "
          f"(once per matrix, in its block's task: {rfft / tile * args.n / args.cores:.2f} s "
          f"for the grid on {args.cores} cores)")
    for name, seconds in per_pair.items():
        print(f"  {name:<28}{seconds * 1e6:8.3f} us a pair  -> {seconds * pairs / args.cores:6.2f} s "
              f"for the grid on {args.cores} cores")
    arithmetic = (per_pair["complex64 GEMM"] + per_pair["irfft"]) * pairs / args.cores
    passes = sum(per_pair.values()) * pairs / args.cores
    print(f"floor on {args.cores} cores: arithmetic (GEMM + irfft) {arithmetic:.2f} s; with the "
          f"kernel's memory passes (+ transpose + argmax) {passes:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
