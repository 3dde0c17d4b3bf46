"""What a run did: rows in/out and task time per step, wall time, outputs -- as text and HTML.

:class:`RunResult` is what :func:`flows.run` returns and what the CLI prints at the end of a run.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from dask.utils import key_split


@dataclass
class StepReport:
    """One step of a run: rows that went in and came out, and the task time spent in it."""

    name: str
    rows_in: int | None = None
    rows_out: int | None = None
    task_seconds: float = 0.0


@dataclass
class RunResult:
    """The outcome of a run: outputs, per-step rows and timings, the summary, the compare result.

    Attributes
    ----------
    flow : str
        ``"table"`` or ``"compare"``.
    output : str or None
        Where the output was published (None for a dry run or a summary-only run).
    steps : list of StepReport
        Per step: rows in/out and task seconds (from the scheduler's task stream).
    wall_seconds : float
        The run's wall time, cluster start included.
    summary : pandas.DataFrame or None
        The summary block's table (count, mean, std, var, min, max), when asked for.
    summary_state : str or None
        Where the merged summary state was saved.
    compare : object or None
        The compare grid's result handle (:class:`flows.compare.GridResult`), for compare flows.
    scheduler : str
        The scheduler the run used.
    partitions : str
        Table flow: the scans' memory policy and why, e.g.
        ``held (est. 1.40 GiB x 2 scans <= 25% of 23.60 GiB)`` (``hold_partitions``).
    dry_run : bool
        True when nothing was computed.
    graph : str
        For a dry run: the plan that would run.
    """

    flow: str
    output: str | None = None
    steps: list[StepReport] = field(default_factory=list)
    wall_seconds: float = 0.0
    summary: pd.DataFrame | None = None
    summary_state: str | None = None
    compare: Any = None
    scheduler: str = ""
    partitions: str = ""
    dry_run: bool = False
    graph: str = ""

    def table(self) -> pd.DataFrame:
        """Per-step rows and task seconds as a DataFrame."""
        frame = pd.DataFrame(
            [(s.name, s.rows_in, s.rows_out, round(s.task_seconds, 3)) for s in self.steps],
            columns=["step", "rows in", "rows out", "task s"],
        )
        return frame.astype({"rows in": "Int64", "rows out": "Int64"})

    def __repr__(self) -> str:
        if self.dry_run:
            return f"dry run of the {self.flow} flow: nothing computed\n{self.graph}"
        lines = [f"{self.flow} flow on {self.scheduler}: {self.wall_seconds:.2f} s wall"]
        lines += [f"partitions: {self.partitions}"] if self.partitions else []
        lines += self._sections(False)
        lines.append(f"output: {self.output}" if self.output else "output: none")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        title = f"<b>{html.escape(self.flow)} flow</b> on <code>{html.escape(self.scheduler)}</code>"
        if self.dry_run:
            return f"{title}: dry run<pre>{html.escape(self.graph)}</pre>"
        parts = [f"{title}: {self.wall_seconds:.2f} s wall"]
        parts += [f"<div>partitions: {html.escape(self.partitions)}</div>"] if self.partitions else []
        parts += self._sections(True)
        parts.append(f"output: <code>{html.escape(str(self.output))}</code>")
        return "<div>" + "\n".join(parts) + "</div>"

    def _sections(self, as_html: bool) -> list[str]:
        """The step table, the compare handle and the summary, as text or HTML."""
        number = lambda x: f"{x:.6g}"  # noqa: E731
        sections = []
        if self.steps:
            table = self.table()
            sections.append(table.to_html(index=False) if as_html else table.to_string(index=False))
        if self.compare is not None:
            sections.append(f"<pre>{html.escape(repr(self.compare))}</pre>" if as_html else repr(self.compare))
        if self.summary is not None and as_html:
            sections.append("<b>summary</b>" + self.summary.to_html(float_format=number))
        elif self.summary is not None:
            state = f", state {self.summary_state}" if self.summary_state else ""
            sections.append(f"summary: {len(self.summary)} rows{state}")
            if len(self.summary) <= 40:
                sections.append(self.summary.to_string(float_format=number))
        return sections


def compute_seconds(task: Mapping[str, Any]) -> float:
    """Seconds a task of a distributed task stream spent computing (transfers excluded)."""
    return sum(s["stop"] - s["start"] for s in task.get("startstops", ()) if s.get("action") == "compute")


def task_seconds_by_prefix(stream: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Compute seconds per task-name prefix from a distributed task stream.

    Examples
    --------
    >>> task_seconds_by_prefix([{"key": ("dedup-1a2b", 0),
    ...   "startstops": [{"action": "compute", "start": 1.0, "stop": 1.5}]}])
    {'dedup': 0.5}
    """
    seconds: dict[str, float] = defaultdict(float)
    for task in stream:
        seconds[key_split(task["key"])] += compute_seconds(task)
    return dict(seconds)
