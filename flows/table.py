"""The table flow: input -> steps in order -> Parquet output, plus an optional summary.

Steps come from the step registry (:mod:`flows.registry`): a step is a function
``(df, params, context) -> df`` that takes and returns a lazy Dask DataFrame. The flow builds the
whole graph lazily and computes it once: the output write, the row count after every step and the
summary state are named results of one graph (:attr:`TablePlan.results`), so no step computes
early and out-of-order input is detected before anything is published. The output is published
first and the summary state committed last (``docs/semantics.md``, "Publishing").

Memory: the scans (dedup, lookahead, lookback) either hold the partitions between their summaries
and kernels or recompute a copy per summary (:mod:`pipelines.partitions`); ``hold_partitions:
auto`` chooses at run time, from the input's estimated size and the workers' memory
(:func:`decide_hold`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask.dataframe as dd
import pandas as pd
import psutil
from dask.utils import format_bytes, key_split
from distributed import Client, get_task_stream, progress
import fsspec
from pydantic import BaseModel

from flows.config import SummaryConfig, TableFlowConfig, step_name
from flows.io import parquet_writer
from flows.paths import refuse_file_parent
from flows.publish import Publication
from flows.registry import StepContext, steps
from flows.report import RunResult, StepReport, compute_seconds
from flows.sources import TableSource
from flows.state import StateStore
from flows.steps import LookaheadParams
from pipelines.errors import InputError
from pipelines.lookahead import parse_horizon
from pipelines.partitions import count_scans, graph_depth, task_graph, with_hold_partitions
from pipelines.summary import SummaryState, moments


@dataclass
class TablePlan:
    """The lazy graph of a table flow, before anything is computed.

    ``results`` names every lazy value the run computes together: ``rows <frame name>`` (the row
    count after each step), ``summary`` (a lazy SummaryState) and ``first time``/``last time``
    (when a time horizon needs the data's span). The run adds ``output``, the pending write.
    """

    source: TableSource
    frames: list[dd.DataFrame]  # the input, then the output of each step
    names: list[str]  # "input", then each step's key path, e.g. "steps[1].lookahead"
    results: dict[str, Any] = field(default_factory=dict)
    checks: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    state_store: StateStore | None = None  # summary.state: the folder of batch files
    previous_state: SummaryState | None = None  # the saved state this run merges into
    fingerprint: dict[str, str] | None = None  # the input's, recorded in the summary state
    publication: Publication | None = None
    hold_partitions: bool | str = "auto"  # the config's choice; "auto" is decided at run time

    def describe(self) -> str:
        """A few lines: each step with its partitions, and the size and depth of the graph the
        run computes (the steps, row counts, checks and summary; the Parquet write adds one level)."""
        lines = []
        for name, frame in zip(self.names, self.frames):
            lines.append(f"{name:<24} {frame.npartitions:>6} partitions  columns: {', '.join(map(str, frame.columns))}")
        if "summary" in self.results:
            lines.append("summary                  tree reduction")
        if self.publication is not None:
            lines.append(f"output                   {self.publication.target} (via {self.publication.tmp_path})")
        setting = self.hold_partitions
        lines.append("partitions               " + (
            "auto (decided at run time)" if setting == "auto" else _fixed_hold_reason(bool(setting))))
        collections = [self.frames[-1], *self.results.values()]
        lines.append(f"graph: {len(task_graph(*collections))} tasks, depth {graph_depth(*collections)} "
                     "(longest dependency chain), before the write")
        return "\n".join(lines)


def rows_key(name: str) -> str:
    """The name of the row count of frame ``name`` in :attr:`TablePlan.results`."""
    return f"rows {name}"


def plan_table(config: TableFlowConfig, run_id: str | None = None) -> TablePlan:
    """Build the lazy graph of a table flow: read, steps, counts, summary and the pending write.

    Needs no cluster: only metadata is read (file listing, schemas, Parquet footers).
    """
    source = TableSource.from_config(config.input)
    plan = TablePlan(source, [source.frame()], ["input"], hold_partitions=config.hold_partitions)
    for index, step in enumerate(config.steps):
        name = step_name(step)
        spec, params = steps()[name], getattr(step, name)
        ctx = StepContext(time=config.input.time, key=f"steps[{index}].{name}")
        with config_key(ctx.key, params):
            plan.frames.append(spec.function(plan.frames[-1], params, ctx))
        plan.names.append(ctx.key)
    for name, frame in zip(plan.names, plan.frames):
        plan.results[rows_key(name)] = frame.map_partitions(len, meta=(None, "int64")).sum()
    plan.checks = [_no_rows(config), *_window_checks(config, plan)]
    if config.summary is not None:
        with config_key("summary", config.summary):
            plan.results["summary"] = moments(
                plan.frames[-1], columns=config.summary.columns, by=config.summary.by,
                split_every=config.summary.split_every,
            )
        if config.summary.state is not None:  # a corrupt state fails before any compute
            plan.state_store = StateStore.open(config.summary.state, config.summary.storage_options)
            plan.previous_state = plan.state_store.read()
        plan.fingerprint = source.fingerprint()
    if config.output is not None:
        output = config.output
        fs, path = fsspec.core.url_to_fs(output.path, **output.storage_options)
        refuse_file_parent(fs, path, "output.path", output.path)
        plan.publication = Publication.start(output, run_id)
    return plan


@contextmanager
def config_key(key: str, params: BaseModel) -> Iterator[None]:
    """Prefix an InputError raised inside with the config key path it concerns.

    ``columns: unknown column 'x'`` under ``steps[1].lookahead`` becomes
    ``steps[1].lookahead.columns: unknown column 'x'``; a message that already starts with
    ``key`` is kept.

    Examples
    --------
    >>> from flows.config import SummaryConfig
    >>> with config_key("summary", SummaryConfig()):
    ...     raise InputError("split_every: must be an integer >= 2, got 1")
    Traceback (most recent call last):
    ...
    pipelines.errors.InputError: summary.split_every: must be an integer >= 2, got 1
    """
    try:
        yield
    except InputError as error:
        message = str(error)
        if message.startswith(key):
            raise
        head, sep, rest = message.partition(": ")
        if sep and head == key.rsplit(".", 1)[-1]:  # "dedup: ..." under "steps[0].dedup"
            message = rest
            head, sep, rest = message.partition(": ")
        if sep and head in type(params).model_fields:
            raise InputError(f"{key}.{head}: {rest}") from None
        raise InputError(f"{key}: {message}") from None


def _no_rows(config: TableFlowConfig) -> Callable[[dict[str, Any]], None]:
    def check(results: dict[str, Any]) -> None:
        if results[rows_key("input")] == 0:
            where = getattr(config.input, "path", config.input.format)
            raise InputError(f"input.path: {where}: the input has no rows")

    return check


def _window_checks(config: TableFlowConfig, plan: TablePlan) -> list[Callable[[dict[str, Any]], None]]:
    """Checks of the lookahead steps without ``partial``; asks ``plan`` for the data's time span."""
    windows = [
        (index, params) for index, step in enumerate(config.steps)
        if isinstance(params := getattr(step, step_name(step)), LookaheadParams) and not params.partial
    ]
    time_column = config.input.time
    if windows and time_column is not None:
        plan.results["first time"] = plan.frames[0][time_column].min()
        plan.results["last time"] = plan.frames[0][time_column].max()
    for index, params in windows:  # a keyed rows horizon: the rows of the largest key
        if params.by is not None and isinstance(parse_horizon(params.horizon), int):
            frame = plan.frames[index]
            plan.results[largest_key_key(plan.names[index])] = frame.groupby(params.by, dropna=False).size().max()
    return [_window_fits(index, params, plan.names[index]) for index, params in windows]


def largest_key_key(name: str) -> str:
    """The name of the row count of the largest key of frame ``name`` in :attr:`TablePlan.results`."""
    return f"largest key rows {name}"



def _window_fits(index: int, params: LookaheadParams, before: str) -> Callable[[dict[str, Any]], None]:
    """Refuse a horizon under which every window is incomplete (all features NaN).

    ``before`` names the frame the step reads (its row count is the step's input).
    """
    horizon = parse_horizon(params.horizon)

    def check(results: dict[str, Any]) -> None:
        key = f"steps[{index}].lookahead.horizon"
        rows = results[rows_key(before)]
        if isinstance(horizon, int):
            largest = results.get(largest_key_key(before), rows)
            if rows and horizon >= largest:
                of = "the data" if params.by is None else f"the largest key (by={params.by})"
                raise InputError(
                    f"{key}: {horizon} rows is not less than the {int(largest)} rows of {of}: every window "
                    "would be incomplete (partial: true computes them anyway)"
                )
        elif "first time" in results and rows:
            span = results["last time"] - results["first time"]
            if horizon > span:
                raise InputError(
                    f"{key}: {params.horizon} is longer than the data's time span ({span}): "
                    "every window would be incomplete (partial: true computes them anyway)"
                )

    return check


#: ``hold_partitions: auto`` holds when the input's estimated size x the scans is at most this
#: share of the workers' memory.
HOLD_SHARE = 0.25


def decide_hold(estimated_bytes: int | None, n_scans: int, cluster_bytes: int) -> tuple[bool, str]:
    """The ``hold_partitions: auto`` rule: whether the scans hold the partitions, and why.

    Hold when ``estimated_bytes x max(1, n_scans)`` is at most :data:`HOLD_SHARE` of
    ``cluster_bytes`` (each scan may hold a partition-sized result per partition); recompute
    otherwise, and when the size is unknown.

    Examples
    --------
    >>> decide_hold(2 * 2**30, 2, 16 * 2**30)
    (True, 'held (est. 2.00 GiB x 2 scans <= 25% of 16.00 GiB)')
    >>> decide_hold(2 * 2**30 + 1, 2, 16 * 2**30)
    (False, 'recomputed (est. 2.00 GiB x 2 scans > 25% of 16.00 GiB)')
    >>> decide_hold(None, 2, 16 * 2**30)
    (False, 'recomputed (input size unknown)')
    """
    if estimated_bytes is None:
        return False, "recomputed (input size unknown)"
    hold = estimated_bytes * max(1, n_scans) <= HOLD_SHARE * cluster_bytes
    scans = f"{n_scans} scan{'' if n_scans == 1 else 's'}"
    return hold, (f"{'held' if hold else 'recomputed'} (est. {format_bytes(estimated_bytes)} x {scans} "
                  f"{'<=' if hold else '>'} {HOLD_SHARE:.0%} of {format_bytes(cluster_bytes)})")


def cluster_memory(client: Client) -> int:
    """The workers' memory in bytes: the sum of their memory limits, a worker without a limit
    counting this host's total memory."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    host = psutil.virtual_memory().total
    return sum(int(worker.get("memory_limit") or host) for worker in workers)


def choose_hold(config: TableFlowConfig, plan: TablePlan, client: Client) -> tuple[bool, str]:
    """The run's memory policy for the scans (``hold_partitions``), and the line that says why."""
    setting = config.hold_partitions
    if setting != "auto":
        return setting, _fixed_hold_reason(setting)
    n_scans = count_scans(*plan.frames)
    if n_scans == 0:
        return False, "no scans (nothing to hold)"
    return decide_hold(plan.source.estimated_bytes(), n_scans, cluster_memory(client))


def _fixed_hold_reason(hold: bool) -> str:
    return f"{'held' if hold else 'recomputed'} (hold_partitions: {str(hold).lower()})"


def _step_keys(frames: list[dd.DataFrame]) -> list[tuple[set[Any], set[str]]]:
    """Per step, the task keys and task-name prefixes that first appear in its graph.

    Task time is attributed by exact key where the computed graph kept the step's keys (the
    partition-scan steps), else by name prefix (tasks that optimization renamed or fused).
    """
    seen_keys: set[Any] = set()
    seen_prefixes: set[str] = set()
    result = []
    for frame in frames:
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


def run_table(config: TableFlowConfig, plan: TablePlan, client: Client, *, show_progress: bool = False) -> RunResult:
    """Run a planned table flow on ``client``: one compute, then publish the output, then commit
    the summary state.

    The state is written last: it is the record that this input was merged, so a run that fails
    to publish its output leaves the state as it was and its rerun is accepted.
    """
    started = time.perf_counter()
    _check_steps_on_workers(config, client)
    _refuse_merged_input(config, plan.previous_state, plan.fingerprint)
    result = RunResult(flow="table", scheduler=client.scheduler.address)
    hold, result.partitions = choose_hold(config, plan, client)
    # the policy goes into the graph itself, not into dask's config (one dict for all threads)
    # one call for frames and results, so that the scans they share stay shared
    fixed = with_hold_partitions(*plan.frames, *plan.results.values(), hold=hold)
    frames, lazy = fixed[:len(plan.frames)], dict(zip(plan.results, fixed[len(plan.frames):]))
    publication = plan.publication
    if publication is not None:  # dask creates the folder when the write is built: only now
        output = config.output
        lazy["output"] = parquet_writer(frames[-1], publication.tmp_url, output.storage_options,
                                        output.compression, output.dictionary)
    step_keys = _step_keys(frames)
    try:
        with get_task_stream(client) as stream:
            values = _compute(client, lazy, config, show_progress)
        for check in plan.checks:  # before anything is published
            check(values)
        _refuse_changed_input(plan.source)
        batch, state = _merged_state(values["summary"], config, plan) if "summary" in values else (None, None)
        if publication is not None:
            publication.publish()
            result.output = publication.url
        if state is not None:
            result.summary, result.summary_state = _commit_summary(batch, state, config.summary, plan)
    finally:
        if publication is not None and not publication.published:
            publication.discard()
    result.steps = _step_reports(plan, values, _task_seconds(stream.data, step_keys))
    result.wall_seconds = time.perf_counter() - started
    return result


def _compute(client: Client, lazy: dict[str, Any], config: TableFlowConfig, show_progress: bool) -> dict[str, Any]:
    """Compute named lazy values together (one graph); their values by the same names.

    An InputError raised by the data during the compute (time order) names ``input.time``.
    """
    names = list(lazy)
    futures = client.compute([lazy[name] for name in names], optimize_graph=True)
    if show_progress:
        progress(futures)
    try:
        return dict(zip(names, client.gather(futures)))
    except InputError as error:
        time_column = config.input.time
        if time_column is None or str(error).startswith("input.") or repr(time_column) not in str(error):
            raise
        raise InputError(f"input.time: {error}") from None


def _step_reports(plan: TablePlan, values: dict[str, Any], seconds: list[float]) -> list[StepReport]:
    """Rows in and out and task seconds per step, then one line for the output and summary."""
    counts = [int(values[rows_key(name)]) for name in plan.names]
    reports = [
        StepReport(name, rows_in=counts[index - 1] if index else None, rows_out=counts[index],
                   task_seconds=seconds[index])
        for index, name in enumerate(plan.names)
    ]
    writes = "output" in values
    label = " + ".join(n for n, on in (("output", writes), ("summary", "summary" in values)) if on)
    rest = seconds[-1]  # the write, the summary and the row counts
    reports.append(StepReport(label, rows_in=counts[-1], rows_out=counts[-1] if writes else None, task_seconds=rest))
    return reports


def _check_steps_on_workers(config: TableFlowConfig, client: Client) -> None:
    """The checks steps need the cluster for (e.g. ``map``: the function imports on the workers)."""
    for index, step in enumerate(config.steps):
        name = step_name(step)
        spec = steps()[name]
        if spec.check is not None:
            spec.check(getattr(step, name), client, f"steps[{index}].{name}")


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


def _refuse_changed_input(source: TableSource) -> None:
    """After the compute, before publishing: every input file is as it was listed when planned
    (the fingerprint describes what was read; see ``docs/semantics.md``, "Summary state")."""
    changed = source.changed_file()
    if changed is not None:
        raise InputError(
            f"input.path: {changed}: changed while the run read it (size, modification time or ETag); "
            "nothing was published, rerun to read it as it is now"
        )


def _merged_state(
    computed: SummaryState, config: TableFlowConfig, plan: TablePlan
) -> tuple[SummaryState, SummaryState]:
    """This run's batch (recording its input), and the batch merged into the saved state."""
    batch = computed.with_source(**plan.fingerprint) if plan.fingerprint is not None else computed
    if plan.previous_state is None:
        return batch, batch
    try:
        return batch, plan.previous_state.merge(batch)
    except InputError as error:
        raise InputError(f"summary.state: {config.summary.state}: {error}") from None


def _commit_summary(
    batch: SummaryState, state: SummaryState, summary: SummaryConfig, plan: TablePlan
) -> tuple[pd.DataFrame, str | None]:
    """Add the batch to the state folder (when ``summary.state`` is set: the commit record); the
    summary table of the state as this run saw it (batches committed meanwhile show on the next read)."""
    if plan.state_store is not None and plan.fingerprint is not None:
        plan.state_store.commit(batch, plan.fingerprint["fingerprint"])
    return state.to_frame(ddof=summary.ddof), summary.state
