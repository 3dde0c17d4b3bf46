"""The matrix comparison: column-wise cross-correlation summed over rows, normalized, max over lags.

For ``a`` (r x m) and ``b`` (r x n) with the same r::

    c[k] = sum_i sum_j a[i, j + k] * b[i, j]        k in [-(n - 1), m - 1]
    score = max_k c[k] / (||a||_F ||b||_F)          in [-1, 1]
    lag   = the k of that max (the smallest k on ties)

A zero matrix scores ``(0, 0)``, also against itself. ``normalize="zscore"`` z-normalizes each
row first (a constant row becomes zeros). The windowed comparison (the best pair of w-column
windows: :func:`compare_window`, and its S table :func:`window_table`) is here too; its batched
kernel is :mod:`pipelines.window`.

Two forms:

- :func:`compare` -- one pair, float64. Direct sums (exact ties stay exact) unless the pair is long,
  then the FFT form in float64.
- The batched kernel, :func:`block_spectra` + :func:`score_block`: every matrix is rfft'ed once per
  block (length ``nfft >= 2 * max_len - 1``, a 2-3-5-smooth size), and a tile of pairs
  ``A x B`` is scored as

  1. ``S[f, a, b] = sum_r FA[f, a, r] * conj(FB[f, b, r]) * phase_b[f]`` -- one batched complex GEMM
     (``xp.matmul`` over the frequency axis). ``phase_b`` shifts pair (a, b)'s lags by ``n_b - 1``
     so that its *valid* lags ``[-(n_b - 1), m_a - 1]`` sit at the contiguous positions
     ``[0, m_a + n_b - 2]`` of the circular result;
  2. ``irfft`` along the frequency axis (after one transpose to make it the last axis);
  3. a fused masked max/argmax: a plain ``argmax`` over the whole circular row, then a masked
     re-do only for the (rare) pairs whose argmax fell in the padding ``[m_a + n_b - 1, nfft)``.
     Since the padding lies *after* every valid lag, an argmax inside the valid range is already
     the first maximum of that range: exact, smallest-lag tie rule included. A pair whose
     correlations are all negative lands in the re-do and gets its true negative score.

  One code path over ``xp`` (NumPy or CuPy); float32 (complex64 GEMM) by default, float64 on
  request. Matrices are scaled to unit Frobenius norm (in float64) before the FFT, so the kernel's
  maximum *is* the score.

Examples
--------
>>> import numpy as np
>>> a = np.array([[0.0, 1.0, 2.0, 1.0]])
>>> compare(a, a)
(1.0, 0)
>>> score, lag = compare(a, a[:, 1:3])    # b = a[:, 1:3] sits at offset 1 of a
>>> round(score, 6), lag
(0.912871, 1)
>>> compare(a, np.zeros((1, 3)))
(0.0, 0)
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from pipelines._xp import array_module, cupy_or_none, resolve_device, to_host
from pipelines.errors import InputError

NORMALIZE = (None, "zscore")
DTYPES = {"float32": (np.float32, np.complex64), "float64": (np.float64, np.complex128)}
DEVICES = ("cpu", "cuda")

# compare(): direct sums up to this many multiply-adds per row pair, the float64 FFT form beyond
DIRECT_LIMIT = 1 << 22
# score_block(): the irfft output of one chunk of rows stays under this many bytes
CHUNK_BYTES = {"cpu": 16 << 20, "cuda": 512 << 20}


# ----------------------------------------------------------------------------------------------
# options
def check_options(normalize: str | None = None, dtype: str = "float32") -> None:
    """Refuse an unknown ``normalize`` or ``dtype`` with an :class:`InputError`."""
    if normalize not in NORMALIZE:
        raise InputError(f"normalize: {normalize!r} is not one of None, 'zscore'")
    if str(dtype) not in DTYPES:
        raise InputError(f"dtype: {dtype!r} is not one of float32, float64")


def fft_length(max_len: int) -> int:
    """The smallest 2-3-5-smooth length >= ``2 * max_len - 1`` (fast for pocketfft and cuFFT).

    >>> fft_length(250), fft_length(1), fft_length(3)
    (500, 1, 5)
    """
    target = max(1, 2 * int(max_len) - 1)
    best = 1 << (target - 1).bit_length()  # a power of two always qualifies
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # the smallest power of two times p35 that reaches target
            p = p35 << max(0, (-(-target // p35) - 1).bit_length())
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


# ----------------------------------------------------------------------------------------------
# validation and preparation (host side, float64)
def check_matrix(x: Any, name: str, rows: int | None = None) -> np.ndarray:
    """``x`` as a float64 2-D array, or an :class:`InputError` naming ``name``.

    Refused: non-numeric, not 2-D, fewer than 1 column, a row count other than ``rows``, NaN/inf.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: not numeric (dtype {arr.dtype})")
    if arr.ndim != 2:
        raise InputError(f"{name}: not 2-D (shape {arr.shape})")
    if arr.shape[1] < 1:
        raise InputError(f"{name}: fewer than 1 column (shape {arr.shape})")
    if arr.shape[0] < 1:
        raise InputError(f"{name}: no rows (shape {arr.shape})")
    if rows is not None and arr.shape[0] != rows:
        raise InputError(f"{name}: {arr.shape[0]} rows, expected {rows} like the others")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or inf")
    return arr


def zscore_rows(x: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its (population) std; a constant row becomes zeros.

    >>> zscore_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])).round(4)
    array([[-1.2247,  0.    ,  1.2247],
           [ 0.    ,  0.    ,  0.    ]])
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    varying = x.max(axis=1) > x.min(axis=1)  # exact: a constant row never gets a rounding-noise std
    if varying.any():
        v = x[varying]
        v = v - v.mean(axis=1, keepdims=True)
        out[varying] = v / np.sqrt((v * v).mean(axis=1, keepdims=True))
    return out


def prepare(x: np.ndarray, normalize: str | None) -> tuple[np.ndarray, float]:
    """``(x', ||x'||_F)`` with ``x'`` the (z-normalized if asked) float64 matrix."""
    x = np.asarray(x, dtype=np.float64)
    if normalize == "zscore":
        x = zscore_rows(x)
    return x, float(np.linalg.norm(x))


# ----------------------------------------------------------------------------------------------
# one pair
def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``c[k]`` for ``k = -(n - 1) .. m - 1`` (index ``k + n - 1``), direct float64 sums."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.zeros(a.shape[1] + b.shape[1] - 1)
    for row_a, row_b in zip(a, b, strict=True):
        out += np.correlate(row_a, row_b, mode="full")
    return out


def compare(a: Any, b: Any, normalize: str | None = None) -> tuple[float, int]:
    """``(score, lag)`` of ``a`` (r x m) against ``b`` (r x n): see the module docstring.

    Float64. Direct sums while ``r * m * n`` is small (exact ties then resolve to the smallest lag
    exactly), the float64 FFT kernel beyond that.
    """
    check_options(normalize, "float64")
    a = check_matrix(a, "a")
    b = check_matrix(b, "b", rows=a.shape[0])
    a, norm_a = prepare(a, normalize)
    b, norm_b = prepare(b, normalize)
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0, 0
    m, n = a.shape[1], b.shape[1]
    if m * n <= DIRECT_LIMIT:
        c = correlation(a / norm_a, b / norm_b)
        t = int(np.argmax(c))
        return float(np.clip(c[t], -1.0, 1.0)), t - (n - 1)
    nfft = fft_length(max(m, n))
    sa = block_spectra([a], nfft, dtype="float64", checked=True)
    sb = block_spectra([b], nfft, dtype="float64", checked=True)
    score, lag = score_block(sa, sb)
    return float(score[0, 0]), int(lag[0, 0])


# ----------------------------------------------------------------------------------------------
# one pair, windowed: the best-matching pair of w-column windows
def check_window(window: Any, m: int, n: int) -> int:
    """``window`` as an int in ``[1, min(m, n)]``, or a :class:`ValueError` naming ``window``."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise InputError(f"window: {window!r} must be a positive integer")
    if window > min(m, n):
        raise InputError(f"window: {window} is longer than the matrices' columns ({m} and {n})")
    return int(window)


def window_table(a: Any, b: Any, window: int) -> np.ndarray:
    """The S table of ``a`` (r x m) and ``b`` (r x n): ``S[p, q] = sum_{t < w} C[p+t, q+t]``
    with ``C = a.T @ b``, for ``0 <= p <= m - w``, ``0 <= q <= n - w`` (float64).

    Equal to ``scipy.signal.convolve2d(a.T @ b, np.eye(w), mode="valid")``; ``S[p, q]`` is the
    Frobenius inner product of the windows ``a[:, p:p+w]`` and ``b[:, q:q+w]``.

    >>> a = np.arange(8.0).reshape(2, 4)
    >>> window_table(a, a[:, 1:], 2)
    array([[52., 62.],
           [66., 80.],
           [80., 98.]])
    """
    a = check_matrix(a, "a")
    b = check_matrix(b, "b", rows=a.shape[0])
    w = check_window(window, a.shape[1], b.shape[1])
    c = a.T @ b
    p, q = a.shape[1] - w + 1, b.shape[1] - w + 1
    table = c[:p, :q].copy()
    for t in range(1, w):  # w shifted slices: every entry a plain sum of its w terms
        table += c[t : t + p, t : t + q]
    return table


def window_squares(x: np.ndarray, window: int) -> np.ndarray:
    """``||x[:, p:p+w]||_F ** 2`` for every window ``p`` (float64; exactly 0 for a zero window).

    >>> window_squares(np.array([[3.0, 4.0, 0.0]]), 2)
    array([25., 16.])
    """
    squares = np.square(np.asarray(x, dtype=np.float64)).sum(axis=0)
    return np.lib.stride_tricks.sliding_window_view(squares, window).sum(axis=-1)


def compare_window(a: Any, b: Any, window: int, normalize: str | None = None) -> tuple[float, int, int]:
    """``(score, p, q)``: the cosine of the best-matching pair of ``window``-column windows.

    ``score = max_{p,q} S[p, q] / (||a[:, p:p+w]||_F ||b[:, q:q+w]||_F)`` (:func:`window_table`;
    a window pair with a zero norm scores 0); ties go to the smallest ``p``, then the smallest
    ``q``. ``normalize="zscore"`` z-scores the rows first. Float64.

    >>> a = np.array([[0.0, 1.0, 2.0, 0.0, 5.0]])
    >>> compare_window(a, np.array([[7.0, 1.0, 2.0]]), 2)
    (1.0, 1, 1)
    """
    check_options(normalize, "float64")
    a, _ = prepare(check_matrix(a, "a"), normalize)
    b, _ = prepare(check_matrix(b, "b", rows=a.shape[0]), normalize)
    table = window_table(a, b, window)
    # sqrt(|a_p|^2 |b_q|^2): for identical windows of exact (e.g. integer) data, exactly S[p, q]
    norms = np.sqrt(np.outer(window_squares(a, window), window_squares(b, window)))
    ratio = np.divide(table, norms, out=np.zeros_like(table), where=norms > 0)
    p, q = np.unravel_index(int(np.argmax(ratio)), ratio.shape)  # the first maximum, row-major
    return float(np.clip(ratio[p, q], -1.0, 1.0)), int(p), int(q)


# ----------------------------------------------------------------------------------------------
# the batched kernel
@dataclass
class Spectra:
    """The rfft of a block of matrices, ready for :func:`score_block`.

    ``freq``: (F, T, r) complex, on the device (``xp`` array), each matrix scaled to unit norm;
    ``lengths``: (T,) column counts; ``nonzero``: (T,) False for a zero matrix; ``nfft``: the FFT
    length; ``device``: ``"cpu"`` or ``"cuda"``.
    """

    freq: Any
    lengths: np.ndarray
    nonzero: np.ndarray
    nfft: int
    dtype: str
    device: str

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def nbytes(self) -> int:
        return int(self.freq.nbytes)


def block_spectra(
    matrices: Sequence[Any],
    nfft: int,
    *,
    normalize: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    checked: bool = False,
) -> Spectra:
    """rfft every matrix of a block once (length ``nfft``), each scaled to unit Frobenius norm.

    ``checked=True``: the matrices are already validated float64 arrays with one row count
    (:func:`check_matrix`), e.g. a set that ``flows.matrices`` built; they are not checked again.
    """
    check_options(normalize, dtype)
    xp = array_module(device)
    real, _ = DTYPES[str(dtype)]
    count = len(matrices)
    rows = np.asarray(matrices[0]).shape[0]
    lengths = np.array([np.asarray(x).shape[1] for x in matrices], dtype=np.int64)
    if 2 * int(lengths.max()) - 1 > nfft:
        raise InputError(f"nfft {nfft} is shorter than 2 * {int(lengths.max())} - 1")
    buf = np.zeros((count, rows, int(lengths.max())), dtype=real)
    nonzero = np.zeros(count, dtype=bool)
    for k, x in enumerate(matrices):
        if not checked:
            x = check_matrix(x, f"matrix {k}", rows=rows)
        x, norm = prepare(x, normalize)
        if norm > 0.0:
            nonzero[k] = True
            buf[k, :, : x.shape[1]] = x / norm  # scaled in float64, then rounded once
    spec = xp.fft.rfft(xp.asarray(buf), n=nfft, axis=-1)  # (T, r, F)
    freq = xp.ascontiguousarray(spec.transpose(2, 0, 1))  # (F, T, r): the GEMM's batch-major layout
    return Spectra(freq, lengths, nonzero, int(nfft), str(dtype), "cuda" if xp is not np else "cpu")


def _shift_phase(lengths: np.ndarray, nfft: int, complex_dtype: Any) -> np.ndarray:
    """(F, T) phases ``exp(-2 pi i f (n_b - 1) / nfft)``: moves lag k to position k + n_b - 1."""
    f = np.arange(nfft // 2 + 1, dtype=np.int64)[:, None]
    turns = (f * (lengths[None, :] - 1)) % nfft  # exact integer reduction, then one rounding
    angle = (-2.0 * math.pi / nfft) * turns
    return (np.cos(angle) + 1j * np.sin(angle)).astype(complex_dtype)


class _Workspace(threading.local):
    """Per-thread scratch buffers reused across chunks and tiles (NumPy only).

    Fresh multi-megabyte arrays per chunk cost page faults (first touch) that were measured here
    at up to a third of a tile's time; a worker thread keeps its few buffers instead.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        size = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.dtype != np.dtype(dtype) or buf.size < size:
            buf = self.buffers[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


_WORKSPACE = _Workspace()


class _OneBlasThread:
    """A process-wide "one BLAS thread" limit held while any task needs it (counted)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.limit: Any = None

    def enter(self) -> None:
        with self.lock:
            if self.users == 0:
                self.limit = _blas_controller().limit(limits=1, user_api="blas")
            self.users += 1

    def exit(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.limit is not None:
                self.limit.restore_original_limits()
                self.limit = None


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The process's thread pools, inspected once (the inspection walks the loaded libraries)."""
    return ThreadpoolController()


_ONE_BLAS_THREAD = _OneBlasThread()


@contextlib.contextmanager
def single_threaded_blas() -> Any:
    """NumPy's BLAS on one thread within the block (threadpoolctl: OpenBLAS, MKL, BLIS...).

    A tile's GEMMs are small and many: a BLAS waking its whole thread pool for each, from each of
    several Dask threads at once, measured 9x slower than one BLAS thread per task here.
    distributed's nanny already starts workers with one BLAS thread; this matters for threaded
    and in-process runs. The limit is process-wide while any task holds it (the tasks are the
    parallelism), and restored when the last one leaves.
    """
    _ONE_BLAS_THREAD.enter()
    try:
        yield
    finally:
        _ONE_BLAS_THREAD.exit()


def _transpose_to_last(prod: Any, xp: Any) -> Any:
    """(F, A, B) -> contiguous (A, B, F).

    NumPy: in two cache-friendly steps, (F, P/w, w) -> (P/w, F, w) -> (P/w, w, F), which moves
    64-256-byte runs and then transposes L1-sized (F, w) panels: about twice as fast here as one
    strided copy. CuPy: one ``ascontiguousarray``.
    """
    nf, na, nb = prod.shape
    if xp is not np:
        return xp.ascontiguousarray(prod.transpose(1, 2, 0))
    p = na * nb
    w = next(w for w in (32, 16, 8, 4, 2, 1) if p % w == 0)
    mid = _WORKSPACE.get("mid", (p // w, nf, w), prod.dtype)
    np.copyto(mid, prod.reshape(nf, p // w, w).transpose(1, 0, 2))
    out = _WORKSPACE.get("spectrum", (p // w, w, nf), prod.dtype)
    np.copyto(out, mid.transpose(0, 2, 1))
    return out.reshape(na, nb, nf)


def score_block(
    a: Spectra, b: Spectra, *, upper: bool = False, chunk_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Score every pair of block ``a`` against block ``b``: see :func:`_score_block`.

    On CPU the calling thread's BLAS runs single-threaded meanwhile (the tasks are the parallelism).
    """
    if a.device == "cpu":
        with single_threaded_blas():
            return _score_block(a, b, upper=upper, chunk_bytes=chunk_bytes)
    return _score_block(a, b, upper=upper, chunk_bytes=chunk_bytes)


def _conj_shifted(b: Spectra, nfft: int, cplx: Any, xp: Any) -> Any:
    """Block ``b``'s spectra conjugated and shifted by ``n_b - 1``, laid out ``(F, r, Tb)`` for
    the GEMM."""
    phase = xp.asarray(_shift_phase(b.lengths, nfft, cplx))  # (F, Tb)
    fb = xp.conj(b.freq)
    fb *= phase[:, :, None]
    return xp.ascontiguousarray(fb.transpose(0, 2, 1))


def _best_valid(corr: Any, width: Any, positions: Any, xp: Any) -> tuple[Any, Any]:
    """Max and first argmax of each row of ``corr`` over its valid positions ``[0, width)``.

    A plain argmax over the whole row first; only the rows whose argmax fell in the padding
    (all-negative pairs, or a 0 tie) are re-done with the padding masked.
    """
    best_at = xp.argmax(corr, axis=-1)
    best = xp.take_along_axis(corr, best_at[..., None], axis=-1)[..., 0]
    padded = best_at >= width
    if bool(padded.any()):
        rows = corr[padded]
        rows = xp.where(positions[None, :] < width[padded][:, None], rows, -xp.inf)
        redo = xp.argmax(rows, axis=-1)
        best_at[padded] = redo
        best[padded] = xp.take_along_axis(rows, redo[:, None], axis=-1)[:, 0]
    return best, best_at


def _score_block(
    a: Spectra, b: Spectra, *, upper: bool = False, chunk_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Score every pair of block ``a`` against block ``b``: ``(score (Ta, Tb), lag (Ta, Tb))``.

    Host NumPy arrays: score in the kernel's dtype (float32 | float64), lag int32.
    ``upper=True`` (``a`` and ``b`` the same block): only the pairs ``i < j`` are computed and
    meaningful; the rest of the result is unspecified (the caller mirrors).
    Memory: about ``4 * chunk_bytes`` (default by device) beyond the two spectra.
    """
    if a.nfft != b.nfft or a.dtype != b.dtype or a.device != b.device:
        raise ValueError("spectra of different nfft/dtype/device")
    xp = array_module(a.device)
    real, cplx = DTYPES[a.dtype]
    nfft = a.nfft
    nf = nfft // 2 + 1
    ta, tb = len(a), len(b)
    score = np.zeros((ta, tb), dtype=real)
    lag = np.zeros((ta, tb), dtype=np.int32)
    if ta == 0 or tb == 0:
        return score, lag
    fb = _conj_shifted(b, nfft, cplx, xp)
    m_a = xp.asarray(a.lengths)
    n_b = xp.asarray(b.lengths)
    limit = chunk_bytes or CHUNK_BYTES[a.device]
    step = max(1, min(ta, limit // max(1, tb * nfft * np.dtype(real).itemsize)))
    positions = xp.arange(nfft)
    for a0 in range(0, ta, step):
        a1 = min(ta, a0 + step)
        b0 = a0 if upper else 0  # upper: the pairs i < j of rows a0..a1 need columns >= a0 only
        if b0 >= tb:
            break
        shape = (a1 - a0, tb - b0)
        if xp is np:
            # the same steps as below, into this thread's reused buffers
            prod = _WORKSPACE.get("prod", (nf, *shape), cplx)
            np.matmul(a.freq[:, a0:a1], fb[:, :, b0:], out=prod)
            spectrum = _transpose_to_last(prod, np)
            corr = _WORKSPACE.get("corr", (*shape, nfft), real)
            np.fft.irfft(spectrum, n=nfft, axis=-1, out=corr)
        else:
            prod = xp.matmul(a.freq[:, a0:a1], fb[:, :, b0:])  # (F, A, B): the batched GEMM
            spectrum = _transpose_to_last(prod, xp)  # (A, B, F)
            del prod
            corr = xp.fft.irfft(spectrum, n=nfft, axis=-1)  # (A, B, nfft), real
        del spectrum
        width = m_a[a0:a1, None] + n_b[None, b0:] - 1  # valid positions are [0, width)
        best, best_at = _best_valid(corr, width, positions, xp)
        del corr
        lags = best_at - (n_b[None, b0:] - 1)
        best, lags = to_host(best), to_host(lags)
        score[a0:a1, b0:] = np.clip(best, -1.0, 1.0)
        lag[a0:a1, b0:] = lags
    zero = ~a.nonzero[:, None] | ~b.nonzero[None, :]
    if zero.any():
        score[zero] = 0.0
        lag[zero] = 0
    return score, lag


def score_matrices(
    matrices_a: Sequence[Any],
    matrices_b: Sequence[Any] | None = None,
    *,
    normalize: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Convenience: the batched kernel on two lists of matrices (``b`` defaults to ``a``).

    >>> rng = np.random.default_rng(0)
    >>> mats = [rng.standard_normal((3, n)) for n in (5, 7, 6)]
    >>> s, l = score_matrices(mats, dtype="float64")
    >>> score, lag = compare(mats[0], mats[1])
    >>> bool(abs(s[0, 1] - score) < 1e-12), int(l[0, 1]) == lag
    (True, True)
    """
    check_options(normalize, dtype)
    matrices_b = matrices_a if matrices_b is None else matrices_b
    rows = np.asarray(matrices_a[0]).shape[0]
    mats_a = [check_matrix(x, f"a[{k}]", rows=rows) for k, x in enumerate(matrices_a)]
    mats_b = [check_matrix(x, f"b[{k}]", rows=rows) for k, x in enumerate(matrices_b)]
    nfft = fft_length(max(x.shape[1] for x in [*mats_a, *mats_b]))
    sa = block_spectra(mats_a, nfft, normalize=normalize, dtype=dtype, device=device)
    sb = block_spectra(mats_b, nfft, normalize=normalize, dtype=dtype, device=device)
    return score_block(sa, sb)


__all__ = [
    "Spectra", "array_module", "block_spectra", "check_matrix", "check_options", "check_window",
    "compare", "compare_window", "correlation", "cupy_or_none", "fft_length", "resolve_device", "score_block", "score_matrices",
    "single_threaded_blas", "to_host", "window_squares", "window_table", "zscore_rows",
]
