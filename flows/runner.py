"""``flows.run``: load a config, get a cluster, run its flow, close what was opened.

The flow comes from the flow registry (:mod:`flows.registry`): its ``plan`` runs before any
cluster starts (and is all a dry run does), its ``run`` on the cluster.

The CLI and notebooks both come through :func:`run`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from concurrent.futures import CancelledError
from typing import Any

import fsspec
from distributed import Client, performance_report

from flows.cluster import describe_cluster, open_client
from flows.config import FlowConfig, load_config
from flows.registry import flows
from flows.report import RunResult
from pipelines.errors import InputError


class SchedulerLostError(RuntimeError):
    """The scheduler went away during a run; nothing was published."""


def preflight(config: FlowConfig) -> None:
    """Cheap checks before any cluster starts: the output may be written, the input path exists.

    A table input's files are listed (and checked) once, by :class:`flows.sources.TableSource`
    when the flow is planned.
    """
    from flows.publish import check_target

    source = config.input
    path = getattr(source, "path", None)
    table_files = source.format in ("parquet", "csv")
    if path is not None and not table_files and not fsspec.get_fs_token_paths(path)[0].exists(path):
        raise InputError(f"input.path: {path}: not found")
    output = getattr(config, "output", None)
    if output is not None:
        fs, _, (target,) = fsspec.get_fs_token_paths(output.path, storage_options=output.storage_options)
        check_target(fs, target, output.overwrite, "output.path")


def run(
    config: str | os.PathLike[str] | dict[str, Any] | FlowConfig,
    client: Client | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    scheduler: str | None = None,
    dry_run: bool = False,
    report: str | None = None,
    progress: bool = False,
) -> RunResult:
    """Run a flow and return what it did.

    Parameters
    ----------
    config
        A YAML path, a mapping or a validated config model.
    client
        A ``distributed.Client`` to run on; it is used as is and left open. Without one, the
        current default client is used if there is one, else the cluster the config asks for is
        started (and closed at the end).
    overrides
        ``["dotted.key=value", ...]`` or ``{"dotted.key": value}``, applied before validation.
    scheduler
        A scheduler address (the CLI's ``--scheduler``), used when no client is given.
    dry_run
        Validate and build the graph; compute nothing.
    report
        Path of a Dask performance report (HTML) to write.
    progress
        Show a progress bar while computing.

    Returns
    -------
    RunResult
        Output paths, per-step rows and timings, the summary table, the compare handle.
    """
    started = time.perf_counter()
    cfg = load_config(config, overrides)
    preflight(cfg)
    if client is None and scheduler is None:
        with contextlib.suppress(ValueError):
            from distributed import default_client

            client = default_client()
    flow = flows()[cfg.flow]
    cluster_text = describe_cluster(cfg.cluster, scheduler, client) if dry_run else None
    plan = flow.plan(cfg)  # checks the input and builds the work; no cluster needed
    if dry_run:
        return RunResult(flow=cfg.flow, dry_run=True, graph="\n".join(filter(None, [plan.describe(), cluster_text])))
    execute = functools.partial(flow.run, cfg, plan, show_progress=progress)
    with open_client(cfg.cluster, scheduler=scheduler, client=client) as active, active.as_current():
        with performance_report(filename=report) if report else contextlib.nullcontext():
            try:
                result = execute(active)
            except (OSError, CancelledError) as error:
                if active.status == "running":
                    raise
                address = getattr(active.scheduler, "address", "?")
                raise SchedulerLostError(
                    f"lost the scheduler {address} mid-run ({type(error).__name__}: {error}); "
                    "nothing was published"
                ) from None
    result.wall_seconds = time.perf_counter() - started
    return result
