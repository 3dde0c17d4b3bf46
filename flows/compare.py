"""The compare flow and its Python API: matrices -> all-against-all grid -> Zarr.

:func:`all_pairs` compares every matrix with every other: it validates the matrices once
(:mod:`flows.matrices`), plans the tiles (:mod:`pipelines.grid`), runs them on a client
(:mod:`flows.grid_executor`) and stages, resumes and publishes the store (:mod:`flows.grid_store`,
by the publish protocol of :mod:`flows.publish`). Each pair ``i < j`` is computed once and
mirrored: ``score[j, i] = score[i, j]``, ``lag[j, i] = -lag[i, j]`` exactly; the diagonal is
1 / 0 (0 / 0 for a zero matrix). ``out=None`` keeps the results in memory (small N; no resume).

The flow (``flow: compare``) loads and validates the matrices before any cluster starts, then runs
:func:`all_pairs` into ``output.path``; a rerun after a crash computes only the missing tiles.

Examples
--------
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

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
from distributed import Client, get_task_stream

from flows.config import CompareFlowConfig
from flows.grid_executor import current_client, grid_device, run_tiles
from flows.grid_store import GridStore, MemorySink, fingerprint, output_url
from flows.matrices import MatrixSet, as_matrix_set, load_matrices, matrix_shapes, open_zarr_group
from flows.paths import refuse_file_parent
from flows.publish import is_published
from flows.report import RunResult, StepReport, task_seconds_by_prefix
from pipelines.compare import DTYPES, NORMALIZE, fft_length
from pipelines.errors import InputError
from pipelines.grid import DEFAULT_TILE, GridSpec, Tile, assemble, load_kernel, plan_grid


# ----------------------------------------------------------------------------------------------
# result handle
def _array(name: str) -> property:
    return property(lambda self: self[name], doc=f"The ``{name}`` array (NumPy; reads all of it).")


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
    window: int | None = None
    kernel: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        """Pairs computed by this run per second of its wall time."""
        return self.computed_pairs / self.seconds if self.seconds > 0 else float("nan")

    def open(self) -> Any:
        """The result: the Zarr group (published store) or a dict of NumPy arrays (in memory).

        A store is read only when complete: its ``_SUCCESS`` exists (see :mod:`flows.publish`).
        """
        if self.arrays is not None:
            return self.arrays
        fs, path = fsspec.core.url_to_fs(self.path, **self.storage_options)
        if not is_published(fs, path):
            raise InputError(f"output.path: {self.path}: not a complete output (no _SUCCESS); a publish is under way or was cut short")
        return open_zarr_group(self.path, self.storage_options, mode="r")

    def __getitem__(self, name: str) -> np.ndarray:
        """``result["score"]`` etc. as a NumPy array (reads the whole array)."""
        return np.asarray(self.open()[name][...])

    score = _array("score")
    lag = _array("lag")
    index = _array("index")
    offset_a = _array("offset_a")
    offset_b = _array("offset_b")

    def to_dict(self) -> dict[str, Any]:
        """The numbers a run report shows."""
        return {
            "path": self.path, "n": self.n, "pairs": self.pairs, "tiles": self.tiles,
            "computed_tiles": self.computed_tiles, "computed_pairs": self.computed_pairs,
            "seconds": round(self.seconds, 3), "pairs_per_second": round(self.pairs_per_second, 1),
            "device": self.device, "top_k": self.top_k, "window": self.window, "kernel": self.kernel,
        }

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "<in memory>"
        mode = f", top_k={self.top_k}" if self.top_k else ""
        mode += f", window={self.window}" if self.window else ""
        mode += f", kernel={self.kernel}" if self.kernel else ""
        return (
            f"GridResult({where!r}: n={self.n:,}, pairs={self.pairs:,}, tiles={self.tiles:,} "
            f"({self.computed_tiles:,} computed), {self.seconds:.2f} s, "
            f"{self.pairs_per_second:,.0f} pairs/s, device={self.device}{mode})"
        )


# ----------------------------------------------------------------------------------------------
# options
def check_grid_options(
    n: int, tile: Any, top_k: Any, normalize: Any, dtype: Any, window: Any = None, kernel: Any = None,
    symmetric: bool = True,
) -> None:
    """Refuse bad grid options with the config key that holds them (``compare.tile``, ...)."""
    if window is not None and (isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1):
        raise InputError(f"compare.window: {window!r} must be a positive integer")
    if window is not None and kernel is not None:
        raise InputError("compare.kernel: a user kernel takes no window (compare.window); give one of them")
    if not symmetric and kernel is None:
        raise InputError("compare.symmetric: false needs a user kernel (compare.kernel); the built-in ones are symmetric")
    if kernel is not None:
        load_kernel(kernel, "compare.kernel")
    if normalize not in NORMALIZE:
        raise InputError(f"compare.normalize: {normalize!r} is not one of None, 'zscore'")
    if str(dtype) not in DTYPES:
        raise InputError(f"compare.dtype: {dtype!r} is not one of float32, float64")
    if tile is not None and int(tile) < 1:
        raise InputError(f"compare.tile: {tile} must be a positive integer")
    if top_k is not None and not 1 <= int(top_k) <= n - 1:
        raise InputError(f"compare.top_k: {top_k} must be between 1 and n - 1 = {n - 1}")


def _kernel_problem(path: str) -> str | None:
    try:
        load_kernel(path, "compare.kernel")
    except InputError as error:
        return str(error)
    return None


def check_kernel_on_workers(kernel: str, client: Any) -> None:
    """A user kernel must import on every worker too (it travels by name), before any compute."""
    problems = {worker: problem for worker, problem in client.run(_kernel_problem, kernel).items() if problem}
    if problems:
        worker, problem = next(iter(problems.items()))
        raise InputError(f"{problem} on worker {worker}")


def _store_layout(spec: GridSpec, n: int, tile: int) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """``({name: (shape, dtype)}, {name: chunks})`` of the store's arrays."""
    if spec.top_k is None:
        shapes = {name: ((n, n), dtype) for name, dtype in spec.fields.items()}
        return shapes, dict.fromkeys(shapes, (tile, tile))
    k = spec.top_k
    shapes = {"index": ((n, k), np.int64), **{name: ((n, k), d) for name, d in spec.fields.items()}}
    return shapes, dict.fromkeys(shapes, (tile, k))


def _open_store(
    out: Any, overwrite: bool, matrices: MatrixSet, spec: GridSpec, options: dict[str, Any], tile: int,
    storage_options: dict[str, Any] | None = None,
) -> tuple[GridStore, set[str]]:
    """The staged store of this input and these options, and its finished tiles."""
    fp = fingerprint(matrices.names, matrices.arrays, options)
    store = GridStore.start(out, overwrite, fp, storage_options)
    attrs = {"names": matrices.names, "n": len(matrices.names), **options, "definition": spec.definition}
    shapes, chunks = _store_layout(spec, len(matrices.names), tile)
    return store, store.open(attrs, shapes, chunks)


def all_pairs(
    matrices: Sequence[Any] | Mapping[str, Any] | MatrixSet,
    *,
    names: Sequence[str] | None = None,
    tile: int | None = None,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    top_k: int | None = None,
    normalize: str | None = None,
    dtype: str = "float32",
    window: int | None = None,
    kernel: str | None = None,
    symmetric: bool = True,
    client: Any = None,
    overwrite: bool = False,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> GridResult:
    """Compare every matrix with every other (see the module docstring); a :class:`GridResult`.

    ``matrices``: a :class:`~flows.matrices.MatrixSet` (as loaded, not checked again), a
    mapping name -> array, or a sequence of 2-D arrays (names ``"0", "1", ...`` unless ``names``).
    ``tile``: matrices per block (default 256 on CPU, 1024 on GPU). ``out``: a local path or an
    fsspec URL (``s3://...``, with ``storage_options``) for the Zarr store (``None``: in memory). ``progress``: distributed's progress bar over the tiles.
    ``window``: the windowed comparison (arrays ``score``, ``offset_a``, ``offset_b``; NaN and -1
    for a pair with a matrix shorter than the window). ``kernel``: a user kernel
    ``"module:function"``, ``f(list_of_a, list_of_b) -> len(a) x len(b)`` (array ``score``),
    importable here and on every worker; ``symmetric=False`` computes the full square.
    Errors name the config key of the option (``compare.top_k``, ``output.path``, ...).
    """
    started = time.perf_counter()
    matrices = as_matrix_set(matrices, names)
    n = len(matrices.arrays)
    check_grid_options(n, tile, top_k, normalize, dtype, window, kernel, symmetric)
    client = current_client(client)
    device = grid_device(device, client)
    if kernel is not None and client is not None:
        check_kernel_on_workers(kernel, client)
    tile = int(tile if tile is not None else DEFAULT_TILE[device])
    top_k = None if top_k is None else int(top_k)
    window = None if window is None else int(window)
    nfft = fft_length(max(x.shape[1] for x in matrices.arrays)) if window is None and kernel is None else 0
    spec = GridSpec(nfft, normalize, str(dtype), device, top_k, window, kernel, bool(symmetric))
    plan = plan_grid(n, tile, spec.symmetric)
    options = {"normalize": normalize, "dtype": str(dtype), "tile": tile, "top_k": top_k, "window": window,
               "kernel": kernel, "symmetric": spec.symmetric}
    store, done, sink = None, set(), MemorySink()
    if out is not None:
        store, done = _open_store(out, overwrite, matrices, spec, options, tile, storage_options)
        sink = store.sink
    todo, results, merged = run_tiles(plan, done, matrices.arrays, spec, sink, client=client, progress=progress)
    arrays = None if store is not None else _in_memory(n, spec, todo, results, merged)
    path = store.publish(plan) if store is not None else None
    return GridResult(
        path=path, n=n, names=matrices.names, pairs=sum(t.pairs for t in plan), tiles=len(plan),
        computed_tiles=len(todo), seconds=time.perf_counter() - started, device=device, top_k=top_k,
        computed_pairs=sum(t.pairs for t in todo), arrays=arrays, window=window, kernel=kernel,
        storage_options=dict(storage_options or {}),
    )


def _in_memory(n: int, spec: GridSpec, todo: list[Tile], results: list[Any], merged: list[Any]) -> dict:
    if spec.top_k is None:
        return assemble(n, todo, results, spec)
    return {name: np.concatenate([m[name] for m in merged]) for name in merged[0]}


# ----------------------------------------------------------------------------------------------
# the flow
@dataclass
class ComparePlan:
    """The matrices of a compare flow (their metadata, checked; the values load when it runs)
    and the grid they make."""

    source: Any
    names: list[str]
    shapes: list[tuple[int, ...]]
    tile: int | None
    output: str
    symmetric: bool = True

    def describe(self) -> str:
        """A few lines: how many matrices, of which shape, in how many tiles."""
        n = len(self.shapes)
        lengths = [shape[1] for shape in self.shapes]
        tile = self.tile or DEFAULT_TILE["cpu"]
        plan = plan_grid(n, tile, self.symmetric)
        return (
            f"input      {n} matrices of {self.shapes[0][0]} rows, {min(lengths)}-{max(lengths)} columns\n"
            f"grid       {sum(t.pairs for t in plan):,} pairs in {len(plan)} tiles of up to {tile} x {tile}"
            f"{'' if self.tile else ' (on CPU; 1024 on GPU)'}\n"
            f"output     {self.output} (staged in {self.output}.tmp-<fingerprint>, resumable)"
        )

    def load(self) -> MatrixSet:
        """The matrices, read and validated (NaN, inf...), in the planned order."""
        return load_matrices(self.source)


def plan_compare(config: CompareFlowConfig) -> ComparePlan:
    """Check the output path and the options, and the matrices from their metadata only (shapes
    from ``.npy`` headers and Zarr metadata; one line naming the culprit if bad)."""
    output = config.output
    fs, path = fsspec.core.url_to_fs(output_url(output.path), **output.storage_options)
    refuse_file_parent(fs, path, "output.path", output.path)
    names, shapes = matrix_shapes(config.input)
    o = config.compare
    check_grid_options(len(names), o.tile, o.top_k, o.normalize, o.dtype, o.window, o.kernel, o.symmetric)
    return ComparePlan(config.input, names, shapes, o.tile, output.path, o.symmetric)


def run_compare(
    config: CompareFlowConfig, plan: ComparePlan, client: Client, *, show_progress: bool = False
) -> RunResult:
    """Run the grid on ``client`` and publish the Zarr store."""
    started = time.perf_counter()
    options = config.compare
    matrices = plan.load()
    with get_task_stream(client) as stream:
        grid = all_pairs(
            matrices, tile=options.tile, device=options.device, out=config.output.path,
            top_k=options.top_k, normalize=options.normalize, dtype=options.dtype, window=options.window,
            kernel=options.kernel, symmetric=options.symmetric, client=client,
            overwrite=config.output.overwrite, progress=show_progress,
            storage_options=config.output.storage_options,
        )
    task_seconds = sum(task_seconds_by_prefix(stream.data).values())
    result = RunResult(flow="compare", output=grid.path, compare=grid, scheduler=client.scheduler.address)
    n = len(matrices.arrays)
    result.steps.append(StepReport("compare", rows_in=n, rows_out=grid.computed_pairs, task_seconds=task_seconds))
    result.wall_seconds = time.perf_counter() - started
    return result


__all__ = [
    "ComparePlan", "GridResult", "all_pairs", "check_grid_options", "check_kernel_on_workers", "plan_compare",
    "run_compare",
]
