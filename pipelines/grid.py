"""All-against-all comparison of N matrices as a Dask task grid over the upper triangle.

Plan, then execute (in the spirit of rechunker):

- :func:`plan_grid` cuts the N x N pair matrix into ``tile x tile`` tiles and keeps those of the
  upper triangle, the diagonal ones once. Pure arithmetic, no data.
- :func:`all_pairs` runs it: one task per *block* of ``tile`` matrices computes their spectra once
  (:func:`pipelines.compare.block_spectra`); one task per tile scores its pairs
  (:func:`pipelines.compare.score_block`) from the two blocks' spectra and writes its results.
  Each pair ``i < j`` is computed once and mirrored: ``score[j, i] = score[i, j]``,
  ``lag[j, i] = -lag[i, j]`` exactly; the diagonal is 1 / 0 (0 / 0 for a zero matrix).

Where it runs: a ``distributed.Client`` passed in, else the current one, else ``dask.compute``
with the local (threaded) scheduler. GPU tasks (``device="cuda"``) ask for ``resources={"GPU": 1}``,
so a cluster must declare that resource on its GPU workers (``LocalCUDACluster(resources=...)``,
``dask worker --resources GPU=1``). No own pool, no own retries: a failed task fails the run.

Output (``out=``, a local path): a Zarr group filled in ``<out>.partial/`` tile by tile:

- ``score`` (N x N, float32 | float64) and ``lag`` (N x N, int32), chunks ``(tile, tile)``: a tile
  writes only its own chunk and its mirror, so concurrent tile writes never share a chunk;
- or, with ``top_k=K``: ``index`` (N x K, int64), ``score`` (N x K), ``lag`` (N x K, int32), the K
  best other matrices of each row (score descending, then index ascending), chunks ``(tile, K)``;
  no N x N array is ever built: tiles keep their rows' K best candidates, one merge task per
  row block keeps the K best of those;
- attributes: ``names`` (the matrices' names, in order), the options, the ``fingerprint``;
- ``_tiles/``: one marker per finished tile (the candidates file in top-k mode), written after the
  tile's data, and ``fingerprint``: a hash of the inputs and options (also in the attributes).

A rerun with the same inputs and options after a crash computes only the tiles without a marker;
a rerun with other inputs or options into the same ``.partial`` is refused (:class:`InputError`).
When every tile is in, ``<out>.partial`` is renamed to ``<out>`` (an existing ``<out>`` only with
``overwrite=True``: renamed aside first, removed after), the markers are dropped and ``_SUCCESS`` is
written last. ``out=None`` keeps the results in memory instead (small N only; no resume).

Examples
--------
>>> [(t.bi, t.bj) for t in plan_grid(5, 2)]
[(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> mats = {f"m{k}": rng.standard_normal((4, int(n))) for k, n in enumerate(rng.integers(5, 9, 5))}
>>> res = all_pairs(mats, tile=2, device="cpu", dtype="float64")
>>> res.n, res.pairs, res.tiles, res.computed_tiles
(5, 10, 6, 6)
>>> bool(np.allclose(res.score, res.score.T)), bool((res.lag == -res.lag.T).all())
(True, True)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.compare import (
    DTYPES,
    Spectra,
    block_spectra,
    check_matrix,
    check_options,
    cupy_or_none,
    fft_length,
    score_block,
)
from pipelines.errors import InputError

DEFAULT_TILE = {"cpu": 256, "cuda": 1024}
SUCCESS = "_SUCCESS"
TILES = "_tiles"
FINGERPRINT = "fingerprint"  # inside _tiles/: zarr warns about foreign objects at the group root
FORMAT = "dask-flows compare grid v1"
DEFINITION = "c[k] = sum_i sum_j a[i, j+k] b[i, j]; score = max_k c[k] / (|a|_F |b|_F)"


# ----------------------------------------------------------------------------------------------
# plan
@dataclass(frozen=True)
class Tile:
    """Tile ``(bi, bj)``, ``bi <= bj``: rows ``i0:i1`` (block bi) against columns ``j0:j1``."""

    bi: int
    bj: int
    i0: int
    i1: int
    j0: int
    j1: int

    @property
    def diagonal(self) -> bool:
        return self.bi == self.bj

    @property
    def name(self) -> str:
        return f"{self.bi}_{self.bj}"

    @property
    def pairs(self) -> int:
        """Unique pairs i < j in the tile."""
        rows, cols = self.i1 - self.i0, self.j1 - self.j0
        return rows * (rows - 1) // 2 if self.diagonal else rows * cols


def blocks(n: int, tile: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the row blocks.

    >>> blocks(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    return [(start, min(n, start + tile)) for start in range(0, n, tile)]


def plan_grid(n: int, tile: int) -> list[Tile]:
    """The tiles of the upper triangle of an ``n x n`` pair matrix, row-major, diagonal ones once.

    >>> len(plan_grid(10, 3)), sum(t.pairs for t in plan_grid(10, 3)) == 10 * 9 // 2
    (10, True)
    >>> plan_grid(3, 8)
    [Tile(bi=0, bj=0, i0=0, i1=3, j0=0, j1=3)]
    """
    if int(tile) < 1:
        raise InputError(f"tile: {tile!r} must be a positive integer")
    bounds = blocks(int(n), int(tile))
    return [
        Tile(bi, bj, *bounds[bi], *bounds[bj])
        for bi in range(len(bounds))
        for bj in range(bi, len(bounds))
    ]


# ----------------------------------------------------------------------------------------------
# result handle
@dataclass(repr=False)
class GridResult:
    """What :func:`all_pairs` did. ``path`` is the published store (``None``: in memory)."""

    path: str | None
    n: int
    names: list[str]
    pairs: int
    tiles: int
    computed_tiles: int
    seconds: float
    device: str
    top_k: int | None = None
    computed_pairs: int = 0
    arrays: dict[str, np.ndarray] | None = field(default=None)

    @property
    def pairs_per_second(self) -> float:
        """Pairs computed by this run per second of its wall time."""
        return self.computed_pairs / self.seconds if self.seconds > 0 else float("nan")

    def open(self) -> Any:
        """The result: the Zarr group (published store) or a dict of NumPy arrays (in memory)."""
        if self.arrays is not None:
            return self.arrays
        import zarr  # noqa: PLC0415

        return zarr.open_group(self.path, mode="r")

    def __getitem__(self, name: str) -> np.ndarray:
        """``result["score"]`` etc. as a NumPy array (reads the whole array)."""
        return np.asarray(self.open()[name][...])

    @property
    def score(self) -> np.ndarray:
        return self["score"]

    @property
    def lag(self) -> np.ndarray:
        return self["lag"]

    @property
    def index(self) -> np.ndarray:
        return self["index"]

    def to_dict(self) -> dict[str, Any]:
        """The numbers a run report shows."""
        return {
            "path": self.path, "n": self.n, "pairs": self.pairs, "tiles": self.tiles,
            "computed_tiles": self.computed_tiles, "computed_pairs": self.computed_pairs,
            "seconds": round(self.seconds, 3), "pairs_per_second": round(self.pairs_per_second, 1),
            "device": self.device, "top_k": self.top_k,
        }

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "<in memory>"
        mode = f", top_k={self.top_k}" if self.top_k else ""
        return (
            f"GridResult({where!r}: n={self.n:,}, pairs={self.pairs:,}, tiles={self.tiles:,} "
            f"({self.computed_tiles:,} computed), {self.seconds:.2f} s, "
            f"{self.pairs_per_second:,.0f} pairs/s, device={self.device}{mode})"
        )


# ----------------------------------------------------------------------------------------------
# the job a task gets (small, picklable)
@dataclass(frozen=True)
class _Job:
    n: int
    nfft: int
    normalize: str | None
    dtype: str
    device: str
    top_k: int | None
    root: str | None  # the .partial store, or None for in-memory results
    fail_tiles: frozenset[str] = frozenset()


def _spectra_task(matrices: list[np.ndarray], job: _Job) -> Spectra:
    return block_spectra(
        matrices, job.nfft, normalize=job.normalize, dtype=job.dtype, device=job.device, prepared=False
    )


def _square(score: np.ndarray, lag: np.ndarray, nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A diagonal tile's full block from its pairs i < j: mirrored, diagonal 1 / 0 (0 for zero)."""
    upper = np.triu(np.ones(score.shape, dtype=bool), 1)
    s = np.where(upper, score, 0).astype(score.dtype)
    s += s.T
    s[np.diag_indices_from(s)] = nonzero.astype(s.dtype)
    lg = np.where(upper, lag, 0).astype(np.int32)
    lg -= lg.T
    return s, lg


def _candidates(
    score: np.ndarray, lag: np.ndarray, cols0: int, k: int, exclude_diagonal: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's k best columns (score descending, column ascending): (index, score, lag)."""
    if exclude_diagonal:
        score = score.copy()
        score[np.diag_indices_from(score)] = -np.inf
    k = min(k, score.shape[1] - (1 if exclude_diagonal else 0))
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return (
        (order + cols0).astype(np.int64),
        np.take_along_axis(score, order, axis=1),
        np.take_along_axis(lag, order, axis=1),
    )


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _tile_task(sa: Spectra, sb: Spectra, tile: Tile, job: _Job) -> Any:
    """Score one tile; write it (and its marker) when there is a store, else return it."""
    if tile.name in job.fail_tiles:
        raise RuntimeError(f"injected failure in tile {tile.name}")
    started = time.perf_counter()
    score, lag = score_block(sa, sb, upper=tile.diagonal)
    if tile.diagonal:
        score, lag = _square(score, lag, sa.nonzero)
    root = Path(job.root) if job.root is not None else None
    if job.top_k is not None:
        rows = _candidates(score, lag, tile.j0, job.top_k, tile.diagonal)
        cols = None if tile.diagonal else _candidates(score.T, -lag.T, tile.i0, job.top_k, False)
        if root is None:
            return rows, cols
        marker = root / TILES / f"{tile.name}.npz"
        arrays = {"ri": rows[0], "rs": rows[1], "rl": rows[2]}
        if cols is not None:
            arrays.update(ci=cols[0], cs=cols[1], cl=cols[2])

        def save(path: Path) -> None:
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)

        _atomic_write(marker, save)
        return tile.name
    if root is None:
        return score, lag
    import zarr  # noqa: PLC0415

    group = zarr.open_group(str(root), mode="r+")
    group["score"][tile.i0 : tile.i1, tile.j0 : tile.j1] = score
    group["lag"][tile.i0 : tile.i1, tile.j0 : tile.j1] = lag
    if not tile.diagonal:
        group["score"][tile.j0 : tile.j1, tile.i0 : tile.i1] = score.T
        group["lag"][tile.j0 : tile.j1, tile.i0 : tile.i1] = -lag.T
    seconds = time.perf_counter() - started
    info = json.dumps({"pairs": tile.pairs, "seconds": round(seconds, 4)})
    _atomic_write(root / TILES / f"{tile.name}.done", lambda p: p.write_text(info))
    return tile.name


def _merge_task(block: int, bounds: tuple[int, int], parts: list[tuple[Any, str]], job: _Job) -> Any:
    """The K best of a row block's candidates from all its tiles; written or returned.

    ``parts``: ``(source, side)`` per tile touching the block; ``source`` is a tile's result
    ``(rows, cols)`` (in memory) or a tile's name (its candidates file in the store), ``side``
    ``"r"`` (the block is the tile's row block) or ``"c"`` (its column block).
    """
    root = Path(job.root) if job.root is not None else None
    index, score, lag = [], [], []
    for source, side in parts:
        if isinstance(source, str):
            with np.load(root / TILES / f"{source}.npz", allow_pickle=False) as data:
                found = (data[f"{side}i"], data[f"{side}s"], data[f"{side}l"])
        else:
            found = source[0] if side == "r" else source[1]
        index.append(found[0])
        score.append(found[1])
        lag.append(found[2])
    index, score, lag = (np.concatenate(x, axis=1) for x in (index, score, lag))
    order = np.lexsort((index, -score), axis=-1)[:, : job.top_k]
    index = np.take_along_axis(index, order, axis=1)
    score = np.take_along_axis(score, order, axis=1)
    lag = np.take_along_axis(lag, order, axis=1)
    if root is None:
        return index, score, lag
    import zarr  # noqa: PLC0415

    group = zarr.open_group(str(root), mode="r+")
    i0, i1 = bounds
    group["index"][i0:i1] = index
    group["score"][i0:i1] = score
    group["lag"][i0:i1] = lag
    return block


# ----------------------------------------------------------------------------------------------
# inputs, device, fingerprint
def _inputs(matrices: Any, names: Sequence[str] | None) -> tuple[list[str], list[np.ndarray]]:
    if hasattr(matrices, "names") and hasattr(matrices, "arrays"):  # e.g. flows.matrices.MatrixSet
        if names is not None:
            raise InputError("names: give names or a named matrix set, not both")
        names, matrices = list(matrices.names), list(matrices.arrays)
    if isinstance(matrices, Mapping):
        if names is not None:
            raise InputError("names: give names or a mapping of matrices, not both")
        names, arrays = [str(k) for k in matrices], list(matrices.values())
    else:
        arrays = list(matrices)
        names = [str(k) for k in range(len(arrays))] if names is None else [str(x) for x in names]
    if len(names) != len(arrays):
        raise InputError(f"names: {len(names)} names for {len(arrays)} matrices")
    if len(set(names)) != len(names):
        raise InputError("names: not unique")
    if not arrays:
        raise InputError("matrices: none given")
    first = check_matrix(arrays[0], f"matrix {names[0]!r}")
    rows = first.shape[0]
    checked = [first] + [
        check_matrix(x, f"matrix {name!r}", rows=rows) for name, x in zip(names[1:], arrays[1:])
    ]
    return names, checked


def _current_client(client: Any) -> Any:
    if client is not None:
        return client
    try:
        from distributed import get_client  # noqa: PLC0415

        return get_client()
    except (ImportError, ValueError):
        return None


def _gpu_workers(client: Any) -> list[str]:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return [addr for addr, info in workers.items() if info.get("resources", {}).get("GPU", 0) >= 1]


def _device(device: str, client: Any) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device: {device!r} is not one of auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    if client is not None:
        if _gpu_workers(client):
            return "cuda"
        if device == "cuda":
            raise InputError(
                "device: cuda: no worker of the cluster declares a GPU resource (start GPU workers "
                "with resources={'GPU': 1}, e.g. LocalCUDACluster or dask worker --resources GPU=1)"
            )
        return "cpu"
    if cupy_or_none() is not None:
        return "cuda"
    if device == "cuda":
        raise InputError(
            "device: cuda needs CuPy and a visible GPU (install the 'gpu' extra, check nvidia-smi), "
            "or use device: auto | cpu"
        )
    return "cpu"


def fingerprint(names: Sequence[str], arrays: Sequence[np.ndarray], options: Mapping[str, Any]) -> str:
    """A hash of the matrices (names, shapes, float64 values, in order) and the options."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"format": FORMAT, "names": list(names), **options}, sort_keys=True).encode())
    for x in arrays:
        x = np.ascontiguousarray(x, dtype=np.float64)
        h.update(np.asarray(x.shape, dtype=np.int64).tobytes())
        h.update(x.data)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# the store
def _local_path(out: Any) -> Path:
    """``out`` as an absolute local path: tasks write to it from workers with other working folders."""
    text = os.fspath(out)
    if "://" in text:
        raise InputError(f"out: {text}: only local paths are supported for the compare grid")
    return Path(text.rstrip("/") or "/").absolute()


def _open_partial(
    final: Path, fp: str, attrs: dict[str, Any], arrays: dict[str, tuple], chunks: dict[str, tuple]
) -> set[str]:
    """Create or reopen ``<out>.partial``; the names of its finished tiles."""
    import zarr  # noqa: PLC0415

    partial = final.with_name(final.name + ".partial")
    stamp = partial / TILES / FINGERPRINT
    if partial.exists():
        found = stamp.read_text().strip() if stamp.exists() else None
        if found is None and (_finished(partial) or any(p.name != TILES for p in partial.iterdir())):
            raise InputError(f"{partial}: an unfinished output without a fingerprint; remove it")
        if found is not None and found != fp:
            raise InputError(
                f"{partial}: an unfinished run with other inputs or options (fingerprint {found}, "
                f"now {fp}); remove it to start over, or choose another out"
            )
    (partial / TILES).mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        _atomic_write(stamp, lambda p: p.write_text(fp + "\n"))
    group = zarr.open_group(str(partial), mode="a")
    group.attrs.update(attrs)
    for name, (shape, dtype) in arrays.items():
        if name in group:
            existing = group[name]
            if existing.shape == shape and existing.dtype == np.dtype(dtype):
                continue
            del group[name]
        group.create_array(name, shape=shape, chunks=chunks[name], dtype=dtype, fill_value=0)
    return _finished(partial)


def _finished(partial: Path) -> set[str]:
    """The names of the tiles with a marker in ``partial``."""
    folder = partial / TILES
    if not folder.is_dir():
        return set()
    return {p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.suffix in (".done", ".npz")}


def _publish(final: Path, overwrite: bool) -> None:
    partial = final.with_name(final.name + ".partial")
    aside = None
    if final.exists():
        if not overwrite:
            raise InputError(f"out: {final} already exists; pass overwrite=True to replace it")
        aside = final.with_name(f"{final.name}.old-{uuid.uuid4().hex[:12]}")
        os.replace(final, aside)
    os.replace(partial, final)
    shutil.rmtree(final / TILES, ignore_errors=True)
    (final / SUCCESS).write_text("")
    if aside is not None:
        if aside.is_dir():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# execution: distributed futures, or dask.compute on the local scheduler
class _Runner:
    """Submit functions as tasks; ``gather`` runs them (local) or waits for them (distributed)."""

    def __init__(
        self, client: Any, resources: dict[str, int] | None, local_workers: int | None = None,
        progress: bool = False,
    ) -> None:
        self.client = client
        self.resources = resources
        self.local_workers = local_workers  # the local scheduler's threads (None: its default)
        self.run = uuid.uuid4().hex[:8]
        self.tasks: list[Any] = []
        self.progress = progress

    def submit(self, fn: Any, *args: Any, key: str, gpu: bool = True) -> Any:
        key = f"{key}-{self.run}"
        if self.client is None:
            import dask  # noqa: PLC0415

            task = dask.delayed(fn, pure=False)(*args, dask_key_name=key)
        else:
            resources = self.resources if gpu else None
            task = self.client.submit(fn, *args, key=key, resources=resources, pure=False)
        self.tasks.append(task)
        return task

    def gather(self, tasks: list[Any]) -> list[Any]:
        if self.client is None:
            import dask  # noqa: PLC0415

            options = {"num_workers": self.local_workers} if self.local_workers else {}
            return list(dask.compute(*tasks, **options)) if tasks else []
        from distributed import as_completed  # noqa: PLC0415
        from distributed import progress as progress_bar  # noqa: PLC0415

        try:
            if self.progress and tasks:
                progress_bar(tasks)
            # the loop given: the client need not be the default one
            for future in as_completed(tasks, loop=self.client.loop):
                if future.status == "error":
                    future.result()  # raises the task's error, at the first failure
            return self.client.gather(tasks)
        except BaseException:
            self.client.cancel(self.tasks)
            raise
        finally:
            self.tasks = []


def all_pairs(
    matrices: Sequence[Any] | Mapping[str, Any],
    *,
    names: Sequence[str] | None = None,
    tile: int | None = None,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    top_k: int | None = None,
    normalize: str | None = None,
    dtype: str = "float32",
    client: Any = None,
    overwrite: bool = False,
    progress: bool = False,
    _fail_tiles: Sequence[str] = (),
) -> GridResult:
    """Compare every matrix with every other (see the module docstring); a :class:`GridResult`.

    ``matrices``: a sequence of 2-D arrays (names ``"0", "1", ...`` unless ``names``), a mapping
    name -> array, or an object with ``names`` and ``arrays`` (``flows.matrices.MatrixSet``).
    ``tile``: matrices per block (default 256 on CPU, 1024 on GPU).
    ``progress``: show distributed's progress bar over the tiles (with a distributed client).
    ``_fail_tiles``: tile names (``"bi_bj"``) whose task raises -- fault injection for tests.
    """
    started = time.perf_counter()
    check_options(normalize, dtype)
    names, arrays = _inputs(matrices, names)
    n = len(arrays)
    client = _current_client(client)
    device = _device(device, client)
    tile = int(tile if tile is not None else DEFAULT_TILE[device])
    if tile < 1:
        raise InputError(f"tile: {tile} must be a positive integer")
    if top_k is not None:
        top_k = int(top_k)
        if not 1 <= top_k <= n - 1:
            raise InputError(f"top_k: {top_k} must be between 1 and n - 1 = {n - 1}")
    plan = plan_grid(n, tile)
    bounds = blocks(n, tile)
    nfft = fft_length(max(x.shape[1] for x in arrays))
    options = {"normalize": normalize, "dtype": str(dtype), "tile": tile, "top_k": top_k}
    job = _Job(n, nfft, normalize, str(dtype), device, top_k, None, frozenset(_fail_tiles))

    final = None
    done: set[str] = set()
    if out is not None:
        final = _local_path(out)
        if final.exists() and not overwrite:
            raise InputError(f"out: {final} already exists; pass overwrite=True to replace it")
        fp = fingerprint(names, arrays, options)
        real = DTYPES[str(dtype)][0]
        attrs = {"names": names, "n": n, "fingerprint": fp, "format": FORMAT, **options,
                 "definition": DEFINITION}
        if top_k is None:
            shapes = {"score": ((n, n), real), "lag": ((n, n), np.int32)}
            chunks = dict.fromkeys(shapes, (tile, tile))
        else:
            shapes = {"index": ((n, top_k), np.int64), "score": ((n, top_k), real),
                      "lag": ((n, top_k), np.int32)}
            chunks = dict.fromkeys(shapes, (tile, top_k))
        done = _open_partial(final, fp, attrs, shapes, chunks)
        job = _Job(n, nfft, normalize, str(dtype), device, top_k,
                   str(final.with_name(final.name + ".partial")), frozenset(_fail_tiles))
    todo = [t for t in plan if t.name not in done]

    # a GPU: tasks ask for it on a cluster; locally, two threads keep it busy (one per CPU core
    # would hold a chunk's GPU buffers each)
    gpu = device == "cuda"
    runner = _Runner(client, {"GPU": 1} if gpu and client is not None else None, 2 if gpu else None,
                     progress=progress)
    needed = sorted({t.bi for t in todo} | {t.bj for t in todo})
    # input blocks travel inside their spectra tasks, never scattered: a task whose worker dies
    # is recomputed from its own spec, while scattered data would be lost with the worker
    data = [arrays[bounds[b][0] : bounds[b][1]] for b in needed]
    spectra = {
        b: runner.submit(_spectra_task, d, job, key=f"compare-spectra-{b}") for b, d in zip(needed, data)
    }
    tiles = [
        runner.submit(_tile_task, spectra[t.bi], spectra[t.bj], t, job, key=f"compare-tile-{t.name}")
        for t in todo
    ]
    merges = []
    if top_k is not None:
        computed = {t.name: task for t, task in zip(todo, tiles)}
        for b, (i0, i1) in enumerate(bounds):
            # every tile touching row block b, in column-block order; a finished one by its name
            parts = [
                (computed.get(t.name, t.name), "r" if t.bi == b else "c") for t in plan if b in (t.bi, t.bj)
            ]
            merges.append(
                runner.submit(_merge_task, b, (i0, i1), parts, job, key=f"compare-merge-{b}", gpu=False)
            )
    results = runner.gather(tiles + merges)

    arrays_out = None
    if final is None:
        arrays_out = _assemble(n, top_k, todo, results, str(dtype))
    else:
        partial = final.with_name(final.name + ".partial")
        finished = _finished(partial)
        missing = [t.name for t in plan if t.name not in finished]
        if missing:  # cannot happen unless someone removed markers meanwhile
            raise RuntimeError(f"{partial}: tiles {missing[:5]} have no marker after the run")
        _publish(final, overwrite)
    seconds = time.perf_counter() - started
    return GridResult(
        path=None if final is None else str(final), n=n, names=names, pairs=n * (n - 1) // 2,
        tiles=len(plan), computed_tiles=len(todo), seconds=seconds, device=device, top_k=top_k,
        computed_pairs=sum(t.pairs for t in todo), arrays=arrays_out,
    )


def _assemble(
    n: int, top_k: int | None, todo: list[Tile], results: list[Any], dtype: str
) -> dict[str, np.ndarray]:
    """In-memory results: the N x N arrays, or the top-k arrays from the merges."""
    if top_k is not None:
        merged = results[len(todo):]
        return {
            "index": np.concatenate([m[0] for m in merged]),
            "score": np.concatenate([m[1] for m in merged]),
            "lag": np.concatenate([m[2] for m in merged]),
        }
    real = DTYPES[dtype][0]
    score = np.zeros((n, n), dtype=real)
    lag = np.zeros((n, n), dtype=np.int32)
    for t, (s, lg) in zip(todo, results[: len(todo)]):
        score[t.i0 : t.i1, t.j0 : t.j1] = s
        lag[t.i0 : t.i1, t.j0 : t.j1] = lg
        if not t.diagonal:
            score[t.j0 : t.j1, t.i0 : t.i1] = s.T
            lag[t.j0 : t.j1, t.i0 : t.i1] = -lg.T
    return {"score": score, "lag": lag}


__all__ = ["GridResult", "Tile", "all_pairs", "blocks", "fingerprint", "plan_grid"]
