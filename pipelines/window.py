"""The batched windowed comparison: for every pair of two blocks, the best pair of w-column windows.

The one-pair definition is :func:`pipelines.compare.compare_window`: ``S = conv2(C, eye(w),
'valid')`` with ``C = a.T @ b``, i.e. ``S[p, q] = sum_{t < w} C[p+t, q+t]``, and the score is
``max S[p, q] / (||a[:, p:p+w]||_F ||b[:, q:q+w]||_F)`` at offsets ``(p, q)`` (ties: smallest p,
then q; a zero window scores 0; a matrix shorter than w: NaN at offsets -1).

The batched form scores a chunk of pairs ``A x B`` (matrices zero-padded to the block's longest,
each scaled to unit Frobenius norm) in a few whole-array steps over ``xp`` (NumPy or CuPy, one
code path):

1. ``C`` of every pair at once: one GEMM ``(A * La, r) @ (r, B * Lb)`` viewed as
   ``(A, La, B, Lb)``;
2. cumulative sums along the diagonals, in place, one row at a time (``La`` vectorized adds):
   ``D[i, j] = C[i, j] + D[i-1, j-1]``; then ``S[p, q] = D[p+w-1, q+w-1] - D[p-1, q-1]``;
3. ``S`` times b's windows' inverse norms (sliding sums of squared column norms, float64 on the
   host; 0 past a matrix's end), the best q of each p (``argmax``), times a's inverse norms, the
   best p: the first maximum in row-major order, so ties go to the smallest p, then q. A pair
   whose best is negative finds a 0 past an end instead: it is redone by the one-pair
   definition (rare: only pairs with no positively correlated pair of windows).

Work per pair: the GEMM (``2 r La Lb`` flops) and about four passes over its ``La x Lb`` table,
in chunks small enough to stay in cache (``CHUNK_BYTES``).

Examples
--------
>>> import numpy as np
>>> from pipelines.compare import compare_window
>>> rng = np.random.default_rng(0)
>>> mats = [rng.standard_normal((3, n)) for n in (9, 6, 12)]
>>> block = window_block(mats, 4, dtype="float64")
>>> score, off_a, off_b = score_window_block(block, block)
>>> s, p, q = compare_window(mats[0], mats[2], 4)
>>> bool(abs(score[0, 2] - s) < 1e-12), (int(off_a[0, 2]), int(off_b[0, 2])) == (p, q)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines._xp import array_module, to_host
from pipelines.compare import (
    _WORKSPACE,
    DTYPES,
    check_matrix,
    check_options,
    compare_window,
    prepare,
    single_threaded_blas,
    window_squares,
)
from pipelines.errors import InputError

# the C tables (and S tables) of one chunk of pairs stay under this many bytes
CHUNK_BYTES = {"cpu": 8 << 20, "cuda": 512 << 20}  # small on CPU: the passes stay in cache


@dataclass
class WindowBlock:
    """A block of matrices ready for :func:`score_window_block`.

    ``rows``: (T, r, L) on the device, each matrix scaled to unit norm and zero-padded to
    ``L = max(longest, window)`` columns; ``cols``: the same transposed, (T, L, r);
    ``inv_norms``: (T, L - w + 1) the windows' inverse norms (0 for a zero window and past the
    end); ``windows``: (T,) windows per matrix (``<= 0``: none); ``first``: (T,) the first window
    with a non-zero norm (-1: none).
    """

    window: int
    dtype: str
    device: str
    rows: Any
    cols: Any
    inv_norms: Any
    windows: np.ndarray
    first: np.ndarray

    def __len__(self) -> int:
        return len(self.windows)


def window_block(
    matrices: Sequence[Any], window: int, *, normalize: str | None = None, dtype: str = "float32",
    device: str = "cpu", checked: bool = False,
) -> WindowBlock:
    """Prepare a block of matrices once for the windowed kernel (see :class:`WindowBlock`).

    ``checked=True``: the matrices are validated float64 arrays already (not checked again).
    """
    check_options(normalize, dtype)
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise InputError(f"window: {window!r} must be a positive integer")
    w, real = int(window), DTYPES[str(dtype)][0]
    rows = np.asarray(matrices[0]).shape[0]
    longest = max(max(np.asarray(x).shape[1] for x in matrices), w)
    data = np.zeros((len(matrices), rows, longest), dtype=real)
    inv = np.zeros((len(matrices), longest - w + 1))
    windows = np.array([np.asarray(x).shape[1] - w + 1 for x in matrices], dtype=np.int64)
    first = np.full(len(matrices), -1, dtype=np.int64)
    for k, x in enumerate(matrices):
        x, norm = prepare(x if checked else check_matrix(x, f"matrix {k}", rows=rows), normalize)
        if norm == 0.0:
            continue
        x = x / norm
        data[k, :, : x.shape[1]] = x  # scaled in float64, then rounded once
        if windows[k] > 0:
            squares = window_squares(x, w)
            inv[k, : windows[k]] = np.divide(1.0, np.sqrt(squares), out=np.zeros_like(squares), where=squares > 0)
            first[k] = int(np.argmax(squares > 0)) if (squares > 0).any() else -1
    xp = array_module(device)
    data = xp.asarray(data)
    return WindowBlock(
        window=w, dtype=str(dtype), device="cuda" if xp is not np else "cpu", rows=data,
        cols=xp.ascontiguousarray(data.transpose(0, 2, 1)), inv_norms=xp.asarray(inv.astype(real)),
        windows=windows, first=first,
    )


def _buffer(xp: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """Scratch space: this thread's reused buffer on the host, a fresh array on a GPU."""
    return _WORKSPACE.get(name, shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)


def _chunk_scores(a: WindowBlock, b: WindowBlock, rows: slice, cols: slice, xp: Any) -> tuple[Any, Any, Any]:
    """``(best ratio, p, q)`` of every pair in ``a[rows] x b[cols]`` (device arrays).

    Windows past a matrix's end have inverse norm 0, so they score 0: a pair whose true best is
    negative lands there and is redone by the caller (its offsets are then out of range).
    """
    w, ma, mb = a.window, a.cols[rows], b.rows[cols]  # (ca, La, r), (cb, r, Lb)
    ca, la, cb, lb = ma.shape[0], ma.shape[1], mb.shape[0], mb.shape[2]
    c = _buffer(xp, "window-c", (ca, cb, la, lb), ma.dtype)
    xp.matmul(ma[:, None], mb[None], out=c)  # C of every pair: batched GEMMs
    for i in range(1, la):  # D[i, j] = C[i, j] + D[i-1, j-1]: cumulative sums along diagonals
        c[:, :, i, 1:] += c[:, :, i - 1, :-1]
    p, q = la - w + 1, lb - w + 1
    s = _buffer(xp, "window-s", (ca, cb, p, q), ma.dtype)  # S[p, q] = D[p+w-1, q+w-1] - D[p-1, q-1]
    xp.subtract(c[:, :, w:, w:], c[:, :, : la - w, : lb - w], out=s[:, :, 1:, 1:])
    s[:, :, 0, :] = c[:, :, w - 1, w - 1 :]
    s[:, :, 1:, 0] = c[:, :, w:, w - 1]
    s *= b.inv_norms[cols][None, :, None, :]
    # the best q of each p, then the best p: the first maximum in row-major order
    best_q = xp.argmax(s, axis=-1)
    per_p = xp.take_along_axis(s, best_q[..., None], axis=-1)[..., 0] * a.inv_norms[rows][:, None, :]
    best_p = xp.argmax(per_p, axis=-1)[..., None]
    pick = (xp.take_along_axis(per_p, best_p, axis=-1)[..., 0], best_p[..., 0])
    return (*pick, xp.take_along_axis(best_q, best_p, axis=-1)[..., 0])


def _redo(a: WindowBlock, b: WindowBlock, i: int, j: int) -> tuple[float, int, int]:
    """One pair by the one-pair definition (float64): the rare pairs whose best is negative."""
    xa = to_host(a.rows[i])[:, : a.windows[i] + a.window - 1]
    xb = to_host(b.rows[j])[:, : b.windows[j] + b.window - 1]
    return compare_window(xa, xb, a.window)


def score_window_block(
    a: WindowBlock, b: WindowBlock, *, upper: bool = False, chunk_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, offset_a, offset_b)`` (Ta x Tb, host arrays) of every pair of ``a`` x ``b``.

    ``upper=True`` (``a`` and ``b`` the same block): only the pairs ``i < j`` are computed and
    meaningful; the rest is unspecified (the caller mirrors).
    """
    if a.window != b.window or a.dtype != b.dtype or a.device != b.device:
        raise ValueError("window blocks of different window/dtype/device")
    xp = array_module(a.device)
    real = DTYPES[a.dtype][0]
    score = np.full((len(a), len(b)), np.nan, dtype=real)
    off_a = np.full(score.shape, -1, dtype=np.int32)
    off_b = np.full(score.shape, -1, dtype=np.int32)
    pair_bytes = 2 * a.cols.shape[1] * b.cols.shape[1] * np.dtype(real).itemsize
    step_b = max(1, min(len(b), (chunk_bytes or CHUNK_BYTES[a.device]) // pair_bytes))
    step_a = max(1, min(len(a), (chunk_bytes or CHUNK_BYTES[a.device]) // (step_b * pair_bytes)))
    with single_threaded_blas():
        for a0 in range(0, len(a), step_a):
            a1 = min(len(a), a0 + step_a)
            for b0 in range(a0 if upper else 0, len(b), step_b):
                b1 = min(len(b), b0 + step_b)
                found = _chunk_scores(a, b, slice(a0, a1), slice(b0, b1), xp)
                score[a0:a1, b0:b1], off_a[a0:a1, b0:b1], off_b[a0:a1, b0:b1] = (to_host(x) for x in found)
    outside = (off_a >= a.windows[:, None]) | (off_b >= b.windows[None, :])
    for i, j in zip(*np.nonzero(outside & (a.windows[:, None] > 0) & (b.windows[None, :] > 0))):
        score[i, j], off_a[i, j], off_b[i, j] = _redo(a, b, i, j)
    none = (a.windows[:, None] <= 0) | (b.windows[None, :] <= 0)
    score[none], off_a[none], off_b[none] = np.nan, -1, -1
    np.clip(score, -1.0, 1.0, out=score)
    return score, off_a, off_b


def self_scores(block: WindowBlock) -> dict[str, np.ndarray]:
    """Each matrix against itself: 1 at its first non-zero window (0 at 0 for a zero matrix,
    NaN at -1 without windows)."""
    has = block.first >= 0
    score = np.where(has, 1.0, np.where(block.windows > 0, 0.0, np.nan)).astype(DTYPES[block.dtype][0])
    offset = np.where(has, block.first, np.where(block.windows > 0, 0, -1)).astype(np.int32)
    return {"score": score, "offset_a": offset, "offset_b": offset.copy()}


__all__ = ["WindowBlock", "score_window_block", "self_scores", "window_block"]
