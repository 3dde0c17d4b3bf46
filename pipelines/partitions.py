"""Scans over the partitions of a Dask DataFrame: the shared machinery of dedup and lookahead.

A *scan* carries a small state from partition to partition, forwards ("the last row of each key
so far") or backwards ("the first rows of each key still to come"). Each partition contributes a
small *summary* computed in parallel; only those summaries form the sequential chain, so the
chain's tasks are cheap and no partition is ever gathered with another.

The functions build Dask graphs and compute nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.dataframe as dd
from dask.delayed import Delayed


def to_partitions(df: dd.DataFrame) -> list[Delayed]:
    """The partitions of ``df`` as a list of Delayed objects (lazy, in partition order)."""
    return list(df.to_delayed(optimize_graph=True))


def scan_forward(
    summaries: Sequence[Delayed], combine: Callable[[Any, Any], Any], initial: Any
) -> list[Delayed]:
    """State *before* each partition, carried forwards.

    ``state[0] = initial`` and ``state[p] = combine(state[p - 1], summaries[p - 1])``.

    Examples
    --------
    >>> import dask
    >>> parts = [dask.delayed(x) for x in (1, 2, 3)]
    >>> dask.compute(*scan_forward(parts, lambda s, x: s + x, 0))
    (0, 1, 3)
    """
    combine_task = dask.delayed(combine, pure=True)
    states: list[Any] = [dask.delayed(initial)]
    for summary in summaries[:-1]:
        states.append(combine_task(states[-1], summary))
    return states[: len(summaries)]


def scan_backward(
    summaries: Sequence[Delayed], combine: Callable[[Any, Any], Any], initial: Any
) -> list[Delayed]:
    """State *after* each partition, carried backwards.

    ``state[-1] = initial`` and ``state[p] = combine(summaries[p + 1], state[p + 1])``.

    Examples
    --------
    >>> import dask
    >>> parts = [dask.delayed(x) for x in (1, 2, 3)]
    >>> dask.compute(*scan_backward(parts, lambda x, s: x + s, 0))
    (5, 3, 0)
    """
    combine_task = dask.delayed(combine, pure=True)
    states: list[Any] = [dask.delayed(initial)]
    for summary in reversed(summaries[1:]):
        states.append(combine_task(summary, states[-1]))
    return list(reversed(states))[-len(summaries):] if summaries else []


def from_partitions(
    parts: Sequence[Delayed], like: dd.DataFrame, meta: Any = None, keep_divisions: bool = True
) -> dd.DataFrame:
    """A Dask DataFrame from per-partition Delayed frames, keeping ``like``'s divisions.

    The steps here never reorder rows, so the input's divisions still hold for the output when
    each output partition holds the rows of the same input partition; a step that moves rows
    to a later partition (``keep_divisions=False``) gives unknown divisions.
    """
    return dd.from_delayed(
        list(parts),
        meta=like._meta if meta is None else meta,
        divisions=like.divisions if keep_divisions else None,
        verify_meta=False,
    )
