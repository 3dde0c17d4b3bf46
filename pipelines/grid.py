"""The all-against-all grid as a pure plan and plain tile kernels: arrays in, arrays out.

In the spirit of rechunker, planning and computing are apart from running and storing:

- :func:`plan_grid` cuts the N x N pair matrix into ``tile x tile`` tiles: those of the upper
  triangle, the diagonal ones once (a symmetric comparison), or every tile (``symmetric=False``).
  Pure arithmetic, no data.
- The tile kernels are plain functions of NumPy arrays, driven by a small picklable
  :class:`GridSpec`: :func:`prepare_block` turns a block of ``tile`` matrices into what the kernel
  needs once per block (the spectra of :mod:`pipelines.compare`, the windows of
  :mod:`pipelines.window`, or the matrices for a user kernel), :func:`score_tile` scores a tile's
  pairs into named arrays (``score`` and ``lag``; ``score``, ``offset_a`` and ``offset_b`` with a
  window; ``score`` for a user kernel), :func:`mirror` gives the transposed tile
  (``score[j, i] = score[i, j]``, ``lag[j, i] = -lag[i, j]``, the offsets swapped), and
  :func:`tile_candidates` / :func:`merge_candidates` keep each row's K best columns (score
  descending, then index ascending) without an N x N array.

Running the tasks on a cluster and writing the store belong to :mod:`flows` (``flows.compare``'s
``all_pairs``); nothing here does I/O or knows a scheduler.

Examples
--------
>>> [(t.bi, t.bj) for t in plan_grid(5, 2)]
[(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> mats = [rng.standard_normal((4, int(n))) for n in rng.integers(5, 9, 5)]
>>> spec = GridSpec(nfft=fft_length(8), dtype="float64")
>>> block = prepare_block(mats, spec)
>>> tile = plan_grid(5, 8)[0]
>>> out = score_tile(block, block, tile, spec)
>>> sorted(out), out["score"].shape
(['lag', 'score'], (5, 5))
>>> bool(np.allclose(out["score"], out["score"].T)), bool((out["lag"] == -out["lag"].T).all())
(True, True)
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines._xp import to_host
from pipelines.compare import DTYPES, block_spectra, fft_length, prepare, score_block
from pipelines.errors import InputError
from pipelines.window import score_window_block, self_scores, window_block

DEFAULT_TILE = {"cpu": 256, "cuda": 1024}
DEFINITIONS = {
    "full": "c[k] = sum_i sum_j a[i, j+k] b[i, j]; score = max_k c[k] / (|a|_F |b|_F)",
    "window": "S = conv2(a.T @ b, eye(w), 'valid'); score = max_pq S[p, q] / (|a[:, p:p+w]|_F |b[:, q:q+w]|_F)",
    "kernel": "score = {kernel}(matrices_a, matrices_b)",
}
# how a named result array maps onto the transposed tile: (its name there, the sign)
MIRRORED = {
    "score": ("score", 1), "lag": ("lag", -1), "offset_a": ("offset_b", 1), "offset_b": ("offset_a", 1),
}


# ----------------------------------------------------------------------------------------------
# plan
@dataclass(frozen=True)
class Tile:
    """Tile ``(bi, bj)``: rows ``i0:i1`` (block bi) against columns ``j0:j1`` (block bj).

    ``mirrored``: the tile stands for its transpose too (a symmetric comparison, ``bi <= bj``).
    """

    bi: int
    bj: int
    i0: int
    i1: int
    j0: int
    j1: int
    mirrored: bool = True

    @property
    def diagonal(self) -> bool:
        return self.bi == self.bj

    @property
    def folded(self) -> bool:
        """A diagonal tile of a symmetric grid: its pairs i < j are computed, then mirrored."""
        return self.mirrored and self.diagonal

    @property
    def name(self) -> str:
        return f"{self.bi}_{self.bj}"

    @property
    def pairs(self) -> int:
        """The pairs the tile computes: i < j in a folded tile, all of them otherwise."""
        rows, cols = self.i1 - self.i0, self.j1 - self.j0
        return rows * (rows - 1) // 2 if self.folded else rows * cols


def blocks(n: int, tile: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the row blocks.

    >>> blocks(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    return [(start, min(n, start + tile)) for start in range(0, n, tile)]


def plan_grid(n: int, tile: int, symmetric: bool = True) -> list[Tile]:
    """The tiles of an ``n x n`` pair matrix, row-major: the upper triangle's (diagonal ones
    once) when ``symmetric``, else all of them.

    >>> len(plan_grid(10, 3)), sum(t.pairs for t in plan_grid(10, 3)) == 10 * 9 // 2
    (10, True)
    >>> plan_grid(3, 8)
    [Tile(bi=0, bj=0, i0=0, i1=3, j0=0, j1=3, mirrored=True)]
    >>> len(plan_grid(10, 3, symmetric=False)), sum(t.pairs for t in plan_grid(10, 3, False))
    (16, 100)
    """
    if int(tile) < 1:
        raise InputError(f"tile: {tile!r} must be a positive integer")
    bounds = blocks(int(n), int(tile))
    return [
        Tile(bi, bj, *bounds[bi], *bounds[bj], mirrored=symmetric)
        for bi in range(len(bounds))
        for bj in range(bi if symmetric else 0, len(bounds))
    ]


# ----------------------------------------------------------------------------------------------
# what every task needs to know
@dataclass(frozen=True)
class GridSpec:
    """The comparison a grid computes (small and picklable: it travels with every task).

    The kind: the full comparison (``lag``), ``window`` (the best pair of ``window``-column
    windows: ``offset_a``, ``offset_b``), or a user ``kernel`` (``"module:function"``, a batched
    ``f(list_of_a, list_of_b) -> len(a) x len(b)`` array; ``symmetric=False`` computes the
    full square). ``nfft``: the FFT length of the full comparison
    (:func:`pipelines.compare.fft_length` of the longest matrix); ``dtype``: the float type of
    the scores; ``top_k``: keep each row's K best columns only.
    """

    nfft: int = 0
    normalize: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    top_k: int | None = None
    window: int | None = None
    kernel: str | None = None
    symmetric: bool = True

    @property
    def kind(self) -> str:
        return "kernel" if self.kernel else "window" if self.window else "full"

    @property
    def fields(self) -> dict[str, Any]:
        """The named result arrays of a tile and their dtypes."""
        real = DTYPES[self.dtype][0]
        if self.kind == "window":
            return {"score": real, "offset_a": np.int32, "offset_b": np.int32}
        return {"score": real} if self.kind == "kernel" else {"score": real, "lag": np.int32}

    @property
    def definition(self) -> str:
        return DEFINITIONS[self.kind].format(kernel=self.kernel)


def load_kernel(path: str, key: str = "kernel") -> Callable[..., Any]:
    """The user kernel ``"module:function"``, or an :class:`InputError` naming ``key``.

    >>> load_kernel("numpy:dot").__name__
    'dot'
    >>> load_kernel("no_such_module_here:f", key="compare.kernel")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: compare.kernel: cannot import 'no_such_module_here:f' (ModuleNotFoundError: No module named 'no_such_module_here')
    """
    try:
        function = pkgutil.resolve_name(path)
    except Exception as error:  # ImportError, AttributeError, ValueError, or the module's own
        raise InputError(f"{key}: cannot import {path!r} ({type(error).__name__}: {error})") from None
    if not callable(function):
        raise InputError(f"{key}: {path!r} is not a function")
    return function


def prepare_block(matrices: Sequence[np.ndarray], spec: GridSpec) -> Any:
    """What a tile needs of a block of matrices, computed once per block.

    ``matrices``: validated float64 arrays with the same row count (not checked again here).
    """
    if spec.kind == "kernel":
        return [prepare(x, spec.normalize)[0] for x in matrices]
    if spec.kind == "window":
        return window_block(
            matrices, spec.window, normalize=spec.normalize, dtype=spec.dtype, device=spec.device, checked=True
        )
    return block_spectra(
        matrices, spec.nfft, normalize=spec.normalize, dtype=spec.dtype, device=spec.device, checked=True
    )


def score_tile(block_a: Any, block_b: Any, tile: Tile, spec: GridSpec) -> dict[str, np.ndarray]:
    """The tile's named result arrays, ``(rows, cols)`` each; a folded tile comes complete
    (pairs i < j mirrored, the diagonal as the kind defines it: 1 at lag 0 (0 for a zero
    matrix); 1 at the first non-zero window; the user kernel's own)."""
    if spec.kind == "kernel":
        return _kernel_tile(block_a, block_b, tile, spec)
    if spec.kind == "window":
        score, off_a, off_b = score_window_block(block_a, block_b, upper=tile.folded)
        arrays = {"score": score, "offset_a": off_a, "offset_b": off_b}
        return fold(arrays, self_scores(block_a)) if tile.folded else arrays
    score, lag = score_block(block_a, block_b, upper=tile.folded)
    arrays = {"score": score, "lag": lag}
    if tile.folded:
        diagonal = {"score": block_a.nonzero.astype(score.dtype), "lag": np.zeros(len(score), np.int32)}
        arrays = fold(arrays, diagonal)
    return arrays


def _kernel_tile(block_a: list, block_b: list, tile: Tile, spec: GridSpec) -> dict[str, np.ndarray]:
    """The user kernel on the tile's matrices; a folded tile keeps its upper triangle and diagonal."""
    values = load_kernel(spec.kernel)(block_a, block_b)
    score = to_host(values).astype(DTYPES[spec.dtype][0], copy=False)
    if score.shape != (len(block_a), len(block_b)):
        raise ValueError(
            f"compare.kernel: {spec.kernel} returned shape {score.shape} for {len(block_a)} x "
            f"{len(block_b)} matrices"
        )
    if tile.folded:
        return fold({"score": score}, {"score": np.diagonal(score).copy()})
    return {"score": score}


def mirror(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The transposed tile's arrays: ``score.T``, ``-lag.T`` (see ``MIRRORED``).

    >>> mirror({"score": np.array([[0.5, 0.25]]), "lag": np.array([[2, -1]])})["lag"].tolist()
    [[-2], [1]]
    """
    out = {}
    for name, values in arrays.items():
        target, sign = MIRRORED[name]
        out[target] = -values.T if sign < 0 else values.T
    return out


def fold(arrays: Mapping[str, np.ndarray], diagonal: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A square tile from its pairs i < j: the lower triangle mirrored, the diagonal given.

    >>> fold({"score": np.array([[9.0, 0.5], [9.0, 9.0]]), "lag": np.array([[9, 3], [9, 9]])},
    ...      {"score": np.ones(2), "lag": np.zeros(2, int)})["lag"].tolist()
    [[0, 3], [-3, 0]]
    """
    upper = np.triu(np.ones(next(iter(arrays.values())).shape, dtype=bool), 1)
    flipped = mirror(arrays)
    out = {}
    for name, values in arrays.items():
        square = np.where(upper, values, flipped[name]).astype(values.dtype)
        square[np.diag_indices_from(square)] = diagonal[name]
        out[name] = square
    return out


# ----------------------------------------------------------------------------------------------
# top k
def _sort_key(score: np.ndarray) -> np.ndarray:
    """Ascending order = score descending, NaN (no score) after every number."""
    return np.where(np.isnan(score), np.inf, -score.astype(np.float64))


def candidates(arrays: Mapping[str, np.ndarray], cols0: int, k: int, exclude_diagonal: bool) -> dict[str, np.ndarray]:
    """Each row's ``k`` best columns (score descending, column ascending; NaN last; with
    ``exclude_diagonal`` never the row itself).

    ``index`` (int64, offset by ``cols0``) and every array of ``arrays`` at those columns.
    """
    key = _sort_key(arrays["score"])
    if exclude_diagonal:
        key[np.diag_indices_from(key)] = np.nan  # after every other column, NaN scores included
    k = min(k, key.shape[1] - (1 if exclude_diagonal else 0))
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    picked = {name: np.take_along_axis(values, order, axis=1) for name, values in arrays.items()}
    return {"index": (order + cols0).astype(np.int64), **picked}


def tile_candidates(arrays: Mapping[str, np.ndarray], tile: Tile, k: int) -> tuple[dict, dict | None]:
    """The candidates of the tile's row block, and of its column block when it is mirrored."""
    rows = candidates(arrays, tile.j0, k, tile.diagonal)
    if not tile.mirrored or tile.diagonal:
        return rows, None
    return rows, candidates(mirror(arrays), tile.i0, k, False)


def merge_candidates(parts: Sequence[Mapping[str, np.ndarray]], k: int) -> dict[str, np.ndarray]:
    """The ``k`` best of a row block's candidates from all its tiles (ties: smaller index)."""
    joined = {name: np.concatenate([p[name] for p in parts], axis=1) for name in parts[0]}
    order = np.lexsort((joined["index"], _sort_key(joined["score"])), axis=-1)[:, :k]
    return {name: np.take_along_axis(values, order, axis=1) for name, values in joined.items()}


def assemble(n: int, tiles: Sequence[Tile], results: Sequence[Mapping[str, np.ndarray]], spec: GridSpec) -> dict[str, np.ndarray]:
    """The N x N arrays from every tile's arrays (in memory; small N only)."""
    out = {name: np.zeros((n, n), dtype=dtype) for name, dtype in spec.fields.items()}
    for t, arrays in zip(tiles, results, strict=True):
        for name, values in arrays.items():
            out[name][t.i0 : t.i1, t.j0 : t.j1] = values
        if t.mirrored and not t.diagonal:
            for name, values in mirror(arrays).items():
                out[name][t.j0 : t.j1, t.i0 : t.i1] = values
    return out


__all__ = [
    "DEFAULT_TILE", "GridSpec", "Tile", "assemble", "blocks", "candidates", "fold", "load_kernel",
    "merge_candidates", "mirror", "plan_grid", "prepare_block", "score_tile", "tile_candidates",
]
