"""Run a grid plan's tiles as tasks and hand back what the tasks return.

One task per needed block prepares its matrices once (:func:`pipelines.grid.prepare_block`); one
task per tile scores it (:func:`pipelines.grid.score_tile`) and passes the arrays to a sink
(:mod:`flows.grid_store`: written from the worker, or handed back); with ``top_k`` one merge task
per row block keeps the K best of its tiles' candidates.

Where it runs: a ``distributed.Client`` passed in, else the current one, else ``dask.compute``
with the local (threaded) scheduler. GPU tasks ask for ``resources={"GPU": 1}``, so a cluster must
declare that resource on its GPU workers (``LocalCUDACluster(resources=...)``,
``dask worker --resources GPU=1``). No own pool, no own retries: a failed task fails the run (a
worker lost mid-task is distributed's to handle: the task runs again elsewhere).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipelines._xp import check_device, resolve_device
from pipelines.errors import InputError
from pipelines.grid import (
    GridSpec,
    Tile,
    merge_candidates,
    prepare_block,
    score_tile,
    tile_candidates,
)

# fault injection for tests: names ("bi_bj") of the tiles whose task raises (monkeypatch it)
FAIL_TILES: frozenset[str] = frozenset()


# ----------------------------------------------------------------------------------------------
# client and device
def current_client(client: Any) -> Any:
    """``client``, else the current distributed client, else ``None`` (the local scheduler)."""
    if client is not None:
        return client
    try:
        from distributed import get_client  # noqa: PLC0415

        return get_client()
    except (ImportError, ValueError):
        return None


def gpu_workers(client: Any) -> list[str]:
    """The addresses of the workers that declare a ``GPU`` resource."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return [addr for addr, info in workers.items() if info.get("resources", {}).get("GPU", 0) >= 1]


def grid_device(device: str, client: Any, key: str = "compare.device") -> str:
    """``cpu`` or ``cuda``: on a cluster, ``cuda`` when a worker declares a GPU resource; without
    one, as :func:`pipelines._xp.resolve_device` decides here."""
    if check_device(device, key) == "cpu" or client is None:
        return resolve_device(device, key)
    if gpu_workers(client):
        return "cuda"
    if device == "cuda":
        raise InputError(
            f"{key}: cuda: no worker of the cluster declares a GPU resource (start GPU workers "
            "with resources={'GPU': 1}, e.g. LocalCUDACluster or dask worker --resources GPU=1)"
        )
    return "cpu"


# ----------------------------------------------------------------------------------------------
# the tasks
def _block_task(matrices: list[np.ndarray], spec: GridSpec) -> Any:
    return prepare_block(matrices, spec)


def _tile_task(block_a: Any, block_b: Any, tile: Tile, spec: GridSpec, sink: Any) -> Any:
    if tile.name in FAIL_TILES:
        raise RuntimeError(f"injected failure in tile {tile.name}")
    started = time.perf_counter()
    arrays = score_tile(block_a, block_b, tile, spec)
    if spec.top_k is not None:
        return sink.candidates(tile, *tile_candidates(arrays, tile, spec.top_k))
    return sink.tile(tile, arrays, time.perf_counter() - started)


def _merge_task(bounds: tuple[int, int], parts: list[tuple[Any, str]], spec: GridSpec, sink: Any) -> Any:
    """``parts``: ``(source, side)`` per tile touching the row block: a tile's result or a
    finished tile's name, and ``"r"`` (its row block) or ``"c"`` (its column block)."""
    return sink.merged(bounds, merge_candidates([sink.load(s, side) for s, side in parts], spec.top_k))


class _Runner:
    """Submit functions as tasks; ``gather`` runs them (local) or waits for them (distributed)."""

    def __init__(self, client: Any, gpu: bool, progress: bool = False) -> None:
        self.client = client
        self.resources = {"GPU": 1} if gpu and client is not None else None
        # a GPU without a cluster: two local threads keep it busy (one per core would each hold
        # a chunk's GPU buffers)
        self.local_workers = 2 if gpu else None
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
                with self.client.as_current():  # the bar looks for the current client
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


def run_tiles(
    plan: Sequence[Tile], done: set[str], arrays: Sequence[np.ndarray], spec: GridSpec, sink: Any, *,
    client: Any = None, progress: bool = False,
) -> tuple[list[Tile], list[Any], list[Any]]:
    """Run the tiles of ``plan`` not in ``done``: ``(tiles run, their results, merge results)``."""
    todo = [t for t in plan if t.name not in done]
    runner = _Runner(client, spec.device == "cuda", progress)
    needed = sorted({t.bi for t in todo} | {t.bj for t in todo})
    bounds = sorted({(t.i0, t.i1) for t in plan})  # the row blocks, in order
    # input blocks travel inside their tasks, never scattered: a task whose worker dies is
    # recomputed from its own spec, while scattered data would be lost with the worker
    prepared = {
        b: runner.submit(_block_task, list(arrays[slice(*bounds[b])]), spec, key=f"compare-block-{b}")
        for b in needed
    }
    tasks = [
        runner.submit(_tile_task, prepared[t.bi], prepared[t.bj], t, spec, sink, key=f"compare-tile-{t.name}")
        for t in todo
    ]
    merges = []
    if spec.top_k is not None:
        computed = {t.name: task for t, task in zip(todo, tasks)}
        for b, rows in enumerate(bounds):
            # every tile touching row block b, in plan order; a finished one by its name
            parts = [
                (computed.get(t.name, t.name), "r" if t.bi == b else "c")
                for t in plan if t.bi == b or (t.mirrored and t.bj == b)
            ]
            merges.append(runner.submit(_merge_task, rows, parts, spec, sink, key=f"compare-merge-{b}", gpu=False))
    results = runner.gather(tasks + merges)
    return todo, results[: len(todo)], results[len(todo):]


__all__ = ["FAIL_TILES", "current_client", "gpu_workers", "grid_device", "run_tiles"]
