"""The table flow: input -> steps in order -> Parquet output, plus an optional summary.

Steps come from a registry (:data:`STEPS`): a step is a function ``(df, params, context) -> df``
that takes and returns a lazy Dask DataFrame. The flow builds the whole graph lazily and computes
it once: the output write, the row count after every step and the summary state are reductions
of one graph, so no step computes early and out-of-order input is detected before anything is
published.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import pandas as pd
from dask.utils import key_split
from distributed import Client, get_task_stream, progress

from flows.config import (
    DedupParams,
    LookaheadParams,
    MapParams,
    LookaheadStep,
    MapStep,
    SummaryConfig,
    TableFlowConfig,
)
from flows.io import parquet_writer, read_json, read_table, write_json_atomic
from flows.publish import Publication
from flows.report import RunResult, StepReport, compute_seconds
from pipelines.dedup import drop_consecutive_duplicates
from pipelines.errors import InputError
from pipelines.lookahead import future_features, parse_horizon
from pipelines.summary import SummaryState, moments


@dataclass
class StepContext:
    """What a step may need besides its params: the time column and where it sits in the config."""

    time: str | None
    key: str  # e.g. "steps[1].lookahead", for error messages


StepFunction = Callable[[dd.DataFrame, Any, StepContext], dd.DataFrame]


def dedup_step(df: dd.DataFrame, params: DedupParams, ctx: StepContext) -> dd.DataFrame:
    """``dedup``: :func:`pipelines.dedup.drop_consecutive_duplicates`."""
    return drop_consecutive_duplicates(
        df, subset=params.subset, by=params.by, nan_equal=params.nan_equal, time=ctx.time
    )


def lookahead_step(df: dd.DataFrame, params: LookaheadParams, ctx: StepContext) -> dd.DataFrame:
    """``lookahead``: :func:`pipelines.lookahead.future_features`."""
    return future_features(
        df, params.horizon, params.columns, features=tuple(params.features), by=params.by,
        time=ctx.time, partial=params.partial, label=params.label,
    )


def import_function(path: str, key: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function; a one-line error naming ``key`` if not."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise InputError(f"{key}: cannot import {path!r}: {type(error).__name__}: {error}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise InputError(f"{key}: {module_name!r} has no function {name!r}")
    return function


def _import_on_worker(path: str) -> str | None:
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None if callable(getattr(module, name, None)) else f"no function {name!r}"


def map_step(df: dd.DataFrame, params: MapParams, ctx: StepContext) -> dd.DataFrame:
    """``map``: apply a user function to every partition, in parallel.

    The function must be importable here and on every worker (it travels by reference).
    ``meta`` ({column: dtype}) describes its output; without it Dask infers it by running the
    function on a small sample frame.
    """
    key = f"{ctx.key}.function"
    function = import_function(params.function, key)
    meta: Any = None
    if params.meta is not None:
        try:
            meta = pd.DataFrame({c: pd.Series(dtype=d) for c, d in params.meta.items()})
        except TypeError as error:
            raise InputError(f"{ctx.key}.meta: {error}") from None
    try:
        if meta is None:
            return df.map_partitions(function, **params.kwargs)
        return df.map_partitions(function, **params.kwargs, meta=meta)
    except Exception as error:  # meta inference runs the function on an empty frame
        raise InputError(
            f"{key}: {params.function} failed on Dask's sample data while inferring its output "
            f"({type(error).__name__}: {error}); give meta: {{column: dtype}}"
        ) from None


def check_imports_on_workers(config: TableFlowConfig, client: Client) -> None:
    """Every ``map`` function must import on every worker too (functions travel by reference)."""
    for index, step in enumerate(config.steps):
        if isinstance(step, MapStep):
            problems = client.run(_import_on_worker, step.map.function)
            bad = {worker: problem for worker, problem in problems.items() if problem}
            if bad:
                worker, problem = next(iter(bad.items()))
                raise InputError(
                    f"steps[{index}].map.function: cannot import {step.map.function!r} "
                    f"on worker {worker}: {problem}"
                )


STEPS: dict[str, StepFunction] = {"dedup": dedup_step, "lookahead": lookahead_step, "map": map_step}


@dataclass
class TablePlan:
    """The lazy graph of a table flow, before anything is computed."""

    frames: list[dd.DataFrame]  # the input, then the output of each step
    names: list[str]
    summary: Any = None  # lazy SummaryState
    previous_state: SummaryState | None = None  # the saved state this run's merges into
    publication: Publication | None = None
    counts: list[Any] = field(default_factory=list)
    span: Any = None  # lazy (first, last) time of the input, when a time horizon needs it
    checks: list[Callable[[list[int], Any], None]] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines: each step with its partitions, and the graph's size."""
        lines = []
        for name, frame in zip(self.names, self.frames):
            lines.append(f"{name:<24} {frame.npartitions:>6} partitions  columns: {', '.join(map(str, frame.columns))}")
        if self.summary is not None:
            lines.append("summary                  tree reduction")
        if self.publication is not None:
            lines.append(f"output                   {self.publication.target} (via {self.publication.tmp_path})")
        graph = self.frames[-1].__dask_graph__()
        lines.append(f"graph: {len(graph)} tasks up to the last step")
        return "\n".join(lines)


def plan_table(config: TableFlowConfig, run_id: str | None = None) -> TablePlan:
    """Build the lazy graph of a table flow: read, steps, counts, summary and the pending write.

    Needs no cluster: only metadata is read (schemas, Parquet footers).
    """
    df = read_table(config.input)
    time_column = config.input.time
    frames, names = [df], ["input"]
    for index, step in enumerate(config.steps):
        name = next(iter(type(step).model_fields))
        params = getattr(step, name)
        ctx = StepContext(time=time_column, key=f"steps[{index}].{name}")
        df = STEPS[name](df, params, ctx)
        frames.append(df)
        names.append(f"steps[{index}].{name}")
    plan = TablePlan(frames, names)
    plan.counts = [frame.map_partitions(len, meta=(None, "int64")).sum() for frame in frames]
    plan.checks = [_no_rows(config)]
    windows = [(i, s.lookahead) for i, s in enumerate(config.steps) if isinstance(s, LookaheadStep)]
    windows = [(i, p) for i, p in windows if not p.partial]
    if windows and time_column is not None:
        plan.span = (frames[0][time_column].min(), frames[0][time_column].max())
    plan.checks += [_window_fits(i, p) for i, p in windows]
    if config.summary is not None:
        plan.summary = moments(
            df, columns=config.summary.columns, by=config.summary.by, split_every=config.summary.split_every
        )
        plan.previous_state = _saved_state(config.summary)  # a corrupt state fails before any compute
    if config.output is not None:
        plan.publication = Publication.start(config.output, run_id)
    return plan


def _no_rows(config: TableFlowConfig) -> Callable[[list[int], Any], None]:
    def check(counts: list[int], span: Any) -> None:
        if counts[0] == 0:
            where = getattr(config.input, "path", config.input.format)
            raise InputError(f"input.path: {where}: the input has no rows")

    return check


def _window_fits(index: int, params: LookaheadParams) -> Callable[[list[int], Any], None]:
    """Refuse a horizon under which every window is incomplete (all features NaN)."""
    horizon = parse_horizon(params.horizon)

    def check(counts: list[int], span: Any) -> None:
        key = f"steps[{index}].lookahead.horizon"
        rows = counts[index]  # the step's input
        if isinstance(horizon, int):
            if params.by is None and rows and horizon >= rows:
                raise InputError(
                    f"{key}: {horizon} rows is not less than the {rows} rows of the data: every window "
                    "would be incomplete (partial: true computes them anyway)"
                )
        elif span is not None and rows and horizon > span[1] - span[0]:
            raise InputError(
                f"{key}: {params.horizon} is longer than the data's time span ({span[1] - span[0]}): "
                "every window would be incomplete (partial: true computes them anyway)"
            )

    return check


def _saved_state(summary: SummaryConfig) -> SummaryState | None:
    """The summary state saved by earlier runs, or None; a clear error if it is not one."""
    if summary.state is None:
        return None
    saved = read_json(summary.state, "summary.state")
    if saved is None:
        return None
    try:
        return SummaryState.from_dict(saved)
    except InputError as error:
        raise InputError(f"summary.state: {summary.state}: {error}") from None


def _step_keys(plan: TablePlan) -> list[tuple[set[Any], set[str]]]:
    """Per step, the task keys and task-name prefixes that first appear in its graph.

    Task time is attributed by exact key where the computed graph kept the step's keys (the
    partition-scan steps), else by name prefix (tasks that optimization renamed or fused).
    """
    seen_keys: set[Any] = set()
    seen_prefixes: set[str] = set()
    result = []
    for frame in plan.frames:
        keys = set(frame.__dask_graph__()) - seen_keys
        prefixes = {key_split(k) for k in keys} - seen_prefixes
        seen_keys |= keys
        seen_prefixes |= prefixes
        result.append((keys, prefixes))
    return result


def _task_seconds(stream: list[dict[str, Any]], steps: list[tuple[set[Any], set[str]]]) -> list[float]:
    """Compute seconds of the task stream per step (see :func:`_step_keys`)."""
    seconds = [0.0] * (len(steps) + 1)  # the last: tasks of no step (write, summary, counts)
    by_prefix = {p: i for i, (_, prefixes) in enumerate(steps) for p in prefixes}
    for task in stream:
        key = task["key"]
        index = next((i for i, (keys, _) in enumerate(steps) if key in keys), None)
        if index is None:
            index = by_prefix.get(key_split(key), len(steps))
        seconds[index] += compute_seconds(task)
    return seconds


def run_table(
    config: TableFlowConfig,
    plan: TablePlan,
    client: Client,
    *,
    show_progress: bool = False,
    source_fingerprint: dict[str, str] | None = None,
) -> RunResult:
    """Run a planned table flow on ``client``: one compute, then publish output and summary state."""
    started = time.perf_counter()
    check_imports_on_workers(config, client)
    _refuse_merged_input(config, plan.previous_state, source_fingerprint)
    result = RunResult(flow="table", scheduler=client.scheduler.address)
    publication = plan.publication
    writer = None
    if publication is not None:  # dask creates the folder when the write is built: only now
        writer = parquet_writer(plan.frames[-1], publication.tmp_url, config.output.storage_options)
    targets = [writer, *plan.counts, plan.summary, *(plan.span or ())]
    step_keys = _step_keys(plan)
    try:
        with get_task_stream(client) as stream:
            futures = client.compute([t for t in targets if t is not None], optimize_graph=True)
            if show_progress:
                progress(futures)
            values = client.gather(futures)
        values = list(values)
        if writer is not None:
            values.pop(0)
        span = (values[-2], values[-1]) if plan.span is not None else None
        counts = [int(c) for c in values[: len(plan.counts)]]
        for check in plan.checks:  # before anything is published
            check(counts, span)
        state = values[len(plan.counts)] if plan.summary is not None else None
        if state is not None:
            result.summary, result.summary_state = _merge_summary(
                state, config, plan.previous_state, source_fingerprint
            )
        if publication is not None:
            publication.publish()
            result.output = publication.url
    finally:
        if publication is not None and not publication.published:
            publication.discard()
    seconds = _task_seconds(stream.data, step_keys)
    for index, name in enumerate(plan.names):
        result.steps.append(
            StepReport(
                name=name,
                rows_in=int(counts[index - 1]) if index else None,
                rows_out=int(counts[index]),
                task_seconds=seconds[index],
            )
        )
    rest = seconds[-1]  # the write, the summary and the row counts
    label = " + ".join(n for n, on in (("output", writer is not None), ("summary", plan.summary is not None)) if on)
    written = counts[-1] if writer is not None else None
    result.steps.append(StepReport(name=label, rows_in=counts[-1], rows_out=written, task_seconds=rest))
    result.wall_seconds = time.perf_counter() - started
    return result


def _refuse_merged_input(
    config: TableFlowConfig, previous: SummaryState | None, fingerprint: dict[str, str] | None
) -> None:
    """Before computing: a summary state that already holds this input refuses it again."""
    if previous is None or fingerprint is None:
        return
    try:
        previous.with_source(**fingerprint)
    except InputError as error:
        raise InputError(f"summary.state: {config.summary.state}: {error}") from None


def _merge_summary(
    state: SummaryState,
    config: TableFlowConfig,
    previous: SummaryState | None,
    fingerprint: dict[str, str] | None,
) -> tuple[pd.DataFrame, str | None]:
    summary = config.summary
    assert summary is not None
    if fingerprint is not None:
        state = state.with_source(**fingerprint)
    if summary.state is None:
        return state.to_frame(ddof=summary.ddof), None
    if previous is not None:
        try:
            state = previous.merge(state)
        except InputError as error:
            raise InputError(f"summary.state: {summary.state}: {error}") from None
    write_json_atomic(state.to_dict(), summary.state)
    return state.to_frame(ddof=summary.ddof), summary.state
