"""The compare flow: matrices -> all-against-all grid (tiles of the upper triangle) -> Zarr.

Matrices are loaded and validated before any cluster starts; the grid (:mod:`pipelines.grid`)
fills ``<output>.partial/`` tile by tile and publishes it when complete, so a rerun after a crash
computes only the missing tiles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from distributed import Client, get_task_stream

from flows.config import CompareFlowConfig
from flows.matrices import MatrixSet, load_matrices
from flows.report import RunResult, StepReport, task_seconds_by_prefix
from pipelines.grid import DEFAULT_TILE, all_pairs, plan_grid


@dataclass
class ComparePlan:
    """The matrices of a compare flow, validated, and the grid they make."""

    matrices: MatrixSet
    tile: int | None
    output: str

    def describe(self) -> str:
        """A few lines: how many matrices, of which shape, in how many tiles."""
        arrays = self.matrices.arrays
        n = len(arrays)
        lengths = [a.shape[1] for a in arrays]
        tile = self.tile or DEFAULT_TILE["cpu"]
        tiles = len(plan_grid(n, tile))
        return (
            f"input      {n} matrices of {arrays[0].shape[0]} rows, {min(lengths)}-{max(lengths)} columns\n"
            f"grid       {n * (n - 1) // 2:,} pairs in {tiles} tiles of up to {tile} x {tile}"
            f"{'' if self.tile else ' (on CPU; 1024 on GPU)'}\n"
            f"output     {self.output} (via {self.output}.partial)"
        )


def plan_compare(config: CompareFlowConfig) -> ComparePlan:
    """Load and validate the matrices (one line naming the culprit file or array if bad)."""
    matrices = load_matrices(config.input)
    return ComparePlan(matrices, config.compare.tile, config.output.path)


def run_compare(
    config: CompareFlowConfig, plan: ComparePlan, client: Client, *, show_progress: bool = False
) -> RunResult:
    """Run the grid on ``client`` and publish the Zarr store."""
    started = time.perf_counter()
    options = config.compare
    with get_task_stream(client) as stream:
        grid = all_pairs(
            plan.matrices, tile=options.tile, device=options.device, out=config.output.path,
            top_k=options.top_k, normalize=options.normalize, dtype=options.dtype, client=client,
            overwrite=config.output.overwrite, progress=show_progress,
        )
    task_seconds = sum(task_seconds_by_prefix(stream.data).values())
    result = RunResult(flow="compare", output=grid.path, compare=grid, scheduler=client.scheduler.address)
    n = len(plan.matrices.arrays)
    result.steps.append(StepReport("compare", rows_in=n, rows_out=grid.computed_pairs, task_seconds=task_seconds))
    result.wall_seconds = time.perf_counter() - started
    return result
