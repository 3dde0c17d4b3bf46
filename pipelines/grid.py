"""The all-against-all grid as a pure plan and plain tile kernels: arrays in, arrays out.

In the spirit of rechunker, planning and computing are apart from running and storing:

- :func:`plan_grid` cuts the N x N pair matrix into ``tile x tile`` tiles: those of the upper
  triangle, the diagonal ones once (a symmetric comparison), or every tile (``symmetric=False``).
  Pure arithmetic, no data.
- The tile kernels are plain functions of NumPy arrays, driven by a small picklable
  :class:`GridSpec`: :func:`prepare_block` turns a block of ``tile`` matrices into what the kernel
  needs once per block (the spectra of :mod:`pipelines.compare`), :func:`score_tile` scores a
  tile's pairs into named arrays (``score`` and ``lag``), :func:`mirror` gives the transposed
  tile (``score[j, i] = score[i, j]``, ``lag[j, i] = -lag[i, j]`` exactly), and
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.compare import DTYPES, block_spectra, fft_length, score_block
from pipelines.errors import InputError

DEFAULT_TILE = {"cpu": 256, "cuda": 1024}
DEFINITION = "c[k] = sum_i sum_j a[i, j+k] b[i, j]; score = max_k c[k] / (|a|_F |b|_F)"
# how a named result array maps onto the transposed tile: (its name there, the sign)
MIRRORED = {"score": ("score", 1), "lag": ("lag", -1)}


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

    ``nfft``: the FFT length for the longest matrix (:func:`pipelines.compare.fft_length`);
    ``dtype``: the kernel's float type; ``top_k``: keep each row's K best columns only.
    """

    nfft: int
    normalize: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    top_k: int | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """The named result arrays of a tile and their dtypes."""
        return {"score": DTYPES[self.dtype][0], "lag": np.int32}

    @property
    def definition(self) -> str:
        return DEFINITION


def prepare_block(matrices: Sequence[np.ndarray], spec: GridSpec) -> Any:
    """What a tile needs of a block of matrices, computed once per block.

    ``matrices``: validated float64 arrays with the same row count (not checked again here).
    """
    return block_spectra(
        matrices, spec.nfft, normalize=spec.normalize, dtype=spec.dtype, device=spec.device, checked=True
    )


def score_tile(block_a: Any, block_b: Any, tile: Tile, spec: GridSpec) -> dict[str, np.ndarray]:
    """The tile's named result arrays, ``(rows, cols)`` each; a folded tile comes complete
    (pairs i < j mirrored, the diagonal 1 / 0, or 0 / 0 for a zero matrix)."""
    score, lag = score_block(block_a, block_b, upper=tile.folded)
    arrays = {"score": score, "lag": lag}
    if tile.folded:
        diagonal = {"score": block_a.nonzero.astype(score.dtype), "lag": np.zeros(len(score), np.int32)}
        arrays = fold(arrays, diagonal)
    return arrays


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
def candidates(arrays: Mapping[str, np.ndarray], cols0: int, k: int, exclude_diagonal: bool) -> dict[str, np.ndarray]:
    """Each row's ``k`` best columns (score descending, column ascending; NaN last).

    ``index`` (int64, offset by ``cols0``) and every array of ``arrays`` at those columns.
    """
    score = arrays["score"]
    if exclude_diagonal:
        score = score.copy()
        score[np.diag_indices_from(score)] = -np.inf
    k = min(k, score.shape[1] - (1 if exclude_diagonal else 0))
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
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
    order = np.lexsort((joined["index"], -joined["score"]), axis=-1)[:, :k]
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
    "DEFAULT_TILE", "GridSpec", "Tile", "assemble", "blocks", "candidates", "fold", "merge_candidates",
    "mirror", "plan_grid", "prepare_block", "score_tile", "tile_candidates",
]
