"""``flows.run``: load a config, get a cluster, run its flow, close what was opened.

The CLI and notebooks both come through :func:`run`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from concurrent.futures import CancelledError
from typing import Any

import fsspec
from distributed import Client, performance_report

from flows.cluster import describe_cluster, open_client
from flows.config import CompareFlowConfig, TableFlowConfig, load_config
from flows.report import RunResult
from pipelines.errors import InputError


def input_fingerprint(config: TableFlowConfig) -> dict[str, str]:
    """Identify a table flow's input: its path and a hash of its files' names, sizes and times.

    Synthetic inputs are identified by their settings.
    """
    source = config.input
    if source.format == "synthetic":
        settings = source.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        return {"path": "synthetic", "fingerprint": digest[:32]}
    paths = [source.path] if isinstance(source.path, str) else source.path
    entries = []
    for item in paths:
        fs, _, found = fsspec.get_fs_token_paths(item, storage_options=source.storage_options)
        for p in found:
            for f in sorted(fs.find(p) if fs.isdir(p) else [p]):
                info = fs.info(f)
                entries.append((f, info.get("size"), str(info.get("mtime", info.get("LastModified", "")))))
    digest = hashlib.sha256(json.dumps(entries, default=str).encode()).hexdigest()
    return {"path": ",".join(paths), "fingerprint": digest[:32]}


class SchedulerLostError(RuntimeError):
    """The scheduler went away during a run; nothing was published."""


def preflight(config: TableFlowConfig | CompareFlowConfig) -> None:
    """Cheap checks before any cluster starts: the input exists, the output may be written."""
    from flows.io import check_target, expand_paths

    source = config.input
    if source.format in ("parquet", "csv"):
        expand_paths(source.path, source.storage_options, f".{source.format}")
    elif source.format != "synthetic" and not fsspec.get_fs_token_paths(source.path)[0].exists(source.path):
        raise InputError(f"input.path: {source.path}: not found")
    output = config.output
    if output is not None:
        fs, _, (target,) = fsspec.get_fs_token_paths(output.path, storage_options=output.storage_options)
        check_target(fs, target, output.overwrite, "output.path")


def run(
    config: str | os.PathLike[str] | dict[str, Any] | TableFlowConfig | CompareFlowConfig,
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
    cluster_text = describe_cluster(cfg.cluster, scheduler, client) if dry_run else None
    if isinstance(cfg, TableFlowConfig):
        from flows.table import plan_table, run_table

        plan = plan_table(cfg)  # lazy: metadata only, before any cluster starts
        if dry_run:
            return RunResult(flow="table", dry_run=True, graph="\n".join(filter(None, [plan.describe(), cluster_text])))
        execute = functools.partial(
            run_table, cfg, plan, show_progress=progress, source_fingerprint=input_fingerprint(cfg)
        )
    else:
        from flows.compare import plan_compare, run_compare

        plan = plan_compare(cfg)
        if dry_run:
            return RunResult(flow="compare", dry_run=True, graph="\n".join(filter(None, [plan.describe(), cluster_text])))
        execute = functools.partial(run_compare, cfg, plan, show_progress=progress)
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
