"""Mergeable summaries: count, mean, std/var, min and max that are exact, incremental and per key.

Each column (and key) is summarized by a :class:`Moments` state, a shifted form of
``(count, mean, M2, min, max)`` that merges pairwise without ever summing raw values or their
squares, so the std stays exact to rounding also for data far from 0 (see :mod:`pipelines.moments`).

:func:`moments` tree-reduces a Dask DataFrame into a :class:`SummaryState` (a ``Moments`` per
column, and per key with ``by``) through Dask's own reduction machinery (``split_every``-ary tree of
depth ``ceil(log_k P)``); :func:`summarize` goes on to the pandas table. A state is saved as JSON
(floats as ``float.hex``, so lossless, ``inf``/``nan`` included) and merged with the next batch's,
so summarizing batch by batch equals summarizing all at once. :func:`summarize_array` does the same
elementwise for Dask arrays of NumPy or CuPy chunks.

The module is the DataFrame step; the state and the arithmetic live in :mod:`pipelines.moments`
(:class:`Moments`, merging, the array reductions) and :mod:`pipelines.summary_state`
(:class:`SummaryState` and its JSON-safe dict form); every public name of both is importable from
here as well.

Semantics (those of pandas; ``docs/semantics.md`` collects those of every step):

- NaN (and ``None``/``pd.NA``) is skipped; ``count`` counts the other values, ``±inf`` included.
- ``±inf``: ``mean`` is ``inf``/``-inf`` when all infinities have one sign, NaN when both signs
  occur; ``std``/``var`` are NaN as soon as an infinity occurs; ``min``/``max`` include them.
- ``count <= ddof`` gives ``std``/``var`` NaN (``count < 2`` with the default ``ddof=1``);
  ``count == 0`` gives NaN for everything but ``count``.
- Integer columns are summarized as float64 (exact up to 2**53); bool columns are accepted and
  summarized as 0/1 (as ``pandas.Series.mean``/``std`` do). Other dtypes raise :class:`InputError`.
- ``min``/``max`` are reported as float64.
- With ``by``: one key per distinct value (tuple of values for several key columns); missing key
  values (NaN, None, NaT, pd.NA) form a key of their own, as ``groupby(dropna=False)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd

from pipelines._keys import as_list
from pipelines._xp import get_namespace
from pipelines.errors import InputError
from pipelines.moments import (
    Moments,
    check_split_every,
    combine_mean_std,
    moments_array,
    summarize_array,
)
from pipelines.summary_state import (
    STATE_FORMAT,
    STATE_VERSION,
    STATS,
    SummaryState,
    frame_state,
    summary_columns,
)

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "STATS",
    "Moments",
    "SummaryState",
    "combine_mean_std",
    "get_namespace",
    "moments",
    "moments_array",
    "summarize",
    "summarize_array",
]


# --------------------------------------------------------------------------------------------
# the one Dask reduction behind moments and summarize


def _chunk(frame: pd.DataFrame, columns: list[Hashable], by: list[Hashable]) -> SummaryState:
    return frame_state(frame, columns, by)


def _combine(states: Any) -> SummaryState:
    return SummaryState.merge_all(list(states))


def _to_frame(states: Any, ddof: int) -> pd.DataFrame:
    return _combine(states).to_frame(ddof=ddof)


def _check_ddof(ddof: Any) -> int:
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise InputError(f"ddof: must be an integer >= 0, got {ddof!r}")
    return int(ddof)


def _reduce(
    df: dd.DataFrame | dd.Series, columns: Any, by: Any, split_every: Any, ddof: int | None = None
) -> Any:
    """The one reduction behind :func:`moments` and :func:`summarize` (lazy).

    One :class:`SummaryState` per partition, merged ``split_every`` at a time; the root returns
    the merged state (``ddof`` None) or its table with ``ddof``. The arguments are checked here,
    against the metadata, before anything is computed.
    """
    if isinstance(df, dd.Series):
        df = df.to_frame()
    if not isinstance(df, dd.DataFrame):
        raise InputError(f"summary: expected a Dask DataFrame, got {type(df).__name__}")
    by_list = as_list(by)
    cols = summary_columns(df._meta, columns, by_list)
    k = check_split_every(split_every)
    frame = df[cols + by_list]
    empty = SummaryState.empty(cols, by_list or None, frame._meta[by_list] if by_list else None)
    table = {} if ddof is None else {"aggregate_kwargs": {"ddof": ddof}}
    return frame.reduction(
        chunk=_chunk,
        combine=_combine,
        aggregate=_combine if ddof is None else _to_frame,
        chunk_kwargs={"columns": cols, "by": by_list},
        split_every=k,
        meta=empty if ddof is None else empty.to_frame(ddof=ddof),
        token="summary-moments" if ddof is None else "summary",
        **table,
    )


def moments(
    df: dd.DataFrame | dd.Series,
    columns: Hashable | Sequence[Hashable] | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    split_every: int = 8,
) -> Any:
    """Lazy :class:`SummaryState` of ``df``: one state per partition, tree-merged.

    Parameters
    ----------
    df : dask.dataframe.DataFrame or Series
    columns : column name or list, optional
        Default: every numeric or bool column that is not a key.
    by : column name or list, optional
        Key columns; missing key values form a key of their own.
    split_every : int, default 8
        Fan-in of the tree: ``P`` partitions give a tree ``ceil(log_k P)`` tasks deep.

    Returns
    -------
    dask Scalar
        Computes to a :class:`SummaryState` (no sources; add them with
        :meth:`SummaryState.with_source`).

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> df = dd.from_pandas(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), npartitions=3)
    >>> state = moments(df).compute(scheduler="sync")
    >>> state.moments["x"]
    Moments(count=4, mean=2.5, std=1.2909944487358056, min=1.0, max=4.0)
    """
    return _reduce(df, columns, by, split_every)


def summarize(
    df: dd.DataFrame | dd.Series,
    columns: Hashable | Sequence[Hashable] | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    split_every: int = 8,
    ddof: int = 1,
) -> dd.DataFrame:
    """Lazy summary table of ``df``: computes to :meth:`SummaryState.to_frame`'s DataFrame.

    Columns count, mean, std, var, min, max; one row per column, or per ``(key..., column)``.
    See :func:`moments` for the parameters; ``ddof`` is that of ``std`` and ``var``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, dask.dataframe as dd
    >>> pdf = pd.DataFrame({"k": [1, 1, 2, 2, 2], "x": [1.0, 3.0, 2.0, np.nan, 4.0]})
    >>> lazy = summarize(dd.from_pandas(pdf, npartitions=2), by="k")
    >>> lazy.compute(scheduler="sync")  # doctest: +NORMALIZE_WHITESPACE
              count  mean       std  var  min  max
    k column
    1 x           2   2.0  1.414214  2.0  1.0  3.0
    2 x           2   3.0  1.414214  2.0  2.0  4.0
    """
    return _reduce(df, columns, by, split_every, _check_ddof(ddof))
